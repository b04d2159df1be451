"""The target-neutral kernel view: what every C-family renderer needs from a fused kernel.

A kernel's buffers are bound to canonical parameters (``p0`` = output, ``p1..`` = inputs), so
identical kernels (the same layer repeated 12 times) become one function; its loops are
flattened into one parallel index (:func:`flat`); its expressions are printed by the target's
printer (``Target.printer``: C++ or another C dialect), with loop-invariant gather indices hoisted.
The language itself lives in the printer's tables and the target's templates, never here.
Names taken from the model appear only in comments, and only after :func:`safe_comment`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import sympy

from ..forms import functions as F
from ..kernel.bounds import guarded_loads
from ..kernel.ir import IDX, Attention, Contraction, Pointwise, Reduction, linear
from .printer import CPrinter
from .templates import render_module_for


def safe_comment(text: str, limit: int = 160) -> str:
    """Make model-provided text safe inside a // comment: no newlines, backslashes or */."""
    s = re.sub(r"[^A-Za-z0-9_.:;,=()\[\] +-]", "_", text)
    return s[:limit] + ("..." if len(s) > limit else "")


PACKED = "\x00packed:"  # buffer-name prefix of pre-packed GEMM weights (never a model name: NUL)


def no_packing(c) -> None:
    return None


@dataclass
class RenderedKernel:
    text: str  # function source; FNAME stands for its name
    buffers: list  # value names bound to p0, p1, ...
    launch: dict | None = None  # what the template exports as ``launch`` (an OpenCL NDRange), if anything


class Params:
    """Bind buffers to p0, p1, ... and print loads as ``pK[linear index]``."""

    def __init__(self, graph, target, output: str, first_inputs=()):
        self.graph = graph
        self.target = target
        self.buffers = [output, *first_inputs]

    def render(self, template: str, **kw) -> RenderedKernel:
        """``template`` of the target's folders of codegen_templates/, given ``kw`` and the bound
        buffers as ``buffers`` ([(k, element type)], p0 first)."""
        text, exported = render_module_for(self.target.templates, template, buffers=self.typed(), **kw)
        return RenderedKernel(text, self.buffers, exported.get("launch"))

    def typed(self) -> list[tuple[int, str]]:
        pr = self.target.printer
        return [(k, pr.type_name(np.float32) if b.startswith(PACKED) else pr.storage_type(self.graph.values[b].dtype))
                for k, b in enumerate(self.buffers)]

    def param(self, name: str) -> str:
        if name not in self.buffers:
            self.buffers.append(name)
        return f"p{self.buffers.index(name)}"

    def _uses_double(self, loads: dict, exprs) -> bool:
        """True when the kernel reads or writes float64 or casts to it: its float literals are then
        printed as double (``0.1``, not ``0.1f``), so float64 arithmetic is not rounded to float32."""
        f64 = np.dtype(np.float64)
        if np.dtype(self.graph.values[self.buffers[0]].dtype) == f64:
            return True
        if any(np.dtype(self.graph.values[l.buffer].dtype) == f64 for l in loads.values()):
            return True
        return any(c.func is F.Cast and F.CAST_DTYPES[int(c.args[1])] == f64
                   for e in exprs for c in sympy.preorder_traversal(sympy.sympify(e)))

    def guarded(self, loads: dict, box) -> set:
        """Loads of ``loads`` that may leave their buffer in ``box`` (see kernel/bounds.py)."""
        return guarded_loads(loads, box, {l.buffer: self.graph.values[l.buffer].shape for l in loads.values()})

    def printer(self, loads: dict, zero: dict, extra=None, inner=None, exprs=(), guarded=None) -> CPrinter:
        """A printer with ``loads`` named as ``pK[index]``. With ``inner`` (the loop variables
        of the vectorised inner loops), each part of a Gather's index that reads other loads but
        does not change in those loops becomes a ``const <index type> gN`` of ``pr.hoisted``, to be
        defined before them: GCC does not hoist it, and vectorises the row with gathers
        instead of contiguous loads (tiny BERT's embedding + layer norm: 0.11 -> 0.04 ms).
        Only the indices of loads that ``exprs`` read unconditionally are hoisted: under a
        Select (a Pad of gathered rows) the index may be out of range where it is not read."""
        pr = self.target.printer(dict(extra or {}), single=not self._uses_double(loads, exprs), guarded=guarded)
        hoist = {}
        idx_of = {sym: [sympy.sympify(i).subs(zero) for i in load.index] for sym, load in loads.items()}
        always = _unconditional(exprs, idx_of) if inner is not None else set()
        pending = dict(loads)
        while pending:  # loads whose index contains other loads (Gather) print after those
            for sym, load in list(pending.items()):
                idx = idx_of[sym]
                if any(s in pending for i in idx for s in i.free_symbols):
                    continue
                flat = linear(idx, self.graph.values[load.buffer].shape)
                if sym in always:
                    flat = _hoist_invariant(flat, idx_of, set(inner), pr, hoist)
                pr.names[sym] = pr.element(self.param(load.buffer), pr(flat),
                                           pr.storage_type(self.graph.values[load.buffer].dtype))
                del pending[sym]
        pr.hoisted = [f"const {pr.INDEX_T} {g} = {text}" for text, g in hoist.items()]
        return pr

    def packed(self, j: int) -> str:
        """A parameter for pre-packed weights number ``j`` (bound to P[j] by the caller)."""
        return self.param(f"{PACKED}{j}")

    def args(self) -> str:
        return ", ".join(f"p{k}" for k in range(len(self.buffers)))

    def declaration(self) -> str:
        return ", ".join(self.target.printer.buffer_param(k, t) for k, t in self.typed())


def _unconditional(exprs, idx_of: dict) -> set:
    """The loads (keys of ``idx_of``) that evaluating ``exprs`` always reads: not only in a
    Select's branch or past the first operand of a short-circuit && or ||."""
    out = set()

    def visit(e):
        if e in idx_of:
            if e not in out:
                out.add(e)
                for i in idx_of[e]:
                    visit(i)
        elif e.func in (F.Select, F.LogicalAnd, F.LogicalOr):
            visit(e.args[0])
        else:
            for a in e.args:
                visit(a)

    for e in exprs:
        visit(sympy.sympify(e))
    return out


def _hoist_invariant(e, idx_of: dict, inner: set, pr: CPrinter, hoist: dict):
    """``e`` with each largest subexpression that reads a load (a key of ``idx_of``) and, through
    the loads' own indices, no variable of ``inner`` replaced by a symbol ``gN``: the one of
    ``hoist`` (C text -> symbol) for the same text, else a new one added there."""
    def free(x, seen=()):
        out = set()
        for s in x.free_symbols:
            if s in idx_of and s not in seen:
                out |= {s} | set().union(*(free(i, (*seen, s)) for i in idx_of[s]))
            else:
                out.add(s)
        return out

    def walk(x):
        syms = free(x)
        if syms & idx_of.keys() and not syms & inner and _integral(x):
            return hoist.setdefault(pr(x), sympy.Symbol(f"g{len(hoist)}", integer=True))
        return x.func(*[walk(a) for a in x.args]) if x.args else x

    return walk(e)


def _integral(x) -> bool:
    """True when index expression ``x`` is an integer for every value of its parts: it may become an
    int64_t. 2*w/21 inside a floor is not (hoisted, it truncated to 0: a Gather read through a
    Reshape read the wrong rows); floor(...), Mod(...) and w itself are."""
    if x.is_Rational:
        return x.is_Integer
    if not x.args or isinstance(x, (sympy.floor, sympy.Mod)):
        return True
    if x.is_Pow:
        return x.exp.is_Integer and int(x.exp) >= 0 and _integral(x.base)
    return (x.is_Add or x.is_Mul or isinstance(x, F._Opaque)) and all(_integral(a) for a in x.args)


def loops(shape, dims):
    return [(f"i{d}", int(shape[d])) for d in dims]


def flat(nest, split_inner: bool, starts=None, index: str = "o") -> dict:
    """Flatten outer ``nest`` into one parallel index ``o``: its extent ``n``, each loop variable
    as an expression of ``o`` (``vars``), the innermost loop kept serial when ``split_inner``
    (``inner``, so it vectorises, over [``inner_lo``, ``inner_hi``)), and the elements per flat
    index (``work``). ``starts``: where each loop begins (0 by default); ``index``: the flat index's name."""
    starts = list(starts or [0] * len(nest))
    inner = nest[-1] if split_inner and len(nest) > 1 else None
    outer = nest[:-1] if inner else nest
    extents = [e for _, e in outer]
    tail = [int(np.prod(extents[d + 1:], dtype=np.int64)) for d in range(len(outer))]
    vars_ = []
    for d, (var, extent) in enumerate(outer):
        e = index if tail[d] == 1 else f"({index} / {tail[d]})"
        e = e if d == 0 else f"{e} % {extent}"
        vars_.append((var, f"{starts[d]} + {e}" if starts[d] else e))
    lo = starts[-1] if inner else 0
    return dict(n=int(np.prod(extents, dtype=np.int64)), vars=vars_, inner=inner, work=inner[1] if inner else 1,
                inner_lo=str(lo), inner_hi=str(lo + inner[1]) if inner else None)


def zero_unit_dims(shape) -> dict:
    return {IDX[d]: 0 for d, n in enumerate(shape) if n == 1}


def describe(k) -> str:
    """The kernel's form as text: built from polyfuse's own symbols (L0, i0, r0) and numbers."""
    if isinstance(k, Pointwise):
        return f"out = {k.body}"
    if isinstance(k, Reduction):
        return "; ".join(f"{a} = {c}({e})" for a, c, e in k.stages) + f"; out = {k.body}"
    if isinstance(k, Contraction):
        return f"acc = GEMM {k.m}x{k.n}x{k.k} (batch {list(k.batch)}); out = {k.epilogue}"
    if isinstance(k, Attention):
        return f"scores: {describe(k.scores)} | softmax: {describe(k.softmax)} | context: {describe(k.context)}"
    return f"first: {describe(k.first)} | second: {describe(k.second)}"


def comment(k) -> str:
    """Header: the fused source nodes (sanitised), then the expression on its own // line."""
    expr = re.sub(r"[^\x20-\x7e]|\\", "_", describe(k))
    expr = expr[:400] + ("..." if len(expr) > 400 else "")
    return safe_comment(f"{type(k).__name__} of {len(k.sources)} node(s): {', '.join(k.sources)}", 400) + "\n// " + expr
