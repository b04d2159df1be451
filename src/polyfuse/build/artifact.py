"""Artifact directories: written whole into a temporary sibling, then renamed into place.

Layout (:func:`artifact_files` lists exactly these; polyfuse writes nothing else)::

    manifest.json     inputs/outputs (names, dtypes, shapes), target, stats, notes
    model.cpp         generated source
    weights.bin       every constant, 64-byte aligned (offsets are compiled into the library)
    libpfmodel.so     the compiled library, with the C API of runtime/pf_model.h
    pf_run            runs the artifact from the command line (.npy in, .npy out), through pf_model.h
    runtime/          the hand-written headers and sources the model needs, and pf_run's source
    CMakeLists.txt    builds the library and pf_run with any CMake toolchain

No file polyfuse did not write is ever deleted. A directory is written only when it is absent,
empty, or (with ``overwrite``) an artifact holding nothing but the files above; anything else
is refused before any work is done, and checked again just before the new directory is renamed
into place. The old artifact is replaced only by that rename, so a failed or interrupted write
leaves it as it was, and its files are then removed one by one by name (never a whole tree).
"""
from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import secrets
import shutil
import tempfile
from pathlib import Path

import numpy as np

from ..errors import ArtifactError
from ..targets import TARGETS, Target
from .compiler import LIBRARY, RUNNER, runner_of, runtime_file

MANIFEST = "manifest.json"
WEIGHTS = "weights.bin"
PACKED = WEIGHTS + ".packed"  # GEMM weights packed at compile time for the library's micro-kernel
SOURCE = "model.cpp"
RUNTIME_DIR = "runtime"
FORMAT = "polyfuse-artifact"

log = logging.getLogger("polyfuse")


def artifact_files() -> list[str]:
    """Every file an artifact may hold, relative to it, the manifest last (it is written last:
    a directory without it is not yet an artifact)."""
    runtime = dict.fromkeys(f for t in TARGETS.values() for f in t.runtime_files())  # every target's, in order
    built = dict.fromkeys(f for t in TARGETS.values() for f in t.artifact_templates)
    return ([SOURCE, *built, WEIGHTS, PACKED, LIBRARY, RUNNER] + [f"{RUNTIME_DIR}/{f}" for f in runtime] + [MANIFEST])


def write_weights(path: Path, graph, plan) -> None:
    with open(path, "wb") as f:
        f.truncate(plan.weights_bytes)
        for name, off in plan.weights:
            f.seek(off)
            f.write(np.ascontiguousarray(graph.values[name].const).tobytes())


def is_artifact(directory: Path) -> bool:
    """True if ``directory`` has a manifest.json that polyfuse wrote ("format": FORMAT)."""
    try:
        m = json.loads((Path(directory) / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(m, dict) and m.get("format") == FORMAT


def foreign_files(directory: Path) -> list[str]:
    """Entries of ``directory`` (relative paths) that polyfuse does not write into an artifact;
    symbolic links count as foreign whatever their name, a foreign folder is named, not entered."""
    known, found = set(artifact_files()), []

    def scan(d: Path, prefix: str) -> None:
        for e in sorted(os.scandir(d), key=lambda e: e.name):
            rel = prefix + e.name
            if e.is_symlink():
                found.append(rel)
            elif e.is_dir():
                if rel == RUNTIME_DIR:
                    scan(Path(e.path), rel + "/")
                else:
                    found.append(rel + "/")
            elif rel not in known:
                found.append(rel)

    scan(Path(directory), "")
    return found


def check_replaceable(dest: Path, overwrite: bool = False) -> bool:
    """Raise ArtifactError unless an artifact may be written at ``dest``; returns True when an
    artifact is there that will be replaced (allowed only with ``overwrite``)."""
    dest = Path(dest)
    if dest.is_symlink():
        raise ArtifactError(f"{dest}: is a symbolic link; give the directory it points to instead")
    if not dest.exists():
        return False
    if not dest.is_dir():
        raise ArtifactError(f"{dest}: exists and is not a directory; refusing to overwrite it")
    if not any(dest.iterdir()):
        return False
    if not is_artifact(dest):
        raise ArtifactError(f"{dest}: is not empty and is not a polyfuse artifact (no polyfuse {MANIFEST}); "
                            "refusing to overwrite it")
    if not overwrite:
        raise ArtifactError(f"{dest}: holds a polyfuse artifact already; refusing to overwrite it without "
                            "--force (polyfuse compile) or overwrite=True (Python)")
    foreign = foreign_files(dest)
    if foreign:
        shown = ", ".join(foreign[:10]) + (f", ... ({len(foreign)} in all)" if len(foreign) > 10 else "")
        raise ArtifactError(f"{dest}: holds files polyfuse did not write ({shown}); refusing to overwrite it "
                            "(move them elsewhere first)")
    return True


def check_empty(dest: Path) -> bool:
    """For output directories: raise ArtifactError unless ``dest`` is absent or an empty directory."""
    dest = Path(dest)
    if dest.is_symlink() or (dest.exists() and (not dest.is_dir() or any(dest.iterdir()))):
        raise ArtifactError(f"{dest}: exists and is not an empty directory; refusing to write into it")
    return False


@contextlib.contextmanager
def staged(dest: Path, check=check_empty):
    """A new temporary sibling of ``dest`` to fill. ``check(dest)`` (check_empty, or
    check_replaceable with its overwrite bound) runs before and again when the block has
    succeeded; then the sibling is renamed to ``dest``. When the block fails, or is interrupted,
    the sibling is removed and ``dest`` is left untouched."""
    dest = Path(dest)
    try:
        check(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = _sibling(dest)
    except OSError as e:
        raise ArtifactError(f"{dest}: cannot write there ({e.strerror or e})") from None
    try:
        yield tmp
        _move_into_place(tmp, dest, replace=check(dest))
    except OSError as e:  # disk full, permissions: the user's to fix, not a polyfuse bug
        shutil.rmtree(tmp, ignore_errors=True)
        raise ArtifactError(f"{dest}: writing failed, nothing was changed ({e.strerror or e}: "
                            f"{e.filename or dest})") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _sibling(dest: Path) -> Path:
    """A new empty directory beside ``dest``, with the permissions the umask gives (mkdtemp's
    are 0700, which the renamed directory would keep)."""
    while True:
        tmp = dest.with_name(f".{dest.name}.{secrets.token_hex(4)}")
        try:
            tmp.mkdir()
            return tmp
        except FileExistsError:
            continue


def _move_into_place(tmp: Path, dest: Path, *, replace: bool) -> None:
    try:
        os.replace(tmp, dest)  # dest absent or an empty directory: atomic, and deletes nothing
        return
    except OSError as e:
        if not replace or e.errno not in (errno.ENOTEMPTY, errno.EEXIST):
            raise ArtifactError(f"{dest}: cannot move the new directory into place "
                                f"({e.strerror or e}; did something write into {dest} meanwhile?)") from None
    aside = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old.", dir=dest.parent))
    old = aside / "artifact"
    try:
        os.replace(dest, old)
    except OSError:
        aside.rmdir()
        raise
    try:
        os.replace(tmp, dest)
    except BaseException:
        os.replace(old, dest)
        raise
    _remove_artifact(old)
    try:
        aside.rmdir()
    except OSError:
        log.warning("%s: kept the replaced artifact's leftovers in %s (files polyfuse did not write)", dest, aside)


def _remove_artifact(directory: Path) -> None:
    """Remove an artifact that check_replaceable accepted: its files by name, then the (then
    empty) folders; a file that appeared since stays, with its folder."""
    for rel in artifact_files():
        (directory / rel).unlink(missing_ok=True)
    for d in (directory / RUNTIME_DIR, directory):
        with contextlib.suppress(OSError):
            d.rmdir()


def write_artifact(dest: Path, target: Target, *, source: str, files: dict, library: Path | None, manifest: dict,
                   write_weights_to, overwrite: bool = False) -> Path:
    """``files``: name -> text of the target's rendered build files (CMakeLists.txt, ...)."""
    dest = Path(dest)
    with staged(dest, lambda d: check_replaceable(d, overwrite)) as tmp:
        (tmp / SOURCE).write_text(source)
        for name, text in files.items():
            (tmp / name).write_text(text)
        write_weights_to(tmp / WEIGHTS)
        rt = tmp / RUNTIME_DIR
        rt.mkdir()
        for f in target.runtime_files():
            shutil.copy2(runtime_file(target, f), rt / f)
        if library is not None:
            shutil.copy2(library, tmp / LIBRARY)
            shutil.copy2(runner_of(library), tmp / RUNNER)
            if target.packs_weights and target.loads_here:
                prepack(tmp / LIBRARY, tmp / WEIGHTS)
            elif target.packs_weights and target.emulator:
                prepack_emulated(target, tmp)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return dest


def prepack(library: Path, weights: Path) -> None:
    """Write ``weights`` + ".packed": the constant GEMM operands packed by ``library`` (which runs
    here) for its micro-kernel, so loading maps them instead of packing (BERT-base: 342 MB)."""
    import ctypes

    lib = ctypes.CDLL(str(library))
    lib.pf_write_packed.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t]
    err = ctypes.create_string_buffer(1024)
    if lib.pf_write_packed(str(weights).encode(), err, len(err)) != 0:
        raise ArtifactError(f"packing the weights: {err.value.decode(errors='replace')}")


def prepack_emulated(target: Target, art: Path) -> None:
    """The same for a phone CPU, by the artifact's own pf_run under the target's emulator here
    (android-cpu: qemu-aarch64). Best effort: without the emulator, or for a build it cannot run
    (the NDK's, which needs Android's loader), the artifact has no packed file and loading packs."""
    from ..devices import Qemu
    from ..errors import PolyfuseError

    log.info("packing the GEMM weights for %s under its emulator", target.name)
    try:
        Qemu(target).write_packed(art)
    except PolyfuseError as e:
        for leftover in (PACKED + ".tmp", PACKED):
            (art / leftover).unlink(missing_ok=True)
        log.info("weights not packed at compile time (loading packs them): %s", e)


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
    if not isinstance(m, dict) or m.get("format") != FORMAT:
        raise ArtifactError(f"{f}: not a polyfuse artifact manifest")
    return m


def copy_files(src: Path, dst: Path, copy_function=shutil.copy2) -> None:
    """Copy the artifact files of ``src`` (artifact_files(); nothing else) into the directory
    ``dst``, each with ``copy_function``."""
    for rel in artifact_files():
        if (src / rel).is_file():
            (dst / rel).parent.mkdir(exist_ok=True)
            copy_function(src / rel, dst / rel)


def copy_artifact(src: Path, dest: Path, copy_function=shutil.copy2, *, overwrite: bool = False) -> Path:
    """Copy the artifact ``src`` to ``dest`` (atomically), each file with ``copy_function``."""
    dest = Path(dest)
    with staged(dest, lambda d: check_replaceable(d, overwrite)) as tmp:
        copy_files(Path(src), tmp, copy_function)
    return dest
