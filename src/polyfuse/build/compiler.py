"""Compile generated C++ into a shared library with the system compiler, cached by content.

The hand-written kernels (``kernels/*.cpp``) are compiled once per compiler and flags into
cached objects; a model's own source is compiled and linked against them. A cached library is
reused when the source, the kernels, the flags and the compiler are all the same.
"""
from __future__ import annotations

import contextlib
import functools
import os
import shutil
import subprocess
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..errors import BuildError
from ..resources import kernels_dir
from .cache import cache_dir, digest

RUNTIME_SOURCES = ("pf_gemm.cpp", "pf_pool.cpp")
RUNTIME_HEADERS = ("pf_runtime.h", "pf_model_abi.h", "pf_gemm.h", "pf_memory.h", "pf_pool.h")


def cxx() -> str:
    exe = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")
    if not exe:
        raise BuildError("no C++ compiler found: install g++ (apt-get install g++) or set CXX")
    return exe


@functools.lru_cache(maxsize=None)
def compiler_id(exe: str) -> str:
    try:
        return subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError) as e:
        raise BuildError(f"C++ compiler {exe!r} does not run: {e}") from None


def host_flags() -> list[str]:
    """-fno-math-errno and -fno-trapping-math change no result: they let the compiler vectorise
    libm-free math and speculate divisions inside selects (softmax's NaN guard), since polyfuse
    never reads errno or floating-point exception flags. No -ffast-math: NaN and inf must behave.
    -ffp-contract=off: each operation rounds, as the model defines it. gcc's default contracts
    a*b - c into one fused multiply-add, which changes results where exactness matters: a
    LayerNorm of a constant row fused after a Mul computed x - x0 as fma(x', s, -x0), the rounding
    error of x0 itself, and divided it by sqrt(1e-12). The hand-written kernels ask for FMAs
    explicitly (intrinsics, pf_fma). Threads come from polyfuse's own pool (kernels/pf_pool.cpp);
    OpenMP is used only for its ``simd`` pragmas (-fopenmp-simd), so no OpenMP runtime is loaded."""
    return ["-O3", "-march=native", "-std=c++17", "-fPIC", "-pthread", "-fopenmp-simd", "-fno-math-errno",
            "-fno-trapping-math", "-ffp-contract=off",
            "-DNDEBUG"]


def _run(cmd: list[str], what: str) -> None:
    """Run a compiler command; on failure raise BuildError naming a log file that keeps the
    command and the compiler's whole output (a temporary file ``polyfuse-build-*.log``, left
    on purpose for the bug report; it is the only thing a failed build leaves)."""
    try:
        r = subprocess.run(cmd, capture_output=True, text=True)
    except OSError as e:
        raise BuildError(f"cannot run {cmd[0]}: {e}") from None
    if r.returncode != 0:
        fd, log = tempfile.mkstemp(prefix="polyfuse-build-", suffix=".log")
        with os.fdopen(fd, "w") as f:
            f.write(" ".join(cmd) + "\n\n" + r.stdout + r.stderr)
        first = (next((ln for ln in r.stderr.splitlines() if "error" in ln), r.stderr.strip()[:300])
                 or f"{cmd[0]} exited with status {r.returncode}")
        e = BuildError(f"compiling {what} failed (this is a polyfuse bug; full log: {log}): {first}")
        e.log = Path(log)
        raise e


def _runtime_objects(exe: str, flags: list[str]) -> list[Path]:
    kdir = kernels_dir()
    files = [kdir / f for f in RUNTIME_SOURCES + RUNTIME_HEADERS]
    key = digest("runtime", compiler_id(exe), *flags, *(f.read_bytes() for f in files))
    out = cache_dir() / "objects" / key
    objs = [out / (Path(s).stem + ".o") for s in RUNTIME_SOURCES]
    if all(o.exists() for o in objs):
        return objs
    out.mkdir(parents=True, exist_ok=True)
    try:
        for src, obj in zip(RUNTIME_SOURCES, objs):
            tmp = obj.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp.o")
            try:
                _run([exe, *flags, "-I", str(kdir), "-c", str(kdir / src), "-o", str(tmp)], f"kernels/{src}")
                os.replace(tmp, obj)
            finally:
                tmp.unlink(missing_ok=True)
    finally:
        with contextlib.suppress(OSError):
            out.rmdir()  # only when empty: a failed first build leaves no entry
    return objs


def build_shared_library(source: str, *, flags: list[str] | None = None) -> tuple[Path, bool]:
    """Compile ``source`` (a model.cpp) into a cached shared library; returns (path, was_cached)."""
    exe = cxx()
    flags = flags or host_flags()
    kdir = kernels_dir()
    headers = [(kdir / h).read_bytes() for h in RUNTIME_HEADERS]
    key = digest("model", compiler_id(exe), *flags, source, *headers,
                 *((kdir / s).read_bytes() for s in RUNTIME_SOURCES))
    lib = cache_dir() / "libs" / key / "libpfmodel.so"
    if lib.exists():
        return lib, True
    lib.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".build.", dir=lib.parent))  # this build's own files
    try:
        with ThreadPoolExecutor(1) as pool:  # runtime objects build while the model compiles
            objs_future = pool.submit(_runtime_objects, exe, flags)
            try:
                src = work / "model.cpp"
                src.write_text(source)
                _run([exe, *flags, "-I", str(kdir), "-c", str(src), "-o", str(work / "model.o")],
                     "the generated model source")
            except BaseException:
                _drop_log(objs_future)  # the model's error is the one reported
                raise
            objs = objs_future.result()
        _run([exe, *flags, "-shared", "-o", str(work / "lib.so"), str(work / "model.o"), *map(str, objs)],
             "the model library (link)")
        os.replace(work / "lib.so", lib)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        with contextlib.suppress(OSError):
            lib.parent.rmdir()  # only when empty: a failed first build leaves no entry
    return lib, False


def _drop_log(future) -> None:
    """Wait for ``future``; if it failed too, remove its compiler log (only one is reported)."""
    try:
        future.result()
    except BuildError as e:
        if getattr(e, "log", None):
            e.log.unlink(missing_ok=True)
    except Exception:  # noqa: BLE001 - reported by the model's own failure
        pass
