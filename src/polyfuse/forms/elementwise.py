"""Elementwise ops as sympy expressions of their input elements.

``FORMS[op](args, attrs, dtypes)`` returns the output element as an expression of ``args``
(one sympy expression per input; None for an omitted optional input). ``dtypes`` are the input
dtypes, needed where integer and float semantics differ (Div, Pow).
"""
from __future__ import annotations

import ml_dtypes
import numpy as np
import sympy
from sympy import Integer, Rational

from . import functions as F
from ..ir.narrow_types import NARROW_TYPES, ROUND_MODES, narrow_type
from .movement import number


def _is_int(dt) -> bool:
    return np.issubdtype(np.dtype(dt), np.integer)


def _div(a, b, dt):
    return F.IntDiv(a[0], a[1]) if _is_int(dt[0]) else a[0] / a[1]


def _pow(a, b, dt):
    """x ** n for a known integer n (sympy's power rules hold for every float there, NaN and inf
    included), else the opaque F.Pow: (x ** 0.5) ** 2 is NaN for x < 0, not x. An integer base
    with a negative or unknown exponent goes through double, as C++ std::pow does."""
    x, y = a
    n = int(y) if y.is_number and not isinstance(y, F._Opaque) and y.is_finite and y == int(y) else None
    if n is not None and (n >= 0 or not _is_int(dt[0])):
        return x ** Integer(n)
    return F.cast(F.Pow(x, y), dt[0]) if _is_int(dt[0]) else F.Pow(x, y)


def _extreme(fn):
    def form(a, attrs, dt):
        out = a[0]
        for x in a[1:]:
            out = fn(out, x)
        return out
    return form


def _gelu(a, attrs, dt):
    x = a[0]
    if attrs.get("approximate", "none") == "tanh":
        return Rational(1, 2) * x * (1 + F.Tanh(sympy.sqrt(2 / sympy.pi) * (x + sympy.Float(0.044715) * x ** 3)))
    return Rational(1, 2) * x * (1 + F.Erf(x / sympy.sqrt(2)))


def _clip(a, attrs, dt):
    """min(max(x, lo), hi); an omitted bound is the type's lowest / largest value (ONNX's default,
    as onnxruntime computes it: Clip(inf) with no max is FLT_MAX, not inf). A NaN stays NaN."""
    x = a[0]
    limits = np.finfo(dt[0]) if np.issubdtype(np.dtype(dt[0]), np.floating) else np.iinfo(dt[0])
    lo = a[1] if len(a) > 1 and a[1] is not None else number(limits.min)
    hi = a[2] if len(a) > 2 and a[2] is not None else number(limits.max)
    return F.FMin(F.FMax(x, lo), hi)


FORMS = {
    "Add": lambda a, at, dt: F.whole(a[0] + a[1]),
    "Sub": lambda a, at, dt: F.whole(a[0] - a[1]),
    "Mul": lambda a, at, dt: a[0] * a[1],
    "Div": lambda a, at, dt: _div(a, at, dt),
    "Pow": lambda a, at, dt: _pow(a, at, dt),
    "Mod": lambda a, at, dt: (F.TruncMod if int(at.get("fmod", 0)) else F.FloorMod)(a[0], a[1]),
    "Sqrt": lambda a, at, dt: F.Sqrt(a[0]),
    "Erf": lambda a, at, dt: F.Erf(a[0]),
    "Tanh": lambda a, at, dt: F.Tanh(a[0]),
    "Relu": lambda a, at, dt: F.FMax(a[0], Integer(0)),
    "Sigmoid": lambda a, at, dt: F.Sigmoid(a[0]),
    "Gelu": _gelu,
    "Neg": lambda a, at, dt: -a[0],
    "Exp": lambda a, at, dt: F.Exp(a[0]),
    "Log": lambda a, at, dt: F.Log(a[0]),
    "Abs": lambda a, at, dt: F.Abs(a[0]),
    "Reciprocal": lambda a, at, dt: 1 / a[0],
    "Clip": _clip,
    "Max": _extreme(F.FMax),
    "Min": _extreme(F.FMin),
    "Where": lambda a, at, dt: F.Select(a[0], a[1], a[2]),
    "Equal": lambda a, at, dt: F.Equal(a[0], a[1]),
    "Less": lambda a, at, dt: F.Less(a[0], a[1]),
    "Greater": lambda a, at, dt: F.Greater(a[0], a[1]),
    "GreaterOrEqual": lambda a, at, dt: F.GreaterEq(a[0], a[1]),
    "LessOrEqual": lambda a, at, dt: F.LessEq(a[0], a[1]),
    "And": lambda a, at, dt: F.LogicalAnd(a[0], a[1]),
    "Or": lambda a, at, dt: F.LogicalOr(a[0], a[1]),
    "Not": lambda a, at, dt: F.LogicalNot(a[0]),
    "IsNaN": lambda a, at, dt: F.IsNaN(a[0]),
    "Cast": lambda a, at, dt: _cast(a[0], np.dtype(dt[0]), _onnx_dtype(at["to"]), at),
    "Identity": lambda a, at, dt: a[0],
}


def _cast(x, src: np.dtype, to: np.dtype, attrs: dict):
    """A C conversion between standard types; to or from a narrow type (ir/narrow_types.py) through
    its decode and encode helpers. A narrow float becomes an integer only where its truncation is
    in the integer's range, else 0 (ml_dtypes' conversion, which ONNX's reference uses)."""
    s, t = narrow_type(src), narrow_type(to)
    if s is None and t is None:
        return F.cast(x, to)
    saturate = int(t is not None and t.saturate and bool(attrs.get("saturate", 1)))
    if src == to and not saturate and to != ml_dtypes.float8_e8m0fnu:
        return x  # else it re-encodes, as ONNX's reference does (E5M2's inf saturates)
    if s is not None:
        x = F.Decode(x, Integer(NARROW_TYPES.index(s)))
        if t is None and not s.integer and to.kind in "iu":
            lo, hi = (-2.0 ** (8 * to.itemsize - 1), 2.0 ** (8 * to.itemsize - 1)) if to.kind == "i" else \
                (0.0, 2.0 ** (8 * to.itemsize))
            x = F.Select(F.LogicalAnd(F.GreaterEq(x, sympy.Float(lo)), F.Less(x, sympy.Float(hi))), x, Integer(0))
    if t is None:
        return F.cast(x, to)
    mode = ROUND_MODES.index(attrs.get("round_mode", "up"))
    return F.Encode(x, Integer(NARROW_TYPES.index(t)), Integer(saturate), Integer(mode))


def _onnx_dtype(code: int) -> np.dtype:
    import onnx.helper

    return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(int(code)))


def element_form(op_type: str, args, attrs: dict, dtypes) -> sympy.Expr:
    return FORMS[op_type](list(args), attrs, list(dtypes))
