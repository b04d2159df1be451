"""The differential fuzzer (polyfuse.testing.fuzz): its quick profile, and its own parts.

The quick profile compiles 300 random graphs (fixed seed) fused and unfused and checks every
output against onnxruntime with the oracle's rule (polyfuse.testing.oracle): same NaN and +-inf
positions, floats within rtol 1e-4 + atol 1e-5, or no more than 4x onnxruntime's distance (or
4x the rounding spread) from a float64 evaluation. The long profile is `python -m polyfuse.testing.fuzz --graphs 10000`.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper

from polyfuse.testing.fuzz import fuzz
from polyfuse.testing.gen import merge, random_graph
from polyfuse.testing.gen.core import Graph
from polyfuse.testing.minimize import minimize
from polyfuse.testing.oracle import compare, reference64, rounding_spread, run_ort

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
    # ... or an infinity where polyfuse and the float64 evaluation agree on a finite value (fuzz seed
    # 15003867: ReduceMax of a column with NaN and inf, then IsNaN/Where; onnxruntime 1.32 gives inf)
    assert compare("y", np.array([-0.75], np.float32), np.array([np.inf], np.float32), np.array([-0.75])) is None
    assert compare("y", np.array([-0.5], np.float32), np.array([np.inf], np.float32), np.array([-0.75])) is not None
    assert compare("y", np.array([-0.75], np.float32), np.array([np.inf], np.float32), None) is not None


def test_rounding_spread_accepts_float32_error_where_onnxruntime_is_lucky():
    """tests/oracle_cases/cancelling-sum-matmul: sums of ~33 times +-3 cancel to ~0. onnxruntime
    gives exactly 0 (float64: 2.4e-7); another float32 summation order gives 1.3e-5, which is
    within float32's error bound but 55x onnxruntime's distance from the truth."""
    d = Path(__file__).parent / "oracle_cases" / "cancelling-sum-matmul"
    model = onnx.load(d / "model.onnx")
    with np.load(d / "feeds.npz") as f:
        feeds = {k: f[k] for k in f.files}
    name = model.graph.output[0].name
    (want,) = run_ort(model, feeds)
    truth = reference64(model, feeds)
    spread = rounding_spread(model, feeds, truth)[name]
    at = (0, 1, 6)
    assert want[at] == 0 and abs(truth[name][at]) < 1e-6
    got = want.copy()
    got[at] = 1.33514404e-05  # polyfuse's answer when the case was found
    assert compare(name, got, want, truth[name]) is not None  # the old rule alone rejects it
    assert compare(name, got, want, truth[name], spread) is None
    assert 1e-6 < spread[at] < 1e-4  # sqrt(n)*u*sum|terms| of a 99-term sum of ~33, times +-3: float32's scale
    got[at] = 1e-3
    assert compare(name, got, want, truth[name], spread) is not None


def test_rounding_spread_of_a_graph_survives_a_flip_in_another():
    """The fuzzer checks 40 graphs as one model. A comparison that flips in every perturbed sample
    (Equal(a + a, 2a): any rounding of the sum breaks it) voided the whole sample, so every other
    graph of the batch got no spread: seed 43001153, a LayerNorm of a near-constant row, was
    reported in its batch and accepted alone. Only the values computed from the flip lose it."""
    f = onnx.TensorProto.FLOAT
    flip = helper.make_graph(
        [helper.make_node("Add", ["a", "a"], ["y"]), helper.make_node("Equal", ["y", "c"], ["z"]),
         helper.make_node("Cast", ["z"], ["w"], to=f)], "flip",
        [helper.make_tensor_value_info("a", f, [8]), helper.make_tensor_value_info("c", f, [8])],
        [helper.make_tensor_value_info("w", f, [8])])
    a = np.linspace(0.3, 2.9, 8).astype(np.float32)
    graphs = {"f": Graph(helper.make_model(flip, opset_imports=[helper.make_opsetid("", 21)]), {"a": a, "c": 2 * a})}
    d = Path(__file__).parent / "oracle_cases" / "cancelling-sum-matmul"
    with np.load(d / "feeds.npz") as z:
        graphs["s"] = Graph(onnx.load(d / "model.onnx"), {k: z[k] for k in z.files})
    name = graphs["s"].model.graph.output[0].name
    alone = rounding_spread(graphs["s"].model, graphs["s"].feeds, reference64(graphs["s"].model, graphs["s"].feeds))[name]
    m = merge(graphs)
    spread = rounding_spread(m.model, m.feeds, reference64(m.model, m.feeds))
    at = (0, 1, 6)
    assert 1e-6 < alone[at] < 1e-4  # float32's scale for that cancelling sum
    assert 1e-6 < spread[f"s_{name}"][at] < 1e-4  # kept beside the other graph's flip
    assert np.all(spread["f_w"] == 0)  # computed from the flipped Equal: no spread


def test_widened_clip_keeps_float32_bounds():
    """tests/oracle_cases/clip-inf-cancelling-mean: Clip (no bounds) of a row holding +inf and -inf,
    then ReduceMean. In float32 the row is +-FLT_MAX, and its mean depends only on the summation
    order (polyfuse -0.0147, onnxruntime 0.0882). The float64 evaluation must clamp at FLT_MAX too,
    not at float64's 1.8e308 (whose sum of magnitudes overflows to an infinite spread, which
    counts as none), so that the spread there is float32's (~1e30) and excuses the value."""
    d = Path(__file__).parent / "oracle_cases" / "clip-inf-cancelling-mean"
    model = onnx.load(d / "model.onnx")
    with np.load(d / "feeds.npz") as f:
        feeds = {k: f[k] for k in f.files}
    truth = reference64(model, feeds)
    x = feeds["x2"].reshape(-1)
    clipped = truth["v3"].reshape(-1)
    flt_max = float(np.finfo(np.float32).max)
    assert np.all(clipped[x == np.inf] == flt_max) and np.all(clipped[x == -np.inf] == -flt_max)
    (want,) = run_ort(model, feeds)
    spread = rounding_spread(model, feeds, truth)["v9"]
    assert 1e29 < spread[19] < 1e32
    got = want.copy()
    got[19] = -0.0147058824  # polyfuse's value when the case was found
    assert compare("v9", got, want, truth["v9"], spread) is None
    got[2] += 0.1  # a row without infinities: its spread is float32's ~1e-7, and excuses nothing
    assert compare("v9", got, want, truth["v9"], spread) is not None


def test_rounding_spread_keeps_equal_values_equal():
    """A correctly rounded operation gives equal results for equal arguments, so a LayerNorm of a
    constant row is exactly 0 in any float32 engine; the spread must not excuse anything else."""
    nodes = [helper.make_node("Expand", ["x", "shape"], ["e"]), helper.make_node("Mul", ["e", "s"], ["m"]),
             helper.make_node("LayerNormalization", ["m", "g", "b"], ["y"], epsilon=1e-12)]
    f = onnx.TensorProto.FLOAT
    g = helper.make_graph(
        nodes, "rows", [helper.make_tensor_value_info("x", f, [4, 1])],
        [helper.make_tensor_value_info("y", f, [4, 16]), helper.make_tensor_value_info("m", f, [4, 16])],
        [onnx.numpy_helper.from_array(np.array([4, 16], np.int64), "shape"),
         onnx.numpy_helper.from_array(np.array(1.37, np.float32), "s"),
         onnx.numpy_helper.from_array(np.ones(16, np.float32), "g"),
         onnx.numpy_helper.from_array(np.zeros(16, np.float32), "b")])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    feeds = {"x": np.array([[0.3], [-2.1], [7.7], [1e-3]], np.float32)}
    truth = reference64(model, feeds)
    spread = rounding_spread(model, feeds, truth)
    assert np.all(spread["y"] == 0)
    assert np.all(spread["m"] > 0) and np.all(spread["m"] <= 4 * 2.0 ** -24 * np.abs(truth["m"]))
    bad = np.full((4, 16), 1e-3, np.float32)
    assert compare("y", bad, np.zeros((4, 16), np.float32), truth["y"], spread["y"]) is not None


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
