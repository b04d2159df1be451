"""Reference implementations of data-movement, indexing and constant-producing ONNX ops."""
from __future__ import annotations

import numpy as np

from ._common import NodeArgs, UnsupportedOp, int_list, norm_axis, register

# --- layout ----------------------------------------------------------------------------------


@register("Identity")
def _identity(n: NodeArgs) -> np.ndarray:
    return np.array(n.inputs[0])


@register("Transpose")
def _transpose(n: NodeArgs) -> np.ndarray:
    x = n.inputs[0]
    perm = n.attr("perm")
    return np.transpose(x, perm if perm else None).copy()


def reshape_target(in_shape: tuple[int, ...], shape: list[int], allowzero: bool) -> list[int]:
    """Resolve ONNX Reshape's shape: 0 copies the input dim (unless allowzero), -1 is inferred."""
    if any(d < -1 for d in shape) or (not allowzero and any(d == 0 for d in shape[len(in_shape):])):
        raise ValueError(f"Reshape: invalid shape {shape} for input {list(in_shape)} (a 0 copies an input dim)")
    out = [in_shape[i] if (d == 0 and not allowzero) else d for i, d in enumerate(shape)]
    if out.count(-1) > 1:
        raise ValueError(f"Reshape: more than one -1 in {shape}")
    if -1 in out:
        known = int(np.prod([d for d in out if d != -1]))
        total = int(np.prod(in_shape))
        out[out.index(-1)] = total // known if known else 0
    return out


@register("Reshape")
def _reshape(n: NodeArgs) -> np.ndarray:
    x = n.inputs[0]
    allowzero = n.opset >= 14 and bool(n.attr("allowzero", 0))
    return np.array(x.reshape(reshape_target(x.shape, int_list(n.inputs[1]), allowzero)))


@register("Flatten")
def _flatten(n: NodeArgs) -> np.ndarray:
    x = n.inputs[0]
    axis = int(n.attr("axis", 1))
    if not -x.ndim <= axis <= x.ndim:
        raise ValueError(f"Flatten: axis {axis} out of range for rank {x.ndim}")
    axis = axis + x.ndim if axis < 0 else axis
    outer = int(np.prod(x.shape[:axis]))
    return np.array(x.reshape(outer, int(np.prod(x.shape[axis:]))))


@register("Squeeze")
def _squeeze(n: NodeArgs) -> np.ndarray:
    """Axes come from input 1 (opset >= 13); without (or with empty) axes, every size-1 dim
    is removed."""
    x = n.inputs[0]
    axes = int_list(n.input(1))
    if not axes:
        return np.array(np.squeeze(x))
    return np.array(np.squeeze(x, axis=tuple(norm_axis(a, x.ndim) for a in axes)))


@register("Unsqueeze")
def _unsqueeze(n: NodeArgs) -> np.ndarray:
    """Axes (input 1) index the output, whose rank is rank(x) + len(axes)."""
    x = n.inputs[0]
    axes = int_list(n.inputs[1])
    out_rank = x.ndim + len(axes)
    return np.array(np.expand_dims(x, tuple(norm_axis(a, out_rank) for a in axes)))


@register("Expand")
def _expand(n: NodeArgs) -> np.ndarray:
    """Bidirectional broadcast of x against the requested shape."""
    x = n.inputs[0]
    shape = np.broadcast_shapes(x.shape, tuple(int_list(n.inputs[1])))
    return np.array(np.broadcast_to(x, shape))


@register("Concat")
def _concat(n: NodeArgs) -> np.ndarray:
    arrays = [a for a in n.inputs if a is not None]
    return np.concatenate(arrays, axis=norm_axis(int(n.attr("axis")), arrays[0].ndim))


@register("Trilu")
def _trilu(n: NodeArgs) -> np.ndarray:
    """Keep the elements of each [.., N, M] matrix with column - row >= k (upper, the default)
    or <= k (lower); zero the others. ``k`` (input 1) defaults to 0."""
    x = n.inputs[0]
    if x.ndim < 2:
        raise ValueError(f"Trilu: input has rank {x.ndim}, needs at least 2")
    k = n.input(1)
    k = 0 if k is None else int(k.reshape(-1)[0])
    rows, cols = x.shape[-2:]
    k = min(max(k, -rows), cols)  # beyond these, every element is kept or zeroed anyway
    offset = np.arange(cols)[None, :] - np.arange(rows)[:, None]
    keep = offset >= k if n.attr("upper", 1) else offset <= k
    return np.where(keep, x, np.zeros((), x.dtype))


# --- Slice, Split, Pad -----------------------------------------------------------------------

def onnx_slice(dim: int, start: int, end: int, step: int) -> slice:
    """Python slice equal to ONNX Slice on one axis (negative / out-of-range / INT64 bounds)."""
    if step == 0:
        raise ValueError("Slice: step must not be 0")
    start = start + dim if start < 0 else start
    end = end + dim if end < 0 else end
    if step > 0:
        return slice(min(max(start, 0), dim), min(max(end, 0), dim), step)
    start = min(max(start, 0), dim - 1)
    end = min(max(end, -1), dim - 1)
    if dim == 0 or start < 0:
        return slice(0, 0, step)
    return slice(start, None if end < 0 else end, step)


@register("Slice")
def _slice(n: NodeArgs) -> np.ndarray:
    x = n.inputs[0]
    starts, ends = int_list(n.inputs[1]), int_list(n.inputs[2])
    axes = int_list(n.input(3)) or list(range(len(starts)))
    steps = int_list(n.input(4)) or [1] * len(starts)
    if not len(starts) == len(ends) == len(axes) == len(steps):
        raise ValueError(f"Slice: starts, ends, axes, steps have lengths {len(starts)}, {len(ends)}, {len(axes)}, "
                         f"{len(steps)}; they must be equal")
    if len({norm_axis(a, x.ndim) for a in axes}) != len(axes):
        raise ValueError(f"Slice: repeated axis in {axes}")
    index = [slice(None)] * x.ndim
    for start, end, axis, step in zip(starts, ends, axes, steps):
        axis = norm_axis(axis, x.ndim)
        index[axis] = onnx_slice(x.shape[axis], start, end, step)
    return np.array(x[tuple(index)])


def _split_sizes(n: NodeArgs, dim: int) -> list[int]:
    split = int_list(n.input(1))
    if split is not None:
        return split
    if n.opset >= 18 and "num_outputs" in n.attrs:  # uneven: the last chunk is smaller
        parts = int(n.attr("num_outputs"))
        chunk = -(-dim // parts)
        return [chunk] * (parts - 1) + [dim - chunk * (parts - 1)]
    if dim % n.num_outputs:
        raise ValueError(f"Split: dim {dim} does not split evenly into {n.num_outputs}")
    return [dim // n.num_outputs] * n.num_outputs


@register("Split")
def _split(n: NodeArgs) -> list[np.ndarray]:
    x = n.inputs[0]
    axis = norm_axis(int(n.attr("axis", 0)), x.ndim)
    sizes = _split_sizes(n, x.shape[axis])
    if len(sizes) != n.num_outputs or any(s < 0 for s in sizes):
        raise ValueError(f"Split: sizes {sizes} for {n.num_outputs} outputs")
    if sum(sizes) != x.shape[axis]:
        raise ValueError(f"Split: sizes {sizes} do not add up to {x.shape[axis]}")
    bounds = np.cumsum(sizes)[:-1]
    return [np.array(part) for part in np.split(x, bounds, axis=axis)]


def _full_pads(n: NodeArgs, rank: int) -> list[tuple[int, int]]:
    """Per-axis (begin, end) pads from the flat ``pads`` input and optional ``axes`` (opset 18)."""
    pads = int_list(n.inputs[1])
    axes = int_list(n.input(3)) if n.opset >= 18 else None
    axes = [norm_axis(a, rank) for a in axes] if axes else list(range(rank))
    if len(pads) != 2 * len(axes):
        raise ValueError(f"Pad: {len(pads)} pads for {len(axes)} axes")
    full = [(0, 0)] * rank
    for i, axis in enumerate(axes):
        full[axis] = (pads[i], pads[i + len(axes)])
    return full


_PAD_MODES = {"constant": "constant", "reflect": "reflect", "edge": "edge", "wrap": "wrap"}


@register("Pad")
def _pad(n: NodeArgs) -> np.ndarray:
    """Negative pads crop; positive pads extend with the mode (wrap exists from opset 19)."""
    x = n.inputs[0]
    mode = n.attr("mode", "constant")
    if mode not in _PAD_MODES or (mode == "wrap" and n.opset < 19):
        raise ValueError(f"Pad: mode {mode!r} not available at opset {n.opset}")
    pads = _full_pads(n, x.ndim)
    if any(b + e + d < 0 for (b, e), d in zip(pads, x.shape)):
        raise ValueError(f"Pad: pads {pads} crop more than the input's shape {list(x.shape)}")
    crop = tuple(slice(-min(b, 0), dim + min(e, 0)) for (b, e), dim in zip(pads, x.shape))
    x = x[crop]
    widths = [(max(b, 0), max(e, 0)) for b, e in pads]
    if mode == "constant":
        value = n.input(2)
        fill = value.reshape(-1)[0] if value is not None and value.size else 0
        return np.pad(x, widths, mode="constant", constant_values=fill).astype(x.dtype)
    return np.pad(x, widths, mode=_PAD_MODES[mode])


# --- gathers ---------------------------------------------------------------------------------

def _wrap_indices(indices: np.ndarray, dim: int | np.ndarray) -> np.ndarray:
    """Negative indices count from the end; anything still out of range is an error."""
    idx = np.where(indices < 0, indices + dim, indices).astype(np.int64)
    if np.any((idx < 0) | (idx >= dim)):
        raise IndexError(f"index out of range for dim {dim}")
    return idx


@register("Gather")
def _gather(n: NodeArgs) -> np.ndarray:
    data, indices = n.inputs[0], n.inputs[1]
    axis = norm_axis(int(n.attr("axis", 0)), data.ndim)
    return np.take(data, _wrap_indices(indices, data.shape[axis]), axis=axis)


@register("GatherElements")
def _gather_elements(n: NodeArgs) -> np.ndarray:
    """out[i...] = data[i... with i[axis] replaced by indices[i...]]; output has indices' shape."""
    data, indices = n.inputs[0], n.inputs[1]
    axis = norm_axis(int(n.attr("axis", 0)), data.ndim)
    coords = list(np.indices(indices.shape, sparse=True))
    coords[axis] = _wrap_indices(indices, data.shape[axis])
    return np.array(data[tuple(coords)])


@register("GatherND")
def _gather_nd(n: NodeArgs) -> np.ndarray:
    """indices[..., :k] index data dims [b, b + k) within each batch (b = batch_dims)."""
    data, indices = n.inputs[0], n.inputs[1]
    b = int(n.attr("batch_dims", 0))
    k = indices.shape[-1]
    batch = int(np.prod(data.shape[:b]))
    flat_data = data.reshape((batch,) + data.shape[b:])
    flat_idx = indices.reshape(batch, -1, k)
    flat_idx = _wrap_indices(flat_idx, np.array(data.shape[b:b + k], dtype=np.int64))
    batch_ids = np.arange(batch)[:, None]
    gathered = flat_data[(batch_ids,) + tuple(flat_idx[..., j] for j in range(k))]
    return np.array(gathered.reshape(indices.shape[:-1] + data.shape[b + k:]))


# --- shape and constant producers ------------------------------------------------------------

@register("Shape")
def _shape(n: NodeArgs) -> np.ndarray:
    """start/end (opset 15) behave like a Python slice of the shape (negatives, clamping)."""
    shape = n.inputs[0].shape
    start, end = int(n.attr("start", 0)), n.attr("end")
    return np.array(shape[start:None if end is None else int(end)], dtype=np.int64)


@register("ConstantOfShape")
def _constant_of_shape(n: NodeArgs) -> np.ndarray:
    value = n.attr("value")
    value = np.zeros(1, np.float32) if value is None else np.asarray(value)
    return np.full(tuple(int_list(n.inputs[0])), value.reshape(-1)[0], dtype=value.dtype)


@register("Range")
def _range(n: NodeArgs) -> np.ndarray:
    """max(ceil((limit - start) / delta), 0) elements in start's dtype.

    Like onnxruntime, element i is computed by repeatedly adding delta in that dtype (so float
    ranges drift), not as start + i * delta.
    """
    start, limit, delta = (np.asarray(v).reshape(()) for v in n.inputs[:3])
    if start.dtype.kind in "iu":  # exact ceil division
        count = max(-((int(start) - int(limit)) // int(delta)), 0)
    else:
        count = max(int(np.ceil((float(limit) - float(start)) / float(delta))), 0)
    steps = np.full(count, delta, dtype=start.dtype)
    if count:
        steps[0] = start
    with np.errstate(over="ignore"):
        return np.add.accumulate(steps, dtype=start.dtype)


_CONSTANT_ATTRS = {
    "value": lambda v: np.array(v),
    "value_float": lambda v: np.array(v, dtype=np.float32),
    "value_floats": lambda v: np.array(v, dtype=np.float32).reshape(-1),
    "value_int": lambda v: np.array(v, dtype=np.int64),
    "value_ints": lambda v: np.array(v, dtype=np.int64).reshape(-1),
}


@register("Constant")
def _constant(n: NodeArgs) -> np.ndarray:
    present = [name for name in n.attrs if n.attrs[name] is not None]
    if len(present) != 1:
        raise ValueError(f"Constant: expected exactly one value attribute, got {present}")
    if present[0] not in _CONSTANT_ATTRS:
        raise UnsupportedOp("Constant", f"attribute {present[0]}")
    return _CONSTANT_ATTRS[present[0]](n.attrs[present[0]])
