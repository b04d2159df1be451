"""polyfuse's numpy reference Cast on the narrow types (float8 x5, bfloat16, float4, int4/uint4,
int2/uint2: src/polyfuse/ir/narrow_types.py) against ONNX's own reference implementation
(onnx.reference.ReferenceEvaluator) and the expected outputs stored with onnx's node tests.

Exact: every output must have the same dtype and the same codes, bit for bit (NaN codes included);
a standard float output must have the same bits except NaN payloads. Inputs: every code of every
narrow type; float32 values on and one ulp either side of every representable value, midpoint
and quarter point of every narrow float type (its rounding boundaries, E8M0's included), inf,
NaN of both signs and several payloads, -0, subnormals and values far out of range; every float16;
the same boundaries in float64 (one float64 ulp off); integers around every type's range. Both
``saturate`` values and every E8M0 ``round_mode``.
"""
from __future__ import annotations

import warnings

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator

from polyfuse.ir.narrow_types import NARROW_TYPES, ROUND_MODES, narrow_type
from polyfuse.ops import reference

OPSET = 25  # INT2/UINT2 Cast (25), FLOAT8E8M0 and round_mode (24)
STANDARD = [np.float32, np.float64, np.float16, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16,
            np.uint32, np.uint64, np.bool_]


def all_codes(t) -> np.ndarray:
    """Every canonical code of narrow type ``t`` as an array of ``t`` (a 4-bit type has 16 ...)."""
    bits = {"INT4": 4, "UINT4": 4, "FLOAT4E2M1": 4, "INT2": 2, "UINT2": 2}.get(t.onnx_name, 8 * t.dtype.itemsize)
    return np.arange(1 << bits, dtype=t.code_dtype).view(t.dtype)


def float32_boundaries() -> np.ndarray:
    """float32 inputs around every rounding boundary of every narrow float type, and the specials."""
    points = []
    for t in NARROW_TYPES:
        with np.errstate(invalid="ignore"):  # NaN codes
            v = np.unique(all_codes(t).astype(np.float64))
        v = v[np.isfinite(v)]
        top = v[-1] + (v[-1] - v[-2])  # one step past the largest finite value: overflow's boundary
        v = np.concatenate([v, [top, 2 * top]])
        step = np.diff(v)
        points += [v, v[:-1] + step / 2, v[:-1] + step / 4, v[:-1] + 3 * step / 4, -v]
    with np.errstate(over="ignore"):  # bfloat16's overflow boundary is past float32's range: inf
        x = np.unique(np.concatenate(points).astype(np.float32))
    x = np.concatenate([x, np.nextafter(x, np.float32(np.inf)), np.nextafter(x, np.float32(-np.inf))])
    x = np.concatenate([x, -x])
    nan_bits = np.array([0x7FC00000, 0xFFC00000, 0x7F800001, 0xFF800001, 0x7FFFFFFF, 0x7FA00000], np.uint32)
    specials = np.array([np.inf, -np.inf, 0.0, -0.0, 1e-45, -1e-45, 1.2e-38, 3.4e38, -3.4e38, 1e30, -1e30], np.float32)
    return np.concatenate([x, specials, nan_bits.view(np.float32)])


def float32_sweep() -> np.ndarray:
    """Every float32 whose low 16 bits are 0, 1, 0x7FFF, 0x8000, 0x8001 or 0xFFFF: on, next to and
    either side of every rounding boundary of every narrow type (all at bit 15 or above), with
    every sign, exponent and upper mantissa (393,216 values)."""
    high = np.arange(1 << 16, dtype=np.uint32) << 16
    low = np.array([0, 1, 0x7FFF, 0x8000, 0x8001, 0xFFFF], np.uint32)
    return (high[:, None] | low[None, :]).reshape(-1).view(np.float32)


def integer_inputs(dt) -> np.ndarray:
    info = np.iinfo(dt) if dt is not np.bool_ else None
    if info is None:
        return np.array([False, True])
    x = np.concatenate([np.arange(-300, 300), [info.min, info.max, info.min + 1, info.max - 1]])
    big = [2 ** k + d for k in range(8, 64) for d in (-1, 0, 1, 2 ** max(k - 9, 0), 2 ** max(k - 8, 0) + 1)]
    x = np.concatenate([x.astype(object), big, [-b for b in big]])
    return np.array([int(v) for v in x if info.min <= int(v) <= info.max], dtype=dt)


def onnx_cast(x: np.ndarray, to: int, **attrs) -> np.ndarray:
    """Cast by onnx.reference.ReferenceEvaluator (ONNX's reference implementation)."""
    node = helper.make_node("Cast", ["x"], ["y"], to=to, **attrs)
    vi = helper.make_tensor_value_info
    graph = helper.make_graph([node], "cast", [vi("x", helper.np_dtype_to_tensor_dtype(x.dtype), None)], [vi("y", to, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return ReferenceEvaluator(model).run(None, {"x": x})[0]


def polyfuse_cast(x: np.ndarray, to: int, **attrs) -> np.ndarray:
    with np.errstate(all="ignore"):
        return reference.evaluate("Cast", [x], {"to": to, **attrs}, opset=OPSET)[0]


def assert_same(got: np.ndarray, want: np.ndarray, what: str) -> None:
    """Same dtype and bits; for standard floats, NaN matches NaN (payloads differ between libraries)."""
    assert got.dtype == want.dtype, f"{what}: dtype {got.dtype} != {want.dtype}"
    assert got.shape == want.shape, what
    t = narrow_type(got.dtype)
    if t is not None:
        g, w = got.view(t.code_dtype), want.view(t.code_dtype)
    elif got.dtype.kind == "f":
        nan = np.isnan(want)
        assert np.array_equal(np.isnan(got), nan), f"{what}: NaN positions differ"
        g, w = got[~nan].view(f"u{got.dtype.itemsize}"), want[~nan].view(f"u{got.dtype.itemsize}")
    else:
        g, w = got, want
    bad = np.flatnonzero(g != w)
    assert bad.size == 0, f"{what}: {bad.size} codes differ, first at {bad[:5]}: got {g[bad[:5]]}, want {w[bad[:5]]}"


def _modes(t):
    sats = (0, 1) if t.saturate else (1,)
    rounds = ROUND_MODES if t.onnx_name == "FLOAT8E8M0" else ("up",)
    return [dict(saturate=s, round_mode=r) for s in sats for r in rounds]


@pytest.mark.parametrize("t", NARROW_TYPES, ids=lambda t: t.onnx_name)
def test_every_code_to_every_type(t):
    x = all_codes(t)
    for to in [helper.np_dtype_to_tensor_dtype(np.dtype(d)) for d in STANDARD] + [u.onnx_code for u in NARROW_TYPES]:
        target = narrow_type(onnx.helper.tensor_dtype_to_np_dtype(to))
        for attrs in _modes(target) if target else [{}]:
            assert_same(polyfuse_cast(x, to, **attrs), onnx_cast(x, to, **attrs), f"{t.onnx_name} -> {to} {attrs}")


@pytest.mark.parametrize("t", NARROW_TYPES, ids=lambda t: t.onnx_name)
def test_floats_to_type_at_every_boundary(t):
    sources = [float32_boundaries(), float32_sweep(), np.arange(1 << 16, dtype=np.uint16).view(np.float16)]
    b = float32_boundaries()[np.isfinite(float32_boundaries())].astype(np.float64)
    specials = [np.inf, -np.inf, np.nan, 1e300]
    sources.append(np.concatenate([b, np.nextafter(b, np.inf), np.nextafter(b, -np.inf), specials]))
    for x in sources:
        for attrs in _modes(t):
            assert_same(polyfuse_cast(x, t.onnx_code, **attrs), onnx_cast(x, t.onnx_code, **attrs),
                        f"{x.dtype} -> {t.onnx_name} {attrs}")


@pytest.mark.parametrize("t", NARROW_TYPES, ids=lambda t: t.onnx_name)
def test_integers_to_type(t):
    for dt in STANDARD[3:]:
        x = integer_inputs(dt)
        for attrs in _modes(t):
            assert_same(polyfuse_cast(x, t.onnx_code, **attrs), onnx_cast(x, t.onnx_code, **attrs),
                        f"{np.dtype(dt)} -> {t.onnx_name} {attrs}")


def _node_cases():
    from polyfuse.testing.onnx_node_tests import supported_cases

    names = {t.onnx_name for t in NARROW_TYPES}
    return [c for c in supported_cases() if c.name.startswith(("test_cast", "test_castlike"))
            and any(n in c.name for n in names)]


def test_stored_node_test_outputs():
    """Each Cast node test of onnx with a narrow type, through the reference, gives the stored output."""
    cases = _node_cases()
    assert len(cases) >= 100  # Cast and CastLike (function-expanded) to and from every narrow type
    for case in cases:
        node = case.model.graph.node[0]
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        attrs = {k: v.decode() if isinstance(v, bytes) else v for k, v in attrs.items()}
        for inputs, outputs in case.data_sets:
            x = onnx.numpy_helper.to_array(inputs[0]) if isinstance(inputs[0], onnx.TensorProto) else inputs[0]
            want = onnx.numpy_helper.to_array(outputs[0]) if isinstance(outputs[0], onnx.TensorProto) else outputs[0]
            got = reference.evaluate("Cast", [x], attrs, opset=OPSET)[0]
            assert_same(got, want, case.name)


def test_unknown_round_mode_is_refused():
    with pytest.raises(ValueError, match="round_mode"):
        polyfuse_cast(np.ones(2, np.float32), TensorProto.FLOAT8E8M0, round_mode="sideways")
