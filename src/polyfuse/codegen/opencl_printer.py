"""Print sympy expressions as OpenCL C (the ``android-gpu`` target's kernels).

The same printing logic as :class:`CPrinter`; what differs is the tables: OpenCL's type names
(``long`` is 64 bits), its math built-ins, ``long`` literals, limits from its macros and
``__global`` buffer parameters. The helpers (pf_max, pf_pow, ...) are defined by the program's
prelude, ``kernels/opencl/pf_cl_prelude.h``. Phone GPUs have no double precision and polyfuse
does not compute on narrow types here yet: a kernel that needs them is refused when it is printed.
"""
from __future__ import annotations

import numpy as np
import sympy

from ..errors import UnsupportedError
from ..forms import functions as F
from .printer import CPrinter

CL_TYPES = {
    np.dtype(np.float32): "float", np.dtype(np.int64): "long", np.dtype(np.int32): "int",
    np.dtype(np.int16): "short", np.dtype(np.int8): "char", np.dtype(np.uint64): "ulong",
    np.dtype(np.uint32): "uint", np.dtype(np.uint16): "ushort", np.dtype(np.uint8): "uchar",
    np.dtype(np.bool_): "bool",
    np.dtype(np.float16): "half",  # storage only: read with vload_half, written with vstore_half
}
_LOWEST = {"float": "(-FLT_MAX)", "long": "LONG_MIN", "int": "INT_MIN", "short": "SHRT_MIN", "char": "CHAR_MIN",
           "ulong": "0", "uint": "0", "ushort": "0", "uchar": "0"}


class OpenCLPrinter(CPrinter):
    TYPES = CL_TYPES
    UNARY = {**CPrinter.UNARY, F.Exp: "exp", F.ExpNonPos: "exp", F.Log: "log", F.Tanh: "tanh", F.Erf: "erf", F.Sqrt: "sqrt",
             F.Abs: "pf_abs", sympy.Abs: "pf_abs"}
    SQRT, POW = "sqrt", "pow"
    INDEX_T = "long"

    def __init__(self, names=None, single: bool = True, guarded: set | None = None):
        if not single:
            raise UnsupportedError("float64 is not supported by the android-gpu target (phone GPUs have no double "
                                   "precision): cast the model to float32")
        super().__init__(names, single, guarded)

    @classmethod
    def type_name(cls, dtype) -> str:
        t = cls.TYPES.get(np.dtype(dtype))
        if t is None:
            raise UnsupportedError(f"element type {np.dtype(dtype).name} is not supported by the android-gpu target "
                                   f"(float32 and integer types are)")
        return t

    @classmethod
    def accumulator_type(cls, dtype) -> str:
        """float where lowering asks for double (a long float32 LayerNorm row): phone GPUs have
        none, and a work-group sums a row as a tree of partial sums (each work-item a stride of
        it, then pairwise in local memory), whose float32 error stays small."""
        return "float" if np.dtype(dtype) == np.float64 else cls.type_name(dtype)

    @staticmethod
    def int_literal(i: int) -> str:
        if i >= 2 ** 64 or i < -2 ** 63:
            return f"({float(i)!r}f)"
        if i >= 2 ** 63:
            return f"{i}UL"
        if i == -2 ** 63:
            return "(-9223372036854775807L - 1)"
        s = f"{i}L" if abs(i) >= 2 ** 31 else str(i)
        return f"({s})" if i < 0 else s

    @staticmethod
    def element(pointer: str, index: str, type_name: str) -> str:
        return f"vload_half({index}, {pointer})" if type_name == "half" else f"{pointer}[{index}]"

    @staticmethod
    def buffer_param(k: int, type_name: str) -> str:
        return f"__global {type_name}* restrict p0" if k == 0 else f"__global const {type_name}* restrict p{k}"

    @staticmethod
    def lowest(type_name: str) -> str:
        return _LOWEST[type_name]

    @staticmethod
    def infinity(type_name: str) -> str:
        return "INFINITY"

    @staticmethod
    def quiet_nan(type_name: str) -> str:
        return "NAN"

    def cast(self, text: str, type_name: str) -> str:
        if type_name == "half":
            raise UnsupportedError("a Cast to float16 inside a kernel is not supported by the android-gpu target "
                                   "(half is a storage type there)")
        return f"(({type_name})({text}))"

    @staticmethod
    def as_type(text: str, type_name: str) -> str:
        return f"(({type_name})({text}))"

    def _func(self, e) -> str:
        if e.func in (F.Decode, F.Encode):
            raise UnsupportedError("narrow element types (float8, bfloat16, int4 ...) are not supported by the "
                                   "android-gpu target")
        return super()._func(e)
