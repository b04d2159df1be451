"""Export BERT-family models with both torch exporters and check them in onnxruntime.

Grid: arch in ARCHS x exporter in (torchscript, dynamo) x opset in (17, 18),
size "small" (tiny-bert has its own fixed config), seq 128.  Each export is
run with onnxruntime on ``example_inputs`` and compared with torch eager
(max abs error <= 1e-4), also at another (batch, seq) to check that the
symbolic batch/sequence dims really are dynamic.
"""

from __future__ import annotations

import importlib.util
import pathlib

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from polyfuse.testing import transformers_export as te  # noqa: E402

ATOL = 1e-4
REPO = pathlib.Path(__file__).resolve().parent.parent

GRID = [
    (arch, exporter, opset)
    for arch in te.ARCHS
    for exporter in te.EXPORTERS
    for opset in (17, 18)
]


def _run(path, inputs):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(None, inputs)))


def _max_err(got, ref):
    assert set(got) == set(ref)
    for k in ref:
        assert got[k].shape == ref[k].shape, k
        assert got[k].dtype == np.float32, k
    return max(float(np.abs(got[k] - ref[k]).max()) for k in ref)


@pytest.fixture(scope="module")
def torch_models():
    """Eager models, built once per arch (same seed as the exports)."""
    cache = {}

    def get(arch):
        if arch not in cache:
            cache[arch] = te.build_model(arch, "small")
        return cache[arch]

    return get


@pytest.mark.parametrize("arch,exporter,opset", GRID, ids=["-".join(map(str, g)) for g in GRID])
def test_export_matches_torch(export_model, torch_models, arch, exporter, opset):
    path = export_model(arch, "small", exporter=exporter, opset=opset, seq=128)
    model = onnx.load(str(path))

    # single self-contained file, requested opset, plain ONNX ops, no functions
    assert not any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer)
    assert not path.with_name(path.name + ".data").exists()
    opsets = {o.domain or "ai.onnx": o.version for o in model.opset_import}
    assert opsets.get("ai.onnx") == opset, opsets
    assert {n.domain for n in model.graph.node} <= {"", "ai.onnx"}
    assert len(model.functions) == 0
    onnx.checker.check_model(model)

    # I/O signature: int64 [batch, sequence] inputs, float32 outputs
    assert [i.name for i in model.graph.input] == list(te.input_names(arch))
    assert [o.name for o in model.graph.output] == list(te.output_names(arch))
    for i in model.graph.input:
        assert i.type.tensor_type.elem_type == onnx.TensorProto.INT64
        dims = [d.dim_param for d in i.type.tensor_type.shape.dim]
        assert dims == [te.BATCH_DIM, te.SEQ_DIM], (i.name, dims)
    for o in model.graph.output:
        assert o.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
        assert o.type.tensor_type.shape.dim[0].dim_param == te.BATCH_DIM

    torch_model = torch_models(arch)
    for batch, seq in ((1, 128), (2, 20)):
        inputs = te.example_inputs(arch, "small", batch=batch, seq=seq)
        assert list(inputs) == list(te.input_names(arch))
        assert (inputs["attention_mask"] == 0).any()
        ref = te.reference_outputs(arch, "small", inputs, model=torch_model)
        got = _run(path, inputs)
        err = _max_err(got, ref)
        scale = max(float(np.abs(v).max()) for v in ref.values())
        assert err <= ATOL, (arch, exporter, opset, batch, seq, err)
        # MobileBERT's outputs are ~0.1 in magnitude: also bound the relative error
        assert err <= ATOL * scale, (arch, exporter, opset, batch, seq, err, scale)


def test_example_inputs_contract():
    for arch in te.ARCHS:
        x = te.example_inputs(arch, "small", batch=3, seq=10, seed=1)
        cfg = te.make_config(arch, "small")
        assert list(x) == list(te.input_names(arch))
        for v in x.values():
            assert v.dtype == np.int64 and v.shape == (3, 10)
        assert x["input_ids"].min() >= 0 and x["input_ids"].max() < cfg.vocab_size
        m = x["attention_mask"]
        assert set(np.unique(m)) == {0, 1}
        assert (m[:, 0] == 1).all() and (m[:, -1] == 0).all()
        # padding is at the end only
        assert (np.diff(m, axis=1) <= 0).all()
        y = te.example_inputs(arch, "small", batch=3, seq=10, seed=1)
        assert all((x[k] == y[k]).all() for k in x)


def test_configs():
    for arch in ("bert", "distilbert", "mobilebert"):
        default = te.make_config(arch, "default")
        assert type(default).__name__.lower().startswith(arch.replace("-", ""))
    tiny = te.make_config("tiny-bert", "small")
    assert (tiny.num_hidden_layers, tiny.hidden_size, tiny.num_attention_heads, tiny.intermediate_size) == (
        2, 128, 2, 512)
    mb = te.make_config("mobilebert", "small")
    assert mb.trigram_input and mb.use_bottleneck and mb.normalization_type == "no_norm"
    assert mb.num_feedforward_networks > 1 and mb.embedding_size != mb.hidden_size
    with pytest.raises(ValueError):
        te.make_config("gpt2", "small")


def _load_example_script():
    spec = importlib.util.spec_from_file_location("make_tiny_bert", REPO / "examples" / "make_tiny_bert.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_bundled_tiny_bert_example(tmp_path):
    onnx_path = REPO / "examples" / "tiny_bert.onnx"
    npz_path = REPO / "examples" / "tiny_bert_inputs.npz"
    assert onnx_path.stat().st_size < 1_000_000
    inputs = dict(np.load(npz_path))
    assert {k: v.shape for k, v in inputs.items()} == {
        "input_ids": (1, 16), "attention_mask": (1, 16), "token_type_ids": (1, 16)}
    mod = _load_example_script()
    ref = mod.reference(inputs)
    assert _max_err(_run(onnx_path, inputs), ref) <= ATOL
    # regenerating gives the same graph and inputs
    new_onnx, new_npz = mod.make(tmp_path)
    new_inputs = dict(np.load(new_npz))
    assert all((new_inputs[k] == inputs[k]).all() for k in inputs)
    a, b = onnx.load(str(onnx_path)), onnx.load(str(new_onnx))
    assert [n.op_type for n in a.graph.node] == [n.op_type for n in b.graph.node]
    for ta, tb in zip(a.graph.initializer, b.graph.initializer):
        assert ta.name == tb.name
        np.testing.assert_array_equal(onnx.numpy_helper.to_array(ta), onnx.numpy_helper.to_array(tb))
