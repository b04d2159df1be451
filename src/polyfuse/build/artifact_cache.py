"""Whole-compilation cache: recompiling an unchanged model copies its earlier artifact.

The key is a hash of the model file's bytes, the options (target and its schedule, shapes, fusion), the compiler
and its flags, and polyfuse's own source (Python, templates, kernels), so any change to any of
them compiles afresh. Models whose tensors live in external data files are not cached (their
bytes are not all in the key). Large files are hard-linked between the cache and artifacts
(and made read-only), so a cached BERT-base recompiles in about a second instead of rewriting
400 MB of weights. ``POLYFUSE_ARTIFACT_CACHE=0`` turns the cache off.
"""
from __future__ import annotations

import functools
import hashlib
import operator
import os
import shutil
import tempfile
from pathlib import Path

from .artifact import MANIFEST, copy_artifact, copy_files
from .cache import cache_dir, digest
from ..targets import get as get_target
from .compiler import compiler_id

LINK_MIN_BYTES = 1 << 20  # files at least this large are hard-linked, smaller ones copied


def enabled() -> bool:
    return os.environ.get("POLYFUSE_ARTIFACT_CACHE", "1") != "0"


@functools.lru_cache(maxsize=1)
def _polyfuse_source_digest() -> str:
    from ..resources import kernels_dir, templates_dir

    pkg = Path(__file__).resolve().parents[1]
    h = hashlib.sha1()
    for root in (pkg, templates_dir(), kernels_dir()):
        for f in sorted(root.rglob("*")):
            if f.is_file() and f.suffix in (".py", ".j2", ".h", ".cpp"):
                h.update(str(f.relative_to(root)).encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


def key(model, *, target, shapes, fusion: bool) -> str | None:
    """The cache key of compiling ``model`` (a path or bytes) for ``target`` (a name or a Target),
    or None if it cannot be cached."""
    if not enabled():
        return None
    target = get_target(target)
    h = hashlib.sha1()
    tail = b""
    try:
        for chunk in _chunks(model):
            h.update(chunk)
            if b"location" in tail + chunk[:7] or b"location" in chunk:
                return None  # every external-data reference names a "location"; be conservative
            tail = chunk[-7:]
    except (OSError, TypeError):
        return None  # not a readable file or bytes: the frontend reports or handles it
    from .. import __version__

    try:  # exactly the ints bind_shapes accepts: a shape it would refuse must not hit the cache
        shape_key = sorted((str(k), tuple(operator.index(d) for d in v)) for k, v in (shapes or {}).items())
        if any(type(d) is bool for v in (shapes or {}).values() for d in v):
            return None
    except (AttributeError, TypeError, ValueError):
        return None  # the frontend reports bad shapes
    return digest("artifact", __version__, _polyfuse_source_digest(), (compiler_id(exe) if (exe := target.toolchain.find()) else "no compiler"),
                  *target.toolchain.all_flags(), *target.toolchain.link_flags, target.name, target.precision, sorted(target.schedule.items()), shape_key, fusion,
                  h.hexdigest())


def _chunks(model, size: int = 1 << 24):
    if isinstance(model, (bytes, bytearray)):
        for i in range(0, len(model), size):
            yield bytes(model[i:i + size])
    elif isinstance(model, (str, os.PathLike)):
        with open(model, "rb") as f:
            while chunk := f.read(size):
                yield chunk
    else:
        raise TypeError(type(model).__name__)


def _link_or_copy(src, dst) -> None:
    """Hard-link large files (made read-only: shared between artifacts and the cache, nobody
    edits them in place); copy small ones, and anything across file systems."""
    if os.stat(src).st_size >= LINK_MIN_BYTES:
        os.chmod(src, 0o444)
        try:
            os.link(src, dst)
            return
        except OSError:
            pass
    shutil.copy2(src, dst)


def fetch(k: str, dest: Path, *, overwrite: bool = False) -> bool:
    """Materialise the cached artifact ``k`` at ``dest`` (atomically, under the same rules as
    writing one: see build/artifact.py); False on a miss."""
    entry = cache_dir() / "artifacts" / k
    if not (entry / MANIFEST).is_file():
        return False
    copy_artifact(entry, dest, _link_or_copy, overwrite=overwrite)
    return True


def store(k: str, artifact: Path) -> None:
    """Keep a copy of a freshly written ``artifact`` under key ``k`` (best effort)."""
    root = cache_dir() / "artifacts"
    entry = root / k
    if entry.exists():
        return
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{k}.", dir=root))
    try:
        copy_files(artifact, tmp, _link_or_copy)
        os.replace(tmp, entry)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:  # interrupted: leave no half entry behind
        shutil.rmtree(tmp, ignore_errors=True)
        raise
