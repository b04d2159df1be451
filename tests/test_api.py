"""polyfuse.compile accepts a path, a ModelProto, bytes or a Graph, and threads change nothing
numerically; CompiledModel.run mirrors onnxruntime's InferenceSession.run."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper

import polyfuse
from helpers import model, run_ort
from polyfuse.frontend import import_onnx


def _mlp():
    rng = np.random.default_rng(0)
    w1, w2 = rng.standard_normal((24, 40)).astype(np.float32), rng.standard_normal((40, 8)).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"]), helper.make_node("Gelu", ["h"], ["g"], domain=""),
             helper.make_node("MatMul", ["g", "w2"], ["o"]), helper.make_node("Softmax", ["o"], ["y"], axis=-1),
             helper.make_node("ReduceMax", ["o"], ["m"], keepdims=0)]
    return model(nodes, [("x", np.float32, ["n", 24])], [("y", np.float32, None), ("m", np.float32, None)],
                 [("w1", w1), ("w2", w2)], opset=20)


@pytest.fixture(scope="module")
def feeds():
    return {"x": np.random.default_rng(1).standard_normal((13, 24)).astype(np.float32)}


@pytest.mark.parametrize("form", ["path", "proto", "bytes", "graph"])
def test_every_model_form_compiles_to_the_same_result(form, feeds, tmp_path):
    m = _mlp()
    p = tmp_path / "mlp.onnx"
    onnx.save(m, p)
    arg = {"path": p, "proto": m, "bytes": m.SerializeToString(), "graph": import_onnx(m)}[form]
    cm = polyfuse.compile(arg, shapes={"x": (13, 24)})
    for ours, ref in zip(cm.run(None, feeds), run_ort(m, feeds)):
        np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-5)


def test_wake_before_runs_changes_nothing(feeds):
    """The library exports pf_wake (kernels/pf_model_abi.h); run() calls it before checking the
    feeds. Waking the workers, on its own, twice, or before the first run, runs nothing."""
    import ctypes

    cm = polyfuse.compile(_mlp(), shapes={"x": (13, 24)}, threads=2)
    assert hasattr(ctypes.CDLL(str(cm.directory / "libpfmodel.so")), "pf_wake")
    cm._session.wake()
    cm._session.wake()
    first = cm.run(None, feeds)
    cm._session.wake()
    for ours, again, ref in zip(first, cm.run(None, feeds), run_ort(_mlp(), feeds)):
        np.testing.assert_array_equal(ours, again)
        np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-5)


def test_feeds_may_be_strided_arrays(feeds):
    """A feed that is not C-contiguous is copied, not refused; outputs come in the order asked."""
    cm = polyfuse.compile(_mlp(), shapes={"x": (13, 24)})
    x = feeds["x"]
    strided = np.asfortranarray(x)
    assert not strided.flags.c_contiguous
    ref = run_ort(_mlp(), feeds)
    for got in (cm.run(None, {"x": strided}), cm.run(["m", "y"], feeds)[::-1]):
        for ours, r in zip(got, ref):
            np.testing.assert_allclose(ours, r, rtol=1e-5, atol=1e-5)


def test_threads_and_call_forms(feeds):
    m = _mlp()
    one = polyfuse.compile(m, shapes={"x": (13, 24)}, threads=1)
    two = polyfuse.compile(m, shapes={"x": (13, 24)}, threads=2)
    a, b = one.run(None, feeds), two.run(["m", "y"], feeds)
    np.testing.assert_allclose(a[0], b[1], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(a[1], b[0], rtol=1e-6, atol=1e-7)
    named = two(**feeds)
    assert list(named) == ["y", "m"]
    assert one.inputs[0].shape == (13, 24) and one.inputs[0].dtype == np.float32


def test_a_model_without_inputs_runs():
    """A graph whose outputs are all constants (ONNX's test_constant) has no inputs: its library
    reports 0 inputs and run() copies the outputs from the weights. Exact: no arithmetic at run time."""
    c = np.random.default_rng(2).standard_normal((5, 5)).astype(np.float32)
    nodes = [helper.make_node("Constant", [], ["c"], value=onnx.numpy_helper.from_array(c)),
             helper.make_node("Relu", ["c"], ["r"])]
    cm = polyfuse.compile(model(nodes, [], [("c", np.float32, [5, 5]), ("r", np.float32, [5, 5])]))
    assert cm.input_names == []
    got_c, got_r = cm.run(None, {})
    np.testing.assert_array_equal(got_c, c)
    np.testing.assert_array_equal(got_r, np.maximum(c, 0))
