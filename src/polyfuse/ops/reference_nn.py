"""Reference implementations of reductions and NN ops (Softmax, LayerNormalization, MatMul, Gemm,
Einsum).

Floating-point accumulation is done in float64 and cast back to the input dtype: that is the
correctly rounded result, which onnxruntime's float32 kernels approximate to a few ulp.
"""
from __future__ import annotations

import numpy as np

from ._common import NodeArgs, int_list, norm_axis, register
from .einsum_equation import parse_einsum


def _accum_dtype(x: np.ndarray) -> np.dtype:
    return np.dtype(np.float64) if np.issubdtype(x.dtype, np.floating) else x.dtype


# --- reductions ------------------------------------------------------------------------------

# First opset in which each reduction takes ``axes`` as an input instead of an attribute.
_AXES_AS_INPUT_SINCE = {"ReduceSum": 13, "ReduceMean": 18, "ReduceMax": 18}


def _reduce_axes(n: NodeArgs, rank: int) -> tuple[int, ...] | None:
    """Axes to reduce; () means "no reduction" (noop_with_empty_axes), None means all axes."""
    if n.opset >= _AXES_AS_INPUT_SINCE[n.op_type]:
        axes = int_list(n.input(1))
    else:
        axes = n.attr("axes")
    if not axes:
        return () if n.attr("noop_with_empty_axes", 0) else None
    return tuple(sorted({norm_axis(int(a), rank) for a in axes}))


def _lowest(dtype) -> object:
    """The identity of max: over an empty set ReduceMax gives -inf (the type's minimum for integers,
    False for bool), as onnxruntime and ONNX's reference do."""
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        return False
    return np.iinfo(dtype).min if dtype.kind in "iu" else -np.inf


def _mean(x: np.ndarray, axis: tuple[int, ...] | None, keepdims: bool) -> np.ndarray:
    if np.issubdtype(x.dtype, np.integer):  # integer sum, then division truncating toward zero
        count = x.size if axis is None else int(np.prod([x.shape[a] for a in axis]))
        total = np.sum(x, axis=axis, keepdims=keepdims)
        return np.sign(total) * (np.abs(total) // max(count, 1))
    return np.mean(x.astype(np.float64), axis=axis, keepdims=keepdims)


_REDUCERS = {
    "ReduceSum": lambda x, axis, keepdims: np.sum(
        x.astype(_accum_dtype(x)), axis=axis, keepdims=keepdims),
    "ReduceMean": _mean,
    "ReduceMax": lambda x, axis, keepdims: np.max(x, axis=axis, keepdims=keepdims, initial=_lowest(x.dtype)),
}


@register(*_REDUCERS)
def _reduce(n: NodeArgs) -> np.ndarray:
    x = n.inputs[0]
    axes = _reduce_axes(n, x.ndim)
    if axes == ():
        return np.array(x)
    keepdims = bool(n.attr("keepdims", 1))
    out = _REDUCERS[n.op_type](x, axes, keepdims)
    return np.asarray(out).astype(x.dtype)


@register("CumSum")
def _cumsum(n: NodeArgs) -> np.ndarray:
    """Running sum along ``axis`` (input 1); ``exclusive`` leaves out the element itself,
    ``reverse`` sums from the end."""
    x = n.inputs[0]
    axis = norm_axis(int(n.inputs[1].reshape(-1)[0]), x.ndim)
    wide = x.astype(_accum_dtype(x))
    if n.attr("reverse", 0):
        wide = np.flip(wide, axis)
    out = np.cumsum(wide, axis=axis)
    if n.attr("exclusive", 0):  # shift by one along the axis, a zero first
        out = np.concatenate([np.zeros_like(np.take(out, [0], axis=axis)), np.delete(out, -1, axis=axis)],
                             axis=axis)
    if n.attr("reverse", 0):
        out = np.flip(out, axis)
    return np.asarray(out).astype(x.dtype)


# --- Softmax, LayerNormalization -------------------------------------------------------------

@register("Softmax")
def _softmax(n: NodeArgs) -> np.ndarray:
    """Opset >= 13 semantics: normalize along the single axis ``axis`` (default -1)."""
    x = n.inputs[0]
    axis = norm_axis(int(n.attr("axis", -1)), x.ndim)
    wide = x.astype(np.float64)
    e = np.exp(wide - np.max(wide, axis=axis, keepdims=True))
    return (e / np.sum(e, axis=axis, keepdims=True)).astype(x.dtype)


@register("LayerNormalization")
def _layer_norm(n: NodeArgs) -> list[np.ndarray]:
    """Normalize over axes [axis, rank); outputs Y, and optionally Mean and InvStdDev.

    Mean/InvStdDev keep X's rank with the normalized axes set to 1. Their dtype follows
    ``stash_type`` (1 = float32, the default), as onnxruntime produces.
    """
    x, scale, bias = n.inputs[0], n.inputs[1], n.input(2)
    axis = norm_axis(int(n.attr("axis", -1)), x.ndim)
    eps = float(n.attr("epsilon", 1e-5))
    axes = tuple(range(axis, x.ndim))
    for name, t in (("Scale", scale), ("B", bias)):  # numpy would broadcast them over X's leading axes too
        if t is not None and np.broadcast_shapes(t.shape, x.shape[axis:]) != x.shape[axis:]:
            raise ValueError(f"{name} {list(t.shape)} does not broadcast to the normalized shape {list(x.shape[axis:])}")
    wide = x.astype(np.float64)
    mean = np.mean(wide, axis=axes, keepdims=True)
    inv_std = 1.0 / np.sqrt(np.mean((wide - mean) ** 2, axis=axes, keepdims=True) + eps)
    y = (wide - mean) * inv_std * scale.astype(np.float64)
    if bias is not None:
        y = y + bias.astype(np.float64)
    stash = _stash_dtype(int(n.attr("stash_type", 1)), x.dtype)
    outs = [y.astype(x.dtype), mean.astype(stash), inv_std.astype(stash)]
    return outs[: n.num_outputs]


def _stash_dtype(stash_type: int, x_dtype: np.dtype) -> np.dtype:
    return {1: np.dtype(np.float32), 11: np.dtype(np.float64)}.get(stash_type, x_dtype)


# --- MatMul, Gemm ----------------------------------------------------------------------------

def _matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    acc = _accum_dtype(a)
    return np.asarray(np.matmul(a.astype(acc), b.astype(acc))).astype(a.dtype)


@register("MatMul")
def _matmul_op(n: NodeArgs) -> np.ndarray:
    """numpy.matmul semantics: 1-D operands are promoted and the added dim dropped."""
    return _matmul(n.inputs[0], n.inputs[1])


@register("Gemm")
def _gemm(n: NodeArgs) -> np.ndarray:
    """alpha * A' @ B' + beta * C, with C unidirectionally broadcast to (M, N)."""
    a, b, c = n.inputs[0], n.inputs[1], n.input(2)
    acc = _accum_dtype(a)
    a2 = a.T if n.attr("transA", 0) else a
    b2 = b.T if n.attr("transB", 0) else b
    y = float(n.attr("alpha", 1.0)) * np.matmul(a2.astype(acc), b2.astype(acc))
    if c is not None:
        y = y + float(n.attr("beta", 1.0)) * c.astype(acc)
    return np.asarray(y).astype(a.dtype)


@register("Einsum")
def _einsum(n: NodeArgs) -> np.ndarray:
    """numpy.einsum after broadcasting each operand's size-1 dims to its labels' sizes."""
    x = n.inputs
    if any(a.dtype != x[0].dtype for a in x):
        raise ValueError(f"Einsum: input dtypes differ ({', '.join(str(a.dtype) for a in x)})")
    spec = parse_einsum(str(n.attr("equation")), [a.shape for a in x])
    letter = spec.letters()
    acc = _accum_dtype(x[0])
    operands = [np.broadcast_to(a.astype(acc), [spec.sizes[lab] for lab in labels])
                for a, labels in zip(x, spec.inputs)]
    equation = ",".join("".join(letter[lab] for lab in labels) for labels in spec.inputs)
    equation += "->" + "".join(letter[lab] for lab in spec.output)
    return np.asarray(np.einsum(equation, *operands, optimize=len(x) > 1)).astype(x[0].dtype)
