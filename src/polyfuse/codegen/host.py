"""Host C++ code generation: kernels through templates, a driver calling them in order.

Each kernel is printed with canonical parameter names (``p0`` = output, ``p1..`` = inputs), so
identical kernels (the same layer repeated 12 times) become one function, called many times.
Names taken from the model appear only in comments, and only after :func:`safe_comment`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import sympy

from ..build.memory import MemoryPlan
from ..forms import functions as F
from ..kernel.bounds import guarded_loads, resolve_in_box, split_boxes
from ..kernel.ir import ACC, IDX, Attention, Contraction, GemmChain, Loads, Pointwise, Reduction, linear, strides
from ..kernel.lower import LoweredModel
from ..targets.base import Target
from .printer import CPrinter, c_type, float_literal, storage_type
from .templates import render_for


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


class _Params:
    """Bind buffers to p0, p1, ... and print loads as ``pK[linear index]``."""

    def __init__(self, graph, target, output: str, first_inputs=()):
        self.graph = graph
        self.target = target
        self.buffers = [output, *first_inputs]

    def render(self, template: str, **kw) -> str:
        """``template`` of the target's folder of codegen_templates/."""
        return render_for(self.target.templates, template, **kw)

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
        does not change in those loops becomes a ``const int64_t gN`` of ``pr.hoisted``, to be
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
                pr.names[sym] = f"{self.param(load.buffer)}[{pr(flat)}]"
                del pending[sym]
        pr.hoisted = [f"const int64_t {g} = {text}" for text, g in hoist.items()]
        return pr

    def packed(self, j: int) -> str:
        """A parameter for pre-packed weights number ``j`` (bound to P[j] by the caller)."""
        return self.param(f"{PACKED}{j}")

    def args(self) -> str:
        return ", ".join(f"p{k}" for k in range(len(self.buffers)))

    def declaration(self) -> str:
        decl = []
        for k, name in enumerate(self.buffers):
            t = "float" if name.startswith(PACKED) else storage_type(self.graph.values[name].dtype)
            decl.append(f"{t}* __restrict p0" if k == 0 else f"const {t}* __restrict p{k}")
        return ", ".join(decl)


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


def _loops(shape, dims):
    return [(f"i{d}", int(shape[d])) for d in dims]


def _flat(loops, split_inner: bool, starts=None) -> dict:
    """Flatten outer ``loops`` into one parallel index ``o``: its extent ``n``, each loop variable
    as an expression of ``o`` (``vars``), the innermost loop kept serial when ``split_inner``
    (``inner``, so it vectorises, over [``inner_lo``, ``inner_hi``)), and the elements per flat
    index (``work``). ``starts``: where each loop begins (0 by default)."""
    starts = list(starts or [0] * len(loops))
    inner = loops[-1] if split_inner and len(loops) > 1 else None
    outer = loops[:-1] if inner else loops
    extents = [e for _, e in outer]
    tail = [int(np.prod(extents[d + 1:], dtype=np.int64)) for d in range(len(outer))]
    vars_ = []
    for d, (var, extent) in enumerate(outer):
        e = "o" if tail[d] == 1 else f"(o / {tail[d]})"
        e = e if d == 0 else f"{e} % {extent}"
        vars_.append((var, f"{starts[d]} + {e}" if starts[d] else e))
    lo = starts[-1] if inner else 0
    return dict(n=int(np.prod(extents, dtype=np.int64)), vars=vars_, inner=inner, work=inner[1] if inner else 1,
                inner_lo=str(lo), inner_hi=str(lo + inner[1]) if inner else None)


def _zero_unit_dims(shape) -> dict:
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


def _comment(k) -> str:
    """Header: the fused source nodes (sanitised), then the expression on its own // line."""
    expr = re.sub(r"[^\x20-\x7e]|\\", "_", describe(k))
    expr = expr[:400] + ("..." if len(expr) > 400 else "")
    return safe_comment(f"{type(k).__name__} of {len(k.sources)} node(s): {', '.join(k.sources)}", 400) + "\n// " + expr


def render_pointwise(k: Pointwise, graph, target, packer=no_packing) -> RenderedKernel:
    """One loop nest, or one per box where a Concat's Select is split (kernel/bounds.py): then
    every load inside a box is in range and no load is conditional."""
    params = _Params(graph, target, k.output)
    zero = _zero_unit_dims(k.shape)
    dims = [d for d, n in enumerate(k.shape) if n != 1]
    body = sympy.sympify(k.body).subs(zero)
    pieces = []
    for box in split_boxes(body, k.shape, params.guarded(k.loads, k.shape)):
        part = resolve_in_box(body, box)
        loops = [(f"i{d}", box[d][1]) for d in dims]
        flat = _flat(loops, True, [box[d][0] for d in dims])
        pr = params.printer(k.loads, zero, inner={IDX[dims[-1]]} if flat["inner"] and flat["inner"][1] else None,
                            exprs=[part], guarded=params.guarded(k.loads, box))
        pieces.append(dict(flat=flat, body=pr(part), hoisted=pr.hoisted,
                           out_index=pr(linear(IDX[:len(k.shape)], k.shape).subs(zero))))
    text = params.render("pointwise.cpp.j2", comment=_comment(k), params=params.declaration(), args=params.args(),
                  loops=dims, pieces=pieces)
    return RenderedKernel(text, params.buffers)


_INIT = {"sum": "0", "mean": "0", "max": "std::numeric_limits<{t}>::lowest()"}


def _stages(k: Reduction, pr: CPrinter, zero: dict, acc_t: str) -> list:
    """Per stage: its accumulator's declaration (``decl``: any further ones), ``init``, the loop
    ``step`` and ``simd`` pragma, and the statement after the loop (``finish``).

    A floating-point max starts at -inf and keeps a NaN flag beside it (``<acc>_nan``, or-ed
    per element): the simd reduction's lanes combine with a max that may drop a NaN, and a
    NaN anywhere in the row makes the row's max NaN (ReduceMax)."""
    count = int(np.prod([k.shape[a] for a in k.axes], dtype=np.int64))
    floating = acc_t in ("float", "double")
    out = []
    for acc, comb, expr in k.stages:
        e = pr(sympy.sympify(expr).subs(zero))
        init, decl, pragma = _INIT[comb].format(t=acc_t), "", f"reduction({'max' if comb == 'max' else '+'}:{acc})"
        step, finish = f"{acc} += {e}", f"{acc} /= {acc_t}({count})" if comb == "mean" else ""
        if comb == "max":
            step = f"{acc} = pf_max({acc}, {e})"
            if floating:
                init = f"-std::numeric_limits<{acc_t}>::infinity()"
                decl, pragma = f"int {acc}_nan = 0", pragma + f" reduction(|:{acc}_nan)"
                step = f"{{ const {acc_t} t = {e}; {acc} = t > {acc} ? t : {acc}; {acc}_nan |= t != t; }}"
                finish = f"if ({acc}_nan) {acc} = std::numeric_limits<{acc_t}>::quiet_NaN()"
        out.append(dict(acc=acc, init=init, decl=decl, step=step, finish=finish, simd=f"#pragma omp simd {pragma}"))
    return out


def _hoist_inverses(body, stages, pr: CPrinter, acc_t: str) -> tuple:
    """(body, [C definition]): each ``x ** -e`` of ``body`` whose base depends only on the
    accumulators (a softmax's sum, a layer norm's variance + eps) becomes a name computed once
    per row, so the loop over the row multiplies instead of dividing (and taking a square
    root) per element: at most an ulp or two from the quotient."""
    accs = {a for a, _, _ in stages}
    found = {}
    for f in sympy.preorder_traversal(body):
        if f.is_Pow and f.exp.is_number and f.exp < 0 and f.base.free_symbols and f.base.free_symbols <= accs:
            found.setdefault(f, sympy.Symbol(f"inv{len(found)}"))
    if not found:
        return body, []
    defs = [f"const {acc_t} {sym} = {pr(f)}" for f, sym in found.items()]
    return body.xreplace(found), defs


def render_reduction(k: Reduction, graph, target, packer=no_packing) -> RenderedKernel:
    params = _Params(graph, target, k.output)
    zero = _zero_unit_dims(k.shape)
    acc_t = c_type(k.acc_dtype if k.acc_dtype is not None else graph.values[k.output].dtype)
    accs = {s: str(s) for s, _, _ in k.stages}
    rank = len(k.shape)
    outer = [d for d in range(rank) if d not in k.axes and k.shape[d] != 1]
    red = [d for d in k.axes if k.shape[d] != 1]
    body = sympy.sympify(k.body).subs(zero)
    exprs = [sympy.sympify(e).subs(zero) for _, _, e in k.stages] + [body]
    pr = params.printer(k.loads, zero, accs, exprs=exprs,
                        inner={IDX[d] for d in red} if all(k.shape[d] for d in red) else None,
                        guarded=params.guarded(k.loads, k.shape))
    stages = _stages(k, pr, zero, acc_t)
    if k.keep_shape:
        out_index = linear(IDX[:rank], k.shape)
    else:
        keep = len(k.out_shape) == rank
        idx = [0 if d in k.axes else IDX[d] for d in range(rank) if keep or d not in k.axes]
        out_index = linear(idx, k.out_shape)
    flat = _flat(_loops(k.shape, outer), False)
    flat["work"] = int(np.prod([k.shape[d] for d in red], dtype=np.int64)) * (len(stages) + 1)
    body, inverses = _hoist_inverses(body, k.stages, pr, acc_t)
    text = params.render("reduction.cpp.j2", comment=_comment(k), params=params.declaration(), args=params.args(),
                  outer=outer, flat=flat, red=_loops(k.shape, red), stages=stages, acc_t=acc_t,
                  keep_shape=k.keep_shape,
                  body=pr(body), inverses=inverses, hoisted=pr.hoisted,
                  out_index=pr(sympy.sympify(out_index).subs(zero)))
    return RenderedKernel(text, params.buffers)


def render_contraction(k: Contraction, graph, target, packer=no_packing) -> RenderedKernel:
    j = packer(k)
    params = _Params(graph, target, k.output, (k.a, k.b if j is None else f"{PACKED}{j}"))
    nb = len(k.batch)
    bvars = IDX[:nb]
    pr = params.printer({}, {})
    off = lambda st, base=0: pr(sum((v * s for v, s in zip(bvars, st)), sympy.Integer(base)))  # noqa: E731
    natural = tuple(k.batch) + (k.m, k.n)
    c_batch, ldc = k.c_addressing()
    epilogue = None
    if sympy.sympify(k.epilogue) != ACC:
        shape = k.out_shape if k.c_strides is None else natural
        zero = _zero_unit_dims(shape)
        epr = params.printer(k.loads, zero, {ACC: "acc"}, guarded=params.guarded(k.loads, shape))
        out_strides = k.c_strides if k.c_strides is not None else strides(shape)
        out_index = sum((i * s for i, s, d in zip(IDX, out_strides, shape) if d != 1), sympy.Integer(0))
        flat = _flat(_loops(shape, [d for d, n in enumerate(shape) if n != 1]), True)
        # Applied per finished block inside the GEMM when the flat index is C's row and the
        # inner loop C's column; otherwise a separate pass over C after it.
        tiled = not k.batch and flat["inner"] is not None and flat["inner"][1] == k.n and flat["n"] == k.m
        epilogue = dict(flat=flat, tiled=tiled, out_index=epr(sympy.sympify(out_index).subs(zero)),
                        body=epr(sympy.sympify(k.epilogue).subs(zero)))
    text = params.render("contraction.cpp.j2", comment=_comment(k), params=params.declaration(), args=params.args(),
                  batch=[(f"i{d}", n) for d, n in enumerate(k.batch)], m=k.m, n=k.n, k=k.k,
                  alpha=float_literal(k.alpha), lda=k.ld("a"), trans_a=int(k.trans_a),
                  ldb=k.ld("b"), trans_b=int(k.trans_b), ldc=ldc,
                  a_offset=off(k.a_strides, k.a_offset), b_offset=off(k.b_strides, k.b_offset),
                  c_offset=off(c_batch), epilogue=epilogue, packed=j is not None)
    return RenderedKernel(text, params.buffers)


def render_attention(k: Attention, graph, target, packer=no_packing) -> RenderedKernel:
    s, r, c = k.scores, k.softmax, k.context
    params = _Params(graph, target, k.output, (s.a, s.b, c.b))
    nb = len(s.batch)
    row, col = IDX[nb], IDX[nb + 1]
    pr = params.printer({}, {})
    bvars = IDX[:nb]
    off = lambda st, base: pr(sum((v * x for v, x in zip(bvars, st)), sympy.Integer(base)))  # noqa: E731
    bstr = strides(s.batch)
    batch_vars = [(f"i{d}", f"(bi / {bstr[d]}) % {n}" if n != 1 else "0") for d, n in enumerate(s.batch)]
    tile = {sym: f"s[{col}]" for sym, l in r.loads.items() if l.buffer == s.output}
    spr = params.printer(s.loads, {}, {ACC: "acc"}, guarded=params.guarded(s.loads, tuple(s.batch) + (s.m, s.n)))
    rloads = {x: l for x, l in r.loads.items() if x not in tile}
    rpr = params.printer(rloads, {}, {**tile, **{a: str(a) for a, _, _ in r.stages}}, guarded=params.guarded(rloads, r.shape))
    acc_t = c_type(r.acc_dtype if r.acc_dtype is not None else np.float32)
    c_batch, ldc = c.c_addressing()
    c_out = linear(IDX[:nb + 2], tuple(c.batch) + (c.m, c.n)) if c.c_strides is None else \
        sum((i * x for i, x in zip(IDX, c.c_strides)), sympy.Integer(0))
    cpr = params.printer(c.loads, {}, {ACC: "acc"}, guarded=params.guarded(c.loads, tuple(c.batch) + (c.m, c.n)))
    epi = lambda x, p: "" if sympy.sympify(x) == ACC else p(x)  # noqa: E731
    stages, body = _stages(r, rpr, {}, acc_t), sympy.sympify(r.body)
    stored = _store_last_term(r, set(tile))
    if stored is not None:  # softmax: exp(x - max) is computed once, kept in the tile, normalised
        body = stored
        rpr.names[TILE] = f"s[{col}]"
        last = stages[-1]
        last["step"] = f"{{ const float t = {rpr(r.stages[-1][2])}; s[{col}] = t; {last['acc']} += t; }}"
    nrb = -(-s.m // target.schedule["attention_rows"])  # query-row blocks per batch entry, (nearly) equal
    body, inverses = _hoist_inverses(body, r.stages, rpr, acc_t)
    text = params.render("attention.cpp.j2", comment=_comment(k), params=params.declaration(), args=params.args(),
                  m=s.m, n=s.n, k1=s.k, n2=c.n, nbatch=int(np.prod(s.batch, dtype=np.int64)), batch_vars=batch_vars,
                  nrb=nrb, rb=-(-s.m // nrb),
                  row=row, col=col, scores_desc=safe_comment(str(s.epilogue)),
                  alpha1=float_literal(s.alpha), lda1=s.ld("a"), ta1=int(s.trans_a),
                  ldb1=s.ld("b"), tb1=int(s.trans_b),
                  a1_offset=off(s.a_strides, s.a_offset), b1_offset=off(s.b_strides, s.b_offset),
                  scores_epilogue=epi(s.epilogue, spr), stages=stages, acc_t=acc_t,
                  softmax_body=rpr(body), inverses=inverses, alpha2=float_literal(c.alpha), ldb2=c.ld("b"),
                  tb2=int(c.trans_b), b2_offset=off(c.b_strides, c.b_offset), c_offset=off(c_batch, 0), ldc=ldc,
                  context_epilogue=epi(c.epilogue, cpr), context_out=pr(c_out))
    return RenderedKernel(text, params.buffers)


TILE = sympy.Symbol("TILE")  # the attention tile's current element, s[col]


def _store_last_term(r: Reduction, tile_syms: set):
    """When ``r``'s last stage sums a term that the body reuses, and the body reads the tile only
    through that term, return the body with the term replaced by TILE (the loop stores the term
    into the tile as it sums it); else None. A later stage never exists to see the stored term."""
    acc, comb, expr = r.stages[-1]
    if comb != "sum":
        return None
    body = sympy.sympify(r.body)
    new = body.xreplace({sympy.sympify(expr): TILE})
    if new == body or new.free_symbols & tile_syms:
        return None
    return new


def _rows_cols_epilogue(c: Contraction, params: "_Params") -> str:
    """``c``'s epilogue printed over (i0, i1) = (row, column) of its M x N result."""
    if sympy.sympify(c.epilogue) == ACC:
        return ""
    from ..fusion.compose import instantiate
    from ..fusion.indexing import reshape_index, simplify_index

    idx = reshape_index(IDX[:2], (c.m, c.n), c.out_shape)
    idx = [simplify_index(i, {IDX[0]: c.m, IDX[1]: c.n}) for i in idx]
    table = Loads()
    expr = instantiate(c.epilogue, c.loads, idx, table)
    return params.printer(table.table, {}, {ACC: "acc"})(expr)


def render_gemm_chain(k: GemmChain, graph, target, packer=no_packing) -> RenderedKernel:
    f, s2 = k.first, k.second
    j1, j2 = packer(f), packer(s2)
    params = _Params(graph, target, k.output, (f.a, f.b if j1 is None else f"{PACKED}{j1}",
                                       s2.b if j2 is None else f"{PACKED}{j2}"))
    epilogue1, epilogue2 = _rows_cols_epilogue(f, params), _rows_cols_epilogue(s2, params)  # before declaration()
    text = params.render("gemm_chain.cpp.j2", comment=_comment(k), params=params.declaration(), args=params.args(),
                  rows=k.rows_per_block, m=f.m, n1=f.n, k1=f.k, n2=s2.n, alpha1=float_literal(f.alpha),
                  a1_offset=f.a_offset, lda1=f.ld("a"), ta1=int(f.trans_a),
                  a1_row_step=1 if f.trans_a else f.ld("a"), b1_offset=f.b_offset,
                  ldb1=f.ld("b"), tb1=int(f.trans_b), epilogue1=epilogue1,
                  alpha2=float_literal(s2.alpha), b2_offset=s2.b_offset, ldb2=s2.ld("b"),
                  tb2=int(s2.trans_b), epilogue2=epilogue2, packed1=j1 is not None, packed2=j2 is not None)
    return RenderedKernel(text, params.buffers)


_RENDER = {Pointwise: render_pointwise, Reduction: render_reduction, Contraction: render_contraction,
           Attention: render_attention, GemmChain: render_gemm_chain}


def pointer(plan: MemoryPlan, graph, name: str, writable: bool) -> str:
    if name.startswith(PACKED):
        return f"P[{name[len(PACKED):]}]"
    loc = plan.location(name)
    t = ("" if writable else "const ") + storage_type(graph.values[name].dtype)
    if loc.kind in ("input", "output"):
        return f"({t}*){'in' if loc.kind == 'input' else 'out'}[{loc.at}]"
    return f"({t}*)({'A' if loc.kind == 'arena' else 'W'} + {loc.at})"


def _weight_segments(plan: MemoryPlan, graph, raw_reads: set) -> list[str]:
    """``{offset, bytes, keep}`` per constant, in file order. ``keep == 0``: only its packed copy
    is read, so the loader packs it from a scratch buffer and never touches its pages in the
    weights buffer (they cost no memory)."""
    out = []
    for name, off in plan.weights:
        n = graph.values[name].nbytes
        keep = any(off <= at < off + max(n, 1) for at in raw_reads)
        out.append(f"{{{off}, {n}, {int(keep)}}}")
    return out


@dataclass
class HostSource:
    text: str
    n_functions: int
    n_calls: int


def generate_host(model: LoweredModel, plan: MemoryPlan, *, version: str, target: Target) -> HostSource:
    g = model.graph
    functions: dict[str, tuple[str, str]] = {}  # body text -> (name, comment of its first use)
    calls = []
    packs: list[tuple] = []

    def packer(c: Contraction):
        """Index of ``c``'s B in the table of weights packed at load, or None if B is not constant."""
        loc = plan.location(c.b)
        if loc.kind != "weights" or any(c.b_strides):
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
        rk = _RENDER[type(k)](k, g, target, packer)
        comment, body = rk.text.split("\n", 1)  # identical bodies share a function
        fname = functions.setdefault(body, (f"k{len(functions)}", comment))[0]
        args = [pointer(plan, g, b, i == 0) for i, b in enumerate(rk.buffers)]
        for b in rk.buffers:
            note_raw(b)
        calls.append(f"{fname}({', '.join(args)}, nt);  // {safe_comment(k.output, 60)}")
    for j, name in plan.output_copies:
        note_raw(name)
        calls.append(f"std::memcpy(out[{j}], {pointer(plan, g, name, False)}, {g.values[name].nbytes});")
    sources = [comment + "\n" + body.replace("FNAME", fname) for body, (fname, comment) in functions.items()]
    text = render_for(target.templates, "model.cpp.j2", version=version, target=target.name, model_name=safe_comment(g.name),
                  n_calls=len(model.kernels), n_functions=len(functions), arena_bytes=plan.arena_bytes,
                  weights_bytes=plan.weights_bytes, functions=sources,
                  input_bytes=[g.values[i].nbytes for i in g.inputs],
                  output_bytes=[g.values[o].nbytes for o in g.outputs], calls=calls,
                  packs=["{" + ", ".join(map(str, p)) + "}" for p in packs],
                  segments=_weight_segments(plan, g, raw_reads))
    return HostSource(text, len(functions), len(model.kernels))
