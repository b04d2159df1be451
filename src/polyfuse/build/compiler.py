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
from ..targets.base import Target
from .cache import cache_dir, digest


def cxx() -> str:
    """The host C++ compiler (``$CXX``, else g++ or c++ on PATH)."""
    from ..targets import HOST

    return HOST.toolchain.compiler()


@functools.lru_cache(maxsize=None)
def compiler_id(exe: str) -> str:
    try:
        return subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError) as e:
        raise BuildError(f"C++ compiler {exe!r} does not run: {e}") from None


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


LIBRARY = "libpfmodel.so"
RUNNER = "pf_run"


def runner_of(library: Path) -> Path:
    """The pf_run program built with ``library``, beside it."""
    return library.with_name(RUNNER)


def runtime_file(target: Target, name: str) -> Path:
    """``name`` from the first of ``target``'s kernels folders that has it."""
    for d in target.kernels:
        if (kernels_dir() / d / name).is_file():
            return kernels_dir() / d / name
    raise FileNotFoundError(f"target {target.name}: no {name} in kernels/ folders {list(target.kernels)}")


def _includes(target: Target) -> list[str]:
    return [a for d in target.kernels for a in ("-I", str(kernels_dir() / d))]


def _runtime_objects(exe: str, flags: list[str], target: Target) -> list[Path]:
    """Objects of the target's runtime sources, then of its runner's (cached per compiler and flags)."""
    key = digest("runtime", target.name, compiler_id(exe), *flags,
                 *(runtime_file(target, f).read_bytes() for f in target.runtime_files()))
    out = cache_dir() / "objects" / key
    sources = target.runtime_sources + target.runner_sources
    objs = [out / (Path(s).stem + ".o") for s in sources]
    if all(o.exists() for o in objs):
        return objs
    out.mkdir(parents=True, exist_ok=True)
    try:
        for src, obj in zip(sources, objs):
            tmp = obj.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp.o")
            try:
                _run([exe, *flags, *_includes(target), "-c", str(runtime_file(target, src)), "-o", str(tmp)],
                     f"kernels/{src}")
                os.replace(tmp, obj)
            finally:
                tmp.unlink(missing_ok=True)
    finally:
        with contextlib.suppress(OSError):
            out.rmdir()  # only when empty: a failed first build leaves no entry
    return objs


def build_shared_library(source: str, target: Target) -> tuple[Path, bool]:
    """Compile ``source`` (a model.cpp) for ``target`` into a cached shared library, and the
    ``pf_run`` program beside it (:func:`runner_of`); returns (library path, was_cached). The
    cache key holds the target, its compiler's version and every flag."""
    exe = target.toolchain.compiler()
    flags = target.toolchain.all_flags()
    key = digest("model", target.name, compiler_id(exe), *flags, *target.toolchain.link_flags, source,
                 *(runtime_file(target, f).read_bytes() for f in target.runtime_files()))
    lib = cache_dir() / "libs" / key / LIBRARY
    if lib.exists() and runner_of(lib).exists():
        return lib, True
    lib.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".build.", dir=lib.parent))  # this build's own files
    try:
        with ThreadPoolExecutor(1) as pool:  # runtime objects build while the model compiles
            objs_future = pool.submit(_runtime_objects, exe, flags, target)
            try:
                src = work / "model.cpp"
                src.write_text(source)
                _run([exe, *flags, *_includes(target), "-c", str(src), "-o", str(work / "model.o")],
                     "the generated model source")
            except BaseException:
                _drop_log(objs_future)  # the model's error is the one reported
                raise
            objs = objs_future.result()
        n = len(target.runtime_sources)
        link = target.toolchain.link_flags
        _run([exe, *flags, "-shared", "-o", str(work / LIBRARY), str(work / "model.o"), *map(str, objs[:n]), *link],
             "the model library (link)")
        _run([exe, *flags, "-o", str(work / RUNNER), *map(str, objs[n:]), "-L", str(work), "-lpfmodel",
              "-Wl,-rpath,$ORIGIN", *link], "the pf_run program (link)")  # finds the library beside itself
        os.replace(work / RUNNER, runner_of(lib))
        os.replace(work / LIBRARY, lib)  # last: an entry with the library is complete
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
