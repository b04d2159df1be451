"""--target android-gpu: OpenCL C kernels run on this machine's OpenCL device (PoCL on the CPU,
installed by scripts/install.sh), against onnxruntime.

precision fp16 (half storage, float32 arithmetic) is held to 4e-3 x the largest |output|: every
stored intermediate and weight is rounded to half once (relative error <= 2^-11 = 4.9e-4), the
arithmetic between stores is float32, and each layer's LayerNorm renormalises, so the error is a
few half-precision units of the output's scale rather than growing with depth. Measured on the
full-size default configs at seq 128: 2.1e-3 (MobileBERT), 2.2e-3 (DistilBERT), 2.5e-3 (BERT-base).

Tolerances: every op case within 1e-5 relative and absolute of onnxruntime (OpenCL's exp, erf and
tanh are within a few ulp); models within 1e-4 absolute on every output (the contract is 1e-3):
the bundled tiny BERT and the 2-layer CI configs of BERT, DistilBERT and MobileBERT at sequence
32. Also: tiny BERT under oclgrind (API misuse, data races, uninitialised reads: none allowed),
clear refusals (float64) and a clear error without an OpenCL driver.
"""
from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

import polyfuse
from helpers import run_ort
from polyfuse.errors import PolyfuseError, UnsupportedError
from test_android_cpu import fake_adb  # noqa: F401 (the fake phone: an adb that runs pf_run under qemu)

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "examples" / "tiny_bert.onnx"
ATOL = 1e-4
OCLGRIND_RT = Path("/usr/lib/oclgrind/liboclgrind-rt.so")


def _have_opencl() -> bool:
    try:
        lib = ctypes.CDLL("libOpenCL.so.1")
    except OSError:
        return False
    n = ctypes.c_uint32(0)
    return lib.clGetPlatformIDs(0, None, ctypes.byref(n)) == 0 and n.value > 0


needs_opencl = pytest.mark.skipif(not _have_opencl(), reason="needs an OpenCL platform (bash scripts/install.sh "
                                  "--test installs PoCL)")


def _tiny_feeds(seq: int = 16) -> dict:
    with np.load(REPO / "examples" / "tiny_bert_inputs.npz") as f:
        return {k: f[k][:, :seq] for k in f.files}


@pytest.fixture(scope="module")
def tiny_gpu(tmp_path_factory):
    if not _have_opencl():
        pytest.skip("needs an OpenCL platform")
    d = tmp_path_factory.mktemp("gpu") / "tiny"
    feeds = _tiny_feeds()
    m = polyfuse.compile(TINY, "android-gpu", shapes={k: v.shape for k, v in feeds.items()}, output_dir=d)
    return d, m, feeds


@needs_opencl
def test_tiny_bert_on_opencl_matches_onnxruntime(tiny_gpu):
    d, m, feeds = tiny_gpu
    assert "__kernel void k0(" in (d / "model.cpp").read_text()
    for name, ours, ref in zip(m.output_names, m.run(None, feeds), run_ort(onnx.load(TINY), feeds)):
        assert ours.shape == ref.shape and ours.dtype == ref.dtype, name
        assert float(np.max(np.abs(ours - ref))) <= ATOL, name
    again = polyfuse.load(d)  # a saved artifact loads and runs the same
    for a, b in zip(again.run(None, feeds), m.run(None, feeds)):
        np.testing.assert_array_equal(a, b)


@needs_opencl
def test_gemm_chains_stay_correct_where_tune_turns_them_on(tmp_path):
    """android-gpu forms no GEMM chains by default (they leave a GPU idle); --tune still tries them,
    so the chain kernel, on tiny BERT's two feed-forward blocks, still matches onnxruntime."""
    import dataclasses

    from polyfuse.inspect import summarize
    from polyfuse.targets import ANDROID_GPU
    from polyfuse.targets.base import SCHEDULE

    feeds = _tiny_feeds()
    shapes = {k: v.shape for k, v in feeds.items()}
    chained = dataclasses.replace(ANDROID_GPU, schedule={
        **ANDROID_GPU.schedule, "chain_max_second_weights": SCHEDULE["chain_max_second_weights"]})
    assert "gemmchain" not in summarize(TINY, target=ANDROID_GPU, shapes=shapes)[0]["kernels_by_kind"]
    assert summarize(TINY, target=chained, shapes=shapes)[0]["kernels_by_kind"]["gemmchain"] == 2
    m = polyfuse.compile(TINY, chained, shapes=shapes, output_dir=tmp_path / "chained")
    for name, ours, ref in zip(m.output_names, m.run(None, feeds), run_ort(onnx.load(TINY), feeds)):
        assert float(np.max(np.abs(ours - ref))) <= ATOL, name


@needs_opencl
def test_a_long_layernorm_row_runs_in_float32_on_the_gpu(tmp_path):
    """Lowering accumulates a float32 LayerNorm row over 1024 elements in double on CPUs; phone
    GPUs have no double, so android-gpu sums it in float32 (a work-group's tree of partial sums)
    instead of refusing the model. Rows of 2048 shifted by +5, against onnxruntime."""
    from onnx import helper

    from helpers import model

    m = model([helper.make_node("LayerNormalization", ["x", "s"], ["y"], axis=-1)], [("x", np.float32, [4, 2048])],
              [("y", np.float32, None)], [("s", np.ones(2048, np.float32))])
    feeds = {"x": (np.random.default_rng(0).standard_normal((4, 2048)) + 5).astype(np.float32)}
    (got,) = polyfuse.compile(m, "android-gpu", output_dir=tmp_path / "ln").run(None, feeds)
    (want,) = run_ort(m, feeds)
    assert float(np.max(np.abs(got - want))) <= 1e-5


@needs_opencl
def test_cli_compile_and_run_on_opencl(tmp_path):
    feeds = _tiny_feeds(24)
    np.savez(tmp_path / "in.npz", **feeds)
    shape = [a for k, v in feeds.items() for a in ("--shape", f"{k}={','.join(map(str, v.shape))}")]
    r = subprocess.run([sys.executable, "-m", "polyfuse", "compile", str(TINY), "--target", "android-gpu", *shape,
                        "-o", str(tmp_path / "art")], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([sys.executable, "-m", "polyfuse", "run", str(tmp_path / "art"), "--input",
                        str(tmp_path / "in.npz"), "-o", str(tmp_path / "out")], capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr
    for name, want in zip(["last_hidden_state", "pooler_output"], run_ort(onnx.load(TINY), feeds)):
        assert float(np.max(np.abs(np.load(tmp_path / "out" / f"{name}.npy") - want))) <= ATOL


@needs_opencl
@pytest.mark.slow
@pytest.mark.parametrize("arch", ["bert", "distilbert", "mobilebert"])
def test_small_configs_on_opencl_match_onnxruntime(export_model, arch):
    from polyfuse.testing import transformers_export as te

    seq = 32
    path = export_model(arch, "small", seq=seq)
    feeds = te.example_inputs(arch, "small", batch=1, seq=seq)
    m = polyfuse.compile(path, "android-gpu", shapes={k: v.shape for k, v in feeds.items()})
    for name, ours, ref in zip(m.output_names, m.run(None, feeds), run_ort(onnx.load(path), feeds)):
        err = float(np.max(np.abs(ours - ref)))
        assert err <= ATOL, f"{arch} {name}: max abs error {err:.3g} > {ATOL}"


def _opencl_cases():
    """Op cases the OpenCL target computes: no float64, float16 or narrow type anywhere."""
    import opcases
    from polyfuse.ops import reference

    ok = {np.dtype(t) for t in (np.float32, np.int64, np.int32, np.int8, np.uint8, np.bool_)}
    out = []
    for c in opcases.CASES:
        res = reference.evaluate(c.op_type, c.inputs, c.attrs, opset=c.opset, num_outputs=c.num_outputs)
        types = {np.asarray(x).dtype for x in [*c.inputs, *res] if x is not None}
        if types <= ok:
            out.append(c)
    return out


@needs_opencl
def test_op_cases_on_opencl_match_onnxruntime():
    """Every op case of tests/opcases.py without float64 or narrow types, merged per opset into one
    model as tests/test_op_parity.py does, compiled for android-gpu and run on PoCL."""
    from test_op_parity import _case_feeds, _close, _merged_model, _ort, ort_runs_opset

    cases = [c for c in _opencl_cases() if ort_runs_opset(c.opset)]  # opset 28 needs onnxruntime >= 1.32
    by_opset: dict[int, list] = {}
    for c in cases:
        by_opset.setdefault(c.opset, []).append(c)
    failures, refused = [], []
    for opset, group in by_opset.items():
        try:
            m = polyfuse.compile(_merged_model(group), "android-gpu")
        except UnsupportedError as e:  # one case refused (a cast through float64): split it out
            refused.append((opset, str(e)))
            continue
        feeds = {k: v for n, c in enumerate(group) for k, v in _case_feeds(c, n).items()}
        for n, c in enumerate(group):
            outs = m.run([f"c{n}_out{j}" for j in range(c.num_outputs)], feeds)
            for j, (got, want) in enumerate(zip(outs, _ort(c))):
                try:
                    _close(got, want, f"{c.id} output {j}")
                except AssertionError as e:
                    failures.append(str(e).splitlines()[0])
    assert not refused, refused
    assert not failures, failures
    assert len(cases) > 200


@needs_opencl
@pytest.mark.parametrize("cap", [1, 8])
def test_work_groups_halved_to_fit_the_device_give_the_same_results(tiny_gpu, tmp_path, monkeypatch, cap):
    """A device that allows fewer work-items per group than a template asks for (a Mali, or a
    kernel heavy in registers) gets the same kernels in halved work-groups: PF_OPENCL_MAX_WORK_GROUP
    plays that device. Tiny BERT (attention, GEMMs, row reductions) through pf_run, whose
    profile lines show each launch's work-group, and the GEMM, Einsum, reduction, Softmax and
    LayerNorm op cases (odd sizes) in the Python API, each against onnxruntime."""
    from test_op_parity import _case_feeds, _close, _merged_model, _ort, ort_runs_opset

    monkeypatch.setenv("PF_OPENCL_MAX_WORK_GROUP", str(cap))
    d, m, feeds = tiny_gpu
    args = []
    for k, v in feeds.items():
        np.save(tmp_path / f"{k}.npy", v)
        args += ["--input", f"{k}={tmp_path / f'{k}.npy'}"]
    r = subprocess.run([str(d / "pf_run"), str(d), *args, "-o", str(tmp_path / "o"), "--bench", "2"],
                       capture_output=True, text=True, timeout=600, env=dict(os.environ, PF_PROFILE="1"))
    assert r.returncode == 0, r.stderr
    groups = [line.split()[5] for line in r.stderr.splitlines() if line.startswith("pf_profile ")]
    sizes = [int(np.prod([int(x) for x in g.split("x")])) for g in groups]
    assert len(groups) == m.manifest["stats"]["kernels"] and max(sizes) == cap, groups
    for name, want in zip(m.output_names, run_ort(onnx.load(TINY), feeds)):
        assert float(np.max(np.abs(np.load(tmp_path / "o" / f"{name}.npy") - want))) <= ATOL, name

    kinds = {"MatMul", "Gemm", "Einsum", "ReduceSum", "ReduceMean", "ReduceMax", "Softmax", "LayerNormalization"}
    cases = [c for c in _opencl_cases() if c.op_type in kinds and ort_runs_opset(c.opset)]
    failures = []
    for opset in sorted({c.opset for c in cases}):
        group = [c for c in cases if c.opset == opset]
        mm = polyfuse.compile(_merged_model(group), "android-gpu")
        feeds = {k: v for n, c in enumerate(group) for k, v in _case_feeds(c, n).items()}
        for n, c in enumerate(group):
            for j, (got, want) in enumerate(zip(mm.run([f"c{n}_out{j}" for j in range(c.num_outputs)], feeds), _ort(c))):
                try:
                    _close(got, want, f"{c.id} output {j}")
                except AssertionError as e:
                    failures.append(str(e).splitlines()[0])
    assert not failures, failures
    assert len(cases) > 50


FP16_REL = 4e-3


@needs_opencl
def test_fp16_storage_halves_memory_and_stays_within_its_bound(tmp_path):
    feeds = _tiny_feeds(24)
    shapes = {k: v.shape for k, v in feeds.items()}
    m32 = polyfuse.compile(TINY, "android-gpu", shapes=shapes)
    m16 = polyfuse.compile(TINY, "android-gpu", shapes=shapes, precision="fp16", output_dir=tmp_path / "h")
    s32, s16 = m32.manifest["stats"], m16.manifest["stats"]
    assert m16.manifest["precision"] == "fp16"
    assert s16["weights_bytes"] <= 0.55 * s32["weights_bytes"] and s16["arena_bytes"] <= 0.6 * s32["arena_bytes"]
    assert "vload_half(" in (tmp_path / "h" / "model.cpp").read_text()
    for name, ours, ref in zip(m16.output_names, m16.run(None, feeds), run_ort(onnx.load(TINY), feeds)):
        assert ours.dtype == np.float32, name  # inputs and outputs stay float32
        bound = FP16_REL * float(np.max(np.abs(ref)))
        assert float(np.max(np.abs(ours - ref))) <= bound, name
    again = polyfuse.load(tmp_path / "h")
    np.testing.assert_array_equal(again.run(None, feeds)[0], m16.run(None, feeds)[0])


@needs_opencl
@pytest.mark.slow
@pytest.mark.parametrize("arch", ["bert", "mobilebert"])
def test_small_configs_in_fp16_stay_within_the_bound(export_model, arch):
    from polyfuse.testing import transformers_export as te

    path = export_model(arch, "small", seq=32)
    feeds = te.example_inputs(arch, "small", batch=1, seq=32)
    m = polyfuse.compile(path, "android-gpu", shapes={k: v.shape for k, v in feeds.items()}, precision="fp16")
    for name, ours, ref in zip(m.output_names, m.run(None, feeds), run_ort(onnx.load(path), feeds)):
        err, bound = float(np.max(np.abs(ours - ref))), FP16_REL * float(np.max(np.abs(ref)))
        assert err <= bound, f"{arch} {name}: {err:.3g} > {bound:.3g}"


def test_fp16_is_refused_where_a_target_has_no_half_storage(tmp_path):
    with pytest.raises(UnsupportedError, match="precision 'fp16' is not supported"):
        polyfuse.compile(TINY, "host", precision="fp16", output_dir=tmp_path / "x")
    assert not (tmp_path / "x").exists()


@needs_opencl
@pytest.mark.skipif(not (shutil.which("oclgrind") and OCLGRIND_RT.is_file()), reason="needs oclgrind")
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_tiny_bert_is_clean_under_oclgrind(tiny_gpu, tmp_path, precision):
    """pf_run on oclgrind's OpenCL runtime with its API, data-race and uninitialised-value checks:
    no report at all, and the same outputs. Kernels are built with -cl-opt-disable: oclgrind 21.10
    cannot check LLVM's freeze instruction, which optimised integer division produces."""
    d, m, feeds = tiny_gpu
    if precision == "fp16":
        d = tmp_path / "h"
        m = polyfuse.compile(TINY, "android-gpu", shapes={k: v.shape for k, v in feeds.items()}, precision="fp16",
                             output_dir=d)
    args = []
    for k, v in feeds.items():
        np.save(tmp_path / f"{k}.npy", v)
        args += ["--input", f"{k}={tmp_path / f'{k}.npy'}"]
    env = dict(os.environ, PF_OPENCL_LIB=str(OCLGRIND_RT), PF_OPENCL_OPTIONS="-cl-opt-disable")
    r = subprocess.run(["oclgrind", "--check-api", "--data-races", "--uninitialized", str(d / "pf_run"), str(d), *args,
                        "-o", str(tmp_path / "o")], capture_output=True, text=True, timeout=900, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip() == "", r.stderr[:3000]
    for name, want in zip(m.output_names, m.run(None, feeds)):
        assert float(np.max(np.abs(np.load(tmp_path / "o" / f"{name}.npy") - want))) <= ATOL


def test_float64_is_refused_when_compiling(tmp_path):
    from helpers import model

    m = model([onnx.helper.make_node("Exp", ["x"], ["y"])], [("x", np.float64, [4])],
              [("y", np.float64, [4])])
    with pytest.raises(UnsupportedError, match="float64 is not supported by the android-gpu target"):
        polyfuse.compile(m, "android-gpu", output_dir=tmp_path / "x")
    assert not (tmp_path / "x").exists()


@needs_opencl
def test_no_opencl_driver_is_one_clear_error(tiny_gpu, tmp_path, monkeypatch):
    d, _, feeds = tiny_gpu
    np.savez(tmp_path / "in.npz", **feeds)
    env = dict(os.environ, PF_OPENCL_LIB=str(tmp_path / "no" / "libOpenCL.so"))
    r = subprocess.run([sys.executable, "-m", "polyfuse", "run", str(d), "--input", str(tmp_path / "in.npz"), "-o",
                        str(tmp_path / "out")], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 2, r.stderr
    assert "no OpenCL driver found" in r.stderr and "apt-get install" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "out").exists()
    monkeypatch.setenv("PF_OPENCL_LIB", env["PF_OPENCL_LIB"])
    with pytest.raises(PolyfuseError, match="no OpenCL driver found"):
        polyfuse.load(d)


@needs_opencl
@pytest.mark.skipif(not shutil.which("clinfo"), reason="needs clinfo")
def test_calibrating_android_gpu_names_the_opencl_device(monkeypatch):
    """A calibrated android-gpu profile names the OpenCL device that ran the kernels, as clinfo
    lists it, not the host's CPU."""
    from polyfuse.cost import calibrate as cal

    monkeypatch.setattr(cal, "CALIBRATION_SET", ((1, 64, 2, 256, 32, 0), (1, 128, 2, 512, 64, 0)))
    doc = cal.calibrate("android-gpu", repeat=2, rounds=1)
    out = subprocess.run(["clinfo", "-l"], capture_output=True, text=True, timeout=60).stdout
    listed = {line.split(":", 1)[1].strip() + " (android-gpu)" for line in out.splitlines() if "Device #" in line}
    assert doc["targets"]["android-gpu"]["device"] in listed, (doc["targets"]["android-gpu"]["device"], listed)


@needs_opencl
def test_inspect_counts_the_launches_the_artifact_makes(tiny_gpu):
    """`launches` of inspect --json is what the generated host code enqueues per inference (one
    NDRange per kernel); tiny BERT stays within the issue's 20 (TVM: 39)."""
    import json

    d, _, feeds = tiny_gpu
    shape = [a for k, v in feeds.items() for a in ("--shape", f"{k}={','.join(map(str, v.shape))}")]
    r = subprocess.run([sys.executable, "-m", "polyfuse", "inspect", str(TINY), "--target", "android-gpu", *shape,
                        "--json"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    table = (d / "model.cpp").read_text().split("const Launch kLaunches[] = {")[1].split("};")[0]
    assert s["launches"] == table.count('{"k') and s["target"] == "android-gpu"
    assert s["launches"] <= 20


@needs_opencl
def test_bench_runs_the_target_it_names():
    r = subprocess.run([sys.executable, "-m", "polyfuse", "-q", "bench", str(TINY), "--target", "android-gpu",
                        "--shape", "input_ids=1,16", "--vs", "onnxruntime", "--repeat", "3"], capture_output=True,
                        text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "target android-gpu" in r.stdout
    assert float(r.stdout.split("max abs error vs onnxruntime:")[1].split()[0]) <= ATOL


@needs_opencl
def test_program_binaries_are_cached_and_a_bad_entry_is_rebuilt(tiny_gpu, tmp_path, monkeypatch):
    d, m, feeds = tiny_gpu
    want = m.run(None, feeds)
    cache = tmp_path / "clcache"
    monkeypatch.setenv("PF_OPENCL_CACHE", str(cache))
    first = polyfuse.load(d).run(None, feeds)
    (entry,) = cache.glob("*.bin")  # one program, one binary
    assert entry.stat().st_size > 0
    again = polyfuse.load(d).run(None, feeds)  # from the cached binary
    entry.write_bytes(b"not a program binary")
    rebuilt = polyfuse.load(d).run(None, feeds)  # the driver rejects it: built from source again
    assert entry.read_bytes() != b"not a program binary"
    for outs in (first, again, rebuilt):
        for a, b in zip(outs, want):
            np.testing.assert_array_equal(a, b)


@pytest.mark.skipif(not (shutil.which("aarch64-linux-gnu-g++") and shutil.which("qemu-aarch64")),
                    reason="needs g++-aarch64-linux-gnu and qemu-user")
def test_device_build_is_arm64_pushed_and_asks_the_phone_for_its_driver(fake_adb, tmp_path):
    """With a device, the host side is cross-built for the phone's CPU and pushed with adb. The
    fake phone (qemu-aarch64, no arm64 OpenCL driver in its sysroot) then reports, by pf_run, the
    missing driver: the whole path up to the GPU, and its error, in one message."""
    feeds = _tiny_feeds()
    d = tmp_path / "gpu_arm"
    m = polyfuse.compile(TINY, "android-gpu", shapes={k: v.shape for k, v in feeds.items()}, output_dir=d,
                         device="adb")
    assert (d / "libpfmodel.so").read_bytes()[18] == 183 and (d / "pf_run").read_bytes()[18] == 183  # EM_AARCH64
    assert (d / "aarch64-linux-gnu.cmake").is_file()
    with pytest.raises(PolyfuseError, match="no OpenCL driver found"):
        m.run(None, feeds)
    pushed = {Path(line.split("'")[-2]).name for line in (fake_adb / "adb.log").read_text().splitlines()
              if "'push'" in line}
    assert {"libpfmodel.so", "pf_run", "weights.bin"} <= pushed
    with pytest.raises(PolyfuseError, match="another CPU|device"):
        polyfuse.load(d)  # built for the phone: not loadable here


@needs_opencl
def test_an_artifact_built_for_here_is_refused_on_a_device(tiny_gpu):
    d, _, _ = tiny_gpu
    with pytest.raises(PolyfuseError, match="built for this machine"):
        polyfuse.load(d, device="adb")


@needs_opencl
def test_a_kernel_that_fails_to_build_is_named_with_its_nodes(tiny_gpu, monkeypatch, tmp_path):
    """A build error names the kernel it is in and the nodes that kernel fuses, then the log.
    Broken on purpose: get_local_id, which only kernels (not the prelude) call, is defined as a stray token."""
    d, _, _ = tiny_gpu
    monkeypatch.setenv("PF_OPENCL_OPTIONS", "-Dget_local_id=@")
    monkeypatch.setenv("PF_OPENCL_CACHE", str(tmp_path / "clcache"))
    with pytest.raises(PolyfuseError) as e:
        polyfuse.load(d)
    msg = str(e.value)
    assert "CL_BUILD_PROGRAM_FAILURE" in msg and "first error in kernel k" in msg and "node(s):" in msg, msg[:2000]
    assert "error" in msg.split("\n", 1)[1]
