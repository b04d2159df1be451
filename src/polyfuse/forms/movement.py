"""Data-movement ops as index maps.

``MOVEMENT_OPS[op](ctx, j)`` returns the element of output ``j`` at index ``ctx.out_vars`` as an
expression of loads whose indices are sympy expressions of the output indices: the op's index
map. ``ctx`` gives input values, constant inputs, attributes and the ``load`` function.
"""
from __future__ import annotations

import numpy as np
import sympy

from . import functions as F
from ..errors import UnsupportedError


def number(x) -> sympy.Expr:
    """A numpy or Python scalar as a sympy number; a float that is 0, inf or NaN as the opaque
    F.Special, which sympy cannot compute with (x * 0 must stay NaN for x = inf). Bools are 0/1."""
    if isinstance(x, (float, np.floating)):
        x = float(x)
        return sympy.Float(x) if np.isfinite(x) and x != 0 else F.special(x)
    return sympy.Integer(int(x))


def broadcast_index(in_shape, out_vars, out_shape):
    """Index into a tensor of ``in_shape`` broadcast (numpy rules) to the output's index."""
    off = len(out_shape) - len(in_shape)
    return tuple(0 if d == 1 and out_shape[off + k] != 1 else out_vars[off + k] for k, d in enumerate(in_shape))


def _axis(a: int, rank: int) -> int:
    return a + rank if a < 0 else a


def _transpose(ctx, j):
    x = ctx.inputs[0]
    r = len(x.shape)
    perm = ctx.attrs.get("perm") or list(range(r))[::-1]
    idx = [None] * r
    for k, p in enumerate(perm):
        idx[p] = ctx.out_vars[k]
    return ctx.load(0, idx)


def _expand(ctx, j):
    return ctx.load(0, broadcast_index(ctx.inputs[0].shape, ctx.out_vars, ctx.out_shape))


def _slice(ctx, j):
    x = ctx.inputs[0]
    r = len(x.shape)
    starts, ends = ctx.const(1, "starts"), ctx.const(2, "ends")
    axes = ctx.const(3, "axes", default=list(range(len(starts))))
    steps = ctx.const(4, "steps", default=[1] * len(starts))
    idx = list(ctx.out_vars[:r])
    for s, e, a, st in zip(starts, ends, axes, steps):
        a = _axis(int(a), r)
        rng = range(*slice(int(s), int(e), int(st)).indices(x.shape[a]))
        idx[a] = rng.start + rng.step * ctx.out_vars[a]
    return ctx.load(0, idx)


def _split(ctx, j):
    x = ctx.inputs[0]
    a = _axis(int(ctx.attrs.get("axis", 0)), len(x.shape))
    offset = sum(ctx.out_shapes[k][a] for k in range(j))
    idx = list(ctx.out_vars)
    idx[a] = idx[a] + offset
    return ctx.load(0, idx)


def _concat(ctx, j):
    r = len(ctx.out_shape)
    a = _axis(int(ctx.attrs["axis"]), r)
    o = ctx.out_vars[a]
    pieces, offset = [], 0
    for k, v in enumerate(ctx.inputs):
        if v.shape[a] == 0:
            continue
        idx = list(ctx.out_vars)
        idx[a] = o - offset
        offset += v.shape[a]
        pieces.append((offset, ctx.load(k, idx)))
    expr = pieces[-1][1]
    for end, val in reversed(pieces[:-1]):
        expr = F.Select(F.Less(o, end), val, expr)
    return expr


def _index_value(ctx, k, idx, n):
    """Index tensor element at ``idx`` wrapped into [0, n): a literal when it is a constant scalar."""
    v = ctx.inputs[k]
    if v.is_const and v.numel == 1:
        i = int(v.const.reshape(-1)[0])
        return sympy.Integer(i + n if i < 0 else i)
    return F.WrapIndex(ctx.load(k, idx), n)


def _gather(ctx, j):
    data, ind = ctx.inputs[0], ctx.inputs[1]
    a = _axis(int(ctx.attrs.get("axis", 0)), len(data.shape))
    q = len(ind.shape)
    o = ctx.out_vars
    gathered = _index_value(ctx, 1, o[a:a + q], data.shape[a])
    return ctx.load(0, list(o[:a]) + [gathered] + list(o[a + q:]))


def _gather_elements(ctx, j):
    data = ctx.inputs[0]
    a = _axis(int(ctx.attrs.get("axis", 0)), len(data.shape))
    idx = list(ctx.out_vars)
    idx[a] = _index_value(ctx, 1, ctx.out_vars, data.shape[a])
    return ctx.load(0, idx)


def _gather_nd(ctx, j):
    data, ind = ctx.inputs[0], ctx.inputs[1]
    b = int(ctx.attrs.get("batch_dims", 0))
    q, kk = len(ind.shape), ind.shape[-1]
    o = ctx.out_vars
    lead = list(o[:q - 1])
    coords = [F.WrapIndex(ctx.load(1, lead + [c]), data.shape[b + c]) for c in range(kk)]
    return ctx.load(0, list(o[:b]) + coords + list(o[q - 1:]))


def _pad(ctx, j):
    x = ctx.inputs[0]
    r = len(x.shape)
    pads = [int(p) for p in ctx.const(1, "pads")]
    axes = [_axis(int(a), r) for a in ctx.const(3, "axes", default=list(range(r)))]
    begin = [0] * r
    for k, a in enumerate(axes):
        begin[a] = pads[k]
    mode = ctx.attrs.get("mode", "constant")
    src = [ctx.out_vars[d] - begin[d] for d in range(r)]
    if mode == "constant":
        cval = ctx.scalar(2, default=0)
        inside = [F.LogicalAnd(F.GreaterEq(s, 0), F.Less(s, x.shape[d])) for d, s in enumerate(src) if begin[d] or
                  ctx.out_shape[d] != x.shape[d]]
        clamped = [F.FMin(F.FMax(s, 0), x.shape[d] - 1) for d, s in enumerate(src)]
        if not inside:
            return ctx.load(0, src)
        cond = inside[0]
        for c in inside[1:]:
            cond = F.LogicalAnd(cond, c)
        return F.Select(cond, ctx.load(0, clamped), cval)
    fn = {"edge": lambda s, n: F.FMin(F.FMax(s, 0), n - 1), "reflect": F.Reflect, "wrap": F.WrapMod}.get(mode)
    if fn is None:
        raise UnsupportedError(f"Pad mode {mode!r}")
    return ctx.load(0, [fn(s, x.shape[d]) for d, s in enumerate(src)])


def _trilu(ctx, j):
    """x where column - row >= k (upper) or <= k (lower), else 0; k may be a run-time scalar."""
    rows, cols = ctx.out_shape[-2:]
    row, col = ctx.out_vars[-2:]
    k = ctx.scalar(1, default=0)
    if k.is_Integer:  # a constant: clamp it so that its literal stays small
        k = sympy.Integer(min(max(int(k), -rows), cols))
    keep = F.GreaterEq(col - row, k) if int(ctx.attrs.get("upper", 1)) else F.LessEq(col - row, k)
    return F.Select(keep, ctx.load(0, ctx.out_vars), 0)


def _constant_of_shape(ctx, j):
    """Every element is the ``value`` attribute (float32 0 when absent)."""
    value = ctx.attrs.get("value")
    return sympy.Integer(0) if value is None else number(np.asarray(value).reshape(-1)[0])


def _range(ctx, j):
    """start + i * delta: exact for integers. A float Range always folds (see ops.info)."""
    return ctx.scalar(0) + ctx.scalar(2) * ctx.out_vars[0]


MOVEMENT_OPS = {
    "Transpose": _transpose,
    "Expand": _expand,
    "Slice": _slice,
    "Split": _split,
    "Concat": _concat,
    "Gather": _gather,
    "GatherElements": _gather_elements,
    "GatherND": _gather_nd,
    "Pad": _pad,
    "Trilu": _trilu,
    "ConstantOfShape": _constant_of_shape,
    "Range": _range,
}
