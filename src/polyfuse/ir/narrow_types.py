"""Narrow element types: float8 (five kinds), bfloat16, float4 E2M1 and the 4- and 2-bit integers.

polyfuse holds them as ONNX's numpy helpers and ml_dtypes do: unpacked, one byte per element (two
for bfloat16) holding the type's bit pattern, a 4- or 2-bit integer in the low bits. Kernels only
copy these bytes (data movement: the ops ``ops.info`` marks ``storage``) and convert them (Cast), with the C++ helpers
named here (kernels/pf_runtime.h): ``decode(code)`` gives the value exactly (a float; int8_t or
uint8_t for the integers), ``encode(x, saturate, round_mode)`` the code of a value of any standard
type, as ONNX's reference implementation converts. Every other op on them is refused
(``ops.info.check_storage_use``): their arithmetic is not implemented.
"""
from __future__ import annotations

from dataclasses import dataclass

import ml_dtypes
import numpy as np
from onnx import TensorProto



@dataclass(frozen=True)
class NarrowType:
    onnx_name: str  # TensorProto.DataType name
    onnx_code: int
    dtype: np.dtype  # ml_dtypes' numpy dtype
    c_type: str  # one element's storage in C++
    decode: str  # C++: code -> value
    encode: str  # C++: (value, saturate, round_mode index) -> code
    saturate: bool  # Cast's ``saturate`` applies (float8 types)
    integer: bool  # decodes to an integer (int8_t / uint8_t), else to float

    @property
    def code_dtype(self) -> np.dtype:
        """The unsigned integer type that holds one element's code."""
        return np.dtype(np.uint16 if self.dtype.itemsize == 2 else np.uint8)


def _t(name, dtype, c_type, helper, saturate=False, integer=False) -> NarrowType:
    return NarrowType(name, getattr(TensorProto, name), np.dtype(dtype), c_type, f"pf_from_{helper}",
                      f"pf_to_{helper}", saturate, integer)


NARROW_TYPES = (
    _t("FLOAT8E4M3FN", ml_dtypes.float8_e4m3fn, "uint8_t", "f8e4m3fn", saturate=True),
    _t("FLOAT8E4M3FNUZ", ml_dtypes.float8_e4m3fnuz, "uint8_t", "f8e4m3fnuz", saturate=True),
    _t("FLOAT8E5M2", ml_dtypes.float8_e5m2, "uint8_t", "f8e5m2", saturate=True),
    _t("FLOAT8E5M2FNUZ", ml_dtypes.float8_e5m2fnuz, "uint8_t", "f8e5m2fnuz", saturate=True),
    _t("FLOAT8E8M0", ml_dtypes.float8_e8m0fnu, "uint8_t", "f8e8m0", saturate=True),
    _t("BFLOAT16", ml_dtypes.bfloat16, "uint16_t", "bf16"),
    _t("FLOAT4E2M1", ml_dtypes.float4_e2m1fn, "uint8_t", "f4e2m1"),
    _t("INT4", ml_dtypes.int4, "uint8_t", "int4", integer=True),
    _t("UINT4", ml_dtypes.uint4, "uint8_t", "uint4", integer=True),
    _t("INT2", ml_dtypes.int2, "uint8_t", "int2", integer=True),
    _t("UINT2", ml_dtypes.uint2, "uint8_t", "uint2", integer=True),
)
_BY_DTYPE = {t.dtype: t for t in NARROW_TYPES}
_BY_NAME = {t.dtype.name: t for t in NARROW_TYPES}

# Cast's ``round_mode`` (opset 24+, FLOAT8E8M0 only); the index is what the C++ helper takes.
ROUND_MODES = ("up", "down", "nearest")


def narrow_type(dtype) -> NarrowType | None:
    """The table entry of ``dtype``, or None for a standard numpy type."""
    return None if dtype is None else _BY_DTYPE.get(np.dtype(dtype))


def dtype_named(name: str) -> np.dtype:
    """A dtype by its numpy name, narrow ones included (a manifest's ``"bfloat16"``)."""
    t = _BY_NAME.get(name)
    return t.dtype if t is not None else np.dtype(name)

