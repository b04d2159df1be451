"""Pointwise op generators: unary math, binary arithmetic with broadcasting, comparisons and
logic, Where, Clip, Cast. Each returns False when it does not apply to what the pool holds."""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
from onnx import TensorProto

from .core import BOOL, F32, FLT_MAX, F64, I64, MAX_ELEMENTS, Builder, Info, broadcasts, exact_or_not, inexact, out_shape


_UNARY_SMOOTH = {
    "Tanh": lambda i: inexact(math.tanh(i.lo), math.tanh(i.hi), i.special),
    "Erf": lambda i: inexact(math.erf(i.lo), math.erf(i.hi), i.special),
    "Sigmoid": lambda i: inexact(1 / (1 + math.exp(-max(i.lo, -80))), 1 / (1 + math.exp(-min(i.hi, 80))), i.special),
}


def gen_unary(b: Builder) -> bool:
    op = b.pick(("Neg", "Abs", "Relu", "Exp", "Log", "Sqrt", "Tanh", "Erf", "Sigmoid", "Reciprocal", "Gelu", "IsNaN"),
                (3, 2, 3, 2, 2, 2, 2, 2, 2, 1, 1, 1))
    if op == "Gelu" and b.opset < 20:
        op = "Erf"
    x = b.operand()
    if x is None:
        return False
    i = x.info
    if op == "Neg":
        info = replace(i, lo=-i.hi, hi=-i.lo)
    elif op == "Abs":
        info = replace(i, lo=0.0 if i.lo <= 0 <= i.hi else min(abs(i.lo), abs(i.hi)), hi=i.mag)
    elif op == "Relu":
        info = replace(i, lo=max(i.lo, 0.0), hi=max(i.hi, 0.0))
    elif op == "Exp":
        if i.hi > 20:
            return False
        info = inexact(math.exp(max(i.lo, -700)), math.exp(i.hi), i.special)
    elif op in ("Log", "Sqrt"):
        if not (i.exact or i.lo > 0.01):
            return False
        tiny = 2.0 ** -i.bits if i.exact else i.lo
        special = i.special or i.lo <= 0
        f = math.log if op == "Log" else math.sqrt
        info = inexact(f(max(i.lo, tiny)), f(max(i.hi, tiny)), special)
    elif op == "Reciprocal":
        if not ((i.exact and x.leaf) or i.lo > 0.01 or i.hi < -0.01):
            return False
        big = 2.0 ** i.bits if i.exact else 1 / min(abs(i.lo), abs(i.hi))
        info = inexact(-big, big, i.special or i.lo <= 0 <= i.hi)
    elif op == "Gelu":
        info = inexact(-0.2, max(i.hi, 0.0), i.special)
    elif op == "IsNaN":
        b.node(op, [x.name], [(BOOL, x.shape, Info(0, 1, True))])
        return True
    else:
        info = _UNARY_SMOOTH[op](i)
    b.node(op, [x.name], [(F32, x.shape, info)])
    return True


def gen_binary(b: Builder) -> bool:
    op = b.pick(("Add", "Sub", "Mul", "Div", "Pow", "Max", "Min"), (4, 3, 4, 2, 1, 2, 2))
    x = b.operand()
    if x is None:
        return False
    if op in ("Max", "Min") and b.coin(0.3):  # variadic: 1 or 3 operands
        ys = [] if b.coin(0.3) else [b.broadcast_partner(x), b.broadcast_partner(x)]
    else:
        ys = [b.broadcast_partner(x)]
    if not broadcasts(*[t.shape for t in [x, *ys]]) or np.prod(out_shape(x, *ys)) > MAX_ELEMENTS:
        return False
    a = x.info
    c = ys[0].info if ys else a
    special = any(t.info.special for t in [x, *ys])
    if op in ("Add", "Sub"):
        lo, hi = (a.lo + c.lo, a.hi + c.hi) if op == "Add" else (a.lo - c.hi, a.hi - c.lo)
        info = exact_or_not(lo, hi, max(a.bits, c.bits), special, a, c)
    elif op == "Mul":
        p = [a.lo * c.lo, a.lo * c.hi, a.hi * c.lo, a.hi * c.hi]
        info = exact_or_not(min(p), max(p), a.bits + c.bits, special, a, c)
    elif op == "Div":
        y = ys[0]
        if not ((c.exact and y.leaf) or c.lo > 0.01 or c.hi < -0.01):
            return False
        small = 2.0 ** -c.bits if c.exact else min(abs(c.lo), abs(c.hi))
        big = a.mag / small
        info = inexact(-big, big, special or c.lo <= 0 <= c.hi)
    elif op == "Pow":  # by a constant exponent
        e = float(b.pick((2.0, 3.0, 0.5, -1.0, 1.5)))
        whole = e == int(e)
        if not whole and not a.exact and a.lo < 0.01:
            return False  # a fractional power of a value that may round below 0
        if e < 0 and not (a.exact and x.leaf) and not (a.lo > 0.01 or a.hi < -0.01):
            return False
        small = 2.0 ** -a.bits if a.exact else max(min(abs(a.lo), abs(a.hi)), 1e-6)
        mag = a.mag ** e if e > 0 else small ** e
        if mag > 1e6:
            return False
        exact = e in (2.0, 3.0) and a.keeps_exact(mag, a.bits * int(e))
        special = a.special or (e < 0 and a.lo <= 0 <= a.hi) or (not whole and a.lo < 0)
        info = Info(0.0 if e == 2.0 or not whole else -mag, mag, exact, a.bits * int(e) if exact else 0, special)
        b.node(op, [x.name, b.const(np.float32(e), F32)], [(F32, x.shape, info)])
        return True
    else:
        los, his = [t.info.lo for t in [x, *ys]], [t.info.hi for t in [x, *ys]]
        f = max if op == "Max" else min
        info = exact_or_not(f(los), f(his), max(t.info.bits for t in [x, *ys]), special, *[t.info for t in [x, *ys]])
    b.node(op, [x.name] + [y.name for y in ys], [(F32, out_shape(x, *ys), info)])
    return True


def gen_compare(b: Builder) -> bool:
    """A bool tensor: a comparison of exact operands, or And/Or/Not of bools."""
    bools = [t for t in b.pool if t.dtype == BOOL]
    if bools and b.coin(0.3):
        p = bools[-1] if b.coin(0.5) else b.pick(bools)
        if b.coin(0.4):
            b.node("Not", [p.name], [(BOOL, p.shape, Info(0, 1, True))])
            return True
        q = b.operand(BOOL, where=lambda q: broadcasts(q.shape, p.shape))
        b.node(b.pick(("And", "Or")), [p.name, q.name], [(BOOL, out_shape(p, q), Info(0, 1, True))])
        return True
    x = b.operand(exact=True)
    if x is None:
        return False
    y = b.broadcast_partner(x, exact=True)
    if not y.info.exact or np.prod(out_shape(x, y)) > MAX_ELEMENTS:
        return False
    op = b.pick(("Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual"))
    b.node(op, [x.name, y.name], [(BOOL, out_shape(x, y), Info(0, 1, True))])
    return True


def gen_where(b: Builder) -> bool:
    cond = b.operand(BOOL)
    x = b.operand()
    if cond is None or x is None:
        return False
    y = b.broadcast_partner(x)
    if not broadcasts(cond.shape, out_shape(x, y)):
        return False
    shape = tuple(np.broadcast_shapes(cond.shape, x.shape, y.shape))
    if np.prod(shape) > MAX_ELEMENTS:
        return False
    a, c = x.info, y.info
    info = exact_or_not(min(a.lo, c.lo), max(a.hi, c.hi), max(a.bits, c.bits), a.special or c.special, a, c)
    ins = [cond.name, x.name, y.name] if b.coin() else [cond.name, y.name, x.name]
    b.node("Where", ins, [(F32, shape, info)])
    return True


def gen_clip(b: Builder) -> bool:
    x = b.operand()
    if x is None:
        return False
    lo = float(b.rng.integers(-8, 1)) / 4 if b.coin(0.8) else None
    hi = float(b.rng.integers(0, 9)) / 4 if b.coin(0.8) else None
    ins = [x.name, b.const(np.float32(lo), F32) if lo is not None else "", b.const(np.float32(hi), F32) if hi is not None else ""]
    while ins[-1] == "":
        ins.pop()
    i = x.info
    nlo = i.lo if lo is None else max(i.lo, lo)
    nhi = i.hi if hi is None else min(i.hi, hi)
    info = replace(i, lo=min(nlo, nhi), hi=max(nlo, nhi), bits=max(i.bits, 2))
    if i.special and (lo is None or hi is None):  # an omitted bound is FLT_MAX: -inf becomes -3.4e38, finite
        info = inexact(-FLT_MAX if lo is None else info.lo, FLT_MAX if hi is None else info.hi, True)
    b.node("Clip", ins, [(F32, x.shape, info)])
    return True


def gen_cast(b: Builder) -> bool:
    kind = b.pick(("f2i", "b2f", "f2b", "f2d2f"), (2, 2, 1, 2))
    if kind in ("f2i", "f2b"):
        x = b.operand(exact=True)
        if x is None:
            return False
        if kind == "f2b":
            b.node("Cast", [x.name], [(BOOL, x.shape, Info(0, 1, True))], to=TensorProto.BOOL)
            return True
        if x.info.special or x.info.mag > 1e6:
            return False  # NaN/inf to integer is undefined in ONNX
        (y,) = b.node("Cast", [x.name], [(I64, x.shape, replace(x.info, bits=0))], to=TensorProto.INT64)
        b.node("Cast", [y.name], [(F32, x.shape, Info(math.trunc(x.info.lo), math.trunc(x.info.hi), True, 0))],
               to=TensorProto.FLOAT)
        return True
    if kind == "b2f":
        x = b.operand(BOOL)
        if x is None:
            return False
        b.node("Cast", [x.name], [(F32, x.shape, Info(0, 1, True))], to=TensorProto.FLOAT)
        return True
    x = b.operand()  # float -> double, some math in double, -> float
    if x is None:
        return False
    (d,) = b.node("Cast", [x.name], [(F64, x.shape, x.info)], to=TensorProto.DOUBLE)
    op = b.pick(("Mul", "Add", "Tanh", "Sqrt", "Neg"))
    if op in ("Mul", "Add"):
        k = b.const(np.float64(b.pick((0.1, 3.0, -1.5))), F64)
        (d,) = b.node(op, [d.name, k], [(F64, x.shape, inexact(-4 * x.info.mag - 3, 4 * x.info.mag + 3, x.info.special))])
    elif op == "Sqrt" and (x.info.exact or x.info.lo > 0.01):
        (d,) = b.node(op, [d.name], [(F64, x.shape, inexact(0, math.sqrt(x.info.mag), True))])
    elif op in ("Tanh", "Neg"):
        (d,) = b.node(op, [d.name], [(F64, x.shape, inexact(-x.info.mag, x.info.mag, x.info.special))])
    b.node("Cast", [d.name], [(F32, x.shape, d.info)], to=TensorProto.FLOAT)
    return True
