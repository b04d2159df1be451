"""Polynomial composition of kernels.

A pointwise kernel is a form ``out[i] = body(i, loads)``. Composing it into a consumer that
loads ``out`` at index ``j`` substitutes ``i := j`` in the body and its loads' indices: the
intermediate tensor disappears. Index maps compose the same way, so Transpose/Reshape between
producer and consumer become address arithmetic (see :mod:`.indexing`).

Every function here returns a new kernel and leaves its arguments unchanged.
"""
from __future__ import annotations

import dataclasses
import sympy

from ..forms import functions as F
from ..kernel.ir import IDX, Contraction, Pointwise, Reduction, exprs, linear, space  # noqa: F401 (re-exported)
from ..kernel.ir import Load, Loads, strides
from .indexing import extents_of, reshape_index, simplify_index


def with_exprs(k, new: list, loads: dict, **changes):
    if isinstance(k, Pointwise):
        return dataclasses.replace(k, body=new[0], loads=loads, **changes)
    if isinstance(k, Reduction):
        stages = [(acc, comb, e) for (acc, comb, _), e in zip(k.stages, new[:-1])]
        return dataclasses.replace(k, stages=stages, body=new[-1], loads=loads, **changes)
    return dataclasses.replace(k, epilogue=new[0], loads=loads, **changes)


def _dependency_order(loads: dict) -> list:
    order, done = [], set()
    pending = dict(loads)
    while pending:
        for sym, load in list(pending.items()):
            if not any(s in pending for i in load.index for s in sympy.sympify(i).free_symbols if s != sym):
                order.append((sym, load))
                done.add(sym)
                del pending[sym]
    return order


def instantiate(expr, loads: dict, index, table: Loads):
    """``expr`` (over IDX and ``loads``) evaluated at ``index``; its loads re-registered in ``table``.

    Substitution is simultaneous, so symbols inside ``index`` are never rewritten again.
    """
    sub = {IDX[d]: sympy.sympify(i) for d, i in enumerate(index)}
    mapping = {}
    for sym, load in _dependency_order(loads):
        idx = [sympy.sympify(i).xreplace({**sub, **mapping}) for i in load.index]
        mapping[sym] = table(load.buffer, idx)
    return sympy.sympify(expr).xreplace({**sub, **mapping})


def base_index(load: Load, shapes, views) -> tuple[str, tuple]:
    """(base buffer, index into it) of a load that may go through a view."""
    base = views.get(load.buffer, load.buffer)
    if base == load.buffer:
        return base, load.index
    return base, reshape_index(load.index, shapes[load.buffer], shapes[base])


def inline_producer(k, producer: Pointwise, shapes, views):
    """Replace every load of ``producer.output`` in ``k`` by the producer's body at that index."""
    extents = extents_of(space(k))
    targets = {}
    for sym, load in k.loads.items():
        base, idx = base_index(load, shapes, views)
        if base == producer.output:
            targets[sym] = [simplify_index(i, extents) for i in idx]
    table = Loads({s: l for s, l in k.loads.items() if s not in targets}, reserved=targets)
    replace = {sym: instantiate(producer.body, producer.loads, idx, table) for sym, idx in targets.items()}
    loads = {s: Load(l.buffer, tuple(sympy.sympify(i).xreplace(replace) for i in l.index))
             for s, l in table.table.items()}
    new = [sympy.sympify(e).xreplace(replace) for e in exprs(k)]
    return with_exprs(k, new, loads, sources=k.sources + [s for s in producer.sources if s not in k.sources])


def reads_at_identity(consumer: Pointwise, buffer: str, shape, shapes, views) -> bool:
    """True when every load of ``buffer`` in ``consumer`` reads the element with the same linear
    offset as the one the consumer writes (elementwise after a reshape)."""
    target = sympy.expand(linear(IDX[:len(consumer.shape)], consumer.shape))
    extents = extents_of(consumer.shape)
    found = False
    for load in consumer.loads.values():
        base, idx = base_index(load, shapes, views)
        if base != buffer:
            continue
        idx = [simplify_index(i, extents) for i in idx]
        if sympy.expand(linear(idx, shape)) != target:
            return False
        found = True
    return found


def merge_epilogue(producer, consumer: Pointwise, shapes, views):
    """Fold a pointwise consumer into a contraction's or reduction's epilogue.

    The consumer must read ``producer.output`` at identity (checked by the caller); the fused
    kernel writes the consumer's output, iterating the producer's space.
    """
    sources = producer.sources + [s for s in consumer.sources if s not in producer.sources]
    if isinstance(producer, Contraction) and producer.c_strides is not None:
        # the GEMM writes its result transposed (absorbed output strides): its epilogue stays in
        # the GEMM's own space, so express the consumer there, at the element the strides reach
        natural = tuple(producer.batch) + (producer.m, producer.n)
        stored = shapes[producer.output]
        at = reshape_index(_stored_index(producer.c_strides, natural, stored), stored, consumer.shape)
        at = [simplify_index(i, extents_of(natural)) for i in at]
        table = Loads(producer.loads)
        body = _substitute_reads(consumer, producer.output, producer.epilogue, table, at, shapes, views)
        return dataclasses.replace(producer, output=consumer.output, epilogue=body, loads=table.table,
                                   sources=sources)
    if isinstance(producer, Contraction):
        # iterate the consumer's space: express the GEMM epilogue there
        table = Loads({})
        idx = reshape_index(IDX[:len(consumer.shape)], consumer.shape, producer.out_shape)
        idx = [simplify_index(i, extents_of(consumer.shape)) for i in idx]
        epi = instantiate(producer.epilogue, producer.loads, idx, table)
        body = _substitute_reads(consumer, producer.output, epi, table, IDX[:len(consumer.shape)], shapes, views)
        return dataclasses.replace(producer, output=consumer.output, out_shape=consumer.shape, epilogue=body,
                                   loads=table.table, sources=sources)
    # reduction: iterate the reduction's space; express the consumer there
    if producer.keep_shape:
        rvars = IDX[:len(producer.shape)]
        out_space = producer.shape
    else:
        keep = len(producer.out_shape) == len(producer.shape)
        rvars = [0 if d in producer.axes else IDX[d] for d in range(len(producer.shape)) if keep or d not in producer.axes]
        out_space = producer.out_shape
    cidx = reshape_index(rvars, out_space, consumer.shape)
    cidx = [simplify_index(i, extents_of(producer.shape)) for i in cidx]
    table = Loads(producer.loads)
    body = _substitute_reads(consumer, producer.output, producer.body, table, cidx, shapes, views)
    return dataclasses.replace(producer, output=consumer.output, body=body, loads=table.table, sources=sources)


def _stored_index(c_strides, natural, stored) -> list:
    """The index into ``stored`` (the output buffer's shape) of the GEMM result element at
    IDX[:len(natural)], for output strides that permute ``natural``'s dims (see absorb_output)."""
    st = strides(stored)
    idx = [sympy.Integer(0)] * len(stored)
    for d, (s, n) in enumerate(zip(c_strides, natural)):
        if n != 1:
            j = next(j for j, (t, m) in enumerate(zip(st, stored)) if m == n and t == s)
            idx[j] = IDX[d]
    return idx


def _substitute_reads(consumer: Pointwise, buffer: str, value, table: Loads, at, shapes, views):
    """The consumer's body at index ``at``, its reads of ``buffer`` replaced by ``value``."""
    own = {s: l for s, l in consumer.loads.items() if base_index(l, shapes, views)[0] != buffer}
    reads = {s: sympy.Dummy(s.name) for s in consumer.loads if s not in own}
    body = sympy.sympify(consumer.body).xreplace(reads)
    expr = instantiate(body, own, at, table)
    return expr.xreplace({d: v for d, v in zip(reads.values(), uses(value, len(reads)))})


def uses(value, n: int) -> list:
    """``n`` copies of ``value`` for ``n`` reads of one result. Two or more are each wrapped in a
    distinct F.Use (printed as the value itself): sympy would cancel equal terms (x - x -> 0),
    wrong for inf and NaN."""
    return [value] if n == 1 else [F.Use(value, sympy.Integer(next(F.USES))) for _ in range(n)]


def _row_index(r: Reduction):
    """The index of a keepdims reduction's output read from inside its own row loop."""
    return tuple(0 if d in r.axes else IDX[d] for d in range(len(r.shape)))


def reads_row_result(consumer_space, loads: dict, r: Reduction, shapes, views) -> bool:
    """True when every load of ``r.output`` is the row's value, broadcast over the reduced axes."""
    if tuple(consumer_space) != tuple(r.shape) or r.keep_shape or len(r.out_shape) != len(r.shape):
        return False
    want = _row_index(r)
    extents = extents_of(r.shape)
    found = False
    for load in loads.values():
        base, idx = base_index(load, shapes, views)
        if base != r.output:
            continue
        idx = tuple(simplify_index(i, extents) if r.shape[d] != 1 else 0 for d, i in enumerate(idx))
        if any(sympy.sympify(a) != sympy.sympify(b) for a, b in zip(idx, want)):
            return False
        found = True
    return found


def _fresh_accs(r: Reduction, taken) -> tuple[list, dict]:
    """r's stages with accumulators renamed away from ``taken``; returns (stages, renaming)."""
    names = {s.name for s in taken}
    ren, n = {}, 0
    for acc, _, _ in r.stages:
        while f"r{n}" in names:
            n += 1
        ren[acc] = sympy.Symbol(f"r{n}")
        names.add(f"r{n}")
    return [(ren[a], c, sympy.sympify(e).xreplace(ren)) for a, c, e in r.stages], ren


def merge_row_consumer(r: Reduction, consumer: Pointwise, shapes, views) -> Reduction:
    """A pointwise consumer reading ``r``'s row value becomes ``r``'s per-element body."""
    table = Loads(r.loads)
    body = _substitute_reads(consumer, r.output, r.body, table, IDX[:len(r.shape)], shapes, views)
    return dataclasses.replace(r, output=consumer.output, out_shape=tuple(consumer.shape), keep_shape=True, body=body,
                               loads=table.table, sources=r.sources + [s for s in consumer.sources if s not in r.sources])


def _reregister(loads: dict, table: Loads, known: dict) -> dict:
    """old symbol -> new symbol of each of ``loads`` registered in ``table`` (indices that read other
    loads, a Gather's, rewritten with the new symbols)."""
    mapping = {}
    for sym, load in _dependency_order(loads):
        mapping[sym] = table(load.buffer, [sympy.sympify(i).xreplace({**known, **mapping}) for i in load.index])
    return mapping


def merge_stage(first: Reduction, second: Reduction, shapes, views) -> Reduction:
    """``first`` (read by ``second`` as a row value) becomes ``second``'s earlier stages."""
    stages, ren = _fresh_accs(first, [a for a, _, _ in second.stages])
    table = Loads({}, reserved=list(second.loads) + list(first.loads))
    mapping = _reregister(first.loads, table, {})
    value = sympy.sympify(first.body).xreplace(ren).xreplace(mapping)  # a row value may read (x0)
    stages = [(a, c, sympy.sympify(e).xreplace(mapping)) for a, c, e in stages]
    row_reads = [sym for sym, load in second.loads.items() if base_index(load, shapes, views)[0] == first.output]
    replace = dict(zip(row_reads, uses(value, len(row_reads))))
    replace.update(_reregister({s: l for s, l in second.loads.items() if s not in replace}, table, replace))
    new_stages = stages + [(a, c, sympy.sympify(e).xreplace(replace)) for a, c, e in second.stages]
    return dataclasses.replace(second, stages=new_stages, body=sympy.sympify(second.body).xreplace(replace),
                               loads=table.table, sources=first.sources + [s for s in second.sources
                                                                           if s not in first.sources])
