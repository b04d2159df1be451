"""The cost model and ``polyfuse estimate``: device profiles, what each fused kernel is charged,
and the CLI. Expected numbers are worked out here from the profile's JSON and the shapes (the
formula of cost/model.py's docstring), not read back from the code under test."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from onnx import helper

import polyfuse
from helpers import model
from polyfuse.cost import load_profile, shipped
from polyfuse.errors import InputError

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "examples" / "tiny_bert.onnx"
PROFILES = REPO / "src" / "polyfuse" / "cost" / "profiles"


def test_every_shipped_profile_loads_for_each_target_it_names():
    assert {"host-generic", "sd865", "sd855", "kirin980"} <= set(shipped())
    for name in shipped():
        doc = json.loads((PROFILES / f"{name}.json").read_text())
        assert doc["calibrated"] is False and doc["sources"], name  # public specs until calibrated
        for target, dev in doc["targets"].items():
            p = load_profile(name, target)
            assert (p.target, p.peak_gflops, p.bandwidth_gbs) == (target, dev["peak_gflops"], dev["bandwidth_gbs"])


def _write(tmp_path, doc) -> Path:
    path = tmp_path / "p.json"
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


def _good() -> dict:
    return json.loads((PROFILES / "sd865.json").read_text())


@pytest.mark.parametrize("edit, message", [
    (lambda d: "{not json", "not a readable JSON file"),
    (lambda d: {**d, "format": "other"}, "not a polyfuse device profile"),
    (lambda d: {**d, "version": 99}, "version 99; this polyfuse reads version 1"),
    (lambda d: {**d, "targets": {"host": d["targets"]["android-gpu"]}}, "describes no device for target 'android-gpu' (it has: host)"),
    (lambda d: {**d, "targets": {"android-gpu": {**d["targets"]["android-gpu"], "peak_gflops": -1}}}, "'peak_gflops' must be a positive number"),
    (lambda d: {**d, "targets": {"android-gpu": {**d["targets"]["android-gpu"], "kinds": {}}}}, "kinds must describe exactly"),
])
def test_a_bad_or_foreign_profile_is_one_clear_error(tmp_path, edit, message):
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_profile(_write(tmp_path, edit(_good())), "android-gpu")


def test_an_efficiency_above_one_is_refused(tmp_path):
    d = _good()
    d["targets"]["android-gpu"]["kinds"]["pointwise"]["memory_efficiency"] = 1.5
    with pytest.raises(InputError, match="at most 1"):
        load_profile(_write(tmp_path, d), "android-gpu")


def test_a_missing_profile_names_the_shipped_ones():
    with pytest.raises(InputError, match="not a shipped profile .*sd865"):
        load_profile("nope", "host")


def _matmul(m, k, n):
    return model([helper.make_node("MatMul", ["a", "w"], ["y"])], [("a", np.float32, [m, k])],
                 [("y", np.float32, [m, n])], [("w", np.random.default_rng(0).standard_normal((k, n)).astype(np.float32))])


@pytest.mark.parametrize("target, profile", [("host", "host-generic"), ("android-gpu", "kirin980"),
                                             ("android-cpu", "sd855")])
def test_a_gemm_is_charged_its_flops_bytes_and_the_profile_formula(target, profile):
    m, k, n = 96, 200, 72
    est = polyfuse.estimate(_matmul(m, k, n), target=target, profile=profile)
    (g,) = est.groups
    dev = json.loads((PROFILES / f"{profile}.json").read_text())["targets"][target]
    c = dev["kinds"]["contraction"]
    flops, nbytes, macs = 2 * m * k * n, 4 * (m * k + k * n + m * n), m * k * n
    compute = flops / (dev["peak_gflops"] * 1e9 * c["compute_efficiency"] * macs / (macs + c["half_work"]))
    memory = nbytes / (dev["bandwidth_gbs"] * 1e9 * c["memory_efficiency"] * nbytes / (nbytes + c["half_bytes"]))
    want_ms = (dev["launch_us"] * 1e-6 + max(compute, memory)) * 1e3
    assert (g.kind, g.flops, g.bytes, g.ops) == ("contraction", flops, nbytes, ["MatMul"])
    assert g.bound == ("compute" if compute > memory else "memory")
    assert abs(g.ms - want_ms) <= 1e-9 + 1e-9 * want_ms and abs(est.total_ms - want_ms) <= 1e-9 + 1e-9 * want_ms


def test_a_gather_is_charged_the_rows_it_reads_not_the_table():
    table = np.ones((5000, 64), np.float32)
    m = model([helper.make_node("Gather", ["t", "ids"], ["y"], axis=0)], [("ids", np.int64, [8])],
              [("y", np.float32, [8, 64])], [("t", table)])
    (g,) = polyfuse.estimate(m).groups
    assert g.bytes == 8 * 64 * 4 + 8 * 8 + 8 * 64 * 4  # rows read, the ids, the output


def test_fusion_lowers_the_prediction_and_the_launches():
    shapes = {"input_ids": (1, 32), "attention_mask": (1, 32), "token_type_ids": (1, 32)}
    fused = polyfuse.estimate(TINY, shapes=shapes, target="android-gpu")
    unfused = polyfuse.estimate(TINY, shapes=shapes, target="android-gpu", fusion=False)
    assert len(fused.groups) < len(unfused.groups) / 3
    assert fused.total_ms < unfused.total_ms
    assert sum(g.bytes for g in fused.groups) < sum(g.bytes for g in unfused.groups)


def test_estimate_builds_nothing(monkeypatch):
    from polyfuse import pipeline

    monkeypatch.setattr(pipeline, "build_shared_library", lambda *a, **k: pytest.fail("estimate built code"))
    assert polyfuse.estimate(TINY, target="host").total_ms > 0


def test_cli_estimate_json_and_a_foreign_profile():
    r = subprocess.run([sys.executable, "-m", "polyfuse", "estimate", str(TINY), "--shape", "input_ids=1,16", "--shape",
                        "attention_mask=1,16", "--shape", "token_type_ids=1,16", "--target", "android-gpu", "--profile",
                        "sd855", "--json"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["target"] == "android-gpu" and out["profile"]["name"] == "sd855" and not out["profile"]["calibrated"]
    assert out["launches"] == len(out["groups"]) and out["launches"] <= 20
    assert abs(sum(g["ms"] for g in out["groups"]) - out["total_ms"]) < 1e-4
    assert all({"name", "ops", "flops", "bytes", "bound", "ms"} <= set(g) for g in out["groups"])
    r = subprocess.run([sys.executable, "-m", "polyfuse", "estimate", str(TINY), "--target", "android-gpu", "--profile",
                        "host-generic"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "describes no device for target 'android-gpu' (it has: host)" in r.stderr, r.stderr


def test_cli_stops_quietly_when_its_reader_goes_away():
    """`polyfuse estimate ... | head`: a closed stdout ends the command with 141 (as SIGPIPE would)
    and no error message, not an "internal error" (70) or a traceback."""
    p = subprocess.Popen([sys.executable, "-m", "polyfuse", "-q", "estimate", str(TINY), "--json"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    p.stdout.close()  # before the command has imported polyfuse, so its first write finds no reader
    err = p.stderr.read()
    assert p.wait(timeout=300) == 141, err
    assert "error" not in err and "Traceback" not in err, err


def _tiny_npys(tmp_path, seq=16) -> list:
    args = []
    with np.load(REPO / "examples" / "tiny_bert_inputs.npz") as f:
        for k in f.files:
            np.save(tmp_path / f"{k}.npy", f[k][:, :seq])
            args += ["--input", f"{k}={tmp_path / f'{k}.npy'}"]
    return args


def test_pf_run_times_every_launch_with_pf_profile(tmp_path):
    """PF_PROFILE=1: one line per launch, in launch order, naming the kernel function the
    generated code calls there, with the counted runs (the first, cold one, is not) and a
    positive median; without it, nothing."""
    import os

    m = polyfuse.compile(TINY, "host", shapes={"input_ids": (1, 16)}, output_dir=tmp_path / "a")
    args = _tiny_npys(tmp_path)
    cmd = [str(tmp_path / "a" / "pf_run"), str(tmp_path / "a"), *args, "-o", str(tmp_path / "o"), "--bench", "5"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=dict(os.environ, PF_PROFILE="1"))
    assert r.returncode == 0, r.stderr
    lines = [line.split() for line in r.stderr.splitlines() if line.startswith("pf_profile ")]
    source = (tmp_path / "a" / "model.cpp").read_text()
    run_body = source[source.index("int pf_run("):source.index("void pf_wake(")]
    called = [line.split("(")[0].strip() for line in run_body.splitlines() if line.strip().startswith("k") and "(" in line]
    assert [f[2] for f in lines] == called and len(lines) == m.manifest["stats"]["kernels"]
    assert [int(f[1]) for f in lines] == list(range(len(lines)))
    assert all(f[3] == "5" and int(f[4]) > 0 for f in lines), lines
    cmd[cmd.index("-o") + 1] = str(tmp_path / "o2")
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={k: v for k, v in os.environ.items()
                                                                              if k != "PF_PROFILE"})
    assert r.returncode == 0 and "pf_profile" not in r.stderr


def test_bench_profile_puts_each_launch_beside_its_prediction():
    r = subprocess.run([sys.executable, "-m", "polyfuse", "bench", str(TINY), "--shape", "input_ids=1,32", "--profile",
                        "--repeat", "5", "--json", "--threads", "1"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    est = polyfuse.estimate(TINY, shapes={"input_ids": (1, 32)})
    assert [x["name"] for x in out["launches"]] == [g.name for g in est.groups]
    assert [x["predicted_ms"] for x in out["launches"]] == pytest.approx([g.ms for g in est.groups], rel=1e-4, abs=1e-6)
    assert all(x["measured_ms"] > 0 for x in out["launches"]) and out["wall_ms"] > 0 and out["threads"] == 1
    assert out["measured_ms"] == pytest.approx(sum(x["measured_ms"] for x in out["launches"]), rel=1e-4)
    for x in out["launches"]:
        assert x["gflops"] == pytest.approx(x["flops"] / x["measured_ms"] / 1e6, rel=1e-2, abs=1e-3)


def test_bench_profile_of_a_target_that_runs_elsewhere_needs_a_device():
    """(With --device it runs there: tests/test_android_cpu.py, through a fake adb.)"""
    r = subprocess.run([sys.executable, "-m", "polyfuse", "bench", str(TINY), "--target", "android-cpu", "--profile"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "add --device adb" in r.stderr, r.stderr


def test_calibration_recovers_the_times_a_known_device_would_give(tmp_path):
    """fit() on launch times generated by a known device (the cost formula with chosen peak,
    bandwidth, launch cost and curves, plus 3% noise) predicts them back within 10% per launch
    (MAPE, each kind), and predicts launches it has not seen, drawn from the same device, within
    10% too. (The parameters themselves are not unique: a launch cost can trade against the
    curves' half sizes; the times are what must hold.)"""
    from polyfuse.cost.calibrate import fit
    from polyfuse.cost.model import KernelCost

    rng = np.random.default_rng(1)
    true = {"contraction": (0.8, 3e5, 0.7, 1e4), "attention": (0.3, 1e5, 0.6, 1e4), "gemmchain": (0.6, 1e5, 0.7, 1e4),
            "pointwise": (0.2, 1.0, 0.8, 3e4), "reduction": (0.1, 1.0, 0.6, 3e4)}
    peak, bw, launch = 150e9, 25e9, 4e-6

    def draw(n):
        out = []
        for kind, (ce, hw, me, hb) in true.items():
            for _ in range(n):
                macs = float(rng.choice([1e3, 1e4, 1e5, 1e6, 1e7, 1e8])) * rng.uniform(0.5, 2)
                compute_kind = kind in ("contraction", "attention", "gemmchain")
                work = 2 * macs if compute_kind else macs
                nbytes = macs * rng.uniform(0.02, 0.2) if compute_kind else macs * rng.uniform(2, 10)
                t = launch + max(work / (peak * ce * macs / (macs + hw)), nbytes / (bw * me * nbytes / (nbytes + hb)))
                out.append((KernelCost("k", kind, [], int(work), int(nbytes), "", 0.0, int(macs)), t * 1e3))
        return out

    seen = [(g, ms * rng.uniform(0.97, 1.03)) for g, ms in draw(40)]
    doc = fit(seen, "host", "synthetic")
    assert all(v["mape"] <= 0.10 for v in doc["fit"].values()), doc["fit"]
    path = tmp_path / "cal.json"
    path.write_text(json.dumps(doc))
    p = load_profile(path, "host")
    assert p.calibrated
    errors = []
    for g, ms in draw(20):
        c = p.curves[g.kind]
        pred = p.launch_us * 1e-3 + max(g.flops / (p.peak_gflops * 1e6 * c.compute(g.macs)),
                                         g.bytes / (p.bandwidth_gbs * 1e6 * c.memory(g.bytes)))
        errors.append(abs(pred - ms) / ms)
    assert float(np.mean(errors)) <= 0.10, float(np.mean(errors))


def test_calibrate_writes_a_profile_estimate_reads(tmp_path, monkeypatch):
    """The whole loop on two small encoders: compile, time every launch, fit, and a profile
    that estimate accepts and that says it is calibrated."""
    from polyfuse.cost import calibrate as cal

    monkeypatch.setattr(cal, "CALIBRATION_SET", ((1, 64, 2, 256, 32, 0), (1, 128, 2, 512, 64, 0)))
    doc = cal.calibrate("host", threads=1, repeat=3, rounds=2)
    path = tmp_path / "host.json"
    path.write_text(json.dumps(doc))
    est = polyfuse.estimate(TINY, shapes={"input_ids": (1, 16)}, profile=path)
    assert est.profile.calibrated and est.total_ms > 0
    assert sum(v["launches"] for v in doc["fit"].values()) >= 10
