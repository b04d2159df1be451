"""BERT-family models exported the way users do, compiled by polyfuse, against onnxruntime.

Grid: bert, distilbert, mobilebert (CI-sized configs of each architecture) and the 2-layer
tiny BERT, x TorchScript and dynamo exporters, x opsets 17 and 18, batch 1, sequence 128.
Tolerance: 1e-4 absolute on every output (the contract is 1e-3). The full-size default
configs are checked by benchmarks/check_models.py.
"""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

import onnxruntime as ort  # noqa: E402

import polyfuse  # noqa: E402
from polyfuse.testing import transformers_export as te  # noqa: E402

ATOL = 1e-4
GRID = [(a, e, o) for a in te.ARCHS for e in te.EXPORTERS for o in (17, 18)]


@pytest.mark.slow
@pytest.mark.parametrize("arch, exporter, opset", GRID, ids=[f"{a}-{e}-op{o}" for a, e, o in GRID])
def test_model_matches_onnxruntime(export_model, arch, exporter, opset):
    path = export_model(arch, "small", exporter=exporter, opset=opset, seq=128)
    feeds = te.example_inputs(arch, "small", batch=1, seq=128)
    model = polyfuse.compile(path, shapes={k: v.shape for k, v in feeds.items()}, threads=2)
    assert model.output_names == list(te.output_names(arch))
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for name, ours, ref in zip(model.output_names, model.run(None, feeds), sess.run(None, feeds)):
        assert ours.shape == ref.shape and ours.dtype == ref.dtype, name
        err = float(np.max(np.abs(ours - ref)))
        assert err <= ATOL, f"{name}: max abs error {err:.3g} > {ATOL}"


@pytest.mark.slow
def test_compiled_model_saves_and_loads(export_model, tmp_path):
    path = export_model("bert", "small")
    feeds = te.example_inputs("bert", "small", batch=1, seq=128)
    model = polyfuse.compile(path, shapes={"input_ids": (1, 128)}, threads=1)
    saved = model.save(tmp_path / "bert")
    for f in ("manifest.json", "model.cpp", "weights.bin", "libpfmodel.so", "CMakeLists.txt", "runtime/pf_gemm.cpp"):
        assert (saved / f).is_file(), f
    again = polyfuse.load(saved, threads=2)
    for a, b in zip(model.run(None, feeds), again.run(None, feeds)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow
@pytest.mark.parametrize("exporter", te.EXPORTERS)
def test_fully_masked_attention_matches_onnxruntime(export_model, exporter):
    """All-zero attention_mask: TorchScript's -inf mask makes softmax rows NaN before the
    exporter's guard (which polyfuse must keep); dynamo's finite mask lets polyfuse drop it."""
    path = export_model("bert", "small", exporter=exporter, opset=17, seq=128)
    feeds = te.example_inputs("bert", "small", batch=1, seq=128)
    feeds["attention_mask"] = np.zeros_like(feeds["attention_mask"])
    model = polyfuse.compile(path, shapes={"input_ids": (1, 128)}, threads=2)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for ours, ref in zip(model.run(None, feeds), sess.run(None, feeds)):
        assert not np.isnan(ref).any()
        assert float(np.max(np.abs(ours - ref))) <= ATOL
