"""Parity tests for the hand-written SGEMM in kernels/pf_gemm.cpp.

kernels/tests/gemm_parity.cpp is compiled together with pf_gemm.cpp once per
ISA variant (the micro-kernel is picked at compile time from the predefined
macros) and run; it compares against a double-precision reference and exits
non-zero on any mismatch (tolerance documented in gemm_parity.cpp).
"""
from __future__ import annotations

import os
import pathlib
import platform
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
KERNELS = ROOT / "kernels"
SOURCES = [str(KERNELS / "tests" / "gemm_parity.cpp"), str(KERNELS / "pf_gemm.cpp"), str(KERNELS / "pf_pool.cpp")]
BASE_FLAGS = ["-O2", "-std=c++17", "-Wall", "-Wextra"]
IS_X86 = platform.machine().lower() in ("x86_64", "amd64")


def _cpu_flags() -> set[str]:
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


CPU_FLAGS = _cpu_flags()
needs_gxx = pytest.mark.skipif(shutil.which("g++") is None, reason="g++ not found")
needs_x86 = pytest.mark.skipif(not IS_X86, reason="x86-64 host required")


def _build(tmp: pathlib.Path, name: str, flags: list[str], cxx: str = "g++") -> pathlib.Path:
    exe = tmp / name
    cmd = [cxx, *BASE_FLAGS, *flags, *SOURCES, "-o", str(exe)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, f"compile failed: {' '.join(cmd)}\n{res.stderr}"
    return exe


def _run(cmd: list[str], expect_kernel: str, timeout: float = 120, env: dict | None = None) -> None:
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                         env=None if env is None else {**os.environ, **env})
    out = res.stdout + res.stderr
    assert res.returncode == 0, f"parity failures ({' '.join(cmd)}):\n{out[-4000:]}"
    assert f"kernel={expect_kernel}" in out, out[:500]
    assert " 0 failures" in out, out[-2000:]


@needs_gxx
@needs_x86
def test_portable_fallback(tmp_path):
    # Baseline x86-64 (SSE2 only): no AVX2/FMA macros -> portable C++ kernel.
    exe = _build(tmp_path, "parity_portable", ["-pthread", "-march=x86-64", "-mtune=generic"])
    # The portable kernel is slow at -O2: one transformer-sized shape is enough.
    _run([str(exe), "--max-big", "1"], "portable-4x16")


@needs_gxx
@needs_x86
@pytest.mark.skipif(not {"avx2", "fma"} <= CPU_FLAGS, reason="CPU lacks avx2/fma")
@pytest.mark.parametrize("pack_a", ["0", "1"])
def test_avx2(tmp_path, pack_a):
    # x86 kernels read A in place by default; PF_GEMM_PACK_A=1 checks the packed-A path too.
    exe = _build(tmp_path, "parity_avx2", ["-pthread", "-mavx2", "-mfma"])
    _run([str(exe)], "avx2-4x24", env={"PF_GEMM_PACK_A": pack_a})


@needs_gxx
@needs_x86
@pytest.mark.skipif(not {"avx2", "fma"} <= CPU_FLAGS, reason="CPU lacks avx2/fma")
def test_avx2_thread_sanitizer(tmp_path):
    # TSan: the GEMM's shared packed-A buffer and per-thread scratch under the pool, no races.
    exe = _build(tmp_path, "parity_tsan", ["-O1", "-pthread", "-mavx2", "-mfma", "-fsanitize=thread"])
    _run([str(exe), "--quick"], "avx2-4x24")


@needs_gxx
@needs_x86
@pytest.mark.skipif(not {"avx2", "fma"} <= CPU_FLAGS, reason="CPU lacks avx2/fma")
def test_avx2_sanitizers(tmp_path):
    # ASan + UBSan (small shapes): out-of-bounds accesses, misalignment, overflow.
    exe = _build(tmp_path, "parity_asan", ["-O1", "-pthread", "-mavx2", "-mfma",
                                           "-fsanitize=address,undefined", "-fno-sanitize-recover=all"])
    _run([str(exe), "--quick"], "avx2-4x24")


def _run_internal_test(tmp: pathlib.Path, name: str, flags: list[str], timeout: float) -> None:
    """Build kernels/tests/<name>.cpp (it includes pf_gemm.cpp for its internals) and run it;
    it must exit 0 and print "0 failures"."""
    exe = tmp / name
    cmd = ["g++", *BASE_FLAGS, "-pthread", *flags, str(KERNELS / "tests" / f"{name}.cpp"),
           str(KERNELS / "pf_pool.cpp"), "-o", str(exe)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    res = subprocess.run([str(exe)], capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0 and "\n0 failures" in res.stdout, res.stdout[-2000:]


@needs_gxx
@needs_x86
@pytest.mark.skipif(not {"avx2", "fma"} <= CPU_FLAGS, reason="CPU lacks avx2/fma")
def test_x86_pack_a_transposes(tmp_path):
    # The vectorized A packing for 4-row (AVX2), 8-row (AVX-512) and 14-row panels vs a scalar loop.
    _run_internal_test(tmp_path, "pack_a_test", ["-mavx2", "-mfma"], timeout=60)


@needs_gxx
@pytest.mark.parametrize("isa", ["portable", "avx2"])
def test_n_chunks_cover_columns_once(tmp_path, isa):
    # The tiles' N chunks (2+ threads: a head of wide chunks and a halved tail) cover every
    # column once and fit the B packing buffer, over a range of N, thread counts and caps.
    if isa == "avx2" and not (IS_X86 and {"avx2", "fma"} <= CPU_FLAGS):
        pytest.skip("needs an x86 CPU with avx2/fma")
    _run_internal_test(tmp_path, "nchunks_test", ["-mavx2", "-mfma"] if isa == "avx2" else [], timeout=120)


AVX512_FLAGS = ["-mavx512f", "-mavx512bw", "-mavx512dq", "-mavx512vl", "-mfma"]


@needs_gxx
@needs_x86
def test_avx512_compiles(tmp_path):
    # Always check the AVX-512 kernel at least compiles (most CI CPUs lack it).
    obj = tmp_path / "pf_gemm_avx512.o"
    cmd = ["g++", *BASE_FLAGS, "-Werror", *AVX512_FLAGS, "-c", SOURCES[1], "-o", str(obj)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


@needs_gxx
@needs_x86
@pytest.mark.skipif("avx512f" not in CPU_FLAGS, reason="CPU lacks avx512f (compile-only test covers it)")
@pytest.mark.parametrize("pack_a", ["0", "1"])
@pytest.mark.parametrize("kc", ["192", "768"])  # the depths kc_max() picks for 48 and 32 KiB L1d
def test_avx512(tmp_path, pack_a, kc):
    exe = _build(tmp_path, "parity_avx512", ["-pthread", *AVX512_FLAGS])
    _run([str(exe)], f"avx512-8x48-kc{kc}", env={"PF_GEMM_PACK_A": pack_a, "PF_GEMM_KC": kc})


AARCH64_CXX = shutil.which("aarch64-linux-gnu-g++")
QEMU = shutil.which("qemu-aarch64")
AARCH64_SYSROOT = "/usr/aarch64-linux-gnu"


@pytest.mark.skipif(AARCH64_CXX is None, reason="aarch64-linux-gnu-g++ not installed "
                    "(apt-get install g++-aarch64-linux-gnu qemu-user)")
def test_neon(tmp_path):
    exe = _build(tmp_path, "parity_neon", ["-pthread", "-static-libstdc++"], cxx=AARCH64_CXX)
    if QEMU is None or not pathlib.Path(AARCH64_SYSROOT).is_dir():
        pytest.skip("NEON kernel compiled, but qemu-aarch64 or the aarch64 sysroot is missing to run it")
    # Emulation is slow: small shapes only.
    _run([QEMU, "-L", AARCH64_SYSROOT, str(exe), "--quick"], "neon-8x12", timeout=300)


POOL_SOURCES = [str(KERNELS / "tests" / "pool_test.cpp"), str(KERNELS / "pf_pool.cpp")]


@needs_gxx
@pytest.mark.parametrize("sanitizer", [None, "thread", "address,undefined"])
def test_thread_pool(tmp_path, sanitizer):
    # Every index runs exactly once, nested loops run inline, concurrent callers are safe, and
    # workers that fall asleep between loops (PF_SPIN_US=0) wake up correctly.
    flags = ["-O1", "-pthread"] + ([f"-fsanitize={sanitizer}", "-fno-sanitize-recover=all"] if sanitizer else [])
    exe = tmp_path / "pool_test"
    cmd = ["g++", *BASE_FLAGS, *flags, "-I", str(KERNELS), *POOL_SOURCES, "-o", str(exe)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    for spin in ("0", "300"):
        out = subprocess.run([str(exe), "--iterations", "600" if sanitizer else "3000"], capture_output=True,
                             text=True, timeout=300, env={"PF_SPIN_US": spin})
        assert out.returncode == 0 and ", 0 failures" in out.stdout, out.stdout[-2000:] + out.stderr[-2000:]
