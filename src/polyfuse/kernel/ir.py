"""Kernel IR: what one generated kernel computes, as sympy.

Three kinds of kernel cover every op:

* :class:`Pointwise` -- ``out[i] = body`` over the output's index space. Elementwise ops,
  broadcasting and all data movement (Transpose, Slice, Concat, Gather, Pad ...) are pointwise
  kernels whose loads carry index maps.
* :class:`Reduction` -- per row of the reduced axes, a sequence of accumulations (``stages``)
  and a final ``body``; writes either one value per row or a full row (Softmax, LayerNorm).
* :class:`Contraction` -- a (batched) GEMM followed by an elementwise ``epilogue`` of ``ACC``.

Bodies are expressions over loop variables (:data:`IDX`), load symbols (keys of ``loads``) and,
for reductions, accumulator symbols. A :class:`Load` indexes a buffer with one expression per
dimension; index expressions may contain other loads (Gather).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import sympy

IDX = tuple(sympy.Symbol(f"i{d}", integer=True, nonnegative=True) for d in range(12))
ACC = sympy.Symbol("acc")


def strides(shape) -> list[int]:
    """Row-major element strides of ``shape``."""
    out, s = [], 1
    for d in reversed(shape):
        out.append(s)
        s *= int(d)
    return out[::-1]


def linear(index, shape) -> sympy.Expr:
    """The row-major linear offset of ``index`` in ``shape`` (dims of extent 1 contribute 0)."""
    return sympy.expand(sum((i * s for i, s, d in zip(index, strides(shape), shape) if d != 1), sympy.Integer(0)))


@dataclass(frozen=True)
class Load:
    buffer: str
    index: tuple  # one sympy expression per dimension of the buffer


class Loads:
    """A kernel's loads, ``symbol -> Load``; new symbols ``L<n>`` never reuse a name in ``table``
    or ``reserved``.

    Every read gets its own symbol, even of an element read before: sympy cancels identical
    symbols (``x - x -> 0``, ``x / x -> 1``), which is wrong for x = inf or NaN, so two reads
    must never be the same symbol. The C compiler merges the repeated loads."""

    def __init__(self, table: dict | None = None, reserved=()):
        self.table = dict(table or {})
        names = [s.name for s in list(self.table) + list(reserved)]
        nums = [int(m.group(1)) for n in names if (m := re.fullmatch(r"L(\d+)", n))]
        self.next = max(nums, default=-1) + 1

    def __call__(self, buffer: str, index) -> sympy.Symbol:
        sym = sympy.Symbol(f"L{self.next}")
        self.next += 1
        self.table[sym] = Load(buffer, tuple(sympy.sympify(i) for i in index))
        return sym


@dataclass
class Pointwise:
    output: str
    shape: tuple
    body: sympy.Expr
    loads: dict
    sources: list


@dataclass
class Reduction:
    output: str
    shape: tuple  # iteration space: the shape of the reduced input
    axes: tuple  # reduced dimensions of the iteration space
    stages: list  # [(acc_symbol, "sum" | "mean" | "max", expr)], each a pass over the row
    body: sympy.Expr  # over accumulators (and loads/IDX when keep_shape)
    keep_shape: bool  # output has the iteration shape (Softmax) or one value per row (ReduceSum)
    out_shape: tuple
    loads: dict
    sources: list
    acc_dtype: object = None  # accumulator type; the output's dtype when None


@dataclass
class Contraction:
    output: str
    a: str
    b: str
    m: int
    n: int
    k: int
    trans_a: bool
    trans_b: bool
    alpha: float
    batch: tuple  # output batch dims; the GEMM runs once per batch index
    a_strides: tuple  # element stride of A per batch dim (0 = broadcast)
    b_strides: tuple
    epilogue: sympy.Expr  # over ACC, IDX[: len(batch) + 2] and loads
    loads: dict
    sources: list
    out_shape: tuple = ()
    # Addressing beyond the contiguous default, set when fusion absorbs a Transpose/Reshape:
    lda: int | None = None  # leading dimension of A as stored (default: K, or M when trans_a)
    ldb: int | None = None
    a_offset: int = 0  # element offset of A's first element in its buffer
    b_offset: int = 0
    c_strides: tuple | None = None  # element strides of the output per out_shape dim (last must be 1)

    def ld(self, which: str) -> int:
        """Leading dimension of operand ``which`` ("a" or "b") as stored: the absorbed one, or
        the contiguous default (stored columns; rows of op(X) when transposed)."""
        explicit = self.lda if which == "a" else self.ldb
        if explicit is not None:
            return explicit
        rows, cols = (self.m, self.k) if which == "a" else (self.k, self.n)
        return rows if getattr(self, f"trans_{which}") else cols

    def c_addressing(self) -> tuple[list, int]:
        """(element stride per batch dim, ldc) of the output: absorbed strides or contiguous."""
        nb = len(self.batch)
        if self.c_strides is not None:
            return list(self.c_strides[:nb]), self.c_strides[nb]
        return [self.m * self.n * int(np.prod(self.batch[d + 1:], dtype=np.int64)) for d in range(nb)], self.n


@dataclass
class Attention:
    """softmax(scores) @ V per batch index, the scores tile never leaving a thread's buffer.

    ``scores`` (a Contraction with an epilogue: scale, mask), ``softmax`` (a keep-shape
    Reduction over the last axis that reads ``scores.output`` elementwise) and ``context``
    (a Contraction whose A operand is ``softmax.output``) are fused; their intermediate
    outputs exist only as the per-thread tile.
    """

    output: str
    scores: Contraction
    softmax: Reduction
    context: Contraction
    sources: list

    @property
    def loads(self) -> dict:
        inner = {self.scores.output, self.softmax.output}
        out = {}
        for part in (self.scores, self.softmax, self.context):
            out.update({s: l for s, l in part.loads.items() if l.buffer not in inner})
        return out


@dataclass
class GemmChain:
    """Two GEMMs back to back, per block of rows: ``first``'s result (after its epilogue) lives
    in a thread-local tile and is ``second``'s A operand (MobileBERT's FFN: up, ReLU, down)."""

    output: str
    first: Contraction
    second: Contraction
    sources: list
    rows_per_block: int = 32

    @property
    def loads(self) -> dict:
        out = dict(self.first.loads)
        out.update({s: l for s, l in self.second.loads.items() if l.buffer != self.first.output})
        return out


def space(k) -> tuple:
    """The iteration space a Pointwise, Reduction or Contraction kernel's expressions are written over."""
    return k.out_shape if isinstance(k, Contraction) else k.shape


def exprs(k) -> list:
    """The expressions of a Pointwise, Reduction or Contraction kernel (body; stages and body; epilogue)."""
    if isinstance(k, Pointwise):
        return [k.body]
    if isinstance(k, Reduction):
        return [e for _, _, e in k.stages] + [k.body]
    return [k.epilogue]


KERNEL_KINDS = (Pointwise, Reduction, Contraction, Attention, GemmChain)
