"""Compilation targets (see :mod:`.base`): ``get(name)`` returns the record the pipeline uses."""
from __future__ import annotations

from ..errors import UnsupportedError
from .base import Target, Toolchain
from .android_cpu import ANDROID_CPU
from .host import HOST

TARGETS: dict[str, Target] = {t.name: t for t in (HOST, ANDROID_CPU)}
PLANNED = ("android-gpu",)

__all__ = ["ANDROID_CPU", "HOST", "Target", "Toolchain", "TARGETS", "PLANNED", "get"]


def get(target) -> Target:
    """The Target named ``target`` (or ``target`` itself); an UnsupportedError listing the
    targets for any other name."""
    if isinstance(target, Target):
        return target
    if target in TARGETS:
        return TARGETS[target]
    available = ", ".join(TARGETS)
    if target in PLANNED:
        raise UnsupportedError(f"target {target!r} is not implemented yet (available: {available})")
    raise UnsupportedError(f"unknown target {target!r} (available: {available}; planned: {', '.join(PLANNED)})")
