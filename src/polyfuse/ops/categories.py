"""Operator classes, derived from which form describes an op.

The order matters to fusion (a later issue): ELEMENTWISE < MOVEMENT < REDUCTION < CONTRACTION,
as in TVM's ElemWise < Injective < Reduce < OutEWiseFusable. VIEW ops move no data; SHAPE ops
must be constant-folded before lowering. ConstantOfShape and Range fold when their result is
small and are index-map kernels otherwise.
"""
from __future__ import annotations

import enum

import numpy as np

from ..forms.elementwise import FORMS as _ELEMENTWISE
from ..forms.movement import MOVEMENT_OPS as _MOVEMENT
from ..forms.reduction import REDUCTION_OPS as _REDUCTION
from ..ir import Node


class OpClass(enum.IntEnum):
    IDENTITY = 0
    VIEW = 1
    ELEMENTWISE = 2
    MOVEMENT = 3
    REDUCTION = 4
    CONTRACTION = 5
    SHAPE = 6  # produces data known at compile time: must fold away
    COMPOSITE = 7  # rewritten into other ops by a pass before lowering (passes/expand_einsum.py)


_VIEW = {"Reshape", "Flatten", "Squeeze", "Unsqueeze"}
_CONTRACTION = {"MatMul", "Gemm"}
_SHAPE = {"Shape", "Constant"}
_COMPOSITE = {"Einsum"}


# First match wins: Identity also has an elementwise form, but is its own class.
_CLASSES = ((OpClass.IDENTITY, {"Identity"}), (OpClass.VIEW, _VIEW), (OpClass.ELEMENTWISE, _ELEMENTWISE),
            (OpClass.MOVEMENT, _MOVEMENT), (OpClass.REDUCTION, _REDUCTION), (OpClass.CONTRACTION, _CONTRACTION),
            (OpClass.SHAPE, _SHAPE), (OpClass.COMPOSITE, _COMPOSITE))


def op_class(node: Node) -> OpClass:
    for cls, ops in _CLASSES:
        if node.op_type in ops:
            return cls
    raise KeyError(node.op_type)


# Ops whose kernel computes only some output dtypes (numpy dtype kinds); the others always fold.
# Range: onnxruntime adds delta to a running value in the element type, so a float range drifts
# in a way only a sequential loop reproduces; an integer range is start + i * delta exactly.
_KERNEL_DTYPE_KINDS = {"Range": "iu"}


def has_kernel(node: Node, out_dtypes) -> bool:
    """False when ``node``, with outputs of ``out_dtypes``, can only be evaluated at compile time:
    its result must then fold, whatever its size."""
    if op_class(node) is OpClass.SHAPE:
        return False
    kinds = _KERNEL_DTYPE_KINDS.get(node.op_type)
    return kinds is None or all(np.dtype(d).kind in kinds for d in out_dtypes)


_SHAPE_ONLY = {"Shape"}


def reads_only_shapes(node: Node) -> bool:
    """True when the node's result depends on its inputs' shapes only, never their values."""
    return node.op_type in _SHAPE_ONLY


# Inputs whose *values* must be known at compile time: they decide an op's output shape, or
# (CumSum's axis) the loops of its kernel.
CONST_INPUTS = {
    "Reshape": (1,), "Expand": (1,), "Slice": (1, 2, 3, 4), "Split": (1,), "Pad": (1, 3), "Squeeze": (1,),
    "Unsqueeze": (1,), "ReduceSum": (1,), "ReduceMean": (1,), "ReduceMax": (1,), "ConstantOfShape": (0,),
    "Range": (0, 1, 2), "CumSum": (1,),
}
