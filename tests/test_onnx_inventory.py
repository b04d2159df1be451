"""polyfuse.testing.onnx_inventory on hand-built models whose contents are known by construction."""
from __future__ import annotations

import numpy as np
from helpers import model
from onnx import helper

from polyfuse.testing.onnx_inventory import op_inventory


def test_counts_ops_io_and_export_patterns(tmp_path):
    # x -> MatMul -> Add -> Softmax -> Where(IsNaN) ; Shape(x) -> Concat -> Reshape
    nodes = [helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Add", ["m", "b"], ["a"]),
             helper.make_node("Softmax", ["a"], ["s"]), helper.make_node("IsNaN", ["s"], ["n"]),
             helper.make_node("Where", ["n", "zero", "s"], ["g"]),
             helper.make_node("Shape", ["x"], ["sh"]), helper.make_node("Concat", ["sh"], ["shc"], axis=0),
             helper.make_node("Reshape", ["g", "shc"], ["y"]), helper.make_node("Add", ["y", "b"], ["z"])]
    inits = [("w", np.ones((4, 4), np.float32)), ("b", np.ones(4, np.float32)), ("zero", np.zeros((), np.float32))]
    m = model(nodes, [("x", np.float32, ["batch", 4])], [("z", np.float32, None)], inits)
    path = tmp_path / "m.onnx"
    path.write_bytes(m.SerializeToString())
    for inv in (op_inventory(m), op_inventory(path)):
        assert inv["node_count"] == 9
        assert inv["ops"] == {"Add": 2, "Concat": 1, "IsNaN": 1, "MatMul": 1, "Reshape": 1, "Shape": 1,
                              "Softmax": 1, "Where": 1}
        assert inv["inputs"] == [{"name": "x", "dtype": "float32", "shape": ["batch", 4]}]
        assert inv["dim_params"] == ["batch"]
        assert inv["initializers"] == 3 and inv["initializer_dtypes"] == {"float32": 3}
        assert inv["softmax_nan_guards"] == 1
        assert inv["shape_fed_reshape_expand"] == 1 and inv["shape_fed_concat"] == 1
    assert op_inventory(path)["file_size"] == path.stat().st_size
