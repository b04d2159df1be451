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

import sympy

from ..kernel.ir import ACC, IDX, Contraction, Pointwise
from .compose import base_index
from .indexing import extents_of, simplify_index


def _affine(expr, nvars: int):
    """(coefficients of IDX[:nvars], constant) of an integer affine expression, else None."""
    expr = sympy.expand(expr)
    coefs, const = [0] * nvars, 0
    for term in sympy.Add.make_args(expr):
        c, rest = term.as_coeff_Mul()
        if not c.is_Integer:
            return None
        if rest == 1:
            const += int(c)
        elif rest in IDX[:nvars]:
            coefs[IDX.index(rest)] += int(c)
        else:
            return None
    return coefs, const


def _strides(shape) -> list:
    out, s = [], 1
    for d in reversed(shape):
        out.append(s)
        s *= int(d)
    return out[::-1]


def scaled_load(p: Pointwise):
    """(scale, load symbol) when the body is ``c * load`` or ``load``, else None."""
    c, rest = sympy.sympify(p.body).as_coeff_Mul()
    if rest in p.loads and c.is_number and c.is_finite:
        return float(c), rest
    return None


def operand_address(p: Pointwise, shapes, views):
    """(source buffer, coefficients per dim of p.shape, offset, scale) of a pure strided movement."""
    sl = scaled_load(p)
    if sl is None:
        return None
    scale, sym = sl
    base, idx = base_index(p.loads[sym], shapes, views)
    idx = [simplify_index(i, extents_of(p.shape)) for i in idx]
    addr = sum((i * s for i, s in zip(idx, _strides(shapes[base]))), sympy.Integer(0))
    aff = _affine(addr, len(p.shape))
    if aff is None:
        return None
    coefs, offset = aff
    coefs = [0 if n == 1 else c for c, n in zip(coefs, p.shape)]
    return base, coefs, offset, scale


def absorb_operand(c: Contraction, which: str, p: Pointwise, shapes, views):
    """``c`` reading ``p``'s source directly instead of ``p``'s output, or None if impossible.

    ``p`` holds the operand as stored, shape ``(..., s0, s1)``; the GEMM reads stored
    ``[r, c]`` at ``r * ld + c`` and transposes when ``trans`` is set. If the source has unit
    stride along ``c``, ``ld`` is the stride along ``r``; if it has unit stride along ``r``, the
    source holds the transpose, so ``ld`` is the stride along ``c`` and ``trans`` flips.
    """
    addr = operand_address(p, shapes, views)
    if addr is None or len(p.shape) < 2:
        return None
    src, coefs, offset, scale = addr
    shape = [int(d) for d in p.shape]
    (s0, s1), (r, col) = shape[-2:], coefs[-2:]
    trans = getattr(c, f"trans_{which}")
    if s0 == 1:
        new_trans, ld = trans, s1
    elif col == 1 or s1 == 1:
        new_trans, ld = trans, r
    elif r == 1:
        new_trans, ld = not trans, col
    else:
        return None
    lead, nb = coefs[:-2], len(c.batch)
    if which == "a" and nb == 0 and len(shape) > 2:
        # A's batch dims were folded into M: the folded rows must sit at one uniform stride
        rows, rstr = shape[:-1], coefs[:-1]
        if new_trans != trans or any(rows[d] != 1 and rstr[d] != rstr[d + 1] * rows[d + 1]
                                     for d in range(len(rows) - 1)):
            return None
        batch_strides = ()
    else:
        if len(lead) > nb:
            return None
        batch_strides = tuple([0] * (nb - len(lead)) + [0 if n == 1 else st for st, n in zip(lead, shape[:-2])])
    return dataclasses.replace(c, **{which: src, f"trans_{which}": new_trans, f"ld{which}": ld,
                                     f"{which}_offset": offset, f"{which}_strides": batch_strides,
                                     "alpha": c.alpha * scale,
                                     "sources": c.sources + [x for x in p.sources if x not in c.sources]})


def absorb_output(c: Contraction, p: Pointwise, shapes, views):
    """``c`` writing ``p``'s (permuted) layout directly, when ``p`` only permutes ``c``'s result."""
    natural = tuple(c.batch) + (c.m, c.n)
    if tuple(c.out_shape) != natural or c.c_strides is not None:
        return None
    sl = scaled_load(p)
    if sl is None or sl[0] != 1.0:
        return None
    base, idx = base_index(p.loads[sl[1]], shapes, views)
    if base != c.output:
        return None
    idx = [simplify_index(i, extents_of(p.shape)) for i in idx]
    pstr = _strides(p.shape)
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


def is_pure_epilogue(c: Contraction) -> bool:
    return sympy.sympify(c.epilogue) == ACC
