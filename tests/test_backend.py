"""polyfuse.backend, the onnx.backend.base interface, and onnx's own node conformance tests
through it (onnx.backend.test.BackendTest).

In scope are the node tests whose every op polyfuse supports (polyfuse.testing.onnx_node_tests).
Each compares with the case's own tolerance (onnx's rtol 1e-3 / atol 1e-7 unless the case says
otherwise). The cases listed in onnx_node_refusals.txt are marked xfail(raises=PolyfuseError) with
the recorded reason: a refusal is expected there, but a wrong answer (AssertionError) or a crash
still fails, and a case that starts to pass shows as XPASS. A case refused that is not listed
fails: a regression, or newly supported ops; regenerate the list with
``python benchmarks/onnx_node_tests.py --write tests/onnx_node_refusals.txt`` once it is right.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx.backend.test
import pytest
from onnx import helper

import polyfuse.backend as backend
from helpers import model
from polyfuse.errors import InputError, PolyfuseError, UnsupportedError
from polyfuse.testing.onnx_node_tests import read_refusals, supported_cases

REFUSALS_FILE = Path(__file__).with_name("onnx_node_refusals.txt")
_REFUSALS = read_refusals(REFUSALS_FILE)
_IN_SCOPE = {c.name for c in supported_cases()}


def _node_tests() -> type:
    """onnx's NodeModel test class, reduced to the CPU variants of the cases in scope."""
    cls = onnx.backend.test.BackendTest(backend, __name__).test_cases["OnnxBackendNodeModelTest"]
    for attr in [a for a in vars(cls) if a.startswith("test_")]:
        name = attr.removesuffix("_cpu")
        if name == attr or name not in _IN_SCOPE:
            delattr(cls, attr)
        elif name in _REFUSALS:
            category, message = _REFUSALS[name]
            mark = pytest.mark.xfail(raises=PolyfuseError, strict=False, reason=f"refused ({category}): {message}")
            setattr(cls, attr, mark(getattr(cls, attr)))
    return cls


OnnxBackendNodeModelTest = _node_tests()


def test_refusal_list_names_only_cases_in_scope():
    assert sorted(set(_REFUSALS) - _IN_SCOPE) == []


def polyfuse_compile(*args, **kwargs):
    import polyfuse

    return polyfuse.compile(*args, **kwargs)


def _reshape_by_input():
    """y = Relu(Reshape(x, Concat(Cast(s), [-1]))): the shape input reaches Reshape through Cast and Concat."""
    nodes = [helper.make_node("Cast", ["s"], ["s64"], to=onnx.TensorProto.INT64),
             helper.make_node("Concat", ["s64", "tail"], ["shape"], axis=0),
             helper.make_node("Reshape", ["x", "shape"], ["r"]), helper.make_node("Relu", ["r"], ["y"])]
    return model(nodes, [("x", np.float32, ["n", 6]), ("s", np.int64, [1])], [("y", np.float32, None)],
                 [("tail", np.array([-1], np.int64))])


def test_shape_inputs_and_dims_are_bound_from_each_runs_feeds(monkeypatch):
    """Exact: Reshape and Relu do no arithmetic."""
    compiles = []
    monkeypatch.setattr(backend, "_compile", lambda *a, **k: compiles.append(k["shapes"]) or polyfuse_compile(*a, **k))
    rep = backend.prepare(_reshape_by_input())
    assert compiles == []  # deferred: the shape input and n are only known at run time
    rng = np.random.default_rng(0)
    for n, s in ((2, 3), (2, 4), (4, 3), (2, 3)):
        x = rng.standard_normal((n, 6)).astype(np.float32)
        (y,) = rep.run([x, np.array([s], np.int64)])
        np.testing.assert_array_equal(y, np.maximum(x.reshape(s, -1), 0))
    assert compiles == [{"x": (2, 6)}, {"x": (2, 6)}, {"x": (4, 6)}]  # the last run reused the first model


def test_static_model_compiles_at_prepare_and_outputs_are_named(monkeypatch):
    """Tolerance: exact (one float32 addition, the same in numpy)."""
    compiles = []
    monkeypatch.setattr(backend, "_compile", lambda *a, **k: compiles.append(1) or polyfuse_compile(*a, **k))
    m = model([helper.make_node("Add", ["a", "b"], ["s"]), helper.make_node("Neg", ["s"], ["n"])],
              [("a", np.float32, [3, 4]), ("b", np.float32, [4])], [("s", np.float32, None), ("n", np.float32, None)])
    rep = backend.prepare(m, "CPU")
    assert compiles == [1]
    a, b = np.arange(12, dtype=np.float32).reshape(3, 4), np.float32([0.5, 1, 2, 4])
    out = rep.run({"b": b, "a": a})
    np.testing.assert_array_equal(out["s"], a + b)
    np.testing.assert_array_equal(out.n, -(a + b))
    np.testing.assert_array_equal(out[1], -(a + b))
    assert compiles == [1]
    (s, n) = backend.run_model(m, [a, b])
    np.testing.assert_array_equal(s, a + b)


def test_bad_feeds_and_devices_are_polyfuse_errors():
    rep = backend.prepare(model([helper.make_node("Relu", ["x"], ["y"])], [("x", np.float32, ["n", 4])],
                                [("y", np.float32, None)]))
    with pytest.raises(InputError, match="2 inputs given, the model has 1"):
        rep.run([np.zeros((1, 4), np.float32)] * 2)
    with pytest.raises(InputError, match="expected dtype float32, got float64"):
        rep.run([np.zeros((1, 4))])
    with pytest.raises(InputError, match=r"shape \[1, 5\] does not fit"):
        rep.run([np.zeros((1, 5), np.float32)])
    with pytest.raises(InputError, match="the model's inputs are"):
        rep.run({"z": np.zeros((1, 4), np.float32)})
    assert backend.supports_device("CPU") and not backend.supports_device("CUDA")
    assert not backend.supports_device("TPU") and not backend.supports_device("CPU:x")
    with pytest.raises(UnsupportedError, match="CPU only"):
        backend.prepare(model([helper.make_node("Relu", ["x"], ["y"])], [("x", np.float32, [4])],
                              [("y", np.float32, None)]), "CUDA")


def test_run_node():
    """Tolerance: exact (Max and Where select, no arithmetic)."""
    a, b = np.float32([[1, -2, 3]]), np.float32([[0], [5]])
    (y,) = backend.run_node(helper.make_node("Max", ["a", "b"], ["y"]), [a, b])
    np.testing.assert_array_equal(y, np.maximum(a, b))
    c = np.array([True, False, True])
    (y,) = backend.run_node(helper.make_node("Where", ["c", "a", "b"], ["y"]), [c, a, b], opset_version=16)
    np.testing.assert_array_equal(y, np.where(c, a, b))


class _FakeBackend:
    """Answers every case with Relu's expected output plus ``error``, or raises ``error``."""

    def __init__(self, error):
        self.error = error

    def prepare(self, model, device):
        outer = self

        class Rep:
            def run(self, inputs):
                if isinstance(outer.error, Exception):
                    raise outer.error
                return [np.maximum(inputs[0], 0) + outer.error]
        return Rep()


@pytest.mark.parametrize("error, status, category", [
    (0.0, "pass", ""), (1e-3, "wrong", ""), (UnsupportedError("value 'x' has element type UINT16"), "refused", "dtype"),
    (UnsupportedError("input 1 ('shape') decides the output shape"), "refused", "shape input"),
    (ValueError("boom"), "crash", "")])
def test_run_case_tells_wrong_answers_from_refusals(error, status, category):
    from polyfuse.testing.onnx_node_tests import run_case

    (relu,) = [c for c in supported_cases() if c.name == "test_relu"]
    outcome = run_case(relu, _FakeBackend(error))
    assert (outcome.status, outcome.category) == (status, category), outcome
