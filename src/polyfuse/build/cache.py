"""The compile cache: ``$POLYFUSE_CACHE_DIR`` or ``~/.cache/polyfuse``."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path


def cache_dir() -> Path:
    d = Path(os.environ.get("POLYFUSE_CACHE_DIR") or Path.home() / ".cache" / "polyfuse")
    d.mkdir(parents=True, exist_ok=True)
    return d


def digest(*parts) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p if isinstance(p, bytes) else str(p).encode())
        h.update(b"\0")
    return h.hexdigest()[:24]
