"""Reference implementations of elementwise ONNX ops (arithmetic, math, comparison, logic, Cast)."""
from __future__ import annotations

import math

import ml_dtypes
import numpy as np
import onnx.helper

from ..ir.narrow_types import ROUND_MODES, narrow_type
from ._common import NodeArgs, UnsupportedOp, in_float64, register

_erf_scalar = np.frompyfunc(math.erf, 1, 1)


def erf(x: np.ndarray) -> np.ndarray:
    """Elementwise erf of a float64 array (numpy has none; math.erf is exact to ~1 ulp)."""
    return np.asarray(_erf_scalar(x), dtype=np.float64).reshape(np.shape(x))


def _is_int(x: np.ndarray) -> bool:
    return np.issubdtype(x.dtype, np.integer)


# --- binary arithmetic -----------------------------------------------------------------------

def _trunc_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Integer division rounding toward zero, as C (and onnxruntime) do; numpy's // floors."""
    q = np.floor_divide(a, b)
    inexact_negative = (np.remainder(a, b) != 0) & ((a < 0) != (b < 0))
    return q + inexact_negative.astype(q.dtype)


def _divide(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return _trunc_div(a, b) if _is_int(a) else np.divide(a, b)


_BINARY = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": _divide}


@register(*_BINARY)
def _binary_arith(n: NodeArgs) -> np.ndarray:
    a, b = n.inputs[0], n.inputs[1]
    if a.dtype != b.dtype:
        raise ValueError(f"{n.op_type}: input dtypes differ ({a.dtype} vs {b.dtype})")
    with np.errstate(over="ignore"):
        return np.asarray(_BINARY[n.op_type](a, b)).astype(a.dtype, copy=False)


# Mod with fmod=0 on floats (Python's float %) exists from this opset; before it, ONNX (and
# onnxruntime) require fmod=1 for floating-point inputs.
FLOAT_FLOOR_MOD_SINCE = 28


@register("Mod")
def _mod(n: NodeArgs) -> np.ndarray:
    """fmod=0: the remainder takes the divisor's sign (Python's %); fmod=1: the dividend's sign
    (C's ``%``, ``fmod``). An integer remainder by 0 is 0 here (onnxruntime fails the run:
    "Integer modulo by zero")."""
    a, b = n.inputs[0], n.inputs[1]
    if a.dtype != b.dtype:
        raise ValueError(f"Mod: input dtypes differ ({a.dtype} vs {b.dtype})")
    fmod = bool(n.attr("fmod", 0))
    if not fmod and not _is_int(a) and n.opset < FLOAT_FLOOR_MOD_SINCE:
        raise ValueError(f"Mod: fmod=0 is not defined for floating-point inputs before opset "
                         f"{FLOAT_FLOOR_MOD_SINCE} (the model's is {n.opset}); ONNX requires fmod=1")
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(np.fmod(a, b) if fmod else np.mod(a, b)).astype(a.dtype, copy=False)


@register("Max", "Min")
def _variadic_extreme(n: NodeArgs) -> np.ndarray:
    """Elementwise max/min over any number of broadcast inputs (NaN propagates, as in ORT)."""
    fn = np.maximum if n.op_type == "Max" else np.minimum
    out = n.inputs[0]
    for x in n.inputs[1:]:
        out = fn(out, x)
    return np.array(out, dtype=n.inputs[0].dtype)


def c_pow(base: np.ndarray, exponent: np.ndarray) -> np.ndarray:
    """C's pow (what onnxruntime computes) on float64 arrays: numpy's power differs for a base of
    -inf or -0 with an exponent that is not an integer (nan and -0 where C gives +inf and +0)."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        out = np.power(base, exponent)
    odd = (np.floor(exponent) != exponent) & (exponent > 0)
    out = np.where(odd & np.isneginf(base), np.inf, out)
    return np.where(odd & (base == 0), 0.0, out)


@register("Pow")
def _pow(n: NodeArgs) -> np.ndarray:
    """Output has the base's dtype; computed in double like C++ std::pow, then cast (truncating)."""
    base, exponent = n.inputs[0], n.inputs[1]
    wide = c_pow(base.astype(np.float64), exponent.astype(np.float64))
    with np.errstate(invalid="ignore", over="ignore"):
        return np.asarray(wide).astype(base.dtype)


# --- unary math ------------------------------------------------------------------------------

def _gelu_tanh(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def _gelu_exact(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


# Computed in float64 and cast back: these are the ops where float32 numpy and ORT may round
# differently; float64 gives the correctly rounded answer that ORT approximates.
_UNARY_F64 = {
    "Sqrt": np.sqrt,
    "Exp": np.exp,
    "Log": np.log,
    "Tanh": np.tanh,
    "Erf": erf,
    "Sigmoid": lambda x: 0.5 * (1.0 + np.tanh(0.5 * x)),  # stable for large |x|
}

# Exact in any dtype: computed natively so integers keep integer semantics.
_UNARY_NATIVE = {
    "Neg": np.negative,
    "Abs": np.abs,
    "Relu": lambda x: np.maximum(x, np.zeros((), x.dtype)),
    "Reciprocal": lambda x: np.divide(np.ones((), x.dtype), x),
    "Not": np.logical_not,
    "IsNaN": np.isnan,
}


@register(*_UNARY_F64)
def _unary_f64(n: NodeArgs) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return in_float64(_UNARY_F64[n.op_type], n.inputs[0])


@register(*_UNARY_NATIVE)
def _unary_native(n: NodeArgs) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return np.asarray(_UNARY_NATIVE[n.op_type](n.inputs[0]))


@register("Gelu")
def _gelu(n: NodeArgs) -> np.ndarray:
    approximate = n.attr("approximate", "none")
    fns = {"none": _gelu_exact, "tanh": _gelu_tanh}
    if approximate not in fns:
        raise ValueError(f"Gelu: unknown approximate={approximate!r}")
    return in_float64(fns[approximate], n.inputs[0])


@register("Clip")
def _clip(n: NodeArgs) -> np.ndarray:
    """min(max(x, lo), hi); an omitted bound is the type's lowest / largest value (opset >= 11
    takes bounds as inputs; ONNX's default, so Clip(inf) with no max is FLT_MAX, as in ORT)."""
    x, lo, hi = n.inputs[0], n.input(1), n.input(2)
    limits = np.finfo(x.dtype) if np.issubdtype(x.dtype, np.floating) else np.iinfo(x.dtype)
    lo = np.asarray(limits.min, x.dtype) if lo is None else lo.reshape(())
    hi = np.asarray(limits.max, x.dtype) if hi is None else hi.reshape(())
    return np.array(np.minimum(np.maximum(x, lo), hi), dtype=x.dtype)


@register("Where")
def _where(n: NodeArgs) -> np.ndarray:
    cond, x, y = n.inputs
    return np.asarray(np.where(cond.astype(bool), x, y)).astype(x.dtype, copy=False)


# --- comparison and logic -------------------------------------------------------------------

_BOOL_BINARY = {
    "Equal": np.equal,
    "Less": np.less,
    "Greater": np.greater,
    "LessOrEqual": np.less_equal,
    "GreaterOrEqual": np.greater_equal,
    "And": np.logical_and,
    "Or": np.logical_or,
}


@register(*_BOOL_BINARY)
def _bool_binary(n: NodeArgs) -> np.ndarray:
    a, b = n.inputs[0], n.inputs[1]
    return np.asarray(_BOOL_BINARY[n.op_type](a, b), dtype=bool)


# --- Cast ------------------------------------------------------------------------------------

@register("Cast")
def _cast(n: NodeArgs) -> np.ndarray:
    """C-style conversion between standard types: floats truncate toward zero into integers,
    nonzero (and NaN) is True. To and from the narrow types (ir/narrow_types.py), ONNX's reference
    conversion: ml_dtypes' (round to nearest even; a float to a 4- or 2-bit integer truncates and
    gives 0 out of range, an integer wraps), float8 ``saturate`` clamping to the largest finite
    value first, and FLOAT8E8M0's own rounding (:func:`_to_e8m0`). As there, a Cast to the same
    type re-encodes when it saturates or is to FLOAT8E8M0 (E5M2's inf becomes its largest value)."""
    to = int(n.attr("to"))
    target = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(to))
    narrow = narrow_type(target)
    if target.kind not in "biuf" and narrow is None:
        raise UnsupportedOp("Cast", f"to {onnx.helper.tensor_dtype_to_string(to)}")
    x = np.asarray(n.inputs[0])
    saturate = bool(n.attr("saturate", 1))
    if target == ml_dtypes.float8_e8m0fnu:
        return _to_e8m0(x, saturate, n.attr("round_mode", "up"))
    with np.errstate(invalid="ignore", over="ignore"):
        if narrow is not None and narrow.saturate and saturate:
            info = ml_dtypes.finfo(target)
            x = np.clip(x, info.min, info.max)  # NaN stays NaN
        return x.astype(target)  # a copy, also to the same type


def _to_e8m0(x: np.ndarray, saturate: bool, round_mode: str) -> np.ndarray:
    """FLOAT8E8M0 (a power of two 2^(code - 127), code 255 NaN) from the float32 value's exponent
    field, sign dropped, as ONNX's reference does: ``up`` adds one for any fraction, ``down``
    none, ``nearest`` one when the fraction's top bit is set (and, at exponent 0, any lower bit);
    with ``saturate`` never past 254. inf and NaN give 255 (NaN)."""
    if round_mode not in ROUND_MODES:
        raise ValueError(f"Cast: unknown round_mode {round_mode!r} (expected one of {', '.join(ROUND_MODES)})")
    with np.errstate(invalid="ignore", over="ignore"):
        u = np.asarray(x, dtype=np.float32).view(np.uint32)
    e = ((u >> 23) & 0xFF).astype(np.int32)
    if round_mode == "up":
        up = (u & 0x7FFFFF) != 0
    elif round_mode == "nearest":
        g, r, sticky = (u & 0x400000) != 0, (u & 0x200000) != 0, (u & 0x1FFFFF) != 0
        up = g & (r | sticky | (e > 0))
    else:
        up = np.zeros(u.shape, bool)
    if saturate:
        up &= e != 0xFE
    code = np.where(e == 0xFF, 0xFF, e + up).astype(np.uint8)
    return code.view(ml_dtypes.float8_e8m0fnu)
