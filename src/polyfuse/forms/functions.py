"""sympy functions for the operations that have no exact sympy counterpart.

sympy's own relational and logic classes evaluate eagerly and carry mathematical (not IEEE or
C) semantics, so comparisons, selects, casts, integer division and NaN tests are opaque
functions here. Each prints to a helper in ``kernels/pf_runtime.h``.
"""
from __future__ import annotations

import numpy as np
import sympy


class _Opaque(sympy.Function):
    """A function sympy must not evaluate or rewrite."""

    @classmethod
    def eval(cls, *args):
        return None


def _named(name: str, nargs: int):
    return type(name, (_Opaque,), {"nargs": nargs})


Less = _named("Less", 2)
Greater = _named("Greater", 2)
LessEq = _named("LessEq", 2)
GreaterEq = _named("GreaterEq", 2)
Equal = _named("Equal", 2)
LogicalAnd = _named("LogicalAnd", 2)
LogicalOr = _named("LogicalOr", 2)
LogicalNot = _named("LogicalNot", 1)
IsNaN = _named("IsNaN", 1)
IsFinite = _named("IsFinite", 1)
Select = _named("Select", 3)  # Select(cond, a, b) = cond ? a : b
IntDiv = _named("IntDiv", 2)  # C-style truncating integer division
TruncMod = _named("TruncMod", 2)  # remainder with the dividend's sign (C's %, std::fmod)
FloorMod = _named("FloorMod", 2)  # remainder with the divisor's sign (Python's %)
Sigmoid = _named("Sigmoid", 1)
WrapIndex = _named("WrapIndex", 2)  # WrapIndex(i, n): i<0 ? i+n : i, clamped into [0, n)
FMax = _named("FMax", 2)  # max with C++ std::max semantics on the operands' common type
FMin = _named("FMin", 2)
Reflect = _named("Reflect", 2)  # Reflect(i, n): mirror i into [0, n) without repeating the edge
WrapMod = _named("WrapMod", 2)  # WrapMod(i, n): i mod n in [0, n)

# Cast(x, code): code is a sympy Integer naming the target dtype in CAST_DTYPES.
Cast = _named("Cast", 2)
CAST_DTYPES = [np.dtype(t) for t in (np.float32, np.float64, np.int64, np.int32, np.bool_, np.uint8, np.int8, np.float16)]


def cast(x, dtype) -> sympy.Expr:
    return Cast(x, sympy.Integer(CAST_DTYPES.index(np.dtype(dtype))))


ALL = (Less, Greater, LessEq, GreaterEq, Equal, LogicalAnd, LogicalOr, LogicalNot, IsNaN, IsFinite, Select,
       IntDiv, TruncMod, FloorMod, Sigmoid, WrapIndex, FMax, FMin, Reflect, WrapMod, Cast)
