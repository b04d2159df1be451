"""The differential fuzzer (polyfuse.testing.fuzz): its quick profile, and its own parts.

The quick profile compiles 300 random graphs (fixed seed) fused and unfused and checks every
output against onnxruntime with the oracle's rule (polyfuse.testing.oracle): same NaN and +-inf
positions, floats within rtol 1e-4 + atol 1e-5, or no more than 4x onnxruntime's distance from
a float64 evaluation. The long profile is `python -m polyfuse.testing.fuzz --graphs 10000`.
"""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import helper

from polyfuse.testing.fuzz import fuzz
from polyfuse.testing.gen import merge, random_graph
from polyfuse.testing.gen.core import Graph
from polyfuse.testing.minimize import minimize
from polyfuse.testing.oracle import compare, run_ort

QUICK_GRAPHS, QUICK_SEED = 300, 17


@pytest.fixture(autouse=True)
def _no_artifact_cache(monkeypatch):
    monkeypatch.setenv("POLYFUSE_ARTIFACT_CACHE", "0")


def test_quick_profile():
    s = fuzz(QUICK_GRAPHS, seed=QUICK_SEED, batch=50, log=lambda m: None)
    assert s.graphs == QUICK_GRAPHS
    assert not s.failures, "\n".join(f"{f.name}: {f.kind}: {f.detail}" for f in s.failures)
    assert len(s.ops) >= 40, sorted(s.ops)  # the generator reaches (nearly) every op it knows


def test_graphs_are_valid_and_reproducible():
    for seed in range(50):
        g = random_graph(seed)
        onnx.checker.check_model(g.model, full_check=True)
        outs = run_ort(g.model, g.feeds)
        for vi, o in zip(g.model.graph.output, outs):
            assert list(o.shape) == [d.dim_value for d in vi.type.tensor_type.shape.dim], vi.name
    a, b = random_graph(7), random_graph(7)
    assert a.model.SerializeToString() == b.model.SerializeToString()
    assert all(np.array_equal(a.feeds[k], b.feeds[k], equal_nan=True) for k in a.feeds)


def test_merge_keeps_graphs_apart():
    gs = {"a": random_graph(1, 17), "b": random_graph(2, 17)}
    m = merge(gs)
    onnx.checker.check_model(m.model, full_check=True)
    merged = dict(zip([o.name for o in m.model.graph.output], run_ort(m.model, m.feeds)))
    for k, g in gs.items():
        for vi, want in zip(g.model.graph.output, run_ort(g.model, g.feeds)):
            np.testing.assert_array_equal(merged[f"{k}_{vi.name}"], want)


def test_oracle_verdicts():
    w = np.array([1.0, np.nan, np.inf, 2.0], np.float32)
    assert compare("y", w.copy(), w, None) is None
    assert "NaN" in compare("y", np.array([1.0, 0.0, np.inf, 2.0], np.float32), w, None).what
    assert "infinity" in compare("y", np.array([1.0, np.nan, -np.inf, 2.0], np.float32), w, None).what
    assert "value" in compare("y", np.array([1.0, np.nan, np.inf, 2.001], np.float32), w, None).what
    assert compare("y", np.array([1, 2]), np.array([1, 3]), None) is not None  # integers: exactly
    assert compare("y", np.zeros(3, np.float32), np.zeros(4, np.float32), None) is not None
    # onnxruntime 0.1 off the float64 truth: polyfuse may be as far (4x), not further
    truth = np.array([1.0])
    assert compare("y", np.array([1.2], np.float32), np.array([1.1], np.float32), truth) is None
    assert compare("y", np.array([1.5], np.float32), np.array([1.1], np.float32), truth) is not None
    # a NaN where the float64 evaluation has one too (onnxruntime's ReduceMax may drop it)
    assert compare("y", np.array([np.nan], np.float32), np.array([3.0], np.float32), np.array([np.nan])) is None


def _chain(n):
    nodes = [helper.make_node("Neg" if k % 3 else "Tanh", [f"v{k}"], [f"v{k + 1}"], name=f"n{k}") for k in range(n)]
    g = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("v0", onnx.TensorProto.FLOAT, [3])],
                          [helper.make_tensor_value_info(f"v{n}", onnx.TensorProto.FLOAT, [3])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
    return Graph(m, {"v0": np.array([0.5, -1.0, 2.0], np.float32)})


def test_minimizer_keeps_the_failure_and_little_else():
    g = _chain(9)
    fails = lambda h: any(n.op_type == "Tanh" for n in h.model.graph.node)  # noqa: E731  (a planted "bug")
    small = minimize(g, fails, "v9")
    assert [n.op_type for n in small.model.graph.node] == ["Tanh"]
    onnx.checker.check_model(small.model, full_check=True)
    run_ort(small.model, small.feeds)  # the cut is fed with real values
    assert minimize(g, lambda h: False, "v9").model == g.model  # nothing shrinks: unchanged


def test_cli_runs_and_reports(tmp_path):
    r = subprocess.run([sys.executable, "-m", "polyfuse.testing.fuzz", "--graphs", "4", "--batch", "4", "--seed", "3",
                        "--out", str(tmp_path / "fails")], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "4 graphs" in r.stdout and "0 failures" in r.stdout
    assert not (tmp_path / "fails").exists()
