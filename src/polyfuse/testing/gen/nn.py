"""Op generators for reductions, Softmax, LayerNormalization, MatMul and Gemm."""
from __future__ import annotations

import math

import numpy as np

from .core import F32, MAX_ELEMENTS, Builder, Info, T, exact_or_not, inexact


def _axes(b: Builder, rank: int) -> list[int]:
    """A non-empty random subset of the axes, some written as negative numbers."""
    axes = [a for a in range(rank) if b.coin(0.5)] or [int(b.rng.integers(rank))]
    return [a - rank if b.coin(0.3) else a for a in axes]


def gen_reduce(b: Builder) -> bool:
    op = b.pick(("ReduceSum", "ReduceMean", "ReduceMax"), (3, 3, 2))
    x = b.operand()
    if x is None or not x.shape:
        return False
    r = len(x.shape)
    every = b.coin(0.1)
    axes = list(range(r)) if every else _axes(b, r)
    norm = sorted({a % r for a in axes})
    keepdims = b.coin(0.5)
    count = int(np.prod([x.shape[a] for a in norm]))
    shape = tuple(1 if a in norm else d for a, d in enumerate(x.shape) if keepdims or a not in norm)
    i = x.info
    if op == "ReduceSum":
        info = exact_or_not(min(i.lo * count, i.lo), max(i.hi * count, i.hi), i.bits, i.special, i)
    elif op == "ReduceMax":
        info = i
    else:
        info = i if count == 1 else inexact(i.lo, i.hi, i.special)
    attrs = {"keepdims": int(keepdims)}
    ins = [x.name]
    if not every or b.coin(0.5):  # reducing every axis: sometimes by omitting them
        if op == "ReduceSum" or b.opset >= 18:
            ins.append(b.const(np.array(axes, np.int64)))
        else:
            attrs["axes"] = axes
    b.node(op, ins, [(F32, shape, info)], **attrs)
    return True


def _operand_and_axis(b: Builder):
    """A float operand of rank >= 1 and an axis of it in [-rank, rank), or None."""
    x = b.operand()
    if x is None or not x.shape:
        return None
    r = len(x.shape)
    return x, int(b.rng.integers(-r, r))


def gen_softmax(b: Builder) -> bool:
    picked = _operand_and_axis(b)
    if picked is None:
        return False
    x, axis = picked
    b.node("Softmax", [x.name], [(F32, x.shape, inexact(0.0, 1.0, x.info.special))], axis=axis)
    return True


def _constant_rows(b: Builder, shape: tuple, axis: int) -> T:
    """A tensor of ``shape`` whose rows over axes [axis, rank) are constant: a leaf expanded."""
    small = b.leaf(tuple(shape[:axis]) + (1,) * (len(shape) - axis))
    (t,) = b.node("Expand", [small.name, b.const(np.array(shape, np.int64))], [(F32, shape, small.info)])
    return t


def gen_layer_norm(b: Builder) -> bool:
    picked = _operand_and_axis(b)
    if picked is None:
        return False
    x, axis = picked
    r = len(x.shape)
    a = axis % r
    if b.coin(0.2):
        x = _constant_rows(b, x.shape, a)
    norm = x.shape[a:]
    n = int(np.prod(norm))
    scale = b.leaf(norm, const=True)
    ins = [x.name, scale.name]
    if b.coin(0.6):
        ins.append(b.leaf(norm, const=True).name)
    # epsilon 1e-12 amplifies an input's rounding by up to 1e6 where a row is nearly constant: both
    # engines then print noise. Only exact rows (whose variance is 0 or at least 2^-2bits) get it.
    eps = float(b.pick((1e-5, 1e-12, 0.1) if x.info.exact else (1e-5, 0.1)))
    mag = 3 * math.sqrt(n) + 3
    outs = [(F32, x.shape, inexact(-mag, mag, x.info.special))]
    if b.coin(0.2):
        row = tuple(x.shape[:a]) + (1,) * (r - a)
        outs += [(F32, row, inexact(x.info.lo, x.info.hi, x.info.special)),
                 (F32, row, inexact(0.0, 1 / math.sqrt(eps), x.info.special))]
    b.node("LayerNormalization", ins, outs, axis=axis, epsilon=eps)
    return True


def _product_info(a: Info, c: Info, k: int) -> Info:
    mag = a.mag * c.mag * max(k, 1)
    return exact_or_not(-mag, mag, a.bits + c.bits, a.special or c.special, a, c)


def gen_matmul(b: Builder) -> bool:
    x = b.operand(where=lambda t: len(t.shape) >= 1)
    if x is None:
        return False
    k = x.shape[-1]
    batch = x.shape[:-2]
    y = None
    if b.coin(0.35):  # a computed right operand of matching K
        y = b.operand(where=lambda t: len(t.shape) >= 2 and t.shape[-2] == k and _batch_ok(t.shape[:-2], batch))
    if y is None:
        n = b.dim()
        kind = b.pick(("2d", "batched", "vector"), (6, 2, 1))
        if kind == "vector" or len(x.shape) == 1 and kind == "batched":
            shape = (k,) if kind == "vector" else (k, n)
        elif kind == "batched" and batch:
            shape = tuple(d if b.coin(0.7) else 1 for d in batch) + (k, n)
        else:
            shape = (k, n)
        y = b.leaf(shape)
    sa = x.shape if len(x.shape) > 1 else (1,) + x.shape
    sb = y.shape if len(y.shape) > 1 else y.shape + (1,)
    out = tuple(np.broadcast_shapes(sa[:-2], sb[:-2])) + sa[-2:-1] * (len(x.shape) > 1) + sb[-1:] * (len(y.shape) > 1)
    if np.prod(out) > MAX_ELEMENTS or np.prod(out) * k > 1 << 17:
        return False
    b.node("MatMul", [x.name, y.name], [(F32, out, _product_info(x.info, y.info, k))])
    return True


def _batch_ok(a, c) -> bool:
    try:
        np.broadcast_shapes(a, c)
        return True
    except ValueError:
        return False


def gen_gemm(b: Builder) -> bool:
    x = b.operand(where=lambda t: len(t.shape) == 2)
    if x is None:
        return False
    trans_a, trans_b = b.coin(0.3), b.coin(0.4)
    m, k = x.shape[::-1] if trans_a else x.shape
    n = b.dim()
    if m * n > MAX_ELEMENTS:
        return False
    w = b.leaf((n, k) if trans_b else (k, n))
    alpha, beta = float(b.pick((1.0, 0.5, 2.0, -1.0, 0.1))), float(b.pick((1.0, 0.5, -2.0, 0.3)))
    ins = [x.name, w.name]
    info = _product_info(x.info, w.info, k)
    if b.coin(0.7):
        c = b.leaf(b.pick(((n,), (1, n), (m, 1), (m, n), ())))
        ins.append(c.name)
        mag = info.mag * abs(alpha) + c.info.mag * abs(beta)
        info = inexact(-mag, mag, info.special or c.info.special)
    elif alpha != 1.0:
        info = inexact(-info.mag * abs(alpha), info.mag * abs(alpha), info.special)
    b.node("Gemm", ins, [(F32, (m, n), info)], alpha=alpha, beta=beta, transA=int(trans_a), transB=int(trans_b))
    return True

