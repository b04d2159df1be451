"""Reductions: reduced axes, a combiner per accumulation stage, and an epilogue expression.

``REDUCTION_OPS[op](ctx)`` returns a :class:`ReductionForm`. ``ctx.x`` is the element of the
first input at the iteration index (``ctx.vars``); stages run in order, each a full pass over
the reduced axes whose expression may use earlier accumulators.
"""
from __future__ import annotations

from dataclasses import dataclass

import sympy

from . import functions as F
from .movement import broadcast_index, _axis

A0, A1, A2 = sympy.Symbol("r0"), sympy.Symbol("r1"), sympy.Symbol("r2")


@dataclass
class ReductionForm:
    axes: tuple
    stages: list  # [(acc, "sum" | "mean" | "max", expr)]
    body: sympy.Expr
    keep_shape: bool
    keepdims: bool = True
    row_outputs: tuple = ()  # bodies of further outputs with one value per row (LayerNorm's Mean, InvStdDev)
    space: tuple | None = None  # the iteration space, when it is not the first input's shape


def _reduce_axes(ctx):
    """Axes of Reduce*: an attribute before opset 18 (ReduceSum: an input since 13)."""
    r = len(ctx.inputs[0].shape)
    from_input = ctx.op_type == "ReduceSum" or ctx.opset >= 18
    axes = ctx.const(1, "axes", default=None) if from_input else ctx.attrs.get("axes")
    if axes is None or len(axes) == 0:
        if int(ctx.attrs.get("noop_with_empty_axes", 0)):
            return ()
        return tuple(range(r))
    return tuple(sorted({_axis(int(a), r) for a in axes}))


def _reduce(combiner):
    def form(ctx):
        return ReductionForm(_reduce_axes(ctx), [(A0, combiner, ctx.x)], A0, False,
                             bool(int(ctx.attrs.get("keepdims", 1))))
    return form


def _softmax(ctx):
    r = len(ctx.inputs[0].shape)
    a = _axis(int(ctx.attrs.get("axis", -1)), r)
    x = ctx.x
    e = F.ExpNonPos(x - A0)  # x <= max(x) = A0, and x - A0 rounds to <= 0 (or NaN)
    return ReductionForm((a,), [(A0, "max", x), (A1, "sum", e)], e / A1, True)


SHIFT_LIMIT = sympy.Float(2.0 ** 64)  # a float: the integer 2^64 has no C literal


def _layer_norm(ctx):
    """Mean and variance over the row shifted by its first element x0 (by 0 when |x0| is above
    2^64, inf and NaN included: x - x0 must not overflow where x alone would not): d = x - x0, m = mean(d), var = mean((d - m)^2), y = (d - m) / sqrt(var + eps).
    A constant row then has d = 0, so it normalizes to 0 even at epsilon 1e-12 (sum / n in
    float32 is not x0 exactly, and (x - that)^2 is not small next to such an epsilon). And for a
    row close to x0 (activations saturated near 1), d is exact and m small, so d - m keeps the
    row's deviations to full precision, where x - (x0 + m) rounded them to an ulp of x0.
    d is an F.Use so that sympy keeps (x - x0) - m in that order.

    The mean is then corrected by the mean of d - m (Chan, Golub and LeVeque's corrected two-pass
    algorithm): where x0 is far from the mean, float32 sums of d grow large and m can be off by
    tens of ulps of the row's spread (fuzz seed 15005921: 561 elements, m 2e-6 off, outputs
    6e-6 off, 8x onnxruntime's error); d - m is centred, so its mean c is accurate, and the row
    is normalized around m + c with var = mean((d - m - c)^2). A row whose c is not finite (an
    infinite or NaN element) keeps c = 0, as before the correction."""
    shape = ctx.inputs[0].shape
    r = len(shape)
    a = _axis(int(ctx.attrs.get("axis", -1)), r)
    eps = sympy.Float(float(ctx.attrs.get("epsilon", 1e-5)))
    x = ctx.x
    first = ctx.load(0, tuple(ctx.vars[:a]) + (0,) * (r - a))
    x0 = F.Select(F.LessEq(F.Abs(first), SHIFT_LIMIT), first, 0)
    d = F.Use(x - x0, sympy.Integer(next(F.USES)))
    norm_vars, norm_shape = ctx.vars[a:r], shape[a:]
    c = F.Select(F.IsFinite(A2), A2, 0)
    y = (d - A0 - c) / F.Sqrt(A1 + eps)
    for k, apply in ((1, lambda y, s: y * s), (2, lambda y, b: y + b)):
        if k < len(ctx.inputs) and ctx.inputs[k] is not None:
            w = ctx.inputs[k]
            y = apply(y, ctx.load_or_literal(k, broadcast_index(w.shape, norm_vars, norm_shape)))
    return ReductionForm(tuple(range(a, r)), [(A0, "mean", d), (A2, "mean", d - A0), (A1, "mean", (d - A0 - c) ** 2)],
                         y, True, row_outputs=(x0 + A0 + c, 1 / F.Sqrt(A1 + eps)))


def _cumsum(ctx):
    """out[.., i, ..] = sum over k of x[.., k, ..] where k <= i: a reduction over a second copy
    of the scanned axis (k < i when exclusive; k >= i, k > i when reversed). It costs the axis
    length squared per row instead of a scan's one pass, and needs no kernel kind of its own."""
    shape = ctx.inputs[0].shape
    r = len(shape)
    a = _axis(ctx.const(1, "axis")[0], r)
    k, i = ctx.var(r), ctx.vars[a]
    if int(ctx.attrs.get("reverse", 0)):
        cond = (F.Greater if int(ctx.attrs.get("exclusive", 0)) else F.GreaterEq)(k, i)
    else:
        cond = (F.Less if int(ctx.attrs.get("exclusive", 0)) else F.LessEq)(k, i)
    idx = list(ctx.vars)
    idx[a] = k
    term = F.Select(cond, ctx.load(0, idx), sympy.Integer(0))
    return ReductionForm((r,), [(A0, "sum", term)], A0, False, False, space=tuple(shape) + (shape[a],))


REDUCTION_OPS = {
    "ReduceSum": _reduce("sum"),
    "ReduceMean": _reduce("mean"),
    "ReduceMax": _reduce("max"),
    "Softmax": _softmax,
    "LayerNormalization": _layer_norm,
    "CumSum": _cumsum,
}
