"""Artifact directories: written whole into a temporary sibling, then renamed into place.

Layout::

    manifest.json     inputs/outputs (names, dtypes, shapes), target, stats, notes
    model.cpp         generated source
    weights.bin       every constant, 64-byte aligned (offsets are compiled into the library)
    libpfmodel.so     the compiled library (host target)
    runtime/          the hand-written headers and sources the model needs
    CMakeLists.txt    builds the library with any CMake toolchain
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from ..errors import ArtifactError
from ..resources import kernels_dir
from .compiler import RUNTIME_HEADERS, RUNTIME_SOURCES

MANIFEST = "manifest.json"
LIBRARY = "libpfmodel.so"
WEIGHTS = "weights.bin"
FORMAT = "polyfuse-artifact"


def write_weights(path: Path, graph, plan) -> None:
    with open(path, "wb") as f:
        f.truncate(plan.weights_bytes)
        for name, off in plan.weights:
            f.seek(off)
            f.write(np.ascontiguousarray(graph.values[name].const).tobytes())


def check_replaceable(dest: Path) -> None:
    """Refuse to replace anything but an earlier artifact or an empty directory."""
    if dest.exists() and (not dest.is_dir() or (any(dest.iterdir()) and not (dest / MANIFEST).exists())):
        raise ArtifactError(f"{dest}: exists and is not a polyfuse artifact directory; refusing to overwrite it")


@contextlib.contextmanager
def staged(dest: Path):
    """A new temporary sibling of ``dest`` to fill; when the block succeeds it replaces ``dest``
    whole (see replace_dir), when it fails it is removed: no partial directory is left."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        yield tmp
        replace_dir(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_artifact(dest: Path, *, source: str, cmake: str, library: Path | None, manifest: dict, write_weights_to) -> Path:
    dest = Path(dest)
    check_replaceable(dest)
    with staged(dest) as tmp:
        (tmp / "model.cpp").write_text(source)
        (tmp / "CMakeLists.txt").write_text(cmake)
        write_weights_to(tmp / WEIGHTS)
        rt = tmp / "runtime"
        rt.mkdir()
        for f in RUNTIME_HEADERS + RUNTIME_SOURCES:
            shutil.copy2(kernels_dir() / f, rt / f)
        if library is not None:
            shutil.copy2(library, tmp / LIBRARY)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return dest


def replace_dir(tmp: Path, dest: Path) -> None:
    """Move the finished ``tmp`` to ``dest``, replacing an older artifact there."""
    old = None
    if dest.exists():
        old = dest.with_name(f".{dest.name}.old.{os.getpid()}")
        os.replace(dest, old)
    os.replace(tmp, dest)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def read_manifest(directory: Path) -> dict:
    directory = Path(directory)
    f = directory / MANIFEST
    if not directory.is_dir():
        raise ArtifactError(f"{directory}: no such artifact directory")
    if not f.is_file():
        raise ArtifactError(f"{directory}: not a polyfuse artifact (no {MANIFEST})")
    try:
        m = json.loads(f.read_text())
    except (OSError, ValueError) as e:
        raise ArtifactError(f"{f}: unreadable manifest ({e})") from None
    if m.get("format") != FORMAT:
        raise ArtifactError(f"{f}: not a polyfuse artifact manifest")
    return m


def copy_artifact(src: Path, dest: Path, copy_function=shutil.copy2) -> Path:
    """Copy the artifact ``src`` to ``dest`` (atomically), each file with ``copy_function``."""
    dest = Path(dest)
    check_replaceable(dest)
    with staged(dest) as tmp:
        shutil.copytree(src, tmp, dirs_exist_ok=True, copy_function=copy_function)
    return dest
