"""Shared plumbing for the numpy reference: the node view handed to each op and the registry."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..errors import UnsupportedError


class UnsupportedOp(UnsupportedError):
    """No reference implementation: ``args[0]`` is the op type, ``args[1:]`` say what is missing
    when the op is known but this variant (a dtype, a mode) is not."""


@dataclass(frozen=True)
class NodeArgs:
    """What one op evaluation sees: its inputs, decoded attributes, opset and output count."""

    op_type: str
    inputs: list
    attrs: dict
    opset: int
    num_outputs: int = 1

    def input(self, i: int) -> np.ndarray | None:
        """Input ``i``, or None when it is omitted (empty name) or absent (trailing)."""
        return self.inputs[i] if i < len(self.inputs) else None

    def attr(self, name: str, default=None):
        value = self.attrs.get(name, default)
        return value.decode() if isinstance(value, bytes) else value


OpFn = Callable[[NodeArgs], "np.ndarray | list[np.ndarray]"]
REGISTRY: dict[str, OpFn] = {}


def register(*op_types: str) -> Callable[[OpFn], OpFn]:
    """Decorator: make ``fn`` the reference implementation of ``op_types``."""

    def deco(fn: OpFn) -> OpFn:
        for op_type in op_types:
            if op_type in REGISTRY:
                raise ValueError(f"op {op_type} registered twice")
            REGISTRY[op_type] = fn
        return fn

    return deco


def int_list(x: np.ndarray | list | None) -> list[int] | None:
    """A 1-D integer tensor (or list) as a Python list of ints; None stays None."""
    if x is None:
        return None
    return [int(v) for v in np.asarray(x).reshape(-1)]


def norm_axis(axis: int, rank: int) -> int:
    """Map a possibly negative axis into [0, rank)."""
    if not -rank <= axis < rank:
        raise ValueError(f"axis {axis} out of range for rank {rank}")
    return axis + rank if axis < 0 else axis


def in_float64(fn: Callable[[np.ndarray], np.ndarray], x: np.ndarray) -> np.ndarray:
    """Apply ``fn`` to ``x`` in float64 and cast back to ``x``'s dtype (accurate math ops)."""
    return np.asarray(fn(x.astype(np.float64))).astype(x.dtype)
