"""Fusion planning over the whole kernel list.

Three rewrites run to a fixpoint:

* **inline**: a pointwise producer is composed into every kernel that loads it (another
  pointwise kernel, a reduction's prologue, a contraction's epilogue), and disappears;
* **epilogue**: a pointwise consumer that reads a contraction's or reduction's output
  elementwise becomes that kernel's epilogue; one that reads a row reduction's value across
  the row becomes its per-element body, and a reduction over the same axes that reads it
  takes it as an earlier stage (decomposed LayerNorm and Softmax become one row kernel);
* **addressing**: a pure movement (Transpose, Reshape, Slice, times a constant) feeding a GEMM
  operand, or permuting a GEMM's result, becomes the GEMM's strides (:mod:`.operands`).

Legality (by kernel kind, as in DNNFusion's mapping-type table):

    producer \\ consumer   Pointwise   Reduction(prologue)   Contraction(epilogue)   GEMM operand
    Pointwise             inline      inline                inline                  strides if pure movement
    Reduction             epilogue    no                    no                      no
    Contraction           epilogue or output strides if the consumer only permutes

Profitability: an inline removes one intermediate tensor (its bytes written and read once).
Consumers that iterate more elements than the producer has (several consumers, or one that
broadcasts it) recompute it; that is allowed only while the extra operations stay within
:data:`RECOMPUTE_OPS` per producer element. A composed expression is capped at :data:`MAX_OPS`. Every
fused group stays convex: a producer is removed only when all its consumers absorbed it, and
an epilogue only absorbs the single consumer of its kernel, placed at the consumer.

Each refusal is recorded with a reason a user can read (``polyfuse inspect --explain``).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
import sympy

from ..forms import functions as F
from ..kernel.bounds import reads_conditionally
from ..kernel.ir import Attention, Contraction, GemmChain, Pointwise, Reduction
from ..kernel.lower import LoweredModel
from .compose import (exprs, inline_producer, merge_epilogue, merge_row_consumer, merge_stage, reads_at_identity,
                      reads_row_result)
from .attention import consumers, fuse_attention
from .gemm_chain import fuse_gemm_chains
from .operands import absorb_operand, absorb_output

CONDITIONAL_READS = ("the fused kernel would read a Concat's pieces under a condition (only a pointwise kernel "
                     "splits its loops at the pieces' boundaries)")
RECOMPUTE_OPS = 4  # extra operations per producer element that recomputation may cost
MAX_OPS = 400  # never grow one kernel's expressions beyond this many operations


@dataclass
class Refusal:
    producer: str
    consumer: str
    reason: str

    def __str__(self) -> str:
        return f"{self.producer} -> {self.consumer}: {self.reason}"


@dataclass
class FusionReport:
    kernels_before: int = 0
    kernels_after: int = 0
    attention: int = 0  # attention blocks fused into one kernel each
    gemm_chains: int = 0  # back-to-back GEMM pairs fused into one kernel each
    refusals: list = field(default_factory=list)
    before: list = field(default_factory=list, repr=False)  # the per-node kernels
    after: list = field(default_factory=list, repr=False)  # the fused kernels

    # Counted when asked (polyfuse inspect): CSE over every fused kernel took 0.3 s of BERT-base's
    # compile and estimate, which never read them.
    @functools.cached_property
    def ops_before(self) -> int:
        """Expression operations of the per-node kernels."""
        return sum(ops(k) for k in self.before)

    @functools.cached_property
    def ops_after(self) -> int:
        """... of the fused kernels, after sympy's simplification and CSE."""
        return sum(ops_after_cse(k) for k in self.after)


def ops(k) -> int:
    """Arithmetic operations in ``k``'s expressions (F.Use groupings are not operations)."""
    return sum(_expr_ops(e) for e in exprs(k))


@functools.lru_cache(maxsize=65536)
def _expr_ops(e) -> int:
    # The planner prices the same expression many times (each candidate fusion, each of a model's
    # repeated layers); sympy expressions are immutable, so the count is kept.
    return sympy.count_ops(_ungrouped(e))


def ops_after_cse(k) -> int:
    parts = [k.scores, k.softmax, k.context] if isinstance(k, Attention) else \
        [k.first, k.second] if isinstance(k, GemmChain) else [k]
    total = 0
    for part in parts:
        temps, reduced = sympy.cse([_ungrouped(e) for e in exprs(part)])
        total += sum(sympy.count_ops(e) for _, e in temps) + sum(sympy.count_ops(e) for e in reduced)
    return total


_CONSTANT = sympy.Symbol("constant")


def _ungrouped(e):
    """``e`` without its F.Use wrappers (groupings, not operations) and with each F.Special as a
    plain symbol (a constant such as -inf, not an operation), for counting."""
    e = sympy.sympify(e).replace(lambda x: isinstance(x, F.Use), lambda x: x.args[0])
    return e.replace(lambda x: isinstance(x, F.Special), lambda x: _CONSTANT)


def _elements(k) -> int:
    shape = k.out_shape if isinstance(k, Contraction) else k.shape
    return int(np.prod(shape, dtype=np.int64))


def _label(k) -> str:
    if not k.sources:
        return f"{type(k).__name__.lower()} {k.output}"
    more = f" (+{len(k.sources) - 1} fused)" if len(k.sources) > 1 else ""
    return f"{type(k).__name__.lower()} {k.sources[0]}{more}"


class _Planner:
    """Holds the kernel list and, per buffer, the kernels that read it (kept up to date)."""

    def __init__(self, model: LoweredModel):
        self.model = model
        self.g = model.graph
        self.shapes = {n: v.shape for n, v in self.g.values.items()}
        self.views = model.views
        self.outputs = {model.views.get(o, o) for o in self.g.outputs}
        self.refusals: dict[tuple, Refusal] = {}
        self.readers: dict[str, list] = {}
        self.live: set[int] = set()  # ids of the kernels in the list now
        for k in model.kernels:
            self._add(k)

    def _uses(self, k):
        """(base buffer, how) pairs: how is "operand" for a GEMM input, else "load"."""
        out = set()
        if isinstance(k, Contraction):
            out |= {(self.views.get(b, b), "operand") for b in (k.a, k.b)}
        out |= {(self.views.get(l.buffer, l.buffer), "load") for l in k.loads.values()}
        return out

    def _add(self, k):
        self.live.add(id(k))
        for b, how in self._uses(k):
            self.readers.setdefault(b, []).append((k, how))

    def _drop(self, k):
        self.live.discard(id(k))
        for b, _ in self._uses(k):
            self.readers[b] = [(r, h) for r, h in self.readers[b] if r is not k]

    def snapshot(self, reverse: bool = False):
        """The kernels to visit in a pass, skipping any a rewrite earlier in the same pass replaced
        (merging a stale copy brought back reads of a buffer whose kernel was gone)."""
        for k in (list(reversed(self.model.kernels)) if reverse else list(self.model.kernels)):
            if id(k) in self.live:
                yield k

    def replace(self, old, new):
        ks = self.model.kernels
        ks[next(i for i, k in enumerate(ks) if k is old)] = new
        self._drop(old)
        self._add(new)

    def remove(self, k):
        self.model.kernels[:] = [x for x in self.model.kernels if x is not k]
        self._drop(k)

    def reads_conditionally(self, k) -> bool:
        """True when ``k`` would read a load that may be out of range under a condition (a Concat
        piece outside a pointwise kernel, or not split away in one): see kernel/bounds.py."""
        return any(sympy.sympify(e).has(F.Select) for e in exprs(k)) and reads_conditionally(k, self.shapes)

    def refuse(self, p, c, reason):
        self.refusals[(p.output, c.output if c is not None else "")] = Refusal(_label(p), _label(c) if c else "-", reason)

    def inline_pass(self) -> bool:
        changed = False
        for p in self.snapshot(reverse=True):
            if not isinstance(p, Pointwise):
                continue
            users = list(self.readers.get(p.output, []))
            if not users:
                continue
            consumers = [c for c, _ in users]
            if p.output in self.outputs:
                self.refuse(p, consumers[0], "its result is a model output and must be written")
                continue
            if any(how == "operand" for _, how in users):
                c = next(c for c, how in users if how == "operand")
                self.refuse(p, c, "it is an operand of a matrix product, which reads memory directly")
                continue
            extra = ops(p) * (sum(_elements(c) for c in consumers) / max(1, _elements(p)) - 1)
            if extra > RECOMPUTE_OPS:
                self.refuse(p, consumers[0], f"{len(users)} kernel(s) read it over {sum(_elements(c) for c in consumers)} "
                            f"elements; recomputing its {ops(p)} operations for each would cost more than writing it once")
                continue
            fused = [inline_producer(c, p, self.shapes, self.views) for c in consumers]
            big = next((f for f in fused if ops(f) > MAX_OPS), None)
            if big is not None:
                self.refuse(p, big, f"the composed expression would exceed {MAX_OPS} operations")
                continue
            cond = next((f for f in fused if self.reads_conditionally(f)), None)
            if cond is not None:
                self.refuse(p, cond, CONDITIONAL_READS)
                continue
            for c, f in zip(consumers, fused):
                self.replace(c, f)
            self.remove(p)
            changed = True
        return changed

    def epilogue_pass(self, rows: bool = False) -> bool:
        """Fold consumers into contractions and reductions; with ``rows``, also row-value consumers
        and stage merges (run last, so cheap elementwise producers have been inlined first)."""
        changed = False
        for k in self.snapshot():
            if not isinstance(k, (Contraction, Reduction)):
                continue
            users = self.readers.get(k.output, [])
            if len(users) > 1:
                self.refuse(k, users[0][0], f"{len(users)} kernels read its result, so it must be in memory")
                continue
            if not users:
                continue
            c, how = users[0]
            if k.output in self.outputs:
                self.refuse(k, c, "its result is a model output and must be written")
                continue
            if how == "operand":
                self.refuse(k, c, "a matrix product reads the result as an operand, so it must be in memory")
                continue
            if isinstance(k, Reduction) and isinstance(c, Reduction):
                if not rows:
                    continue
                if reads_row_result(c.shape, c.loads, k, self.shapes, self.views) and tuple(c.axes) == tuple(k.axes):
                    fused = merge_stage(k, c, self.shapes, self.views)
                    if self.reads_conditionally(fused):
                        self.refuse(k, c, CONDITIONAL_READS)
                        continue
                    self.replace(c, fused)
                    self.remove(k)
                    changed = True
                else:
                    self.refuse(k, c, "the next reduction runs over other axes or reads other positions")
                continue
            if not isinstance(c, Pointwise):
                self.refuse(k, c, "only elementwise consumers fuse into an epilogue")
                continue
            if rows and isinstance(k, Reduction) and reads_row_result(c.shape, c.loads, k, self.shapes, self.views):
                fused = merge_row_consumer(k, c, self.shapes, self.views)
                if self.reads_conditionally(fused):
                    self.refuse(k, c, CONDITIONAL_READS)
                    continue
                self.replace(c, fused)
                self.remove(k)
                changed = True
                continue
            fused = absorb_output(k, c, self.shapes, self.views) if isinstance(k, Contraction) else None
            if fused is None:
                size = int(np.prod(k.out_shape, dtype=np.int64))
                if _elements(c) != size:
                    self.refuse(k, c, f"the consumer writes {_elements(c)} elements and the result has {size} "
                                "(a Concat): an epilogue runs once per element of the result")
                    continue
                stored = self.shapes[k.output] if isinstance(k, Contraction) and k.c_strides is not None else k.out_shape
                if not reads_at_identity(c, k.output, stored, self.shapes, self.views):
                    self.refuse(k, c, "the consumer reads the result at other positions (broadcast, transpose "
                                "or gather), not element by element")
                    continue
                if isinstance(k, Contraction) and self.g.values[c.output].dtype != self.g.values[k.output].dtype:
                    self.refuse(k, c, "the consumer changes the element type; the epilogue runs in place")
                    continue
                fused = merge_epilogue(k, c, self.shapes, self.views)
            if self.reads_conditionally(fused):
                self.refuse(k, c, CONDITIONAL_READS)
                continue
            self.replace(c, fused)  # the fused kernel runs where the consumer ran
            self.remove(k)
            changed = True
        return changed

    def operand_pass(self) -> bool:
        changed = False
        producers = {k.output: k for k in self.model.kernels}
        for c in self.snapshot():
            if not isinstance(c, Contraction):
                continue
            for which in ("a", "b"):
                name = getattr(c, which)
                p = producers.get(self.views.get(name, name))
                if not isinstance(p, Pointwise):
                    continue
                fused = absorb_operand(c, which, p, self.shapes, self.views)
                if fused is None:
                    self.refuse(p, c, "the operand is computed, or its layout has no unit stride, so the "
                                "matrix product cannot read it in place")
                    continue
                self.replace(c, fused)
                c = fused
                changed = True
                if not self.readers.get(p.output) and p.output not in self.outputs:
                    self.remove(p)
        return changed


def fuse(model: LoweredModel, schedule) -> FusionReport:
    """Fuse ``model.kernels`` in place for a target's ``schedule`` (targets.base.SCHEDULE);
    returns counts and the refused fusions."""
    report = FusionReport(kernels_before=len(model.kernels), before=list(model.kernels))
    planner = _Planner(model)
    for rows in (False, True):
        while planner.epilogue_pass(rows) | planner.operand_pass() | planner.inline_pass():
            pass
    report.attention = fuse_attention(model.kernels, planner.shapes, planner.views, planner.outputs)
    readers = consumers(model.kernels, planner.views)  # chaining replaces only each pair's own kernels
    report.gemm_chains = fuse_gemm_chains(model.kernels, lambda b: readers.get(b, []), planner.views,
                                          planner.outputs, planner.refuse, schedule)
    live = {k.output for k in model.kernels}
    report.refusals = [r for (p, c), r in planner.refusals.items() if p in live and (not c or c in live)]
    report.kernels_after = len(model.kernels)
    report.after = list(model.kernels)
    return report
