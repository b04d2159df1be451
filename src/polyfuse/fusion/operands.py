"""Absorb data movement into a GEMM's addressing.

A GEMM reads ``A[b, i, k]`` at ``offset + sum(b * batch_stride) + i * lda + k`` (or, transposed,
``k * lda + i``). When an operand is produced by a pure movement kernel (a single load at an
affine index, possibly scaled by a constant), the GEMM reads the movement's source directly:
the index map's coefficients become ``lda``, the transpose flag and the batch strides, and the
constant joins ``alpha``. Likewise a GEMM whose only consumer permutes its result writes the
permuted layout directly through ``ldc`` and batch strides. Head split and merge around
attention then cost no copy.
"""
from __future__ import annotations

import dataclasses

import numpy as np

import sympy

from ..kernel.ir import IDX, Contraction, Pointwise, strides
from .compose import base_index
from .indexing import affine_terms, extents_of, reshape_index, simplify_index


def _affine(expr, nvars: int):
    """(integer coefficients of IDX[:nvars], integer constant) of an affine expression, else None."""
    terms = affine_terms(expr)
    if terms is None:
        return None
    coefs, const = terms
    if not const.is_Integer or any(v not in IDX[:nvars] or not sympy.sympify(c).is_Integer for v, c in coefs.items()):
        return None
    return [int(coefs.get(v, 0)) for v in IDX[:nvars]], int(const)


def scaled_load(p: Pointwise):
    """(scale, load symbol) when the body is ``c * load`` or ``load``, else None."""
    c, rest = sympy.sympify(p.body).as_coeff_Mul()
    if rest in p.loads and c.is_number and c.is_finite:
        return float(c), rest
    return None


def absorb_operand(c: Contraction, which: str, p: Pointwise, shapes, views):
    """``c`` reading ``p``'s source directly instead of ``p``'s output, or None if impossible.

    The GEMM reads stored element ``[b, r, col]`` of the operand at linear position
    ``offset + sum(b * batch_stride) + r * ld + col`` of its buffer (transposing when ``trans``).
    That position is re-expressed as an index of ``p``'s output, pushed through ``p``'s index
    map, and linearised in ``p``'s source: if the result is affine with unit stride along ``col``
    (or along ``r``, flipping ``trans``), its coefficients are the new addressing. Absorbing
    again composes, so a Split before a Transpose costs no copy either.
    """
    sl = scaled_load(p)
    if sl is None:
        return None
    scale, sym = sl
    trans = getattr(c, f"trans_{which}")
    rows, cols = ((c.m, c.k) if which == "a" else (c.k, c.n))
    s0, s1 = (cols, rows) if trans else (rows, cols)
    nb = len(c.batch)
    b, r, col = IDX[:nb], IDX[nb], IDX[nb + 1]
    extents = {**{v: int(n) for v, n in zip(b, c.batch)}, r: int(s0), col: int(s1)}
    ld = c.ld(which)
    batch_strides = getattr(c, f"{which}_strides")
    pos = getattr(c, f"{which}_offset") + sum((v * st for v, st in zip(b, batch_strides)), sympy.Integer(0)) \
        + r * ld + col
    pshape = shapes[p.output]
    at = [simplify_index(i, extents) for i in reshape_index((pos,), (int(np.prod(pshape, dtype=np.int64)),), pshape)]
    base, idx = base_index(p.loads[sym], shapes, views)
    idx = [simplify_index(i, extents_of(pshape)) for i in idx]
    src = [simplify_index(sympy.sympify(i).xreplace({IDX[d]: a for d, a in enumerate(at)}), extents) for i in idx]
    aff = _affine(sum((i * st for i, st in zip(src, strides(shapes[base]))), sympy.Integer(0)), nb + 2)
    if aff is None:
        return None
    coefs, offset = aff
    rc, cc = coefs[nb], coefs[nb + 1]
    if s0 == 1:
        rc = cc * s1 if s1 > 1 else 1
    if s1 == 1:
        cc = 1
    if cc == 1 and (rc >= s1 or s0 == 1):
        new_trans, new_ld = trans, rc
    elif rc == 1 and (cc >= s0 or s1 == 1):
        new_trans, new_ld = not trans, cc
    else:
        return None  # rows that overlap, repeat (a broadcast: stride 0) or run backwards: no BLAS layout
    new_batch = tuple(0 if n == 1 else st for st, n in zip(coefs[:nb], c.batch))
    return dataclasses.replace(c, **{which: base, f"trans_{which}": new_trans, f"ld{which}": new_ld,
                                     f"{which}_offset": offset, f"{which}_strides": new_batch,
                                     "alpha": c.alpha * scale,
                                     "sources": c.sources + [x for x in p.sources if x not in c.sources]})


def absorb_output(c: Contraction, p: Pointwise, shapes, views):
    """``c`` writing ``p``'s (permuted) layout directly, when ``p`` only permutes ``c``'s result."""
    natural = tuple(c.batch) + (c.m, c.n)
    if tuple(c.out_shape) != natural or c.c_strides is not None or np.prod(p.shape) != np.prod(natural):
        return None  # p must be a permutation: an Expand repeats elements the GEMM would write once
    sl = scaled_load(p)
    if sl is None or sl[0] != 1.0:
        return None
    base, idx = base_index(p.loads[sl[1]], shapes, views)
    if base != c.output:
        return None
    idx = [simplify_index(i, extents_of(p.shape)) for i in idx]
    pstr = strides(p.shape)
    cstr = []
    for d, e in enumerate(idx):
        if natural[d] == 1:
            cstr.append(0)
        elif e in IDX[:len(p.shape)]:
            cstr.append(pstr[IDX.index(e)])
        else:
            return None
    if cstr[-1] != 1 or len({IDX.index(e) for e, n in zip(idx, natural) if n != 1}) != sum(n != 1 for n in natural):
        return None
    return dataclasses.replace(c, output=p.output, c_strides=tuple(cstr),
                               sources=c.sources + [s for s in p.sources if s not in c.sources])
