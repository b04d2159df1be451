"""The narrow types (float8 x5, bfloat16, float4, int4/uint4, int2/uint2) through compiled kernels.

The C++ conversions (kernels/pf_runtime.h) against polyfuse's numpy reference, which
tests/test_narrow_types.py checks against ONNX's reference implementation: every code of every
narrow type to every standard and narrow type, and every float32 rounding boundary (a dense
sweep), every float16, float64 boundaries and integers around every range to every narrow type,
with both ``saturate`` values and every E8M0 ``round_mode``, compiled by polyfuse through real
Cast models. Then data movement (bytes copied exactly, NaN codes included), fused chains, the
refusal of arithmetic on narrow types, and the runtime's dtype checks. All comparisons are exact
(tolerance 0: same codes; standard floats equal, NaN where the reference has NaN).
"""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import polyfuse
from polyfuse.errors import InputError, UnsupportedError
from polyfuse.ir.narrow_types import NARROW_TYPES, ROUND_MODES, narrow_type
from polyfuse.testing.oracle import reference64

from test_narrow_types import STANDARD, all_codes, assert_same, float32_boundaries, float32_sweep, integer_inputs

OPSET = 25
N = helper.make_node
BY_NAME = {t.onnx_name: t for t in NARROW_TYPES}


def _code(dt) -> int:
    return helper.np_dtype_to_tensor_dtype(np.dtype(dt))


def _model(nodes, feeds: dict, outputs: dict, inits: dict | None = None):
    """``outputs``: name -> numpy dtype (shapes left to inference)."""
    vi = helper.make_tensor_value_info
    g = helper.make_graph(nodes, "narrow", [vi(k, _code(v.dtype), list(v.shape)) for k, v in feeds.items()],
                          [vi(k, _code(dt), None) for k, dt in outputs.items()],
                          [numpy_helper.from_array(np.asarray(v), k) for k, v in (inits or {}).items()])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=11)


def _check(model, feeds: dict, fusions=(True,)) -> None:
    want = reference64(model, feeds, widen=False)
    names = [o.name for o in model.graph.output]
    for fusion in fusions:
        got = polyfuse.compile(model, fusion=fusion).run(None, feeds)
        for name, g in zip(names, got):
            assert_same(g, want[name], f"{name} (fusion={fusion})")


def _modes(t):
    sats = (0, 1) if t.saturate else (1,)
    rounds = ROUND_MODES if t.onnx_name == "FLOAT8E8M0" else ("up",)
    return [(s, r) for s in sats for r in rounds]


def _casts_to_narrow(src: str, tag: str):
    """Cast nodes from ``src`` to every narrow type in every mode, and their outputs."""
    nodes, outs = [], {}
    for t in NARROW_TYPES:
        for sat, rnd in _modes(t):
            y = f"{tag}_{t.onnx_name}_s{sat}_{rnd}"
            nodes.append(N("Cast", [src], [y], to=t.onnx_code, saturate=sat, round_mode=rnd))
            outs[y] = t.dtype
    return nodes, outs


def test_every_code_to_every_type():
    """256 (float8), 65,536 (bfloat16), 16 or 4 codes to 12 standard and 11 narrow types."""
    feeds, nodes, outs = {}, [], {}
    for t in NARROW_TYPES:
        x = f"c_{t.onnx_name}"
        feeds[x] = all_codes(t)
        for dt in STANDARD:
            nodes.append(N("Cast", [x], [f"{x}_to_{np.dtype(dt).name}"], to=_code(dt)))
            outs[f"{x}_to_{np.dtype(dt).name}"] = dt
        more, more_outs = _casts_to_narrow(x, x)
        nodes += more
        outs.update(more_outs)
    _check(_model(nodes, feeds, outs), feeds)


@pytest.mark.parametrize("source", ["float32", "float16", "float64", "integers"])
def test_values_to_every_narrow_type(source):
    """float32: the dense sweep (every rounding boundary and both neighbours) and the boundaries;
    float16: every value; float64: the boundaries and one float64 ulp either side; integers."""
    if source == "float32":
        feeds = {"x": np.concatenate([float32_sweep(), float32_boundaries()])}
    elif source == "float16":
        feeds = {"x": np.arange(1 << 16, dtype=np.uint16).view(np.float16)}
    elif source == "float64":
        b = float32_boundaries()
        b = b[np.isfinite(b)].astype(np.float64)
        specials = [1e300, -1e300, 5e-324, np.inf, -np.inf, np.nan]
        feeds = {"x": np.concatenate([b, np.nextafter(b, np.inf), np.nextafter(b, -np.inf), specials])}
    else:
        feeds = {f"i_{np.dtype(dt).name}": integer_inputs(dt) for dt in STANDARD[3:]}
    nodes, outs = [], {}
    for name in feeds:
        more, more_outs = _casts_to_narrow(name, name)
        nodes += more
        outs.update(more_outs)
    _check(_model(nodes, feeds, outs), feeds)


def _movement_graph(t):
    """Every data-movement op on codes of ``t`` (all its codes, NaNs included), with a narrow
    initializer, a narrow scalar constant (printed as its code) and a Cast at the end."""
    codes = all_codes(t)
    x = np.resize(codes, (4, max(codes.size // 4, 4) * 2))
    table = np.resize(codes[::-1], (2, 4))
    scalar = codes[min(5, codes.size - 1):][:1].reshape(())
    nodes = [N("Transpose", ["x"], ["t"]), N("Slice", ["x", "st", "en", "ax", "sp"], ["s"]),
             N("Concat", ["x", "x"], ["c"], axis=0), N("Gather", ["x", "idx"], ["g"], axis=1),
             N("Reshape", ["x", "shape"], ["r"]), N("Expand", ["row", "eshape"], ["e"]),
             N("Split", ["x"], ["sa", "sb"], axis=0, num_outputs=2), N("Where", ["m", "x", "k"], ["w"]),
             N("Identity", ["x"], ["id"]), N("Gather", ["table", "idx2"], ["tg"], axis=0),
             N("GatherElements", ["x", "ge"], ["gel"], axis=1), N("Unsqueeze", ["t", "ax0"], ["u"]),
             N("Cast", ["t"], ["f"], to=TensorProto.FLOAT)]
    cols = x.shape[1]
    feeds = {"x": x, "row": x[:1].copy(), "m": np.arange(x.size).reshape(x.shape) % 3 == 0,
             "idx2": np.array([[1, 0], [0, 1]], np.int64)}
    inits = {"st": np.array([1, cols - 1], np.int64), "en": np.array([4, 0], np.int64),
             "ax": np.array([0, 1], np.int64),
             "sp": np.array([2, -3], np.int64), "idx": np.array([cols - 1, 0, 3, -2], np.int64),
             "shape": np.array([2, -1], np.int64), "eshape": np.array([3, cols], np.int64), "k": scalar,
             "table": table, "ge": (np.arange(x.size).reshape(x.shape) * 7 % cols).astype(np.int64),
             "ax0": np.array([0], np.int64)}
    outs = {k: t.dtype for k in ("t", "s", "c", "g", "r", "e", "sa", "sb", "w", "id", "tg", "gel", "u")}
    outs["f"] = np.float32
    return _model(nodes, feeds, outs, inits), feeds


@pytest.mark.parametrize("t", NARROW_TYPES, ids=lambda t: t.onnx_name)
def test_data_movement_copies_codes(t):
    _check(*_movement_graph(t), fusions=(True, False))


def test_fused_chain_through_narrow_types():
    """float32 -> FLOAT8E4M3FN (no saturate) -> transposed -> float32 -> bfloat16 -> float32 ->
    Add, and an IsNaN guard that must stay (the float8 Cast makes NaN of values past 464)."""
    x = np.linspace(-600, 600, 7 * 9, dtype=np.float32).reshape(7, 9)
    nodes = [N("Cast", ["x"], ["a"], to=TensorProto.FLOAT8E4M3FN, saturate=0), N("Transpose", ["a"], ["b"]),
             N("Cast", ["b"], ["c"], to=TensorProto.FLOAT), N("Cast", ["c"], ["d"], to=TensorProto.BFLOAT16),
             N("Cast", ["d"], ["e"], to=TensorProto.FLOAT), N("Add", ["e", "one"], ["y"]),
             N("IsNaN", ["c"], ["nan"]), N("Where", ["nan", "zero", "c"], ["guarded"]),
             N("Cast", ["x"], ["q"], to=TensorProto.INT4), N("Cast", ["q"], ["qi"], to=TensorProto.INT32)]
    inits = {"one": np.float32(1.0), "zero": np.float32(0.0)}
    _check(_model(nodes, {"x": x}, {"y": np.float32, "guarded": np.float32, "qi": np.int32}, inits), {"x": x},
           fusions=(True, False))


@pytest.mark.parametrize("op, name, inputs", [
    ("Add", "BFLOAT16", ["a", "a"]), ("MatMul", "FLOAT8E4M3FN", ["a", "a"]), ("Neg", "INT4", ["a"]),
    ("ReduceSum", "FLOAT8E5M2", ["a"]), ("Equal", "FLOAT4E2M1", ["a", "a"])])
def test_arithmetic_on_narrow_types_is_refused(op, name, inputs):
    t = BY_NAME[name]
    feeds = {"a": all_codes(t)[:16].reshape(4, 4)}
    m = _model([N(op, inputs, ["y"])], feeds, {"y": np.bool_ if op == "Equal" else t.dtype})
    with pytest.raises(UnsupportedError, match=f"element type {name} is supported only by Cast and data movement"):
        polyfuse.compile(m)


def test_constant_of_shape_of_a_narrow_value_folds_or_is_refused():
    """Small, it folds to a constant (its output declared bfloat16 too); too large to fold, it is
    refused: no kernel prints its value."""
    bf16 = BY_NAME["BFLOAT16"].dtype
    value = numpy_helper.from_array(np.array([1.5], bf16), "v")
    for shape, folds in (([3, 5], True), ([512, 512], False)):
        m = _model([N("ConstantOfShape", ["shape"], ["c"], value=value), N("Concat", ["c", "x"], ["y"], axis=0)],
                   {"x": np.ones((1, shape[1]), bf16)}, {"y": bf16, "c": bf16}, {"shape": np.array(shape, np.int64)})
        feeds = {"x": np.full((1, shape[1]), -2.0, bf16)}
        if folds:
            _check(m, feeds)
        else:
            with pytest.raises(UnsupportedError, match="element type BFLOAT16"):
                polyfuse.compile(m)


def test_runtime_feeds_outputs_and_artifact(tmp_path):
    """ml_dtypes arrays in and out; a float32 feed for a bfloat16 input names the expected dtype;
    the manifest's narrow dtype names survive save and load."""
    bf16 = BY_NAME["BFLOAT16"].dtype
    x = np.array([1.5, -2.25, np.inf, np.nan], np.float32).astype(bf16)
    m = _model([N("Cast", ["x"], ["y"], to=TensorProto.FLOAT8E5M2), N("Identity", ["x"], ["z"])],
               {"x": x}, {"y": BY_NAME["FLOAT8E5M2"].dtype, "z": bf16})
    model = polyfuse.compile(m)
    y, z = model.run(None, {"x": x})
    assert y.dtype == BY_NAME["FLOAT8E5M2"].dtype and z.dtype == bf16
    assert_same(z, x, "identity")
    assert_same(y, reference64(m, {"x": x}, widen=False)["y"], "cast")
    with pytest.raises(InputError, match="expected dtype bfloat16, got float32"):
        model.run(None, {"x": x.astype(np.float32)})
    loaded = polyfuse.load(model.save(tmp_path / "art"))
    assert loaded.inputs[0].dtype == bf16
    assert_same(loaded.run(None, {"x": x})[0], y, "after load")
    assert narrow_type(loaded.outputs[0].dtype).onnx_name == "FLOAT8E5M2"
