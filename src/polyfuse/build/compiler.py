"""Compile generated C++ into a shared library with the system compiler, cached by content.

The hand-written kernels (``kernels/*.cpp``) are compiled once per compiler and flags into
cached objects; a model's own source is compiled and linked against them. A cached library is
reused when the source, the kernels, the flags and the compiler are all the same.
"""
from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
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
    Threads come from polyfuse's own pool (kernels/pf_pool.cpp); OpenMP is used only for its
    ``simd`` pragmas (-fopenmp-simd), so no OpenMP runtime is loaded."""
    return ["-O3", "-march=native", "-std=c++17", "-fPIC", "-pthread", "-fopenmp-simd", "-fno-math-errno",
            "-fno-trapping-math",
            "-DNDEBUG"]


def _run(cmd: list[str], what: str) -> None:
    try:
        r = subprocess.run(cmd, capture_output=True, text=True)
    except OSError as e:
        raise BuildError(f"cannot run {cmd[0]}: {e}") from None
    if r.returncode != 0:
        log = Path(tempfile.mkdtemp(prefix="polyfuse-build-")) / "compiler.log"
        log.write_text(" ".join(cmd) + "\n\n" + r.stdout + r.stderr)
        first = next((ln for ln in r.stderr.splitlines() if "error" in ln), r.stderr.strip()[:300])
        raise BuildError(f"compiling {what} failed (this is a polyfuse bug; full log: {log}): {first}")


def _runtime_objects(exe: str, flags: list[str]) -> list[Path]:
    kdir = kernels_dir()
    files = [kdir / f for f in RUNTIME_SOURCES + RUNTIME_HEADERS]
    key = digest("runtime", compiler_id(exe), *flags, *(f.read_bytes() for f in files))
    out = cache_dir() / "objects" / key
    objs = [out / (Path(s).stem + ".o") for s in RUNTIME_SOURCES]
    if all(o.exists() for o in objs):
        return objs
    out.mkdir(parents=True, exist_ok=True)
    for src, obj in zip(RUNTIME_SOURCES, objs):
        tmp = obj.with_suffix(f".{os.getpid()}.tmp.o")
        _run([exe, *flags, "-I", str(kdir), "-c", str(kdir / src), "-o", str(tmp)], f"kernels/{src}")
        os.replace(tmp, obj)
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
    with ThreadPoolExecutor(1) as pool:  # runtime objects build while the model compiles
        objs_future = pool.submit(_runtime_objects, exe, flags)
        lib.parent.mkdir(parents=True, exist_ok=True)
        src = lib.parent / f"model.{os.getpid()}.cpp"
        src.write_text(source)
        obj = src.with_suffix(".o")
        _run([exe, *flags, "-I", str(kdir), "-c", str(src), "-o", str(obj)], "the generated model source")
        objs = objs_future.result()
    tmp = lib.with_suffix(f".{os.getpid()}.tmp")
    _run([exe, *flags, "-shared", "-o", str(tmp), str(obj), *map(str, objs)], "the model library (link)")
    os.replace(tmp, lib)
    src.unlink(missing_ok=True)
    obj.unlink(missing_ok=True)
    return lib, False
