"""sympy's algebra is the algebra of real numbers; floats have NaN, inf, -0 and x < 0 outside the
domains of log and sqrt. Each graph here is one rewrite that holds only on part of that domain
(x - x = 0, x / x = 1, exp(log x) = x, (x^0.5)^2 = x, x * 0 = 0, (x + y) - x = y, a division by
a constant 0), fed with inputs outside it. polyfuse, fused and unfused, must give what
onnxruntime gives: the fuzzer's oracle (same NaN/inf positions; floats within rtol 1e-4 +
atol 1e-5 of onnxruntime, or no further from a float64 evaluation than 4x onnxruntime is).
See the docstring of polyfuse.forms.functions for the rewrites sympy still makes and where
they hold."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import helper, numpy_helper, TensorProto

from polyfuse.testing.fuzz import check
from polyfuse.testing.gen.core import Graph

# 8 values, repeated to 64 elements: long enough for the vectorised loop, not only its tail
X = np.tile(np.array([-2.0, -0.0, 0.0, 1.5, np.inf, -np.inf, np.nan, 3e38], np.float32), 8)
Y = np.tile(np.array([1.0, 2.0, -np.inf, np.inf, np.inf, 0.0, 1.0, 3e38], np.float32), 8)


def _graph(nodes, consts=None) -> Graph:
    n = len(X)
    g = helper.make_graph(nodes, "algebra", [helper.make_tensor_value_info(v, TensorProto.FLOAT, [n]) for v in ("x", "y")],
                          [helper.make_tensor_value_info("z", TensorProto.FLOAT, None)],
                          [numpy_helper.from_array(np.asarray(v, np.int64 if np.asarray(v).dtype == np.int64 else np.float32), k)
                           for k, v in (consts or {}).items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
    return Graph(m, {"x": X, "y": Y})


N = helper.make_node
CASES = {
    "x-x": _graph([N("Sub", ["x", "x"], ["z"])]),
    "x/x": _graph([N("Div", ["x", "x"], ["z"])]),
    "exp(log x)": _graph([N("Log", ["x"], ["l"]), N("Exp", ["l"], ["z"])]),
    "log(exp x)": _graph([N("Exp", ["x"], ["e"]), N("Log", ["e"], ["z"])]),
    "sqrt(x)^2": _graph([N("Sqrt", ["x"], ["s"]), N("Mul", ["s", "s"], ["z"])]),
    "(x^0.5)^2": _graph([N("Pow", ["x", "h"], ["s"]), N("Pow", ["s", "two"], ["z"])], {"h": 0.5, "two": 2.0}),
    "x*0": _graph([N("Mul", ["x", "zero"], ["z"])], {"zero": 0.0}),
    "x*-0+0": _graph([N("Mul", ["x", "nzero"], ["m"]), N("Add", ["m", "zero"], ["z"])], {"nzero": -0.0, "zero": 0.0}),
    "x/0": _graph([N("Div", ["x", "zero"], ["d"]), N("Tanh", ["d"], ["z"])], {"zero": 0.0}),
    "(x+y)-x": _graph([N("Add", ["x", "y"], ["s"]), N("Sub", ["s", "x"], ["z"])]),
    "x*y/y": _graph([N("Mul", ["x", "y"], ["p"]), N("Div", ["p", "y"], ["z"])]),
    "x^0.5": _graph([N("Pow", ["x", "h"], ["z"])], {"h": 0.5}),
    "x^y": _graph([N("Pow", ["x", "y"], ["z"])]),
    # one result read twice by a consumer fused into its epilogue: the reads must not cancel
    "sum-sum": _graph([N("ReduceSum", ["x", "ax"], ["r"], keepdims=0), N("Reshape", ["r", "one"], ["v"]),
                       N("Sub", ["v", "r"], ["z"])], {"ax": np.array([0], np.int64), "one": np.array([1], np.int64)}),
    "matmul-matmul": _graph([N("Reshape", ["x", "s"], ["a"]), N("MatMul", ["a", "w"], ["m"]), N("Sub", ["m", "m"], ["z"])],
                            {"s": np.array([8, 8], np.int64), "w": np.eye(8)}),
    "x*3/3": _graph([N("Mul", ["x", "three"], ["p"]), N("Div", ["p", "three"], ["z"])], {"three": 3.0}),
    "x+inf-inf": _graph([N("Add", ["x", "inf"], ["p"]), N("Sub", ["p", "inf"], ["z"])], {"inf": np.inf}),
    "x^2/x": _graph([N("Mul", ["x", "x"], ["p"]), N("Div", ["p", "x"], ["z"])]),
}


@pytest.fixture(scope="module")
def outcomes():
    return check({f"c{i}": g for i, g in enumerate(CASES.values())})


@pytest.mark.parametrize("k,name", list(enumerate(CASES)))
def test_rewrite_only_inside_its_domain(k, name, outcomes):
    fused, unfused = outcomes[f"c{k}"]
    assert fused.kind == "ok", f"{name} fused: {fused.detail}"
    assert unfused.kind == "ok", f"{name} unfused: {unfused.detail}"
