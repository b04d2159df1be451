"""Element types beyond float32: float64 arithmetic with double literals against onnxruntime
(tolerance 1e-12 relative); every integer type (int8/16/32/64, uint8/16/32/64, bool) and float16
as storage (data movement, Cast, IsNaN) exactly, against the numpy reference (onnxruntime has no
kernel for several of these ops on the narrower types; the reference is checked against it op by
op where it has). Fused and unfused."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import polyfuse
from polyfuse.testing.gen.core import Graph
from polyfuse.testing.oracle import reference64

N = helper.make_node
INTS = [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64]


def _graph(nodes, feeds: dict, outputs: dict, inits: dict | None = None) -> Graph:
    def vi(name, dt, shape):
        return helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(np.dtype(dt)), shape)

    g = helper.make_graph(nodes, "dtypes", [vi(k, v.dtype, list(v.shape)) for k, v in feeds.items()],
                          [vi(k, dt, None) for k, dt in outputs.items()],
                          [numpy_helper.from_array(np.asarray(v), k) for k, v in (inits or {}).items()])
    return Graph(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=10), feeds)


def test_float64_chain_keeps_double_precision():
    """0.1 and 1e-9 as float32 literals would be off by ~1e-9 relative; the rule is 1e-12."""
    import polyfuse
    from polyfuse.testing.oracle import run_ort

    x = np.random.default_rng(0).standard_normal((5, 17))
    nodes = [N("Mul", ["x", "c"], ["a"]), N("Add", ["a", "d"], ["b"]), N("Tanh", ["b"], ["t"]), N("Div", ["t", "c"], ["e"]),
             N("ReduceSum", ["e", "ax"], ["y"], keepdims=1), N("Softmax", ["e"], ["z"]), N("Sub", ["z", "y"], ["w"]),
             N("Cast", ["w"], ["f"], to=TensorProto.FLOAT), N("Cast", ["f"], ["g"], to=TensorProto.DOUBLE), N("Mul", ["g", "c"], ["h"])]
    g = _graph(nodes, {"x": x}, {"w": np.float64, "h": np.float64},
               {"c": np.array(0.1), "d": np.array(1e-9), "ax": np.array([1], np.int64)})
    want = run_ort(g.model, g.feeds)
    for fusion in (True, False):
        got = polyfuse.compile(g.model, fusion=fusion).run(None, g.feeds)
        for a, b in zip(got, want):
            assert a.dtype == np.float64
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=0)


def _int_graph(dt):
    info = np.iinfo(dt)
    rng = np.random.default_rng(int(np.dtype(dt).itemsize))
    lo, hi = max(info.min, -100), min(info.max, 100)
    a = rng.integers(lo, hi + 1, (3, 7)).astype(dt)
    b = rng.integers(max(lo, 1), hi + 1, (7,)).astype(dt)  # a divisor without 0
    a[0, :3] = [info.min, info.max, 0]  # the extremes travel through data movement and compares
    nodes = [N("Add", ["a", "b"], ["s"]), N("Sub", ["a", "b"], ["d"]), N("Mul", ["a", "b"], ["p"]), N("Div", ["a", "b"], ["q"]),
             N("Max", ["a", "b"], ["mx"]), N("Min", ["a", "b"], ["mn"]), N("Less", ["a", "b"], ["lt"]), N("Equal", ["a", "a"], ["eq"]),
             N("Transpose", ["a"], ["t"]), N("Concat", ["a", "a"], ["c"], axis=1), N("Gather", ["a", "i"], ["g"], axis=1),
             N("Cast", ["b"], ["f"], to=TensorProto.FLOAT), N("Cast", ["f"], ["back"], to=helper.np_dtype_to_tensor_dtype(np.dtype(dt))),
             N("ReduceSum", ["a", "ax"], ["r"], keepdims=0), N("Where", ["lt", "a", "q"], ["w"])]
    outs = {k: dt for k in ("s", "d", "p", "q", "mx", "mn", "t", "c", "g", "back", "r", "w")}
    outs.update(lt=np.bool_, eq=np.bool_, f=np.float32)
    return _graph(nodes, {"a": a, "b": b}, outs, {"i": np.array([6, 0, -1], np.int64), "ax": np.array([1], np.int64)})


def _float16_graph():
    x = np.array([[0.5, -1.25, np.nan, np.inf, -0.0, 65504.0, 1e-7, 3.0]], np.float16)
    nodes = [N("Transpose", ["x"], ["t"]), N("Concat", ["x", "x"], ["c"], axis=0), N("Reshape", ["x", "shape"], ["r"]),
             N("IsNaN", ["x"], ["n"]), N("Cast", ["x"], ["f"], to=TensorProto.FLOAT), N("Cast", ["f"], ["h"], to=TensorProto.FLOAT16),
             N("Slice", ["x", "st", "en"], ["s"]), N("Expand", ["x", "eshape"], ["e"])]
    outs = {k: np.float16 for k in ("t", "c", "r", "h", "s", "e")}
    outs.update(n=np.bool_, f=np.float32)
    return _graph(nodes, {"x": x}, outs, {"shape": np.array([2, 4], np.int64), "st": np.array([1], np.int64),
                                          "en": np.array([6], np.int64), "eshape": np.array([3, 8], np.int64)})


def _check_exactly(g: Graph):
    want = reference64(g.model, g.feeds, widen=False)
    for fusion in (True, False):
        got = polyfuse.compile(g.model, fusion=fusion).run(None, g.feeds)
        for vi, a in zip(g.model.graph.output, got):
            b = want[vi.name]
            assert a.dtype == b.dtype and a.shape == b.shape, (vi.name, a.dtype, b.dtype, a.shape, b.shape)
            np.testing.assert_array_equal(a, b, err_msg=f"{vi.name} (fusion={fusion})")


@pytest.mark.parametrize("dt", INTS, ids=[np.dtype(d).name for d in INTS])
def test_integer_types_exactly(dt):
    _check_exactly(_int_graph(dt))


def test_float16_storage_exactly():
    _check_exactly(_float16_graph())
