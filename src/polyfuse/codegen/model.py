"""The whole model's source: each distinct kernel function once, the calls in order, the weights.

Target-neutral: what is called with which buffers, which constant GEMM operands are packed at
load and which weight bytes are read as they are. The target's ``model.cpp.j2`` turns the calls
into its language (a buffer is ``{base, at, type, writable}``: base ``in``/``out`` (the feed or
result number ``at``), ``A`` (arena) or ``W`` (weights) at byte ``at``, or ``P`` (packed weights
number ``at``)).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..build.memory import MemoryPlan
from ..kernel.ir import Contraction
from ..kernel.lower import LoweredModel
from ..targets.base import Target
from .kernels import RENDER
from .templates import render_for
from .view import PACKED, safe_comment

_BASE = {"input": "in", "output": "out", "arena": "A", "weights": "W"}


def buffer(plan: MemoryPlan, graph, name: str, writable: bool, target: Target) -> dict:
    if name.startswith(PACKED):
        return dict(base="P", at=int(name[len(PACKED):]), type=None, writable=False, itemsize=4)
    loc = plan.location(name)
    dtype = graph.values[name].dtype
    return dict(base=_BASE[loc.kind], at=loc.at, type=target.printer.storage_type(dtype), writable=writable,
                itemsize=np.dtype(dtype).itemsize)


def _weight_segments(plan: MemoryPlan, graph, raw_reads: set) -> list[tuple[int, int, int]]:
    """``(offset, bytes, keep)`` per constant, in file order. ``keep == 0``: only its packed copy
    is read, so the loader packs it from the mapped weights file and then releases its pages
    (they cost no memory once loaded)."""
    out = []
    for name, off in plan.weights:
        n = graph.values[name].nbytes
        out.append((off, n, int(any(off <= at < off + max(n, 1) for at in raw_reads))))
    return out


@dataclass
class ModelSource:
    text: str
    n_functions: int
    n_calls: int


def generate(model: LoweredModel, plan: MemoryPlan, *, version: str, target: Target) -> ModelSource:
    g = model.graph
    functions: dict[str, tuple[str, str]] = {}  # body text -> (name, comment of its first use)
    calls = []
    packs: list[tuple] = []

    def packer(c: Contraction):
        """Index of ``c``'s B in the table of weights packed at load, or None if B is not constant."""
        loc = plan.location(c.b)
        if not target.packs_weights or loc.kind != "weights" or any(c.b_strides):
            return None
        spec = (loc.at + 4 * c.b_offset, c.k, c.n, c.ld("b"), int(c.trans_b))
        if spec not in packs:
            packs.append(spec)
        return packs.index(spec)

    raw_reads: set[int] = set()  # weights byte offsets that kernels read as they are (not packed)

    def note_raw(name: str) -> None:
        loc = None if name.startswith(PACKED) else plan.location(name)
        if loc is not None and loc.kind == "weights":
            raw_reads.add(loc.at)

    for k in model.kernels:
        rk = RENDER[type(k)](k, g, target, packer)
        comment, body = rk.text.split("\n", 1)  # identical bodies share a function
        fname = functions.setdefault(body, (f"k{len(functions)}", comment))[0]
        for b in rk.buffers:
            note_raw(b)
        calls.append(dict(kernel=fname, args=[buffer(plan, g, b, i == 0, target) for i, b in enumerate(rk.buffers)],
                          note=safe_comment(k.output, 60), launch=rk.launch))
    for j, name in plan.output_copies:
        note_raw(name)
        calls.append(dict(kernel=None, out=j, src=buffer(plan, g, name, False, target), bytes=g.values[name].nbytes))
    sources = [comment + "\n" + body.replace("FNAME", fname) for body, (fname, comment) in functions.items()]
    text = render_for(target.templates, "model.cpp.j2", version=version, target=target.name,
                      model_name=safe_comment(g.name), n_calls=len(model.kernels), n_functions=len(functions),
                      arena_bytes=plan.arena_bytes, weights_bytes=plan.weights_bytes, functions=sources,
                      input_bytes=[g.values[i].nbytes for i in g.inputs],
                      output_bytes=[g.values[o].nbytes for o in g.outputs], calls=calls, packs=packs,
                      segments=_weight_segments(plan, g, raw_reads))
    return ModelSource(text, len(functions), len(model.kernels))
