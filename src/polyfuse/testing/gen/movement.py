"""Op generators for data movement: Transpose, Reshape, Flatten, Squeeze, Unsqueeze, Expand,
Slice, Concat, Split and Gather. Values pass through unchanged, so what is known of them does."""
from __future__ import annotations

import numpy as np

from .core import BOOL, F32, I64, MAX_ELEMENTS, Builder, T, exact_or_not

INT64_MAX = np.iinfo(np.int64).max


def _any_operand(b: Builder, where=None) -> T | None:
    """Mostly float tensors; sometimes a bool or integer one (movement is type-agnostic)."""
    dtype = F32 if b.coin(0.85) else b.pick((BOOL, I64))
    return b.operand(dtype, where=where) or b.operand(F32, where=where)


def gen_transpose(b: Builder) -> bool:
    x = _any_operand(b, lambda t: len(t.shape) >= 2)
    if x is None:
        return False
    r = len(x.shape)
    perm = [int(p) for p in b.rng.permutation(r)]
    attrs = {} if b.coin(0.2) else {"perm": perm}
    perm = perm if attrs else list(range(r))[::-1]
    b.node("Transpose", [x.name], [(x.dtype, tuple(x.shape[p] for p in perm), x.info)], **attrs)
    return True


def _factors(n: int) -> list[int]:
    out, p = [], 2
    while n > 1:
        while n % p == 0:
            out.append(p)
            n //= p
        p += 1
    return out


def gen_reshape(b: Builder) -> bool:
    x = _any_operand(b)
    if x is None:
        return False
    kind = b.pick(("reshape", "flatten", "squeeze", "unsqueeze"), (4, 1, 1, 2))
    r = len(x.shape)
    if kind == "flatten":
        axis = int(b.rng.integers(-r, r + 1)) if r else 0
        a = axis + r if axis < 0 else axis
        shape = (int(np.prod(x.shape[:a])), int(np.prod(x.shape[a:])))
        b.node("Flatten", [x.name], [(x.dtype, shape, x.info)], axis=axis)
        return True
    if kind == "squeeze":
        ones = [a for a, d in enumerate(x.shape) if d == 1]
        if not ones:
            return False
        axes = [a for a in ones if b.coin(0.6)] or ones[:1]
        shape = tuple(d for a, d in enumerate(x.shape) if a not in axes)
        ins = [x.name] if b.coin(0.2) else [x.name, b.const(np.array([a - r if b.coin(0.3) else a for a in axes]))]
        if len(ins) == 1:
            shape = tuple(d for d in x.shape if d != 1)
        b.node("Squeeze", ins, [(x.dtype, shape, x.info)])
        return True
    if kind == "unsqueeze":
        if r >= 4:
            return False
        out_rank = r + 1 + int(b.coin(0.3) and r < 3)
        axes = sorted(int(a) for a in b.rng.choice(out_rank, size=out_rank - r, replace=False))
        shape, it = [], iter(x.shape)
        for a in range(out_rank):
            shape.append(1 if a in axes else next(it))
        written = [a - out_rank if b.coin(0.3) else a for a in axes]
        b.node("Unsqueeze", [x.name, b.const(np.array(written))], [(x.dtype, tuple(shape), x.info)])
        return True
    fs = _factors(x.numel)
    rank = int(b.rng.integers(1, 5))
    dims = [1] * rank
    for f in fs:
        dims[int(b.rng.integers(rank))] *= f
    written = list(dims)
    if b.coin(0.3):
        written[int(b.rng.integers(rank))] = -1
    for a in range(min(rank, r)):  # 0 copies the input's dim
        if written[a] == x.shape[a] and b.coin(0.2):
            written[a] = 0
    b.node("Reshape", [x.name, b.const(np.array(written))], [(x.dtype, tuple(dims), x.info)])
    return True


def gen_expand(b: Builder) -> bool:
    x = _any_operand(b)
    if x is None:
        return False
    shape = [b.dim() if d == 1 and b.coin(0.7) else d for d in x.shape]
    if len(shape) < 4 and b.coin(0.3):
        shape = [b.pick((1, 3, 7))] + shape
    written = [1 if d == s and d != 1 and b.coin(0.2) else s for d, s in zip((1,) * (len(shape) - len(x.shape)) + x.shape, shape)]
    if np.prod(shape) > MAX_ELEMENTS:
        return False
    b.node("Expand", [x.name, b.const(np.array(written))], [(x.dtype, tuple(shape), x.info)])
    return True


def _slice_bounds(b: Builder, d: int):
    step = int(b.pick((1, 1, 2, -1, 3, -2)))
    pick = lambda: int(b.pick((0, 1, d // 2, d - 1, d, -1, -d, INT64_MAX, -INT64_MAX)))  # noqa: E731
    start, end = pick(), pick()
    n = len(range(*slice(start, end, step).indices(d)))
    return start, end, step, n


def gen_slice(b: Builder) -> bool:
    x = _any_operand(b, lambda t: len(t.shape) >= 1)
    if x is None:
        return False
    r = len(x.shape)
    axes = [a for a in range(r) if b.coin(0.5)] or [int(b.rng.integers(r))]
    shape = list(x.shape)
    starts, ends, steps = [], [], []
    for a in axes:
        for _ in range(10):
            s, e, st, n = _slice_bounds(b, x.shape[a])
            if n > 0:
                break
        else:
            return False
        starts.append(s), ends.append(e), steps.append(st)
        shape[a] = n
    write_steps = any(st != 1 for st in steps) or b.coin(0.3)
    write_axes = write_steps or axes != list(range(len(axes))) or b.coin(0.5)
    ins = [x.name, b.const(np.array(starts)), b.const(np.array(ends))]
    if write_axes:
        ins.append(b.const(np.array([a - r if b.coin(0.3) else a for a in axes])))
    if write_steps:
        ins.append(b.const(np.array(steps)))
    b.node("Slice", ins, [(x.dtype, tuple(shape), x.info)])
    return True


def gen_concat(b: Builder) -> bool:
    x = _any_operand(b, lambda t: len(t.shape) >= 1)
    if x is None:
        return False
    r = len(x.shape)
    axis = int(b.rng.integers(-r, r))
    a = axis % r
    parts = [x]
    for _ in range(int(b.pick((1, 1, 2)))):
        same = lambda t: t.dtype == x.dtype and len(t.shape) == r and all(  # noqa: E731
            d == e for k, (d, e) in enumerate(zip(t.shape, x.shape)) if k != a)
        if b.coin(0.2):
            parts.append(x)  # a tensor concatenated with itself
            continue
        t = b.operand(x.dtype, where=same) if b.coin(0.5) else None
        if t is None:
            if x.dtype != F32:
                t = x
            else:
                shape = list(x.shape)
                shape[a] = b.dim()
                t = b.leaf(tuple(shape))
        parts.append(t)
    shape = list(x.shape)
    shape[a] = sum(t.shape[a] for t in parts)
    if np.prod(shape) > MAX_ELEMENTS:
        return False
    infos = [t.info for t in parts]
    info = exact_or_not(min(i.lo for i in infos), max(i.hi for i in infos), max(i.bits for i in infos),
                        any(i.special for i in infos), *infos)
    b.node("Concat", [t.name for t in parts], [(x.dtype, tuple(shape), info)], axis=axis)
    return True


def gen_split(b: Builder) -> bool:
    x = _any_operand(b, lambda t: any(d > 1 for d in t.shape))
    if x is None:
        return False
    r = len(x.shape)
    a = b.pick([k for k, d in enumerate(x.shape) if d > 1])
    d = x.shape[a]
    parts = int(b.pick((2, 3))) if d >= 3 else 2
    attrs = {"axis": a - r if b.coin(0.3) else a}
    if b.coin(0.6) or d % parts:
        cuts = sorted(int(c) for c in b.rng.choice(np.arange(1, d), size=min(parts - 1, d - 1), replace=False))
        sizes = np.diff([0] + cuts + [d]).tolist()
        ins = [x.name, b.const(np.array(sizes))]
    else:
        sizes, ins = [d // parts] * parts, [x.name]
        if b.opset >= 18:
            attrs["num_outputs"] = parts
    outs = []
    for s in sizes:
        shape = list(x.shape)
        shape[a] = s
        outs.append((x.dtype, tuple(shape), x.info))
    b.node("Split", ins, outs, **attrs)
    return True


def gen_gather(b: Builder) -> bool:
    x = _any_operand(b, lambda t: len(t.shape) >= 1)
    if x is None:
        return False
    r = len(x.shape)
    a = int(b.rng.integers(r))
    d = x.shape[a]
    ishape = b.pick(((), (1,), (3,), (2, 3), (7,)))
    shape = x.shape[:a] + tuple(ishape) + x.shape[a + 1:]
    if np.prod(shape) > MAX_ELEMENTS or len(shape) > 5:
        return False
    idx = b.int_leaf(ishape, -d, d - 1)
    b.node("Gather", [x.name, idx], [(x.dtype, tuple(shape), x.info)], axis=a - r if b.coin(0.3) else a)
    return True
