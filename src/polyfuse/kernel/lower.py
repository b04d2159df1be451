"""Lower a shape-inferred graph to a list of kernels, one group of nodes at a time.

Today every group is a single node; the fusion issue changes how groups are formed, not how
they are lowered. View ops (Reshape, Squeeze, ...) become aliases, not kernels.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import sympy

from ..errors import UnsupportedError
from ..forms.elementwise import element_form
from ..forms.movement import MOVEMENT_OPS, broadcast_index, number
from ..forms.reduction import REDUCTION_OPS
from ..ir import Graph, Node, Value
from ..ir.narrow_types import narrow_type
from ..ops.info import OpClass, op_class
from .ir import ACC, IDX, Contraction, Loads, Pointwise, Reduction


# A LayerNorm row longer than this accumulates its mean and variance in double: over 3234
# elements, float32 sums put the output 2.5e-5 off (onnxruntime: 2e-7). BERT-family rows (128 to
# 1024) keep float32, twice the vector width.
LONG_ROW = 1024


@dataclass
class LoweredModel:
    graph: Graph
    kernels: list
    views: dict[str, str] = field(default_factory=dict)  # view value -> the value it aliases


def literal(v: Value) -> sympy.Expr:
    """A one-element constant as a sympy number; of a narrow type, its code (ir/narrow_types.py)."""
    t = narrow_type(v.dtype)
    return number(v.const.reshape(-1)[0] if t is None else v.const.reshape(-1).view(t.code_dtype)[0])


class _Ctx:
    """What a form sees of one node: inputs, constants, attributes, and the kernel's loads."""

    def __init__(self, graph: Graph, node: Node, out: Value, loads: Loads):
        self.graph, self.node, self.attrs, self.opset = graph, node, node.attrs, graph.opset
        self.op_type = node.op_type
        self.inputs = [graph.values[i] if i else None for i in node.inputs]
        self.out_shape = out.shape
        self.out_shapes = [graph.values[o].shape for o in node.outputs if o]
        self.out_vars = IDX[:len(out.shape)]
        self.vars = IDX[:len(self.inputs[0].shape)] if self.inputs and self.inputs[0] is not None else ()
        self._loads = loads

    def load(self, k: int, index) -> sympy.Expr:
        return self._loads(self.node.inputs[k], index)

    def var(self, d: int) -> sympy.Symbol:
        """The loop variable of iteration dimension ``d`` (beyond ``vars`` for a form's own space)."""
        return IDX[d]

    def load_or_literal(self, k: int, index) -> sympy.Expr:
        v = self.inputs[k]
        return literal(v) if v.is_const and v.numel == 1 else self.load(k, index)

    @property
    def x(self):
        return self.load(0, self.vars)

    def const(self, k: int, what: str, default=...):
        v = self.inputs[k] if k < len(self.inputs) else None
        if v is None:
            if default is ...:
                raise UnsupportedError(f"node {self.node.name!r} ({self.op_type}): missing input {what!r}")
            return default
        if not v.is_const:
            raise UnsupportedError(f"node {self.node.name!r} ({self.op_type}): input {what!r} must be a "
                                   "compile-time constant")
        return [int(a) for a in v.const.reshape(-1)]

    def scalar(self, k: int, default=0):
        v = self.inputs[k] if k < len(self.inputs) else None
        if v is None or (v.is_const and v.const.size == 0):  # an empty tensor: the default, as the reference
            return sympy.Integer(default)
        if not v.is_const:
            return self.load(k, ())
        return literal(v)


def _lower_elementwise(g: Graph, node: Node) -> list:
    out = g.values[node.outputs[0]]
    loads = Loads()
    ctx = _Ctx(g, node, out, loads)
    args, dtypes = [], []
    for k, v in enumerate(ctx.inputs):
        if v is None:
            args.append(None)
            dtypes.append(None)
            continue
        args.append(ctx.load_or_literal(k, broadcast_index(v.shape, ctx.out_vars, out.shape)))
        dtypes.append(v.dtype)
    while args and args[-1] is None:
        args.pop()
    body = element_form(node.op_type, args, node.attrs, dtypes)
    return [Pointwise(out.name, out.shape, body, loads.table, [node.name])]


def _lower_movement(g: Graph, node: Node) -> list:
    kernels = []
    for j, name in enumerate(node.outputs):
        if not name:
            continue
        out = g.values[name]
        loads = Loads()
        body = MOVEMENT_OPS[node.op_type](_Ctx(g, node, out, loads), j)
        kernels.append(Pointwise(out.name, out.shape, body, loads.table, [node.name]))
    return kernels


def _lower_reduction(g: Graph, node: Node) -> list:
    out = g.values[node.outputs[0]]
    loads = Loads()
    form = REDUCTION_OPS[node.op_type](_Ctx(g, node, out, loads))
    shape = form.space or g.values[node.inputs[0]].shape
    if not form.axes:  # noop_with_empty_axes: a copy
        return [Pointwise(out.name, out.shape, form.stages[0][2], loads.table, [node.name])]
    acc = out.dtype if node.op_type.startswith("Reduce") else g.values[node.inputs[0]].dtype
    row = int(np.prod([shape[a] for a in form.axes], dtype=np.int64))
    if node.op_type == "LayerNormalization" and np.dtype(acc) == np.float32 and row > LONG_ROW:
        acc = np.dtype(np.float64)  # see LONG_ROW
    kernels = [Reduction(out.name, shape, form.axes, form.stages, form.body, form.keep_shape, out.shape,
                         loads.table, [node.name], acc)]
    for name, body in zip(node.outputs[1:], form.row_outputs):
        if name:
            kernels.append(Reduction(name, shape, form.axes, form.stages, body, False, g.values[name].shape,
                                     loads.table, [node.name], acc))
    return kernels


def _lower_contraction(g: Graph, node: Node) -> list:
    out = g.values[node.outputs[0]]
    a, b = g.values[node.inputs[0]], g.values[node.inputs[1]]
    if np.dtype(a.dtype) != np.float32:
        return [_product_as_reduction(g, node, a, b, out)]
    loads = Loads()
    if node.op_type == "Gemm":
        ta, tb = bool(node.attrs.get("transA", 0)), bool(node.attrs.get("transB", 0))
        m, k = (a.shape[1], a.shape[0]) if ta else a.shape
        n = b.shape[0] if tb else b.shape[1]
        epi = _gemm_epilogue(g, node, loads, m, n, ACC)
        return [Contraction(out.name, a.name, b.name, m, n, k, ta, tb, 1.0, (), (), (), epi, loads.table,
                            [node.name], out.shape)]
    ashape = a.shape if len(a.shape) > 1 else (1,) + a.shape
    bshape = b.shape if len(b.shape) > 1 else b.shape + (1,)
    m, k, n = ashape[-2], ashape[-1], bshape[-1]
    batch = tuple(np.broadcast_shapes(ashape[:-2], bshape[:-2]))
    if all(d == 1 for d in bshape[:-2]):  # weights: fold A's batch dims into M, one GEMM
        m, batch = m * int(np.prod(batch, dtype=np.int64)), ()
    return [Contraction(out.name, a.name, b.name, m, n, k, False, False, 1.0, batch,
                        _batch_strides(ashape, batch), _batch_strides(bshape, batch), ACC, loads.table,
                        [node.name], out.shape)]


def _gemm_epilogue(g: Graph, node: Node, loads: Loads, m: int, n: int, acc) -> sympy.Expr:
    """alpha * acc + beta * C, with C broadcast to (M, N)."""
    alpha, beta = float(node.attrs.get("alpha", 1.0)), float(node.attrs.get("beta", 1.0))
    y = acc if alpha == 1.0 else sympy.Float(alpha) * acc
    c = g.values[node.input(2)] if node.input(2) else None
    if c is None or beta == 0.0:
        return y
    cval = literal(c) if c.is_const and c.numel == 1 else loads(c.name, broadcast_index(c.shape, IDX[:2], (m, n)))
    return y + (cval if beta == 1.0 else sympy.Float(beta) * cval)


def _product_as_reduction(g: Graph, node: Node, a: Value, b: Value, out: Value) -> Reduction:
    """Matrix products of types the packed GEMM does not take (int64, float64), as a reduction:
    out[..., i, j] = sum_k A[..., i, k] * B[..., k, j]  (Gemm: transposes, alpha, beta * C)."""
    gemm = node.op_type == "Gemm"
    ta, tb = (bool(node.attrs.get("transA", 0)), bool(node.attrs.get("transB", 0))) if gemm else (False, False)
    ashape = a.shape if len(a.shape) > 1 else (1,) + a.shape
    bshape = b.shape if len(b.shape) > 1 else b.shape + (1,)
    batch = tuple(np.broadcast_shapes(ashape[:-2], bshape[:-2]))
    m, k = (ashape[-1], ashape[-2]) if ta else (ashape[-2], ashape[-1])
    n = bshape[-2] if tb else bshape[-1]
    space = batch + (m, n, k)
    v = IDX[:len(space)]
    bv, i, j, kk = v[:len(batch)], v[-3], v[-2], v[-1]
    loads = Loads()
    ia = broadcast_index(ashape[:-2], bv, batch) + ((kk, i) if ta else (i, kk))
    ib = broadcast_index(bshape[:-2], bv, batch) + ((j, kk) if tb else (kk, j))
    ia = ia if len(a.shape) > 1 else ia[1:]
    ib = ib if len(b.shape) > 1 else ib[:-1]
    r = sympy.Symbol("r0")
    body = _gemm_epilogue(g, node, loads, m, n, r) if gemm else r
    return Reduction(out.name, space, (len(space) - 1,), [(r, "sum", loads(a.name, ia) * loads(b.name, ib))], body,
                     False, batch + (m, n), loads.table, [node.name], out.dtype)


def _batch_strides(shape, batch) -> tuple:
    shape = (1,) * (len(batch) + 2 - len(shape)) + tuple(shape)
    strides, s = [], int(shape[-1] * shape[-2])
    for d in reversed(range(len(batch))):
        strides.append(0 if shape[d] == 1 else s)
        s *= shape[d]
    return tuple(reversed(strides))


_LOWER = {
    OpClass.ELEMENTWISE: _lower_elementwise,
    OpClass.IDENTITY: _lower_elementwise,
    OpClass.MOVEMENT: _lower_movement,
    OpClass.REDUCTION: _lower_reduction,
    OpClass.CONTRACTION: _lower_contraction,
}


def lower_graph(graph: Graph) -> LoweredModel:
    model = LoweredModel(graph, [])
    for node in graph.nodes:
        cls = op_class(node)
        if cls is OpClass.VIEW:
            model.views[node.outputs[0]] = model.views.get(node.inputs[0], node.inputs[0])
        elif cls is OpClass.SHAPE:
            raise UnsupportedError(f"node {node.name!r} ({node.op_type}) depends on run-time values and could "
                                   "not be computed at compile time")
        elif cls is OpClass.COMPOSITE:
            raise UnsupportedError(f"node {node.name!r} ({node.op_type}) must be expanded into other ops before "
                                   "lowering (passes.expand_einsum)")
        else:
            model.kernels.extend(_LOWER[cls](graph, node))
    return model
