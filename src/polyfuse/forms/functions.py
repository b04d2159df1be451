"""sympy functions for the operations whose sympy counterpart would compute wrongly.

sympy evaluates eagerly with the rules of real (or complex) numbers, not IEEE floats. Its own
relational and logic classes, and its abs, exp, log, sqrt, tanh, erf and fractional powers, come
with rewrites that do not hold for every float: ``exp(log(x)) -> x`` is wrong for x < 0 (NaN),
``sqrt(x)**2 -> x`` likewise, ``x*0 -> 0`` and ``x - x -> 0`` are wrong for x = inf or NaN. So
comparisons, selects, casts, integer division, NaN tests, transcendental functions, powers with
exponents that are not integers and the constants 0, inf and NaN are opaque functions here:
sympy keeps them as they are. Each prints to C (``codegen/printer.py``).

The rewrites sympy still applies to value expressions, and where they hold:

* arithmetic on numbers (constant folding, ``x/c1*c2 -> x*(c2/c1)``, ``2*x + 3*x -> 5*x`` for
  one symbol): for every x, up to float rounding of the constants; it differs only where the
  unfused order would overflow in between;
* ``x*1 -> x``, ``-(-x) -> x``, ``(x**a)**b -> x**(a*b)`` for integers a, b, ``x**0 -> 1``,
  ``|-x| -> |x|``: for every x, NaN and inf included (``pow(NaN, 0) = 1`` in C and ONNX);
* cancellations such as ``x - x``, ``x/x``, ``x**2/x``: never applied, because every read of
  a tensor element is its own symbol (:class:`polyfuse.kernel.ir.Loads` never merges two
  reads), and every read of a result fused into its producer's epilogue its own :class:`Use`,
  so no two terms are the same expression;
* reassociation of sums (``(a - b) + c -> (a + c) - b``, ``3*(a + b) -> 3*a + 3*b``): never
  applied, because each Add and Sub of the model is a :class:`Use`, which sympy does not flatten
  into the sums and products around it. Products may be regrouped and their numeric factors
  folded: that changes a result by a few ulps, never by cancellation.
"""
from __future__ import annotations

import itertools

import numpy as np
import sympy


class _Opaque(sympy.Function):
    """A function sympy must not evaluate or rewrite."""

    @classmethod
    def eval(cls, *args):
        return None


def _named(name: str, nargs: int):
    return type(name, (_Opaque,), {"nargs": nargs})


Abs = _named("Abs_", 1)  # sympy rewrites Abs(f) of an unknown function as sqrt(f * conjugate(f))
Exp = _named("Exp", 1)
# exp of an argument that is never above 0 (or NaN): x - max(x) in a softmax. It prints to a
# cheaper exp (kernels/pf_runtime.h pf_exp_nonpos), which returns 0 where exp would be subnormal.
ExpNonPos = _named("ExpNonPos", 1)
Log = _named("Log", 1)
Sqrt = _named("Sqrt", 1)
Tanh = _named("Tanh", 1)
Erf = _named("Erf", 1)
Pow = _named("Power", 2)  # x ** y for an exponent that is not a known integer (not "Pow": sympy prints that name)

# Special(k, n): the float constant SPECIAL_VALUES[k] (+0, -0, +inf, -inf, NaN), which sympy
# would compute with as a real number (0 * x = 0) or as its own oo/nan. n numbers each use, so
# two uses are never the same expression: x + inf - inf must not cancel to x.
class Special(_Opaque):
    nargs = 2

    def _sympystr(self, printer) -> str:  # the value alone: generated-code comments stay the same
        return repr(special_value(self))


SPECIAL_VALUES = (0.0, -0.0, float("inf"), float("-inf"), float("nan"))
_uses = itertools.count()


class Use(_Opaque):
    """Use(x, n): x kept whole, printed as x. sympy neither cancels it against an equal term (n
    numbers each use: x - x must stay NaN for x = inf) nor flattens it into an enclosing sum. A
    model's Add or Sub is one (:func:`whole`): ``(a - b) + c`` rounds a - b first, as onnxruntime
    does; reordered as ``(a + c) - b`` it gave 1 instead of 0.999 for a = b = 1e6, c = 0.999."""
    nargs = 2

    def _sympystr(self, printer) -> str:
        return f"({printer.doprint(self.args[0])})"


def whole(x) -> sympy.Expr:
    """``x`` as one term that sympy will not regroup (see :class:`Use`); a number stays a number."""
    return x if x.is_Number or x.is_Symbol else Use(x, sympy.Integer(next(USES)))


USES = itertools.count()


def special_value(e) -> float:
    return SPECIAL_VALUES[int(e.args[0])]


def special(x: float) -> sympy.Expr:
    """The opaque constant for a float that is 0, -0, +-inf or NaN."""
    if x != x:
        k = 4
    elif x == 0:
        k = 1 if np.signbit(x) else 0
    else:
        k = 2 if x > 0 else 3
    return Special(sympy.Integer(k), sympy.Integer(next(_uses)))


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
CAST_DTYPES = [np.dtype(t) for t in (np.float32, np.float64, np.int64, np.int32, np.bool_, np.uint8, np.int8, np.float16,
                                     np.int16, np.uint16, np.uint32, np.uint64)]


def cast(x, dtype) -> sympy.Expr:
    return Cast(x, sympy.Integer(CAST_DTYPES.index(np.dtype(dtype))))


# The narrow types (ir/narrow_types.py; k indexes NARROW_TYPES): Decode(code, k) is the value a
# code stands for, Encode(x, k, saturate, r) the code for x (Cast's saturate, ROUND_MODES[r]).
Decode = _named("Decode", 2)
Encode = _named("Encode", 4)


ALL = (Abs, Exp, ExpNonPos, Log, Sqrt, Tanh, Erf, Pow, Special, Use, Less, Greater, LessEq, GreaterEq, Equal, LogicalAnd, LogicalOr, LogicalNot, IsNaN, IsFinite, Select,
       IntDiv, TruncMod, FloorMod, Sigmoid, WrapIndex, FMax, FMin, Reflect, WrapMod, Cast, Decode, Encode)
