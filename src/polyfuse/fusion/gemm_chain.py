"""Back-to-back GEMMs as one kernel.

::

    x ──> up = x @ W1 (+ bias, ReLU in its epilogue) ──> down = up @ W2 (+ bias, residual)
                                                   ==>   GemmChain(x, W1, W2)

Per block of rows, ``up``'s rows are computed into a thread-local tile and multiplied by W2 at
once: the intermediate never reaches memory. Each block re-reads W2 (and re-packs it unless it
is a pre-packed constant), so the chain is formed only when W2 is small (the target's
``chain_max_second_weights``): MobileBERT's 512x128 feed-forward layers qualify, BERT-base's
3072x768 do not.
"""
from __future__ import annotations

import numpy as np

from ..kernel.ir import Contraction, GemmChain

def _plain_rows(c: Contraction) -> bool:
    return not c.batch and c.c_strides is None and int(np.prod(c.out_shape, dtype=np.int64)) == c.m * c.n


def chain_refusal(first: Contraction, second: Contraction, views, max_second_weights: int) -> str | None:
    """Why ``first -> second`` cannot be one GemmChain, or None when it can."""
    if views.get(second.a, second.a) != first.output or second.a != first.output:
        return "the second product does not read the first's result as its A operand"
    if not (_plain_rows(first) and _plain_rows(second)):
        return "batched or strided products are not chained"
    if second.trans_a or second.lda not in (None, first.n) or second.a_offset or second.m != first.m:
        return "the second product reads the first's result with other strides"
    w2 = second.k * second.n * 4
    if w2 > max_second_weights:
        return (f"the second product's weights ({w2 / 2**20:.1f} MiB) would be re-read for every block of rows; "
                "writing the intermediate is cheaper")
    return None


def fuse_gemm_chains(kernels: list, readers, views, outputs, refuse, schedule) -> int:
    """Replace chains in ``kernels`` in place; ``readers(buffer)`` lists (kernel, how) readers."""
    n = 0
    for first in [k for k in kernels if isinstance(k, Contraction)]:
        if not any(k is first for k in kernels):  # already the second half of a chain
            continue
        users = readers(first.output)
        if first.output in outputs or len(users) != 1 or users[0][1] != "a":
            continue
        second = users[0][0]
        if not isinstance(second, Contraction) or not any(k is second for k in kernels):
            continue
        why = chain_refusal(first, second, views, schedule["chain_max_second_weights"])
        if why:
            refuse(first, second, why)
            continue
        rows = max(4, min(64, schedule["chain_tile_bytes"] // (4 * first.n)))
        chain = GemmChain(second.output, first, second, first.sources + second.sources, rows)
        kernels[next(i for i, k in enumerate(kernels) if k is second)] = chain
        kernels[:] = [k for k in kernels if k is not first]
        n += 1
    return n
