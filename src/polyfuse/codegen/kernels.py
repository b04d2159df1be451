"""Per kernel kind, the template arguments of its function, rendered by the target's templates.

Target-neutral: expressions are printed by the target's printer, declarations through its
dialect methods (types, limits, parameters), and the loops, parallel driver and GEMM calls are
the templates' (``codegen_templates/<target>/{pointwise,reduction,contraction,attention,gemm_chain}.j2``).
"""
from __future__ import annotations

import numpy as np
import sympy

from ..forms import functions as F
from ..kernel.ir import ACC, IDX, Attention, Contraction, GemmChain, Loads, Pointwise, Reduction, linear, strides
from ..kernel.bounds import resolve_in_box, split_boxes
from . import view
from .printer import CPrinter
from .view import PACKED, Params, RenderedKernel, no_packing, safe_comment  # noqa: F401


def render_pointwise(k: Pointwise, graph, target, packer=no_packing) -> RenderedKernel:
    """One loop nest, or one per box where a Concat's Select is split (kernel/bounds.py): then
    every load inside a box is in range and no load is conditional."""
    params = Params(graph, target, k.output)
    zero = view.zero_unit_dims(k.shape)
    dims = [d for d, n in enumerate(k.shape) if n != 1]
    body = sympy.sympify(k.body).subs(zero)
    pieces = []
    for box in split_boxes(body, k.shape, params.guarded(k.loads, k.shape)):
        part = resolve_in_box(body, box)
        loops = [(f"i{d}", box[d][1]) for d in dims]
        flat = view.flat(loops, True, [box[d][0] for d in dims])
        pr = params.printer(k.loads, zero, inner={IDX[dims[-1]]} if flat["inner"] and flat["inner"][1] else None,
                            exprs=[part], guarded=params.guarded(k.loads, box))
        pieces.append(dict(flat=flat, body=pr(part), hoisted=pr.hoisted,
                           out_index=pr(linear(IDX[:len(k.shape)], k.shape).subs(zero))))
    return params.render("pointwise.j2", comment=view.comment(k), params=params.declaration(), args=params.args(),
                  loops=dims, pieces=pieces)


def _stages(k: Reduction, pr: CPrinter, zero: dict, acc_t: str) -> list:
    """Per stage: its accumulator's declaration (``decl``: any further ones), ``init``, the loop
    ``step``, the clause of its simd reduction pragma (``simd``), and the statement after the
    loop (``finish``); ``comb`` (sum, mean, max) and ``nan`` (it keeps a NaN flag) let a template
    combine partial accumulators (a work-group's).

    A floating-point max starts at -inf and keeps a NaN flag beside it (``<acc>_nan``, or-ed
    per element): the simd reduction's lanes combine with a max that may drop a NaN, and a
    NaN anywhere in the row makes the row's max NaN (ReduceMax)."""
    count = int(np.prod([k.shape[a] for a in k.axes], dtype=np.int64))
    floating = acc_t in {pr.TYPES.get(np.dtype(np.float32)), pr.TYPES.get(np.dtype(np.float64))} - {None}
    out = []
    for acc, comb, expr in k.stages:
        e = pr(sympy.sympify(expr).subs(zero))
        init = pr.lowest(acc_t) if comb == "max" else "0"
        decl, clause = "", f"reduction({'max' if comb == 'max' else '+'}:{acc})"
        step, finish = f"{acc} += {e}", f"{acc} /= {pr.as_type(str(count), acc_t)}" if comb == "mean" else ""
        if comb == "max":
            step = f"{acc} = {pr.CALLS[F.FMax]}({acc}, {e})"
            if floating:
                init = "-" + pr.infinity(acc_t)
                decl, clause = f"int {acc}_nan = 0", clause + f" reduction(|:{acc}_nan)"
                step = f"{{ const {acc_t} t = {e}; {acc} = t > {acc} ? t : {acc}; {acc}_nan |= t != t; }}"
                finish = f"if ({acc}_nan) {acc} = {pr.quiet_nan(acc_t)}"
        out.append(dict(acc=acc, comb=comb, init=init, decl=decl, step=step, finish=finish, simd=clause,
                        nan=bool(decl)))
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
    params = Params(graph, target, k.output)
    zero = view.zero_unit_dims(k.shape)
    acc_t = target.printer.accumulator_type(k.acc_dtype if k.acc_dtype is not None else graph.values[k.output].dtype)
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
    flat = view.flat(view.loops(k.shape, outer), False)
    flat["work"] = int(np.prod([k.shape[d] for d in red], dtype=np.int64)) * (len(stages) + 1)
    body, inverses = _hoist_inverses(body, k.stages, pr, acc_t)
    return params.render("reduction.j2", comment=view.comment(k), params=params.declaration(), args=params.args(),
                  outer=outer, flat=flat, red=view.loops(k.shape, red),
                  rflat=view.flat(view.loops(k.shape, red), False, index="r"), stages=stages, acc_t=acc_t,
                  keep_shape=k.keep_shape,
                  body=pr(body), inverses=inverses, hoisted=pr.hoisted,
                  out_index=pr(sympy.sympify(out_index).subs(zero)))


def render_contraction(k: Contraction, graph, target, packer=no_packing) -> RenderedKernel:
    j = packer(k)
    params = Params(graph, target, k.output, (k.a, k.b if j is None else f"{PACKED}{j}"))
    nb = len(k.batch)
    bvars = IDX[:nb]
    pr = params.printer({}, {})
    off = lambda st, base=0: pr(sum((v * s for v, s in zip(bvars, st)), sympy.Integer(base)))  # noqa: E731
    natural = tuple(k.batch) + (k.m, k.n)
    c_batch, ldc = k.c_addressing()
    epilogue = None
    if sympy.sympify(k.epilogue) != ACC:
        shape = k.out_shape if k.c_strides is None else natural
        zero = view.zero_unit_dims(shape)
        epr = params.printer(k.loads, zero, {ACC: "acc"}, guarded=params.guarded(k.loads, shape))
        out_strides = k.c_strides if k.c_strides is not None else strides(shape)
        out_index = sum((i * s for i, s, d in zip(IDX, out_strides, shape) if d != 1), sympy.Integer(0))
        flat = view.flat(view.loops(shape, [d for d, n in enumerate(shape) if n != 1]), True)
        # Applied per finished block inside the GEMM when the flat index is C's row and the
        # inner loop C's column; otherwise a separate pass over C after it.
        tiled = not k.batch and flat["inner"] is not None and flat["inner"][1] == k.n and flat["n"] == k.m
        epilogue = dict(flat=flat, tiled=tiled, out_index=epr(sympy.sympify(out_index).subs(zero)),
                        body=epr(sympy.sympify(k.epilogue).subs(zero)))
    return params.render("contraction.j2", comment=view.comment(k), params=params.declaration(), args=params.args(),
                  batch=[(f"i{d}", n) for d, n in enumerate(k.batch)], m=k.m, n=k.n, k=k.k,
                  alpha=target.printer.literal(k.alpha), lda=k.ld("a"), trans_a=int(k.trans_a),
                  ldb=k.ld("b"), trans_b=int(k.trans_b), ldc=ldc,
                  a_offset=off(k.a_strides, k.a_offset), b_offset=off(k.b_strides, k.b_offset),
                  c_offset=off(c_batch), epilogue=epilogue, packed=j is not None)


def render_attention(k: Attention, graph, target, packer=no_packing) -> RenderedKernel:
    s, r, c = k.scores, k.softmax, k.context
    params = Params(graph, target, k.output, (s.a, s.b, c.b))
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
    acc_t = target.printer.accumulator_type(r.acc_dtype if r.acc_dtype is not None else np.float32)
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
        last["step"] = f"{{ const {rpr.type_name(np.float32)} t = {rpr(r.stages[-1][2])}; s[{col}] = t; {last['acc']} += t; }}"
    nrb = -(-s.m // (target.schedule["attention_rows"] or s.m))  # query-row blocks per batch entry, (nearly) equal
    body, inverses = _hoist_inverses(body, r.stages, rpr, acc_t)
    alpha1, scores_epilogue = _fold_scale(s.alpha, s.epilogue)
    return params.render("attention.j2", comment=view.comment(k), params=params.declaration(), args=params.args(),
                  m=s.m, n=s.n, k1=s.k, n2=c.n, nbatch=int(np.prod(s.batch, dtype=np.int64)), batch_vars=batch_vars,
                  nrb=nrb, rb=-(-s.m // nrb),
                  row=row, col=col, scores_desc=safe_comment(str(s.epilogue)),
                  alpha1=target.printer.literal(alpha1), lda1=s.ld("a"), ta1=int(s.trans_a),
                  ldb1=s.ld("b"), tb1=int(s.trans_b),
                  a1_offset=off(s.a_strides, s.a_offset), b1_offset=off(s.b_strides, s.b_offset),
                  scores_epilogue=epi(scores_epilogue, spr), stages=stages, acc_t=acc_t,
                  softmax_body=rpr(body), inverses=inverses, alpha2=target.printer.literal(c.alpha), ldb2=c.ld("b"),
                  tb2=int(c.trans_b), b2_offset=off(c.b_strides, c.b_offset), c_offset=off(c_batch, 0), ldc=ldc,
                  context_epilogue=epi(c.epilogue, cpr), context_out=pr(c_out))


def _fold_scale(alpha: float, epilogue):
    """(alpha, epilogue) with an epilogue that only scales (c * acc, the 1/sqrt(d) of attention
    scores) moved into alpha: the GEMM then writes alpha * acc, the same float product the
    epilogue's pass over the scores computed (alpha is 1 there), and that pass goes."""
    e = sympy.sympify(epilogue)
    c, rest = e.as_coeff_Mul()
    if rest != ACC or c == 1 or not c.is_finite or c == 0 or alpha != 1.0:  # alpha 0: A, B unread
        return alpha, epilogue
    return float(c), ACC


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


def _rows_cols_epilogue(c: Contraction, params: "Params") -> str:
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
    params = Params(graph, target, k.output, (f.a, f.b if j1 is None else f"{PACKED}{j1}",
                                       s2.b if j2 is None else f"{PACKED}{j2}"))
    epilogue1, epilogue2 = _rows_cols_epilogue(f, params), _rows_cols_epilogue(s2, params)  # before declaration()
    return params.render("gemm_chain.j2", comment=view.comment(k), params=params.declaration(), args=params.args(),
                  rows=k.rows_per_block, m=f.m, n1=f.n, k1=f.k, n2=s2.n, alpha1=target.printer.literal(f.alpha),
                  a1_offset=f.a_offset, lda1=f.ld("a"), ta1=int(f.trans_a),
                  a1_row_step=1 if f.trans_a else f.ld("a"), b1_offset=f.b_offset,
                  ldb1=f.ld("b"), tb1=int(f.trans_b), epilogue1=epilogue1,
                  alpha2=target.printer.literal(s2.alpha), b2_offset=s2.b_offset, ldb2=s2.ld("b"),
                  tb2=int(s2.trans_b), epilogue2=epilogue2, packed1=j1 is not None, packed2=j2 is not None)


RENDER = {Pointwise: render_pointwise, Reduction: render_reduction, Contraction: render_contraction,
           Attention: render_attention, GemmChain: render_gemm_chain}
