"""The ops transformer exports add (CumSum, Range, Trilu, Einsum, Mod, ConstantOfShape) inside
small graphs of the shapes exporters emit, compiled fused and unfused, against onnxruntime.

Tolerance: float32 rtol 1e-5, atol 1e-5, except the attention graph (two GEMMs and a softmax
accumulate in a different order than onnxruntime's): rtol 1e-4, atol 1e-5. Integers exactly.
Single ops on awkward sizes are in opcases.py (run by test_op_parity.py).
"""
from __future__ import annotations

import numpy as np
import pytest
from onnx import helper, numpy_helper

from helpers import model, run_ort
import polyfuse
from polyfuse import pipeline
from polyfuse.errors import PolyfuseError, UnsupportedError
from polyfuse.kernel.ir import Attention, Contraction
from polyfuse.ops import reference

I64, F32 = np.int64, np.float32
rng = np.random.default_rng(7)


def _check(m, feeds, rtol=1e-5, atol=1e-5):
    want = run_ort(m, feeds)
    for fusion in (True, False):
        got = polyfuse.compile(m, threads=2, fusion=fusion).run(None, feeds)
        for g, w in zip(got, want):
            assert g.dtype == w.dtype and g.shape == w.shape
            if np.issubdtype(w.dtype, np.floating):
                np.testing.assert_allclose(g, w, rtol=rtol, atol=atol, err_msg=f"fusion={fusion}")
            else:
                np.testing.assert_array_equal(g, w, err_msg=f"fusion={fusion}")


def test_position_ids_from_cumsum_of_the_mask():
    """RoBERTa's create_position_ids_from_input_ids: mask = int(ids != pad);
    cumsum(mask) * mask + pad, then the position embedding Gather."""
    nodes = [helper.make_node("Equal", ["ids", "pad"], ["is_pad"]),
             helper.make_node("Not", ["is_pad"], ["not_pad"]),
             helper.make_node("Cast", ["not_pad"], ["mask"], to=7),
             helper.make_node("CumSum", ["mask", "axis"], ["c"]),
             helper.make_node("Mul", ["c", "mask"], ["p"]),
             helper.make_node("Add", ["p", "pad"], ["pos"]),
             helper.make_node("Gather", ["emb", "pos"], ["e"])]
    m = model(nodes, [("ids", I64, [2, 17])], [("pos", I64, None), ("e", F32, None)],
              [("axis", np.array(1)), ("pad", np.array(1)), ("emb", rng.standard_normal((19, 16)).astype(F32))])
    ids = rng.integers(2, 50, (2, 17))
    ids[0, 11:] = 1
    ids[1, [0, 5, 6]] = 1
    _check(m, {"ids": ids})


def test_causal_attention_written_with_einsum_trilu_constantofshape():
    """scores = einsum(q, k) * scale, masked by Trilu(ConstantOfShape), softmax, einsum with v."""
    s = 17
    nodes = [helper.make_node("Einsum", ["q", "k"], ["sc"], equation="bhqd,bhkd->bhqk"),
             helper.make_node("Mul", ["sc", "scale"], ["sc2"]),
             helper.make_node("ConstantOfShape", ["mshape"], ["ones"],
                              value=numpy_helper.from_array(np.array([1], I64))),
             helper.make_node("Trilu", ["ones"], ["tri"], upper=0),
             helper.make_node("Cast", ["tri"], ["keep"], to=9),
             helper.make_node("Where", ["keep", "sc2", "neg"], ["masked"]),
             helper.make_node("Softmax", ["masked"], ["p"], axis=-1),
             helper.make_node("Einsum", ["p", "v"], ["y"], equation="bhqk,bhkd->bhqd")]
    inputs = [(n, F32, [1, 3, s, 8]) for n in ("q", "k", "v")]
    inits = [("scale", np.array(8 ** -0.5, F32)), ("mshape", np.array([s, s], I64)), ("neg", np.array(-1e9, F32))]
    m = model(nodes, inputs, [("y", F32, None)], inits)
    _check(m, {n: rng.standard_normal((1, 3, s, 8)).astype(F32) for n in ("q", "k", "v")}, rtol=1e-4)
    comp = pipeline.kernels(pipeline.frontend(m))
    assert not any(n.op_type == "Einsum" for n in comp.graph.nodes)
    assert any(isinstance(k, (Contraction, Attention)) for k in comp.lowered.kernels)


def test_relative_positions_with_range_and_mod():
    """(Range as a row minus Range as a column + x) mod 5, both fmod modes, on integers."""
    nodes = [helper.make_node("Range", ["zero", "n", "one"], ["r"]),
             helper.make_node("Unsqueeze", ["r", "ax0"], ["row"]),
             helper.make_node("Unsqueeze", ["r", "ax1"], ["col"]),
             helper.make_node("Sub", ["row", "col"], ["rel"]),
             helper.make_node("Add", ["rel", "x"], ["shifted"]),
             helper.make_node("Mod", ["shifted", "five"], ["floor"]),
             helper.make_node("Mod", ["shifted", "five"], ["trunc"], fmod=1)]
    inits = [("zero", np.array(0)), ("n", np.array(13)), ("one", np.array(1)), ("ax0", np.array([0])),
             ("ax1", np.array([1])), ("five", np.array(5))]
    m = model(nodes, [("x", I64, [13, 13])], [("floor", I64, None), ("trunc", I64, None)], inits)
    _check(m, {"x": rng.integers(-9, 9, (13, 13))})


def test_results_past_the_fold_limit_are_kernels_feeding_others():
    """A 300x301 ConstantOfShape and a 70001-element Range are computed, then fused with an Add/Mul."""
    nodes = [helper.make_node("ConstantOfShape", ["cshape"], ["c"],
                              value=numpy_helper.from_array(np.array([0.5], F32))),
             helper.make_node("Add", ["c", "x"], ["y"]),
             helper.make_node("Range", ["start", "limit", "delta"], ["r"]),
             helper.make_node("Mul", ["r", "three"], ["z"])]
    inits = [("cshape", np.array([300, 301])), ("start", np.array(-5)), ("limit", np.array(69996)),
             ("delta", np.array(1)), ("three", np.array(3))]
    m = model(nodes, [("x", F32, [301])], [("y", F32, None), ("z", I64, None)], inits)
    _check(m, {"x": rng.standard_normal(301).astype(F32)})
    graph = pipeline.frontend(m).graph
    assert {"ConstantOfShape", "Range"} <= {n.op_type for n in graph.nodes}  # not folded into weights


def test_cumsum_exclusive_reverse_feeding_a_reduction():
    nodes = [helper.make_node("CumSum", ["x", "axis"], ["c"], exclusive=1, reverse=1),
             helper.make_node("Exp", ["c"], ["e"]),
             helper.make_node("ReduceSum", ["e", "axes"], ["y"], keepdims=0)]
    m = model(nodes, [("x", F32, [3, 7, 13])], [("y", F32, None)], [("axis", np.array(-2)), ("axes", np.array([2]))])
    _check(m, {"x": rng.uniform(-0.5, 0.5, (3, 7, 13)).astype(F32)})


def test_float_mod_with_fmod0_is_refused_naming_the_node():
    m = model([helper.make_node("Mod", ["x", "y"], ["z"], name="bad_mod")], [("x", F32, [3]), ("y", F32, [3])],
              [("z", F32, None)])
    with pytest.raises(PolyfuseError, match=r"bad_mod.*fmod=0.*before opset 28"):
        polyfuse.compile(m)


def test_cumsum_axis_known_only_at_run_time_is_refused():
    m = model([helper.make_node("CumSum", ["x", "axis"], ["y"], name="scan")], [("x", F32, [3, 4]), ("axis", I64, [])],
              [("y", F32, None)])
    with pytest.raises(UnsupportedError, match=r"scan.*axis.*only known at run time"):
        polyfuse.compile(m)


def test_einsum_diagonal_is_refused():
    m = model([helper.make_node("Einsum", ["x"], ["y"], equation="ii->i", name="diag")], [("x", F32, [3, 3])],
              [("y", F32, None)])
    with pytest.raises(UnsupportedError, match=r"diag.*diagonal"):
        polyfuse.compile(m)


@pytest.mark.parametrize("dtype", [np.int64, np.int32])
def test_integer_mod_by_zero_and_min_by_minus_one_give_zero(dtype):
    """onnxruntime fails such a run; polyfuse's kernels must not trap either, and agree with the
    numpy reference (which gives 0) on every element, for both fmod modes."""
    lo = np.iinfo(dtype).min
    x = np.array([5, -3, lo, lo, 7, -7], dtype)
    y = np.array([0, 0, -1, 0, -1, 3], dtype)
    nodes = [helper.make_node("Mod", ["x", "y"], ["floor"]), helper.make_node("Mod", ["x", "y"], ["trunc"], fmod=1)]
    m = model(nodes, [("x", dtype, [6]), ("y", dtype, [6])], [("floor", dtype, None), ("trunc", dtype, None)])
    got = polyfuse.compile(m, threads=1).run(None, {"x": x, "y": y})
    for fmod, g in enumerate(got):
        want = reference.evaluate("Mod", [x, y], {"fmod": fmod}, opset=17)[0]
        np.testing.assert_array_equal(g, want, err_msg=f"fmod={fmod}")


def test_float_floor_mod_signs_of_zeros_and_infinities_match_onnxruntime():
    """Opset 28's fmod=0 on floats: a zero remainder takes the divisor's sign and x % -inf is
    -inf for positive x; assert_allclose ignores the sign of zero, so signs are compared too."""
    x = np.array([0.0, -0.0, 6.0, -6.0, 5.0, -5.0, 2.5], F32)
    y = np.array([-3.0, 3.0, -3.0, 3.0, -np.inf, np.inf, np.inf], F32)
    m = model([helper.make_node("Mod", ["x", "y"], ["z"])], [("x", F32, [7]), ("y", F32, [7])], [("z", F32, None)],
              opset=28)
    want = run_ort(m, {"x": x, "y": y})[0]
    for fusion in (True, False):
        got = polyfuse.compile(m, threads=1, fusion=fusion).run(None, {"x": x, "y": y})[0]
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(np.signbit(got), np.signbit(want))
