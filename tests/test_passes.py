"""Before/expected tests of the graph passes, one pass at a time."""
from __future__ import annotations

import numpy as np
import pytest
import sympy
from onnx import helper

from helpers import model
from polyfuse.errors import InputError, UnsupportedError
from polyfuse.frontend import import_onnx
from polyfuse.passes import bind_shapes, eliminate_dead_code, fold_constants, remove_identity


def _shape_subgraph_model():
    """x[batch, seq, 8] -> Reshape(x, Concat(Shape(x)[0:2], [2, 4])): the exporters' pattern."""
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Gather", ["s", "i0"], ["d0"], axis=0),
        helper.make_node("Gather", ["s", "i1"], ["d1"], axis=0),
        helper.make_node("Unsqueeze", ["d0", "ax"], ["u0"]),
        helper.make_node("Unsqueeze", ["d1", "ax"], ["u1"]),
        helper.make_node("Concat", ["u0", "u1", "tail"], ["shape"], axis=0),
        helper.make_node("Reshape", ["x", "shape"], ["y"]),
        helper.make_node("Identity", ["y"], ["z"]),
        helper.make_node("Relu", ["z"], ["out"]),
        helper.make_node("Neg", ["x"], ["unused"]),
    ]
    inits = [("i0", np.array(0)), ("i1", np.array(1)), ("ax", np.array([0])), ("tail", np.array([2, 4]))]
    return model(nodes, [("x", np.float32, ["batch", "seq", 8])], [("out", np.float32, None)], inits)


def test_bind_shapes_binds_shared_symbols_and_notes_defaults():
    g = import_onnx(_shape_subgraph_model())
    assert all(isinstance(d, sympy.Symbol) for d in g.values["x"].shape[:2])
    bind_shapes(g, {})
    assert g.values["x"].shape == (1, 1, 8)
    assert any("batch" in n for n in g.notes) and any("seq" in n for n in g.notes)
    g = bind_shapes(import_onnx(_shape_subgraph_model()), {"x": (2, 5, 8)})
    assert g.values["x"].shape == (2, 5, 8) and not g.notes


@pytest.mark.parametrize("shapes, msg", [({"x": (2, 5)}, "rank"), ({"x": (2, 5, 9)}, "fixed to 8"),
                                         ({"y": (1,)}, "not inputs"), ({"x": (-1, 5, 8)}, "negative")])
def test_bind_shapes_rejects_bad_shapes(shapes, msg):
    with pytest.raises(InputError, match=msg):
        bind_shapes(import_onnx(_shape_subgraph_model()), shapes)


def test_fold_constants_folds_shape_subgraph_into_constant_reshape():
    g = fold_constants(bind_shapes(import_onnx(_shape_subgraph_model()), {"x": (2, 5, 8)}))
    assert [n.op_type for n in g.nodes] == ["Reshape", "Identity", "Relu", "Neg"]
    np.testing.assert_array_equal(g.values["shape"].const, [2, 5, 2, 4])
    assert g.values["out"].shape == (2, 5, 2, 4) and g.values["out"].dtype == np.float32


def test_identity_and_dead_code_removed():
    g = fold_constants(bind_shapes(import_onnx(_shape_subgraph_model()), {"x": (2, 5, 8)}))
    g = eliminate_dead_code(remove_identity(g))
    assert [n.op_type for n in g.nodes] == ["Reshape", "Relu"]
    assert g.nodes[1].inputs == ["y"]
    assert "unused" not in g.values and "s" not in g.values
    g.verify()


def test_identity_kept_when_it_feeds_a_graph_output():
    m = model([helper.make_node("Identity", ["x"], ["y"])], [("x", np.float32, [3])], [("y", np.float32, [3])])
    g = remove_identity(fold_constants(bind_shapes(import_onnx(m))))
    assert [n.op_type for n in g.nodes] == ["Identity"]


def test_large_folded_constants_stay_computations():
    """Expand of a scalar to 1M elements is not folded into the weights."""
    nodes = [helper.make_node("Expand", ["c", "shape"], ["big"]), helper.make_node("Add", ["big", "x"], ["y"])]
    m = model(nodes, [("x", np.float32, [1024, 1024])], [("y", np.float32, None)],
              [("c", np.array(1.5, np.float32)), ("shape", np.array([1024, 1024]))])
    g = fold_constants(bind_shapes(import_onnx(m)))
    assert [n.op_type for n in g.nodes] == ["Expand", "Add"]
    assert g.values["big"].shape == (1024, 1024)


def test_shapes_of_large_tensors_are_inferred_without_allocating_them():
    """A 4 GiB intermediate (Expand of a scalar, then Softmax and a reduction over it): the shapes
    come from onnx's inference on the node, not from evaluating the reference on 4 GiB of zeros."""
    import tracemalloc

    nodes = [helper.make_node("Expand", ["x", "shape"], ["e"]), helper.make_node("Softmax", ["e"], ["s"], axis=0),
             helper.make_node("ReduceMax", ["s"], ["y"], keepdims=0)]
    m = model(nodes, [("x", np.float32, [1])], [("y", np.float32, None)], [("shape", np.array([1 << 30]))])
    g = bind_shapes(import_onnx(m))
    tracemalloc.start()
    try:
        fold_constants(g)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert g.values["s"].shape == (1 << 30,) and g.values["y"].shape == () and g.values["y"].dtype == np.float32
    assert peak < 64 << 20, f"{peak / 2**20:.0f} MiB"


def test_onnx_shape_inference_agrees_with_the_reference_on_every_op_case(monkeypatch):
    """The large-tensor path (onnx's shape inference of one node) against the reference's
    evaluation, the single source of truth: every op case of tests/opcases.py, merged per opset,
    folded once with each; the same dtype and shape for every value."""
    import opcases
    import importlib

    fc = importlib.import_module("polyfuse.passes.fold_constants")
    from test_op_parity import _merged_model

    answered = []
    onnx_infer = fc._infer_by_onnx

    def counted(graph, node):
        ok = onnx_infer(graph, node)
        answered.append(ok)
        return ok

    by_opset: dict[int, list] = {}
    for c in opcases.CASES:
        by_opset.setdefault(c.opset, []).append(c)
    for opset, cases in by_opset.items():
        proto = _merged_model(cases)
        want = fold_constants(bind_shapes(import_onnx(proto)))
        with monkeypatch.context() as mp:
            mp.setattr(fc, "EVAL_MAX_ELEMENTS", -1)  # every node that onnx can answer, onnx answers
            mp.setattr(fc, "_infer_by_onnx", counted)
            got = fold_constants(bind_shapes(import_onnx(proto)))
        assert [n.name for n in got.nodes] == [n.name for n in want.nodes]
        for name, v in want.values.items():
            assert (got.values[name].dtype, got.values[name].shape) == (v.dtype, v.shape), (opset, name)
    assert sum(answered) > 150, f"onnx answered {sum(answered)} of {len(answered)} nodes"


def test_run_time_shape_input_is_a_clear_error():
    nodes = [helper.make_node("Reshape", ["x", "s"], ["y"])]
    m = model(nodes, [("x", np.float32, [6]), ("s", np.int64, [2])], [("y", np.float32, None)])
    with pytest.raises(UnsupportedError, match=r"input 1 \('s'\) decides the output shape"):
        fold_constants(bind_shapes(import_onnx(m)))


def _guarded_softmax_model(mask_value: float, weight: float = 1.0):
    """scores + Where(mask, 0, mask_value) -> Softmax -> Where(IsNaN(s), 0, s): the exporters' guard."""
    nodes = [helper.make_node("Where", ["m", "zero", "neg"], ["bias"]), helper.make_node("Add", ["x", "bias"], ["a"]),
             helper.make_node("Softmax", ["a"], ["s"], axis=-1), helper.make_node("IsNaN", ["s"], ["isnan"]),
             helper.make_node("Where", ["isnan", "zero", "s"], ["y"]), helper.make_node("Mul", ["y", "two"], ["out"])]
    inits = [("zero", np.array(0, np.float32)), ("neg", np.array(mask_value, np.float32)),
             ("two", np.array(2, np.float32)), ("w", np.full((4, 4), weight, np.float32))]
    nodes.insert(0, helper.make_node("MatMul", ["ids_f", "w"], ["x"]))
    nodes.insert(0, helper.make_node("Cast", ["ids"], ["ids_f"], to=1))
    return model(nodes, [("ids", np.int64, [2, 4]), ("m", np.bool_, [2, 4])], [("out", np.float32, None)], inits)


def test_nan_guard_removed_when_softmax_input_is_finite():
    from polyfuse.passes import remove_nan_guards

    g = remove_nan_guards(fold_constants(bind_shapes(import_onnx(_guarded_softmax_model(-3.4e38)))))
    g = eliminate_dead_code(g)
    assert "IsNaN" not in [n.op_type for n in g.nodes]
    assert g.nodes[-1].inputs[0] == "s"


def test_nan_guard_kept_where_the_scores_could_overflow():
    """Weights of 1e30 times int64 ids could overflow to inf, and softmax of inf is NaN: the guard
    stays, and the compiled model gives onnxruntime's answer where that happens."""
    import polyfuse
    from helpers import run_ort
    from polyfuse.passes import remove_nan_guards

    m = _guarded_softmax_model(-3.4e38, weight=1e30)
    g = remove_nan_guards(fold_constants(bind_shapes(import_onnx(m))))
    assert "IsNaN" in [n.op_type for n in g.nodes]
    feeds = {"ids": np.array([[1, 2, 3, 4], [10 ** 9, 1, 1, 1]], np.int64), "m": np.ones((2, 4), bool)}
    want = run_ort(m, feeds)[0]
    assert np.all(want[1] == 0)  # the second row overflowed: NaN, zeroed by the guard
    np.testing.assert_allclose(polyfuse.compile(m).run(None, feeds)[0], want, rtol=1e-6, atol=1e-6)


def test_nan_guard_kept_with_infinite_mask_and_fully_masked_rows_match_onnxruntime():
    """With a -inf mask a fully masked row is NaN before the guard: the guard must stay."""
    import polyfuse
    from helpers import run_ort
    from polyfuse.passes import remove_nan_guards

    m = _guarded_softmax_model(-np.inf)
    g = remove_nan_guards(fold_constants(bind_shapes(import_onnx(m))))
    assert "IsNaN" in [n.op_type for n in g.nodes]
    feeds = {"ids": np.arange(8, dtype=np.int64).reshape(2, 4), "m": np.array([[1, 1, 0, 0], [0, 0, 0, 0]], bool)}
    got = polyfuse.compile(m).run(None, feeds)[0]
    want = run_ort(m, feeds)[0]
    assert not np.isnan(want).any() and np.all(want[1] == 0)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
