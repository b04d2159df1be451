"""Print sympy expressions as C++.

Loop variables print as themselves, load symbols through ``load_text`` (loads are printed
inline, so a Select only reads the branch it takes), and the opaque functions of
:mod:`polyfuse.forms.functions` as helpers from ``kernels/pf_runtime.h``. Numeric
subexpressions are evaluated to one literal.
"""
from __future__ import annotations

import numpy as np
import sympy

from ..forms import functions as F
from ..kernel.bounds import index_bounds
from ..ir.narrow_types import NARROW_TYPES

C_TYPES = {
    np.dtype(np.float32): "float", np.dtype(np.float64): "double", np.dtype(np.float16): "_Float16",
    np.dtype(np.int64): "int64_t", np.dtype(np.int32): "int32_t", np.dtype(np.int16): "int16_t",
    np.dtype(np.int8): "int8_t", np.dtype(np.uint64): "uint64_t", np.dtype(np.uint32): "uint32_t",
    np.dtype(np.uint16): "uint16_t", np.dtype(np.uint8): "uint8_t", np.dtype(np.bool_): "bool",
    **{t.dtype: t.c_type for t in NARROW_TYPES},  # their codes; only Decode/Encode read them as numbers
}

_UNARY = {F.Exp: "pf_exp", F.ExpNonPos: "pf_exp_nonpos", F.Log: "std::log", F.Tanh: "pf_tanh", F.Erf: "pf_erf", F.Sqrt: "std::sqrt",
          F.Abs: "std::abs", sympy.Abs: "std::abs", F.Sigmoid: "pf_sigmoid", F.IsNaN: "pf_isnan", F.IsFinite: "pf_isfinite"}
_CALLS = {F.Pow: "pf_pow", F.IntDiv: "pf_idiv", F.WrapIndex: "pf_wrap_index", F.FMax: "pf_max", F.FMin: "pf_min",
          F.Reflect: "pf_reflect", F.WrapMod: "pf_wrapmod", F.TruncMod: "pf_trunc_mod", F.FloorMod: "pf_floor_mod"}
_INFIX = {F.Less: "<", F.Greater: ">", F.LessEq: "<=", F.GreaterEq: ">=", F.Equal: "==",
          F.LogicalAnd: "&&", F.LogicalOr: "||"}
_NO_SHORT_CIRCUIT = {F.LogicalAnd: "pf_and", F.LogicalOr: "pf_or"}


def c_type(dtype) -> str:
    return C_TYPES[np.dtype(dtype)]


def storage_type(dtype) -> str:
    """The element type of a buffer pointer: bool tensors are read and written as uint8_t (0 or
    1, the same bytes). GCC has no vector type for bool, so a loop that loads a bool (an
    attention mask in a Select) stays scalar; through uint8_t it vectorises (tiny BERT's
    masked softmax row: the mask pass went from one branch per element to AVX2)."""
    return "uint8_t" if np.dtype(dtype) == np.bool_ else c_type(dtype)


def float_literal(x: float, single: bool = True) -> str:
    if np.isnan(x):
        return "NAN"
    if np.isinf(x) or (single and abs(x) > float(np.finfo(np.float32).max)):
        return "INFINITY" if x > 0 else "(-INFINITY)"
    s = str(np.float32(x)) if single else repr(float(x))
    if not any(c in s for c in ".en"):
        s += ".0"
    s = s + "f" if single else s
    return f"({s})" if s.startswith("-") else s


def int_literal(i: int) -> str:
    if i >= 2 ** 64 or i < -2 ** 63:
        return f"({float(i)!r})"  # no C integer type holds it: only a float context can use it
    if i >= 2 ** 63:
        return f"{i}ULL"  # a uint64 constant
    if i == -2 ** 63:
        return "(-9223372036854775807LL - 1)"  # the literal 9223372036854775808LL does not fit
    s = f"{i}LL" if abs(i) >= 2 ** 31 else str(i)
    return f"({s})" if i < 0 else s


class CPrinter:
    """C++ for the CPU targets. A C-family language differs by the class tables below (element
    types, function names per opaque function, infix operators): a subclass for another
    dialect (OpenCL C) overrides them, and the printing logic stays shared.

    ``guarded``: the load symbols whose index may be out of range where a Select does not take
    them (kernel/bounds.py), or None when unknown. A Select whose branches read no guarded load
    prints as ``pf_select(c, a, b)``, which evaluates both: a blend, never a conditional (masked)
    load, which gcc 12 vectorises wrongly in some loops (tests/compiler_bugs/). For the same
    reason And and Or whose second operand reads no guarded load print as ``pf_and(a, b)`` and
    ``pf_or(a, b)``, not as the short-circuit ``&&`` and ``||``."""

    TYPES = C_TYPES
    UNARY = _UNARY
    CALLS = _CALLS
    INFIX = _INFIX
    SQRT, POW = "std::sqrt", "std::pow"
    INDEX_T = "int64_t"  # loop variables and flat indices

    # Declarations and constants the kernel view (codegen/view.py, kernels.py) prints.
    @classmethod
    def type_name(cls, dtype) -> str:
        return cls.TYPES[np.dtype(dtype)]

    @classmethod
    def accumulator_type(cls, dtype) -> str:
        """A reduction's accumulator type (a float32 LayerNorm over a long row asks for double:
        kernel/lower.py LONG_ROW)."""
        return cls.type_name(dtype)

    @classmethod
    def storage_type(cls, dtype) -> str:
        """A buffer's element type: bool is read and written as bytes (see :func:`storage_type`)."""
        return cls.TYPES[np.dtype(np.uint8)] if np.dtype(dtype) == np.bool_ else cls.type_name(dtype)

    @staticmethod
    def literal(x: float, single: bool = True) -> str:
        return float_literal(x, single)

    @staticmethod
    def int_literal(i: int) -> str:
        return int_literal(i)

    @staticmethod
    def element(pointer: str, index: str, type_name: str) -> str:
        """The element ``index`` of a buffer of ``type_name`` as a value to compute with."""
        return f"{pointer}[{index}]"

    @staticmethod
    def buffer_param(k: int, type_name: str) -> str:
        """Kernel parameter ``pK``: p0 is the output, the others are read only."""
        return f"{type_name}* __restrict p0" if k == 0 else f"const {type_name}* __restrict p{k}"

    @staticmethod
    def lowest(type_name: str) -> str:
        return f"std::numeric_limits<{type_name}>::lowest()"

    @staticmethod
    def infinity(type_name: str) -> str:
        return f"std::numeric_limits<{type_name}>::infinity()"

    @staticmethod
    def quiet_nan(type_name: str) -> str:
        return f"std::numeric_limits<{type_name}>::quiet_NaN()"

    def __init__(self, names=None, single: bool = True, guarded: set | None = None):
        self.names = names or {}  # symbol -> C text (loads, accumulators)
        self.single = single
        self.guarded = guarded

    def __call__(self, e) -> str:
        return self.p(sympy.sympify(e))

    def p(self, e) -> str:
        if e in self.names:
            return self.names[e]
        if e.is_Integer:
            return self.int_literal(int(e))
        if e is sympy.nan:
            return "NAN"
        if e in (sympy.oo, -sympy.oo, sympy.zoo):
            return "INFINITY" if e is sympy.oo else "(-INFINITY)"
        if e.is_Symbol:
            return e.name
        if e.is_number and not any(isinstance(a, F._Opaque) for a in e.atoms(sympy.Function)):
            return float_literal(float(e.evalf()), self.single)
        if e.is_Add:
            return self._add(e)
        if e.is_Mul:
            return self._mul(e)
        if e.is_Pow:
            return self._pow(e)
        return self._func(e)

    def _add(self, e) -> str:
        terms = sorted(e.args, key=lambda t: t.is_number)  # constants last: `x + 1`
        out = self.p(terms[0])
        for t in terms[1:]:
            negative = t.as_coeff_Mul()[0].is_negative
            out += " - " + self.p(-t) if negative else " + " + self.p(t)
        return f"({out})"

    def _mul(self, e) -> str:
        c, rest = e.as_coeff_Mul()
        if c == -1:
            return f"(-{self.p(rest)})"
        num, den = [], []
        for f in sympy.Mul.make_args(e):
            if f.is_Pow and f.exp.is_number and f.exp < 0:
                den.append(f.base ** -f.exp)
            elif f.is_Rational and not f.is_Integer:
                num.append(sympy.Float(f))
            else:
                num.append(f)
        text = " * ".join(self.p(f) for f in num) if num else (float_literal(1.0, self.single))
        for d in den:
            text = f"{text} / {self.p(d)}"
        return f"({text})"

    def _pow(self, e) -> str:
        b, x = e.base, e.exp
        if x == sympy.Rational(1, 2):
            return f"{self.SQRT}({self.p(b)})"
        if x.is_Integer and 1 <= int(x) <= 4:
            return "(" + " * ".join([self.p(b)] * int(x)) + ")"
        if x.is_number and x < 0:
            return f"({float_literal(1.0, self.single)} / {self.p(b ** -x)})"
        return f"{self.POW}({self.p(b)}, {self.p(x)})"

    def _func(self, e) -> str:
        f = e.func
        if f is sympy.floor:  # index arithmetic: C's / and % truncate, so only a provably non-negative
            num, den = sympy.fraction(sympy.together(e.args[0]))  # numerator may use them directly
            num = sympy.expand(num)
            if index_bounds(num, {})[0] >= 0:
                return f"({self.p(num)} / {self.p(den)})"
            return f"pf_floordiv({self.p(num)}, {self.p(den)})"
        if f is sympy.Mod:  # sympy reduces Mod(97 - 6*i, 33) to Mod(31 - 6*i, 33), negative for i > 5
            lo, hi = index_bounds(e.args[0], {})
            n = int(e.args[1]) if e.args[1].is_Integer else None
            if n is not None and lo >= 0 and hi < n:
                return self.p(e.args[0])  # already in [0, n): pf_wrap_index(...) % n
            if lo >= 0:
                return f"({self.p(e.args[0])} % {self.p(e.args[1])})"
            return f"pf_wrapmod({self.p(e.args[0])}, {self.p(e.args[1])})"
        args = [self.p(a) for a in e.args]
        if f in self.UNARY:
            return f"{self.UNARY[f]}({args[0]})"
        if f in self.CALLS:
            return f"{self.CALLS[f]}({', '.join(args)})"
        if f in _NO_SHORT_CIRCUIT and self._unguarded(e.args[1:]):
            return f"{_NO_SHORT_CIRCUIT[f]}({args[0]}, {args[1]})"
        if f in self.INFIX:
            return f"({args[0]} {self.INFIX[f]} {args[1]})"
        if f is F.LogicalNot:
            return f"(!{args[0]})"
        if f is F.Special:
            return float_literal(F.special_value(e), self.single)
        if f is F.Use:
            return args[0]
        if f is F.Select:
            if self._unguarded(e.args[1:]):
                return f"pf_select({', '.join(args)})"
            return f"({args[0]} ? {args[1]} : {args[2]})"
        if f is F.Cast:
            to = F.CAST_DTYPES[int(e.args[1])]
            return f"({args[0]} != 0)" if to == np.bool_ else self.cast(args[0], self.type_name(to))
        if f is F.Decode:
            return f"{NARROW_TYPES[int(e.args[1])].decode}({args[0]})"
        if f is F.Encode:
            return f"{NARROW_TYPES[int(e.args[1])].encode}({args[0]}, {'true' if e.args[2] else 'false'}, {args[3]})"
        raise NotImplementedError(f"no C++ for {f}")

    def _unguarded(self, exprs) -> bool:
        """Whether evaluating ``exprs`` everywhere reads no load that may be out of range."""
        return self.guarded is not None and not (set().union(*(a.free_symbols for a in exprs)) & self.guarded)

    def cast(self, text: str, type_name: str) -> str:
        return f"static_cast<{type_name}>({text})"

    @staticmethod
    def as_type(text: str, type_name: str) -> str:
        """A number (a count) as ``type_name``: C++'s functional notation."""
        return f"{type_name}({text})"
