"""Attention as one kernel: scores GEMM -> softmax -> context GEMM.

::

    Q, K ──> scores = Q @ K^T (+ scale, mask in its epilogue)
               └──> p = softmax(scores) over the last axis (+ NaN guard in its epilogue)
                      └──> context = p @ V                       ==>  Attention(Q, K, V)

Legal when each intermediate has exactly one consumer, the softmax reads the scores element
by element, and the context GEMM reads the softmax output as its contiguous A operand. The
S x S scores of one (batch, head) then live in one thread's buffer: for BERT at sequence 128,
64 KiB instead of 12 heads x 64 KiB written to and read back from memory twice.
"""
from __future__ import annotations

from ..kernel.ir import IDX, Attention, Contraction, Reduction
from .compose import base_index


def _reads_elementwise(r: Reduction, buffer: str, shapes, views) -> bool:
    full = tuple(IDX[:len(r.shape)])
    loads = [l for l in r.loads.values() if base_index(l, shapes, views)[0] == buffer]
    return bool(loads) and all(l.buffer == buffer and tuple(l.index) == full for l in loads)


def match_attention(s: Contraction, r: Reduction, c: Contraction, shapes, views) -> bool:
    natural = tuple(s.batch) + (s.m, s.n)
    rank = len(natural)
    return (tuple(s.out_shape) == natural and s.c_strides is None and r.keep_shape
            and tuple(r.shape) == natural and tuple(r.axes) == (rank - 1,)
            and _reads_elementwise(r, s.output, shapes, views)
            and c.a == r.output and not c.trans_a and c.lda is None and c.a_offset == 0
            and tuple(c.batch) == tuple(s.batch) and c.m == s.m and c.k == s.n
            and all(st == cst or n == 1 for st, cst, n in zip(c.a_strides, s.c_addressing()[0], s.batch)))


def consumers(kernels, views) -> dict:
    """base buffer -> [(kernel, how)], how in {"a", "b"} for GEMM operands, else "load"."""
    out: dict = {}
    for k in kernels:
        if isinstance(k, Contraction):
            for b in (k.a, k.b):
                out.setdefault(views.get(b, b), []).append((k, "a" if b == k.a else "b"))
        for b in {views.get(l.buffer, l.buffer) for l in k.loads.values()}:
            out.setdefault(b, []).append((k, "load"))
    return out


def fuse_attention(kernels: list, shapes, views, outputs) -> int:
    """Replace every scores -> softmax -> context triple in ``kernels`` in place; returns how many."""
    producers = {k.output: k for k in kernels}
    users = consumers(kernels, views)
    triples = []
    for r in kernels:
        if not isinstance(r, Reduction) or r.output in outputs:
            continue
        s = next((producers[b] for b in {views.get(l.buffer, l.buffer) for l in r.loads.values()}
                  if isinstance(producers.get(b), Contraction)), None)
        if s is None or s.output in outputs or len(users.get(s.output, [])) != 1 or len(users.get(r.output, [])) != 1:
            continue
        c, how = users[r.output][0]
        if how == "a" and isinstance(c, Contraction) and match_attention(s, r, c, shapes, views):
            triples.append((s, r, c))
    for s, r, c in triples:
        kernels[next(i for i, k in enumerate(kernels) if k is c)] = Attention(c.output, s, r, c,
                                                                              s.sources + r.sources + c.sources)
    drop = {id(k) for s, r, _ in triples for k in (s, r)}
    kernels[:] = [k for k in kernels if id(k) not in drop]
    return len(triples)
