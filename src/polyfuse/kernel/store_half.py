"""``precision="fp16"``: keep intermediate tensors and weights as half precision in memory.

After fusion, every float32 buffer that is neither a graph input nor a graph output becomes
float16 *storage*: the memory plan, the weights file and each kernel's buffer types follow the
values' dtypes, so they shrink by half. Arithmetic stays float32: a target that stores half
loads each element into a float and rounds once when it stores (OpenCL's vload_half and
vstore_half need no cl_khr_fp16), and every reduction (LayerNorm, Softmax, reduce-means) and
GEMM accumulates in float32, since fp16 sums and variances overflow and lose the small terms.
"""
from __future__ import annotations

import numpy as np

from .ir import Attention, Reduction
from .lower import LoweredModel

F32, F16 = np.dtype(np.float32), np.dtype(np.float16)


def store_half(model: LoweredModel) -> int:
    """Make float32 intermediates and constants float16 in place; returns how many buffers."""
    g = model.graph
    for k in model.kernels:  # accumulators stay float32 whatever their output is stored as
        r = k.softmax if isinstance(k, Attention) else k
        if isinstance(r, Reduction) and r.acc_dtype is None and np.dtype(g.values[r.output].dtype) == F32:
            r.acc_dtype = F32
    base = lambda name: model.views.get(name, name)  # noqa: E731 - a view shares its base's memory
    keep = {base(x) for x in (*g.inputs, *g.outputs)}  # the caller's buffers, and what aliases them
    n = 0
    for name, v in g.values.items():
        if base(name) in keep or v.dtype is None or np.dtype(v.dtype) != F32:
            continue
        v.dtype = F16
        if v.const is not None:
            v.const = v.const.astype(F16)
        n += 1
    return n
