"""One record per supported op: what the passes, lowering and the test oracle need to know about it.

Everything here that is keyed by an op name lives in :data:`OPS`; nothing else in polyfuse keeps a
set of op names. How an op *computes* lives elsewhere: its polynomial form (``forms/``) and its
numpy reference (``ops/reference*.py``); tests check the three agree on which ops exist.

Op classes order fusion: ELEMENTWISE < MOVEMENT < REDUCTION < CONTRACTION, as in TVM's
ElemWise < Injective < Reduce < OutEWiseFusable. VIEW ops move no data; SHAPE ops must be
constant-folded before lowering. ConstantOfShape and Range fold when their result is small and are
index-map kernels otherwise.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

from ..errors import UnsupportedError
from ..ir import Node
from ..ir.narrow_types import narrow_type


class OpClass(enum.IntEnum):
    IDENTITY = 0
    VIEW = 1
    ELEMENTWISE = 2
    MOVEMENT = 3
    REDUCTION = 4
    CONTRACTION = 5
    SHAPE = 6  # produces data known at compile time: must fold away
    COMPOSITE = 7  # rewritten into other ops by a pass before lowering (passes/expand_einsum.py)


class Rounding(enum.Enum):
    """How float32 rounding enters an op's result (the test oracle's error model)."""
    EXACT = "exact"  # moves or picks values: no rounding
    SUM = "sum"  # linear in each input: error grows with the terms summed, by sum |terms|
    ROW_SUM = "row_sum"  # a sum per row inside (Softmax, LayerNormalization)
    ULPS = "ulps"  # anything else: within a few units in the last place


@dataclass(frozen=True)
class OpInfo:
    name: str
    cls: OpClass
    rounding: Rounding
    # The rule bounding |output| from the data inputs' bounds (passes/remove_nan_guards.py); None: no
    # bound is proven, so NaN guards around its result stay.
    magnitude: str | None = None
    # Inputs whose *values* must be known at compile time: they decide the output shape, or (CumSum's
    # axis) the loops of the kernel.
    const_inputs: tuple[int, ...] = ()
    # Inputs whose values reach the output (None: all); the others are indices, shapes or conditions.
    data_inputs: tuple[int, ...] | None = None
    # Only copies or converts elements (or reads shapes): may run on float8, bfloat16, int4 ...
    storage: bool = False
    # numpy dtype kinds of the outputs a kernel computes (None: any); others always fold.
    kernel_kinds: str | None = None
    # The result depends on the inputs' shapes only, never their values.
    shape_only: bool = False


E, V, M, R, C = OpClass.ELEMENTWISE, OpClass.VIEW, OpClass.MOVEMENT, OpClass.REDUCTION, OpClass.CONTRACTION
X, S, RS, U = Rounding.EXACT, Rounding.SUM, Rounding.ROW_SUM, Rounding.ULPS


def _table(*rows: OpInfo) -> dict[str, OpInfo]:
    return {r.name: r for r in rows}


OPS: dict[str, OpInfo] = _table(
    OpInfo("Identity", OpClass.IDENTITY, X, "max", storage=True),
    # elementwise
    OpInfo("Abs", E, X, "max"),
    OpInfo("Add", E, U, "sum"),
    OpInfo("And", E, X),
    OpInfo("Cast", E, U, "max", storage=True),
    OpInfo("Clip", E, X, "clip", data_inputs=(0,)),
    OpInfo("Div", E, U, "div"),
    OpInfo("Equal", E, X),
    OpInfo("Erf", E, U, "unit"),
    OpInfo("Exp", E, U),
    OpInfo("Gelu", E, U, "max"),
    OpInfo("Greater", E, X),
    OpInfo("GreaterOrEqual", E, X),
    OpInfo("IsNaN", E, X),
    OpInfo("Less", E, X),
    OpInfo("LessOrEqual", E, X),
    OpInfo("Log", E, U),
    OpInfo("Max", E, X, "max"),
    OpInfo("Min", E, X, "max"),
    OpInfo("Mod", E, U),
    OpInfo("Mul", E, U, "product"),
    OpInfo("Neg", E, X, "max"),
    OpInfo("Not", E, X),
    OpInfo("Or", E, X),
    OpInfo("Pow", E, U),
    OpInfo("Reciprocal", E, U),
    OpInfo("Relu", E, X, "max"),
    OpInfo("Sigmoid", E, U, "unit"),
    OpInfo("Sqrt", E, U),
    OpInfo("Sub", E, U, "sum"),
    OpInfo("Tanh", E, U, "unit"),
    OpInfo("Where", E, X, "max", data_inputs=(1, 2), storage=True),
    # views
    OpInfo("Flatten", V, X, "max", storage=True),
    OpInfo("Reshape", V, X, "max", const_inputs=(1,), data_inputs=(0,), storage=True),
    OpInfo("Squeeze", V, X, "max", const_inputs=(1,), data_inputs=(0,), storage=True),
    OpInfo("Unsqueeze", V, X, "max", const_inputs=(1,), data_inputs=(0,), storage=True),
    # data movement
    OpInfo("Concat", M, X, "max", storage=True),
    OpInfo("ConstantOfShape", M, X, const_inputs=(0,)),
    OpInfo("Expand", M, X, "max", const_inputs=(1,), data_inputs=(0,), storage=True),
    OpInfo("Gather", M, X, "max", data_inputs=(0,), storage=True),
    OpInfo("GatherElements", M, X, "max", data_inputs=(0,), storage=True),
    OpInfo("GatherND", M, X, "max", data_inputs=(0,), storage=True),
    OpInfo("Pad", M, X, "max", const_inputs=(1, 3), data_inputs=(0, 2)),
    # Range: onnxruntime adds delta to a running value in the element type, so a float range drifts
    # in a way only a sequential loop reproduces; an integer range is start + i * delta exactly.
    OpInfo("Range", M, U, const_inputs=(0, 1, 2), kernel_kinds="iu"),
    OpInfo("Slice", M, X, "max", const_inputs=(1, 2, 3, 4), data_inputs=(0,), storage=True),
    OpInfo("Split", M, X, "max", const_inputs=(1,), data_inputs=(0,), storage=True),
    OpInfo("Transpose", M, X, "max", storage=True),
    OpInfo("Trilu", M, X),
    # reductions
    OpInfo("CumSum", R, S, const_inputs=(1,)),
    OpInfo("LayerNormalization", R, RS, "layer_norm", data_inputs=(0,)),
    OpInfo("ReduceMax", R, X, "max", const_inputs=(1,), data_inputs=(0,)),
    OpInfo("ReduceMean", R, S, "reduce_mean", const_inputs=(1,), data_inputs=(0,)),
    OpInfo("ReduceSum", R, S, "reduce_sum", const_inputs=(1,), data_inputs=(0,)),
    OpInfo("Softmax", R, RS, "unit"),
    # contractions
    OpInfo("Gemm", C, S, "contraction"),
    OpInfo("MatMul", C, S, "contraction"),
    # known at compile time
    OpInfo("Constant", OpClass.SHAPE, X, storage=True),
    OpInfo("Shape", OpClass.SHAPE, X, storage=True, shape_only=True),
    # rewritten before lowering
    OpInfo("Einsum", OpClass.COMPOSITE, S),
)


def info(op_type: str) -> OpInfo:
    """The record of ``op_type``; KeyError for an op polyfuse does not know."""
    return OPS[op_type]


def op_class(node: Node) -> OpClass:
    return OPS[node.op_type].cls


def const_inputs(op_type: str) -> tuple[int, ...]:
    """Input slots whose values must be known at compile time (none for an unknown op)."""
    i = OPS.get(op_type)
    return i.const_inputs if i is not None else ()


def has_kernel(node: Node, out_dtypes) -> bool:
    """False when ``node``, with outputs of ``out_dtypes``, can only be evaluated at compile time:
    its result must then fold, whatever its size."""
    i = OPS[node.op_type]
    if i.cls is OpClass.SHAPE:
        return False
    return i.kernel_kinds is None or all(np.dtype(d).kind in i.kernel_kinds for d in out_dtypes)


def reads_only_shapes(node: Node) -> bool:
    """True when the node's result depends on its inputs' shapes only, never their values."""
    i = OPS.get(node.op_type)
    return i is not None and i.shape_only


def check_storage_use(op_type: str, dtypes, where: str) -> None:
    """Raise UnsupportedError when an op that computes (not a ``storage`` op) meets a narrow type."""
    op = OPS.get(op_type)
    if op is not None and op.storage:
        return
    for d in dtypes:
        t = narrow_type(d)
        if t is not None:
            raise UnsupportedError(f"{where}: element type {t.onnx_name} is supported only by Cast and data "
                                   f"movement ({op_type} would compute on it)")
