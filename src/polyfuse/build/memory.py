"""Memory plan: where every tensor lives while the model runs.

* graph inputs and outputs are read/written in the caller's buffers directly;
* constants live once, 64-byte aligned, in the weights blob;
* intermediates share one arena: each gets an offset, and two tensors share bytes only if
  their live ranges (producing kernel .. last reading kernel) do not overlap;
* views alias the tensor they view (Reshape and friends move no data).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..kernel.ir import Attention, Contraction, GemmChain
from ..kernel.lower import LoweredModel

ALIGN = 64


@dataclass(frozen=True)
class Location:
    kind: str  # "arena" | "weights" | "input" | "output"
    at: int  # byte offset (arena, weights) or index (input, output)


@dataclass
class MemoryPlan:
    where: dict = field(default_factory=dict)  # storage root name -> Location
    arena_bytes: int = 0
    weights: list = field(default_factory=list)  # [(value name, byte offset)]
    weights_bytes: int = 0
    output_copies: list = field(default_factory=list)  # [(output index, value name)]
    views: dict = field(default_factory=dict)

    def root(self, name: str) -> str:
        return self.views.get(name, name)

    def location(self, name: str) -> Location:
        return self.where[self.root(name)]


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def kernel_reads(k) -> list[str]:
    if isinstance(k, Attention):
        inner = {k.scores.output, k.softmax.output}
        reads = [k.scores.a, k.scores.b, k.context.b]
        return reads + [b for part in (k.scores, k.softmax, k.context) for b in kernel_reads(part) if b not in inner]
    if isinstance(k, GemmChain):
        return [b for part in (k.first, k.second) for b in kernel_reads(part) if b != k.first.output]
    reads = [k.a, k.b] if isinstance(k, Contraction) else []
    return reads + [load.buffer for load in k.loads.values()]


def plan_memory(model: LoweredModel) -> MemoryPlan:
    g = model.graph
    plan = MemoryPlan(views=dict(model.views))
    produced = {k.output: t for t, k in enumerate(model.kernels)}
    for j, name in enumerate(g.inputs):
        plan.where[name] = Location("input", j)
    for j, name in enumerate(g.outputs):
        if name in produced and name not in plan.where:
            plan.where[name] = Location("output", j)
        else:
            plan.output_copies.append((j, name))

    end = len(model.kernels)
    last_use: dict[str, int] = {}
    for t, k in enumerate(model.kernels):
        for r in kernel_reads(k):
            last_use[plan.root(r)] = t
    for _, name in plan.output_copies:
        last_use[plan.root(name)] = end

    consts = sorted({plan.root(n) for n in last_use if g.values[plan.root(n)].is_const})
    offset = 0
    for name in consts:
        plan.where[name] = Location("weights", offset)
        plan.weights.append((name, offset))
        offset = _align(offset + g.values[name].nbytes)
    plan.weights_bytes = offset

    intervals = []  # (size, first, last, name)
    for name, t in produced.items():
        if name not in plan.where:
            intervals.append((_align(g.values[name].nbytes), t, max(t, last_use.get(name, t)), name))
    placed: list[tuple[int, int, int, int]] = []  # (offset, size, first, last)
    for size, first, last, name in sorted(intervals, key=lambda x: (-x[0], x[1])):
        busy = sorted((o, o + s) for o, s, f, l in placed if f <= last and first <= l)
        at = 0
        for lo, hi in busy:
            if at + size <= lo:
                break
            at = max(at, hi)
        placed.append((at, size, first, last))
        plan.where[name] = Location("arena", at)
        plan.arena_bytes = max(plan.arena_bytes, at + size)
    return plan

