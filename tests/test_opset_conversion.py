"""Models older than opset 13 are converted with onnx.version_converter on import, keeping their
meaning; a model the converter cannot handle is refused with one message naming the opset."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

import polyfuse
from helpers import model, run_ort
from polyfuse.errors import UnsupportedError
from polyfuse.frontend import import_onnx


def _opset11():
    """Ops whose signature or meaning changed at 13: Softmax flattened to 2-D at axis (11), axes
    and split sizes were attributes, not inputs."""
    nodes = [helper.make_node("Softmax", ["x"], ["s"], axis=1),
             helper.make_node("ReduceSum", ["s"], ["r"], axes=[2], keepdims=0),
             helper.make_node("Split", ["x"], ["a", "b"], axis=2, split=[1, 4]),
             helper.make_node("Unsqueeze", ["r"], ["u"], axes=[0]),
             helper.make_node("Add", ["a", "b"], ["y"])]
    return model(nodes, [("x", np.float32, [2, 3, 5])],
                 [("s", np.float32, None), ("u", np.float32, None), ("y", np.float32, None)], opset=11)


def test_opset_11_model_matches_onnxruntime():
    """Tolerance: 1e-6 relative and absolute (float32 softmax and a 5-term sum)."""
    m = _opset11()
    g = import_onnx(m)
    assert g.opset == 13 and any("opset 11 converted to 13" in n for n in g.notes)
    feeds = {"x": np.random.default_rng(0).standard_normal((2, 3, 5)).astype(np.float32)}
    for ours, ref in zip(polyfuse.compile(m).run(None, feeds), run_ort(m, feeds)):
        np.testing.assert_allclose(ours, ref, rtol=1e-6, atol=1e-6)


def test_opset_7_and_matches_numpy():
    m = model([helper.make_node("And", ["a", "b"], ["y"])], [("a", np.bool_, [3, 4]), ("b", np.bool_, [4])],
              [("y", np.bool_, None)], opset=7)
    rng = np.random.default_rng(1)
    a, b = rng.random((3, 4)) < 0.5, rng.random(4) < 0.5
    (got,) = polyfuse.compile(m).run(None, {"a": a, "b": b})
    np.testing.assert_array_equal(got, a & b)


def test_unconvertible_model_names_the_opset_and_reason():
    """onnx.version_converter has no adapter for Pad from opset 1 (``paddings`` attribute)."""
    m = model([helper.make_node("Pad", ["x"], ["y"], paddings=[0, 0, 1, 1])], [("x", np.float32, [2, 4])],
              [("y", np.float32, None)], opset=1)
    with pytest.raises(UnsupportedError, match=r"opset 1 is older .* could not convert it: No Adapter .* Pad"):
        import_onnx(m)


def test_unsupported_op_in_old_model_is_reported_as_unsupported():
    """The op check runs before conversion: the converter's own error for an unknown op is opaque."""
    m = model([helper.make_node("Foo", ["x"], ["y"], name="foo_1")], [("x", np.float32, [2])],
              [("y", np.float32, None)], opset=9)
    with pytest.raises(UnsupportedError, match=r"ai\.onnx::Foo\s+nodes: foo_1"):
        import_onnx(m)
