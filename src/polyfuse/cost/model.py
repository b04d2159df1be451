"""The cost model: a predicted time for each fused kernel, and why.

Per kernel (one fused group, one launch): its floating-point work (2 x multiply-adds of its matrix
products, plus the expression operations of its epilogues, bodies and reductions per element), the
bytes it moves (each distinct buffer it reads, and its output, once: caches ignored), and

    time = launch + max(work / (peak x compute efficiency), bytes / (bandwidth x memory efficiency))

with the efficiencies from the profile's curves for the kernel's kind. The bound is whichever of
the three terms is largest. Nothing is built or run: the estimate is the compiler's fused plan
priced by the profile.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..fusion.plan import ops
from ..kernel.ir import Attention, Contraction, GemmChain
from .profile import DeviceProfile


@dataclass
class KernelCost:
    name: str  # the kernel's output tensor
    kind: str
    ops: list  # the ONNX op types fused into it
    flops: int
    bytes: int
    bound: str  # "compute", "memory" or "launch"
    ms: float
    macs: int = 0  # the compute curve's size: multiply-adds of its products (pointwise work otherwise)

    def to_json(self) -> dict:
        return {"name": self.name, "kind": self.kind, "ops": self.ops, "flops": self.flops, "bytes": self.bytes,
                "bound": self.bound, "ms": round(self.ms, 6)}


def _elements(k) -> int:
    if isinstance(k, Contraction):
        return int(np.prod(k.batch, dtype=np.int64)) * k.m * k.n
    return int(np.prod(k.shape, dtype=np.int64))  # a reduction's iteration space, a pointwise output


def kernel_flops(k) -> int:
    """Multiply-adds x 2 of the kernel's matrix products (elementwise work is not counted)."""
    if isinstance(k, Attention):
        return kernel_flops(k.scores) + kernel_flops(k.context)
    if isinstance(k, GemmChain):
        return kernel_flops(k.first) + kernel_flops(k.second)
    if isinstance(k, Contraction):
        return 2 * k.m * k.n * k.k * int(np.prod(k.batch, dtype=np.int64))
    return 0


def _reads(k, inner=frozenset()) -> dict:
    """Buffer -> the most elements the kernel can read of it (None: all of it). A load runs at most
    once per element of its kernel's iteration space: a Gather of 128 rows reads 128 rows of the
    embedding table, not the table."""
    if isinstance(k, (Attention, GemmChain)):
        parts = (k.scores, k.softmax, k.context) if isinstance(k, Attention) else (k.first, k.second)
        inner = {p.output for p in parts[:-1]}
        out: dict = {}
        for p in parts:
            for b, n in _reads(p, inner).items():
                out[b] = None if None in (n, out.get(b, 0)) else max(n, out.get(b, 0))
        return out
    cap = _elements(k)
    out = {b: None for b in ((k.a, k.b) if isinstance(k, Contraction) else ()) if b not in inner}
    for load in k.loads.values():
        if load.buffer not in inner and load.buffer not in out:
            out[load.buffer] = cap
    return out


def kernel_bytes(k, graph, schedule=None) -> int:
    """Bytes a kernel reads (each distinct buffer once, at most as many elements as it iterates
    over) and writes: a memory-traffic estimate that ignores caches, as the phone papers count it.
    With the target's ``schedule``, a kernel that works in blocks of rows also re-reads what each
    block needs (``rereads``)."""
    total = graph.values[k.output].nbytes
    for b, n in _reads(k).items():
        v = graph.values[b]
        total += v.nbytes if n is None else min(v.nbytes, n * v.nbytes // max(1, v.numel))
    return int(total) + (rereads(k, graph, schedule) if schedule is not None else 0)


def rereads(k, graph, schedule) -> int:
    """Bytes read again per block of rows beyond the first: a GEMM chain re-reads its second
    weights for every block of ``rows_per_block`` rows; an attention whose target splits it into
    blocks of ``schedule["attention_rows"]`` query rows (0: it does not) re-reads its batch
    entry's K and V for every block. These are what the schedule's tile knobs trade against
    parallelism and cache use (``polyfuse compile --tune``)."""
    if isinstance(k, GemmChain):
        blocks = -(-k.first.m // k.rows_per_block)
        return (blocks - 1) * k.second.k * k.second.n * np.dtype(graph.values[k.second.b].dtype).itemsize
    if isinstance(k, Attention) and schedule["attention_rows"]:
        s, c = k.scores, k.context
        blocks = -(-s.m // schedule["attention_rows"])
        per_block = s.n * s.k * np.dtype(graph.values[s.b].dtype).itemsize + \
            c.k * c.n * np.dtype(graph.values[c.b].dtype).itemsize
        return (blocks - 1) * int(np.prod(s.batch, dtype=np.int64)) * per_block
    return 0


def kernel_work(k) -> int:
    """Floating-point operations of one run of kernel ``k``."""
    if isinstance(k, Attention):
        return kernel_work(k.scores) + kernel_work(k.softmax) + kernel_work(k.context)
    if isinstance(k, GemmChain):
        return kernel_work(k.first) + kernel_work(k.second)
    return kernel_flops(k) + ops(k) * _elements(k)


def _kind(k) -> str:
    return type(k).__name__.lower()


def kernel_cost(k, graph, profile: DeviceProfile, op_types: dict, schedule=None) -> KernelCost:
    work, nbytes = kernel_work(k), kernel_bytes(k, graph, schedule)
    curve = profile.curves[_kind(k)]
    macs = kernel_flops(k) // 2 if isinstance(k, (Contraction, Attention, GemmChain)) else work
    times = {"launch": profile.launch_us * 1e-6,
             "compute": work / (profile.peak_gflops * 1e9 * curve.compute(macs)) if work else 0.0,
             "memory": nbytes / (profile.bandwidth_gbs * 1e9 * curve.memory(nbytes)) if nbytes else 0.0}
    bound = max(times, key=times.get)
    seconds = times["launch"] + max(times["compute"], times["memory"])
    fused = [op_types.get(s, "?") for s in getattr(k, "sources", [])]
    return KernelCost(k.output, _kind(k), fused, int(work), int(nbytes), bound, seconds * 1e3, int(macs))


def price(lowered, profile: DeviceProfile, schedule=None) -> list[KernelCost]:
    """Each kernel of ``lowered`` priced by ``profile``; ``schedule``: the target's (re-reads)."""
    op_types = {n.name: n.op_type for n in lowered.graph.nodes}
    return [kernel_cost(k, lowered.graph, profile, op_types, schedule) for k in lowered.kernels]


__all__ = ["KernelCost", "kernel_bytes", "kernel_cost", "kernel_flops", "kernel_work", "price", "rereads"]
