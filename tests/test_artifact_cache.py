"""The whole-compilation cache: an unchanged model reuses its artifact, any change compiles anew."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper

from helpers import model, run_ort
from polyfuse.api import build_artifact
from polyfuse.build import artifact_cache
from polyfuse.runtime.model import load


def _model(scale: float) -> onnx.ModelProto:
    w = (np.arange(12, dtype=np.float32).reshape(3, 4) * scale).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Relu", ["h"], ["y"])]
    return model(nodes, [("x", np.float32, ["n", 3])], [("y", np.float32, None)], [("w", w)])


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("POLYFUSE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("POLYFUSE_ARTIFACT_CACHE", raising=False)
    return tmp_path / "cache"


def _check(directory, m, n):
    x = np.random.default_rng(0).standard_normal((n, 3)).astype(np.float32)
    got = load(directory).run(None, {"x": x})[0]
    np.testing.assert_allclose(got, run_ort(m, {"x": x})[0], rtol=1e-5, atol=1e-6)


def test_unchanged_model_is_copied_from_the_cache(cache, tmp_path):
    m = _model(1.0)
    p = tmp_path / "m.onnx"
    onnx.save(m, p)
    _, manifest1, comp1 = build_artifact(p, tmp_path / "a1", shapes={"x": (5, 3)})
    _, manifest2, comp2 = build_artifact(p, tmp_path / "a2", shapes={"x": (5, 3)})
    assert comp1 is not None and comp2 is None  # second: a hit, nothing compiled
    assert manifest1 == manifest2
    _check(tmp_path / "a2", m, 5)
    # Bytes of the same model hit the same entry.
    assert build_artifact(m.SerializeToString(), tmp_path / "a3", shapes={"x": (5, 3)})[2] is None


def test_any_change_compiles_afresh(cache, tmp_path):
    p = tmp_path / "m.onnx"
    onnx.save(_model(1.0), p)
    build_artifact(p, tmp_path / "a", shapes={"x": (5, 3)})
    assert build_artifact(p, tmp_path / "b", shapes={"x": (6, 3)})[2] is not None  # other shapes
    assert build_artifact(p, tmp_path / "c", shapes={"x": (5, 3)}, fusion=False)[2] is not None  # other options
    changed = _model(2.0)  # same graph, other weights
    onnx.save(changed, p)
    assert build_artifact(p, tmp_path / "d", shapes={"x": (5, 3)})[2] is not None
    _check(tmp_path / "d", changed, 5)


def test_external_data_and_disabled_cache_are_never_cached(cache, tmp_path, monkeypatch):
    p = tmp_path / "ext.onnx"
    onnx.save_model(_model(1.0), p, save_as_external_data=True, location="w.data", size_threshold=0)
    assert artifact_cache.key(p, target="host", shapes=None, fusion=True) is None
    q = tmp_path / "m.onnx"
    onnx.save(_model(1.0), q)
    assert artifact_cache.key(q, target="host", shapes=None, fusion=True) is not None
    monkeypatch.setenv("POLYFUSE_ARTIFACT_CACHE", "0")
    assert artifact_cache.key(q, target="host", shapes=None, fusion=True) is None
    assert artifact_cache.key(tmp_path / "missing.onnx", target="host", shapes=None, fusion=True) is None
