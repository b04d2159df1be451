"""Compilation targets (see :mod:`.base`): ``get(name)`` returns the record the pipeline uses."""
from __future__ import annotations

from ..errors import UnsupportedError
from .base import Target, Toolchain
from .android_cpu import ANDROID_CPU
from .android_gpu import ANDROID_GPU
from .host import HOST

TARGETS: dict[str, Target] = {t.name: t for t in (HOST, ANDROID_CPU, ANDROID_GPU)}

__all__ = ["ANDROID_CPU", "ANDROID_GPU", "HOST", "Target", "Toolchain", "TARGETS", "get", "of_artifact"]


def of_artifact(manifest: dict) -> Target | None:
    """The record an artifact was built with (its device variant when the manifest says
    ``for_device``), or None for an unknown target name."""
    t = TARGETS.get(manifest.get("target"))
    if t is not None and manifest.get("for_device"):
        t = t.for_device()
    return t.at_precision(manifest.get("precision", "fp32")) if t is not None else None


def get(target) -> Target:
    """The Target named ``target`` (or ``target`` itself); an UnsupportedError listing the
    targets for any other name."""
    if isinstance(target, Target):
        return target
    if target in TARGETS:
        return TARGETS[target]
    raise UnsupportedError(f"unknown target {target!r} (available: {', '.join(TARGETS)})")
