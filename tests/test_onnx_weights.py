"""The importer's weight views (frontend/onnx_weights.py) against onnx's own loader.

Every initializer polyfuse imports from a file must equal ``numpy_helper.to_array`` of the
fully loaded model, whichever way it was read; a damaged file must give one ModelError.
"""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from helpers import model
from polyfuse.errors import ModelError
from polyfuse.frontend.onnx_import import import_onnx
from polyfuse.frontend.onnx_weights import split_weights


def _mixed_model() -> onnx.ModelProto:
    """Large initializers of several types in raw_data, a large one in float_data, small ones."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((64, 48)).astype(np.float32)
    b = rng.standard_normal(48).astype(np.float32)  # 192 bytes: stays in the message
    h = rng.standard_normal((48, 48)).astype(np.float16)
    idx = rng.integers(0, 48, (300,), dtype=np.int64)
    typed = helper.make_tensor("typed", TensorProto.FLOAT, [48, 48], rng.standard_normal(48 * 48).tolist())
    mask = rng.integers(0, 2, (40, 48)).astype(bool)
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["a"]),
        helper.make_node("Add", ["a", "b"], ["c"]),
        helper.make_node("Cast", ["h"], ["hf"], to=TensorProto.FLOAT),
        helper.make_node("MatMul", ["c", "hf"], ["d"]),
        helper.make_node("MatMul", ["d", "typed"], ["e"]),
        helper.make_node("Gather", ["e", "idx"], ["g"], axis=1),
        helper.make_node("Cast", ["mask"], ["mf"], to=TensorProto.FLOAT),
        helper.make_node("MatMul", ["mf", "g"], ["y"]),
    ]
    m = model(nodes, [("x", np.float32, [40, 64])], [("y", np.float32, None)],
              [("w", w), ("b", b), ("h", h), ("idx", idx), ("mask", mask)])
    m.graph.initializer.append(typed)
    return m


def _consts(graph) -> dict:
    return {n: v.const for n, v in graph.values.items() if v.is_const}


def test_views_equal_onnx_loader(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(_mixed_model(), path)
    proto, raws = split_weights(path.read_bytes())
    full = onnx.load(path)
    names = [t.name for t in full.graph.initializer]
    # raw_data of w, h, idx and mask (>= 1 KiB) is out of the message; b (small) and typed (float_data) stay
    assert sorted(names[i] for i in raws) == ["h", "idx", "mask", "w"]
    assert proto.ByteSize() < full.ByteSize() - sum(r.nbytes for r in raws.values()) + 1024
    assert [t.name for t in proto.graph.initializer] == names
    g = import_onnx(path)
    for t in full.graph.initializer:
        want = numpy_helper.to_array(t)
        got = g.values[t.name].const
        assert got.dtype == want.dtype and got.shape == want.shape and np.array_equal(got, want), t.name
        if t.name in ("h", "idx", "mask", "w"):
            assert not got.flags.writeable  # views of the file's bytes are never written through
    # the nodes and everything else as onnx parsed it
    full_nodes = [(n.op_type, list(n.input), list(n.output)) for n in full.graph.node]
    assert [(n.op_type, list(n.input), list(n.output)) for n in proto.graph.node] == full_nodes


def test_bytes_and_proto_inputs_match_file(tmp_path):
    m = _mixed_model()
    path = tmp_path / "m.onnx"
    onnx.save(m, path)
    from_file = _consts(import_onnx(path))
    for other in (_consts(import_onnx(m)), _consts(import_onnx(m.SerializeToString()))):
        assert from_file.keys() == other.keys()
        for k in from_file:
            assert np.array_equal(from_file[k], other[k]), k


def test_raw_data_of_wrong_size_is_named(tmp_path):
    bad = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[64, 48], raw_data=b"\0" * (64 * 48 * 4 - 4))
    m = model([helper.make_node("MatMul", ["x", "w"], ["y"])], [("x", np.float32, [2, 64])],
              [("y", np.float32, None)])
    m.graph.initializer.append(bad)
    path = tmp_path / "bad.onnx"
    path.write_bytes(m.SerializeToString())
    with pytest.raises(ModelError, match=r"initializer 'w' is corrupt.*12284 bytes"):
        import_onnx(path)


@pytest.mark.parametrize("cut", [0.02, 0.1, 0.3, 0.5, 0.7, 0.9, 0.99])
def test_truncated_file_is_one_model_error(tmp_path, cut):
    data = _mixed_model().SerializeToString()
    path = tmp_path / "cut.onnx"
    path.write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(ModelError, match="cut.onnx"):
        import_onnx(path)


def test_external_data_still_loads(tmp_path):
    want = _consts(import_onnx(_mixed_model()))
    path = tmp_path / "ext.onnx"
    onnx.save(_mixed_model(), path, save_as_external_data=True, all_tensors_to_one_file=True, location="ext.bin",
              size_threshold=1024)
    got = _consts(import_onnx(path))
    for k in want:
        assert np.array_equal(want[k], got[k]), k


def test_foreign_bytes_fall_back_to_onnx(tmp_path):
    assert split_weights(b"\x0f\x00garbage") is None  # wire type 7 after the first key: not protobuf
    path = tmp_path / "text.onnx"
    path.write_text("this is not a model\n")
    with pytest.raises(ModelError, match="text.onnx"):
        import_onnx(path)
