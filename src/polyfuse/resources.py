"""Where polyfuse's non-Python files live: in the installed package, or in the source tree."""
from __future__ import annotations

from pathlib import Path

_PKG = Path(__file__).resolve().parent


def _find(name: str) -> Path:
    for base in (_PKG / "_data" / name, _PKG.parent.parent / name):
        if base.is_dir():
            return base
    raise FileNotFoundError(f"polyfuse installation is incomplete: no {name}/ directory found near {_PKG}")


def kernels_dir() -> Path:
    return _find("kernels")


def templates_dir() -> Path:
    return _find("codegen_templates")
