"""The NAS plugin: latency from the cost model (per-layer extrapolation checked against a direct
estimate), NSGA-II under a budget, failing quality functions, the CLI's three files, and the
check that matters: the searched candidates, built and timed, keep the predicted order."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import polyfuse
from polyfuse.errors import InputError
from polyfuse.nas import EncoderConfig, LatencyModel, Space, build_encoder, example_feeds, search
from polyfuse.cost import load_profile

pytest.importorskip("optuna")

SMALL = Space("small", layers=(1, 2, 3), hidden=(64, 128, 256), heads=(2, 4), intermediate=(128, 512),
              bottleneck=(False,), seq=32)


def failing_quality(config):  # module-level: a process pool pickles it by name
    if config.hidden == 256:
        raise ValueError("no data for 256")
    return float(config.params)


@pytest.mark.parametrize("cfg", [EncoderConfig(4, 128, 2, 256, 32), EncoderConfig(3, 256, 2, 256, 48, bottleneck=64)])
def test_latency_of_l_layers_is_extrapolated_exactly(cfg):
    model = LatencyModel("android-gpu", load_profile("sd865", "android-gpu"))
    direct = polyfuse.estimate(build_encoder(cfg), target="android-gpu", profile="sd865").total_ms
    assert model(cfg) == pytest.approx(direct, rel=1e-9)


def test_a_search_keeps_within_the_budget_and_its_front_is_a_front():
    r = search(SMALL, target="host", profile="host-generic", budget_ms=1e9, trials=16, seed=1)
    assert len(r.candidates) == 16 and all(c.feasible for c in r.candidates)
    front = r.pareto()
    assert front and all(a.predicted_ms <= b.predicted_ms and a.quality < b.quality for a, b in zip(front, front[1:]))
    for c in r.within_budget():  # nothing off the front beats a front point on both counts
        assert not any(f.predicted_ms > c.predicted_ms and f.quality < c.quality for f in front)
    tight = sorted(c.predicted_ms for c in r.candidates)[len(r.candidates) // 2]
    r2 = search(SMALL, target="host", profile="host-generic", budget_ms=tight, trials=16, seed=1)
    assert r2.best().predicted_ms <= tight


def test_a_budget_below_the_fastest_candidate_says_so():
    with pytest.raises(InputError, match=r"below the fastest candidate .* enc_l1_h64.* ms predicted"):
        search(SMALL, target="host", profile="host-generic", budget_ms=1e-6, trials=4)


@pytest.mark.parametrize("executor, workers", [("inline", None), ("process", 2)])
def test_a_quality_function_that_raises_fails_its_candidate_only(executor, workers):
    r = search(SMALL, target="host", profile="host-generic", budget_ms=1e9, trials=12, seed=2,
               quality="test_nas:failing_quality", executor=executor, workers=workers)
    failed = [c for c in r.candidates if c.error]
    assert failed and all(c.config.hidden == 256 and "no data for 256" in c.error for c in failed)
    assert all(c.quality == c.config.params for c in r.candidates if not c.error)


def test_the_searched_candidates_built_and_timed_keep_the_predicted_order(tmp_path):
    """From a small search on host: the Pareto front's fastest and slowest candidates (at least
    4x apart in prediction), compiled and timed (pf_run medians, best of three rounds, 1 thread):
    the one predicted faster is faster."""
    from polyfuse.cost.profiler import measure

    r = search(SMALL, target="host", profile="host-generic", budget_ms=1e9, trials=16, seed=3)
    front = r.pareto()
    lo, hi = front[0], front[-1]
    assert hi.predicted_ms >= 4 * lo.predicted_ms, [(c.config.name(), c.predicted_ms) for c in front]
    measured = {}
    models = {c.number: polyfuse.compile(build_encoder(c.config), "host", threads=1,
                                         output_dir=tmp_path / c.config.name()) for c in (lo, hi)}
    for _ in range(3):
        for c in (lo, hi):
            ms = measure(models[c.number].directory, example_feeds(c.config), 20, 1).wall_ms
            measured[c.number] = min(ms, measured.get(c.number, np.inf))
    assert measured[lo.number] < measured[hi.number], measured


def test_cli_nas_writes_the_three_files_and_never_into_a_used_folder(tmp_path):
    out = tmp_path / "nas_out"
    cmd = [sys.executable, "-m", "polyfuse", "nas", "--target", "android-gpu", "--profile", "sd865", "--seq", "64",
           "--budget-ms", "20", "--trials", "24", "-o", str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["best.onnx", "pareto.json", "pareto.png"]
    doc = json.loads((out / "pareto.json").read_text())
    assert doc["best"]["predicted_ms"] <= 20 and doc["trials"] == 24 and doc["target"] == "android-gpu"
    best = EncoderConfig(**doc["best"]["architecture"])
    assert polyfuse.estimate(str(out / "best.onnx"), target="android-gpu",
                             profile="sd865").total_ms == pytest.approx(doc["best"]["predicted_ms"], rel=1e-3)
    assert best.seq == 64
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "not an empty folder" in r.stderr
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before
    r = subprocess.run(cmd[:-1] + [str(tmp_path / "x"), "--budget-ms", "0.0001"], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 2 and "below the fastest candidate" in r.stderr and not (tmp_path / "x").exists()


def test_quality_functions_run_as_ray_tasks_on_a_local_ray():
    """executor='ray' on a local Ray with 2 CPUs: each candidate's quality computed by a task,
    a raising one failing its candidate only, the same results as inline."""
    ray = pytest.importorskip("ray")

    def quality(config):  # shipped to the workers by value
        if config.hidden == 256:
            raise ValueError("no data for 256")
        return float(config.params)

    try:
        r = search(SMALL, target="host", profile="host-generic", budget_ms=1e9, trials=12, seed=2, quality=quality,
                   executor="ray", workers=2)
    finally:
        ray.shutdown()
    inline = search(SMALL, target="host", profile="host-generic", budget_ms=1e9, trials=12, seed=2, quality=quality)
    assert [(c.config, c.quality, c.error) for c in r.candidates] == \
        [(c.config, c.quality, c.error) for c in inline.candidates]
    assert any(c.error for c in r.candidates) and any(c.quality for c in r.candidates)
