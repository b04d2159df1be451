"""Mapping types, derived from a kernel's form rather than typed in per operator.

DNNFusion's classes, as an ordered enum (cheaper to fuse first):

* ONE_TO_ONE   every load reads the element at the output's own index (Add, Erf, Cast);
* ONE_TO_MANY  some load ignores output dims: a broadcast (bias add, Expand);
* SHUFFLE      loads read a permutation of the output index (Transpose);
* REORGANIZE   loads read an affine, floor/mod or data-dependent index (Slice, Concat, Gather);
* MANY_TO_MANY an output element depends on many input elements (reductions, GEMM, attention).
"""
from __future__ import annotations

import enum

import sympy

from ..kernel.ir import IDX, Pointwise


class Mapping(enum.IntEnum):
    ONE_TO_ONE = 0
    ONE_TO_MANY = 1
    SHUFFLE = 2
    REORGANIZE = 3
    MANY_TO_MANY = 4


def _load_mapping(index, out_shape) -> Mapping:
    live = [IDX[d] for d, n in enumerate(out_shape) if n != 1]
    idx = [sympy.sympify(i) for i in index]
    used = [i for i in idx if i != 0]
    if any(not (i.is_Symbol and i in live) for i in used):
        return Mapping.REORGANIZE
    if len(used) < len(live):
        return Mapping.ONE_TO_MANY
    return Mapping.ONE_TO_ONE if used == live else Mapping.SHUFFLE


def mapping_type(kernel) -> Mapping:
    """The mapping type of a kernel: the most general mapping any of its loads makes.

    A load of a lower-rank input (numpy broadcasting aligns trailing dims) that reads the
    trailing output dims in order is a broadcast, hence ONE_TO_MANY."""
    if not isinstance(kernel, Pointwise):
        return Mapping.MANY_TO_MANY
    rank = len(kernel.shape)
    types = []
    for load in kernel.loads.values():
        idx = (0,) * (rank - len(load.index)) + tuple(load.index) if len(load.index) <= rank else load.index
        types.append(_load_mapping(idx, kernel.shape) if len(idx) == rank else Mapping.REORGANIZE)
    return max(types, default=Mapping.ONE_TO_ONE)
