"""--target android-cpu: arm64 NEON code cross-compiled with aarch64-linux-gnu-g++ and run under
qemu-aarch64 (the sysroot of g++-aarch64-linux-gnu), against onnxruntime on this machine.

Tolerance: 1e-4 absolute on every output (the contract is 1e-3). Models: the bundled tiny BERT
and the 2-layer CI configs of BERT, DistilBERT and MobileBERT at sequence 32. Also: the adb
device against a fake `adb` (an argument log and a folder standing in for the phone), a
compile without a cross compiler (sources and the commands that build them), and clear errors.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import polyfuse
from helpers import run_ort
from polyfuse.errors import ArtifactError, InputError
from polyfuse.targets import ANDROID_CPU

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "examples" / "tiny_bert.onnx"
ATOL = 1e-4
HAVE_CROSS = shutil.which("aarch64-linux-gnu-g++") is not None
HAVE_QEMU = shutil.which("qemu-aarch64") is not None and Path("/usr/aarch64-linux-gnu").is_dir()
needs_qemu = pytest.mark.skipif(not (HAVE_CROSS and HAVE_QEMU), reason="needs g++-aarch64-linux-gnu and qemu-user "
                                "(bash scripts/install.sh --test installs them)")


def _tiny_feeds(seq: int = 16) -> dict:
    with np.load(REPO / "examples" / "tiny_bert_inputs.npz") as f:
        return {k: f[k][:, :seq] for k in f.files}


@pytest.fixture(scope="module")
def tiny_arm(tmp_path_factory):
    if not (HAVE_CROSS and HAVE_QEMU):
        pytest.skip("needs g++-aarch64-linux-gnu and qemu-user")
    d = tmp_path_factory.mktemp("arm") / "tiny"
    feeds = _tiny_feeds()
    m = polyfuse.compile(TINY, "android-cpu", shapes={k: v.shape for k, v in feeds.items()}, output_dir=d,
                         device="qemu", threads=2)
    return d, m, feeds


@needs_qemu
def test_tiny_bert_under_qemu_matches_onnxruntime(tiny_arm):
    d, m, feeds = tiny_arm
    assert "ARM aarch64" in subprocess.run(["file", str(d / "pf_run")], capture_output=True, text=True).stdout \
        if shutil.which("file") else True
    assert (d / "libpfmodel.so").read_bytes()[18] == 183  # ELF e_machine EM_AARCH64 (183)
    for name, ours, ref in zip(m.output_names, m.run(None, feeds), run_ort(__import__("onnx").load(TINY), feeds)):
        assert ours.shape == ref.shape and ours.dtype == ref.dtype, name
        assert float(np.max(np.abs(ours - ref))) <= ATOL, name


@needs_qemu
def test_weights_packed_at_compile_time_under_qemu(tiny_arm, tmp_path):
    # The artifact's pf_run packed the GEMM weights under qemu for the NEON micro-kernel; loading
    # maps that file. Without it the loader packs from weights.bin: the outputs must be identical.
    d, m, feeds = tiny_arm
    head = (d / "weights.bin.packed").read_bytes()[:64]
    assert head.startswith(b"PFPACK1\0") and b"neon-8x12" in head
    unpacked = tmp_path / "unpacked"
    shutil.copytree(d, unpacked)
    (unpacked / "weights.bin.packed").unlink()
    packing = polyfuse.load(unpacked, device="qemu")
    for name, a, b in zip(m.output_names, m.run(None, feeds), packing.run(None, feeds)):
        assert np.array_equal(a, b), name


@needs_qemu
def test_cli_run_with_device_qemu_writes_like_host_run(tiny_arm, tmp_path):
    d, m, feeds = tiny_arm
    np.savez(tmp_path / "in.npz", **feeds)
    r = subprocess.run([sys.executable, "-m", "polyfuse", "run", str(d), "--device", "qemu", "--input",
                        str(tmp_path / "in.npz"), "-o", str(tmp_path / "arm")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    host = polyfuse.compile(TINY, shapes={k: v.shape for k, v in feeds.items()})
    for name, want in zip(host.output_names, host.run(None, feeds)):
        got = np.load(tmp_path / "arm" / f"{name}.npy")
        assert got.shape == want.shape and float(np.max(np.abs(got - want))) <= ATOL
    # without --device: the artifact cannot run here, and the error says how to run it
    r = subprocess.run([sys.executable, "-m", "polyfuse", "run", str(d), "--input", str(tmp_path / "in.npz"), "-o",
                        str(tmp_path / "x")], capture_output=True, text=True)
    assert r.returncode == 2 and "--device qemu" in r.stderr and not (tmp_path / "x").exists()
    with pytest.raises(ArtifactError, match="device='qemu'"):
        polyfuse.load(d)


@needs_qemu
@pytest.mark.slow
@pytest.mark.parametrize("arch", ["bert", "distilbert", "mobilebert"])
def test_small_configs_under_qemu_match_onnxruntime(export_model, arch):
    from polyfuse.testing import transformers_export as te

    seq = 32
    path = export_model(arch, "small", seq=seq)
    feeds = te.example_inputs(arch, "small", batch=1, seq=seq)
    m = polyfuse.compile(path, "android-cpu", shapes={k: v.shape for k, v in feeds.items()}, device="qemu", threads=2)
    sess_out = run_ort(__import__("onnx").load(path), feeds)
    for name, ours, ref in zip(m.output_names, m.run(None, feeds), sess_out):
        err = float(np.max(np.abs(ours - ref)))
        assert err <= ATOL, f"{arch} {name}: max abs error {err:.3g} > {ATOL}"


FAKE_ADB = r'''#!/usr/bin/env python3
"""A fake adb: logs its arguments; the 'phone' is the folder $FAKE_ADB_ROOT; shell runs the
command there under qemu (rewriting /data/local/tmp into the folder)."""
import os, shlex, shutil, subprocess, sys
root = os.environ["FAKE_ADB_ROOT"]
args = sys.argv[1:]
with open(os.environ["FAKE_ADB_LOG"], "a") as log:
    log.write(repr(args) + "\n")
if args[:1] == ["-s"]:
    args = args[2:]
here = lambda p: p.replace("/data/local/tmp", root + "/data/local/tmp")
if args == ["get-state"]:
    print(os.environ.get("FAKE_ADB_STATE", "device")); sys.exit(0)
if args[0] == "push":
    os.makedirs(os.path.dirname(here(args[2])), exist_ok=True); shutil.copy(args[1], here(args[2])); sys.exit(0)
if args[0] == "pull":
    shutil.copytree(here(args[1]), os.path.join(args[2], os.path.basename(args[1]))); sys.exit(0)
if args[0] == "shell":
    words = [here(w) for w in shlex.split(args[1])]
    if words[0] == "rm": shutil.rmtree(words[-1], ignore_errors=True); sys.exit(0)
    if words[0] == "mkdir": os.makedirs(words[-1], exist_ok=True); sys.exit(0)
    if words[0] == "chmod": os.chmod(words[-1], 0o755); sys.exit(0)
    if words[0] == "getprop":
        print({"ro.product.model": "Fake Pixel", "ro.soc.model": "SM8250"}.get(words[1], "")); sys.exit(0)
    env = dict(os.environ)
    if words[0] == "env":  # env NAME=VALUE ... COMMAND
        words = words[1:]
        while "=" in words[0]:
            k, _, v = words.pop(0).partition("="); env[k] = v
    r = subprocess.run(["qemu-aarch64", "-L", "/usr/aarch64-linux-gnu"] + words, env=env)
    sys.exit(r.returncode)
sys.exit(1)
'''


@pytest.fixture()
def fake_adb(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "adb").write_text(FAKE_ADB)
    (bin_dir / "adb").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_ADB_ROOT", str(tmp_path / "phone"))
    monkeypatch.setenv("FAKE_ADB_LOG", str(tmp_path / "adb.log"))
    return tmp_path


@needs_qemu
def test_adb_device_pushes_runs_and_pulls(tiny_arm, fake_adb):
    d, _, feeds = tiny_arm
    m = polyfuse.load(d, device="adb:emulator-5554")
    outs = m.run(None, feeds)
    ref = run_ort(__import__("onnx").load(TINY), feeds)
    for ours, want in zip(outs, ref):
        assert float(np.max(np.abs(ours - want))) <= ATOL
    log = [eval(line) for line in (fake_adb / "adb.log").read_text().splitlines()]  # noqa: S307 (our own log)
    assert all(a[:2] == ["-s", "emulator-5554"] for a in log)
    pushed = {Path(a[4]).name for a in log if a[2] == "push"}
    assert {"manifest.json", "weights.bin", "libpfmodel.so", "pf_run", "0.npy", "1.npy", "2.npy"} <= pushed
    remote = f"/data/local/tmp/polyfuse/{d.name}"
    assert any(a[2] == "shell" and a[3].startswith(f"{remote}/pf_run {remote} --input") for a in log)
    assert any(a[2] == "pull" and a[3] == f"{remote}/out" for a in log)


@needs_qemu
def test_calibrate_and_profile_on_a_phone_through_adb(fake_adb, monkeypatch, tmp_path, capsys):
    """calibrate --device adb compiles the calibration encoders for the phone, runs each one's
    pf_run there with PF_PROFILE=1 (the fake phone: qemu) and fits a profile that names the phone
    and that estimate reads; bench --profile --device adb times every launch the artifact makes."""
    from polyfuse.cli import main
    from polyfuse.cost import calibrate as cal
    from polyfuse.inspect import summarize

    monkeypatch.setattr(cal, "CALIBRATION_SET", ((1, 64, 2, 256, 32, 0), (1, 128, 2, 512, 64, 0)))
    doc = cal.calibrate("android-cpu", repeat=2, rounds=1, device="adb")
    assert doc["targets"]["android-cpu"]["device"] == "Fake Pixel (SM8250) (android-cpu)"
    assert sum(v["launches"] for v in doc["fit"].values()) >= 10
    (tmp_path / "phone.json").write_text(json.dumps(doc))
    shapes = {k: v.shape for k, v in _tiny_feeds().items()}
    est = polyfuse.estimate(TINY, shapes=shapes, target="android-cpu", profile=tmp_path / "phone.json")
    assert est.profile.calibrated and est.total_ms > 0
    log = [eval(line) for line in (fake_adb / "adb.log").read_text().splitlines()]  # noqa: S307 (our own log)
    assert any(a[0] == "shell" and a[1].startswith("env PF_PROFILE=1 /data/local/tmp/polyfuse/") for a in log)

    capsys.readouterr()
    rc = main(["bench", str(TINY), "--target", "android-cpu", "--device", "adb", "--profile", "--repeat", "2", "--json",
               *[f"--shape={k}={','.join(map(str, v))}" for k, v in shapes.items()]])
    got = json.loads(capsys.readouterr().out)
    assert rc == 0 and got["device"] == "Fake Pixel (SM8250)"
    assert len(got["launches"]) == summarize(TINY, shapes=shapes, target="android-cpu")[0]["kernels"]
    assert all(r["measured_ms"] > 0 for r in got["launches"])


def test_calibrating_a_target_needs_a_device_only_where_its_code_runs_elsewhere():
    from polyfuse.cost.calibrate import calibrate

    with pytest.raises(InputError, match="runs on a device: add --device adb"):
        calibrate("android-cpu")
    with pytest.raises(InputError, match="host.s code runs here; leave out --device"):
        calibrate("host", device="qemu")


def test_missing_adb_qemu_or_device_is_a_clear_error(tmp_path, monkeypatch, fake_adb):
    art = tmp_path / "art"
    art.mkdir()
    (art / "manifest.json").write_text(json.dumps({"format": "polyfuse-artifact", "target": "android-cpu",
                                                   "inputs": [], "outputs": [], "built": True}))
    monkeypatch.setenv("FAKE_ADB_STATE", "unknown")
    with pytest.raises(polyfuse.PolyfuseError, match="no device connected"):
        polyfuse.load(art, device="adb")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(polyfuse.PolyfuseError, match="adb not found"):
        polyfuse.load(art, device="adb")
    with pytest.raises(polyfuse.PolyfuseError, match="qemu-aarch64 not found"):
        polyfuse.load(art, device="qemu")
    with pytest.raises(InputError, match="unknown device"):
        polyfuse.load(art, device="usb")


def test_compile_without_a_cross_compiler_writes_sources_and_says_how(tmp_path, monkeypatch):
    from polyfuse.targets.base import Toolchain

    real = Toolchain.find
    monkeypatch.setattr(Toolchain, "find", lambda self: None if self is ANDROID_CPU.toolchain else real(self))
    monkeypatch.setenv("POLYFUSE_ARTIFACT_CACHE", "0")
    from polyfuse.cli import main

    feeds = _tiny_feeds()
    out = tmp_path / "src_only"
    rc = main(["compile", str(TINY), "--target", "android-cpu", "-o", str(out),
               *[f"--shape={k}={','.join(map(str, v.shape))}" for k, v in feeds.items()]])
    assert rc == 0
    names = sorted(p.name for p in out.iterdir())
    assert "libpfmodel.so" not in names and "pf_run" not in names
    assert {"model.cpp", "CMakeLists.txt", "aarch64-linux-gnu.cmake", "weights.bin", "manifest.json"} <= set(names)
    assert json.loads((out / "manifest.json").read_text())["built"] is False
    with pytest.raises(ArtifactError, match="build it first"):
        polyfuse.load(out, device="qemu")


@needs_qemu
def test_artifact_cmake_cross_build_runs_under_qemu(tiny_arm, tmp_path):
    d, _, feeds = tiny_arm
    if not shutil.which("cmake"):
        pytest.skip("no cmake")
    b = tmp_path / "build"
    subprocess.run(["cmake", "-S", str(d), "-B", str(b), f"-DCMAKE_TOOLCHAIN_FILE={d / 'aarch64-linux-gnu.cmake'}"],
                   check=True, capture_output=True)
    subprocess.run(["cmake", "--build", str(b), "-j2"], check=True, capture_output=True)
    for k, v in feeds.items():
        np.save(tmp_path / f"{k}.npy", v)
    args = [a for k in feeds for a in ("--input", f"{k}={tmp_path / f'{k}.npy'}")]
    r = subprocess.run(["qemu-aarch64", "-L", "/usr/aarch64-linux-gnu", str(b / "pf_run"), str(d), *args, "-o",
                        str(tmp_path / "o")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    for name, want in zip(["last_hidden_state", "pooler_output"], run_ort(__import__("onnx").load(TINY), feeds)):
        assert float(np.max(np.abs(np.load(tmp_path / "o" / f"{name}.npy") - want))) <= ATOL


@needs_qemu
def test_bench_on_qemu_reports_latency_and_checks_outputs():
    r = subprocess.run([sys.executable, "-m", "polyfuse", "-q", "bench", str(TINY), "--target", "android-cpu", "--device",
                        "qemu", "--shape", "input_ids=1,16", "--vs", "onnxruntime", "--repeat", "3"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "target android-cpu on qemu" in r.stdout and "median" in r.stdout
    err = float(r.stdout.split("max abs error vs onnxruntime (on this machine):")[1].split()[0])
    assert err <= ATOL
    r = subprocess.run([sys.executable, "-m", "polyfuse", "bench", str(TINY), "--target", "android-cpu"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 2 and "--device qemu" in r.stderr
