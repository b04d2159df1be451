"""Which loads of a kernel stay inside their buffer over the whole iteration space.

A load whose index is provably in range everywhere may be read unconditionally, even where a
Select does not use it; a *guarded* load (a Concat piece read at ``i - offset``) is only valid
where its Select takes it. Index bounds come from interval arithmetic over the loop extents,
knowing the clamps the movement forms use (WrapIndex, FMin/FMax, Reflect, WrapMod).
"""
from __future__ import annotations

import math

import sympy

from ..forms import functions as F
from .ir import IDX, Pointwise, exprs, space

INF = math.inf


def index_bounds(e, extents: dict) -> tuple[float, float]:
    """(lo, hi) that the integer expression ``e`` stays within; +-inf where unknown.
    ``extents``: loop variable -> n (it runs over [0, n)) or (lo, hi) (it runs over [lo, hi])."""
    e = sympy.sympify(e)
    if e.is_Integer:
        return int(e), int(e)
    if e.is_Symbol:
        n = extents.get(e)
        if n is None:
            return (0, INF) if e.is_nonnegative else (-INF, INF)  # a loop variable without extent
        return n if isinstance(n, tuple) else (0, n - 1) if n else (-INF, INF)
    if e.is_Add:
        los, his = zip(*(index_bounds(a, extents) for a in e.args))
        return sum(los), sum(his)
    if e.is_Mul:
        lo, hi = 1, 1
        for a in e.args:
            alo, ahi = index_bounds(a, extents)
            cands = [x * y for x in (lo, hi) for y in (alo, ahi) if not (math.isinf(x) and y == 0)
                     and not (math.isinf(y) and x == 0)]
            lo, hi = (min(cands), max(cands)) if cands else (-INF, INF)
        return lo, hi
    if isinstance(e, sympy.floor):
        num, den = sympy.fraction(sympy.together(e.args[0]))
        lo, hi = index_bounds(num, extents)
        if den.is_Integer and int(den) > 0:
            return math.floor(lo / int(den)) if not math.isinf(lo) else lo, math.floor(hi / int(den)) if not math.isinf(hi) else hi
        return -INF, INF
    if isinstance(e, sympy.Mod) and e.args[1].is_Integer and int(e.args[1]) > 0:
        lo, hi = index_bounds(e.args[0], extents)
        n = int(e.args[1])
        return (lo, hi) if 0 <= lo and hi < n else (0, n - 1)
    if e.func in (F.WrapIndex, F.Reflect, F.WrapMod) and e.args[1].is_Integer:
        return 0, int(e.args[1]) - 1
    if e.func in (F.FMin, F.FMax):
        (alo, ahi), (blo, bhi) = (index_bounds(a, extents) for a in e.args)
        f = min if e.func is F.FMin else max
        return f(alo, blo), f(ahi, bhi)
    if e.func is F.Select:
        (alo, ahi), (blo, bhi) = (index_bounds(a, extents) for a in e.args[1:])
        return min(alo, blo), max(ahi, bhi)
    return -INF, INF


def guarded_loads(loads: dict, box, shapes: dict) -> set:
    """The load symbols of ``loads`` whose index may leave its buffer somewhere in ``box`` (the
    iteration space: a shape, or (start, extent) per dim), and those whose index reads one.
    ``shapes``: buffer name -> shape."""
    extents = {IDX[d]: (b[0], b[0] + b[1] - 1) if isinstance(b, tuple) else int(b) for d, b in enumerate(box)}
    out = set()
    for sym, load in loads.items():
        for i, n in zip(load.index, shapes[load.buffer]):
            lo, hi = index_bounds(i, extents)
            if lo < 0 or hi > int(n) - 1:
                out.add(sym)
                break
    grew = True
    while grew:  # a load at an index that reads a guarded load is guarded too
        grew = False
        for sym, load in loads.items():
            if sym not in out and any(s in out for i in load.index for s in sympy.sympify(i).free_symbols):
                out.add(sym)
                grew = True
    return out


MAX_BOXES = 16


def split_boxes(body, space, guarded: set) -> list[list[tuple[int, int]]]:
    """Boxes ((start, extent) per dim) that cover ``space``, cut where a Select chooses by
    ``i_d < c`` (a Concat), when ``body`` has guarded loads: in each box every such Select takes
    one branch, so its loads need no guard. One box (the whole space) otherwise."""
    whole = [[(0, int(n)) for n in space]]
    if not guarded:
        return whole
    cuts = [set() for _ in space]
    for e in sympy.preorder_traversal(sympy.sympify(body)):
        if e.func is F.Less and e.args[0] in IDX[:len(space)] and e.args[1].is_Integer:
            d, c = IDX.index(e.args[0]), int(e.args[1])
            if 0 < c < int(space[d]):
                cuts[d].add(c)
    ranges = []
    for d, n in enumerate(space):
        points = [0] + sorted(cuts[d]) + [int(n)]
        ranges.append([(a, b - a) for a, b in zip(points, points[1:])])
    if math.prod(len(r) for r in ranges) > MAX_BOXES or all(len(r) == 1 for r in ranges):
        return whole
    boxes = [[]]
    for r in ranges:
        boxes = [b + [x] for b in boxes for x in r]
    return boxes


def resolve_in_box(e, box):
    """``e`` with each ``i_d < c`` that ``box`` decides replaced by its value, and each Select on
    a decided condition by the branch it takes."""
    e = sympy.sympify(e)
    if not e.args:
        return e
    args = [resolve_in_box(a, box) for a in e.args]
    if e.func is F.Less and args[0] in IDX[:len(box)] and args[1].is_Integer:
        start, extent = box[IDX.index(args[0])]
        c = int(args[1])
        if start + extent <= c:
            return sympy.true
        if start >= c:
            return sympy.false
    if e.func is F.Select and args[0] in (sympy.true, sympy.false):
        return args[1] if args[0] is sympy.true else args[2]
    return e.func(*args)


def reads_conditionally(kernel, shapes: dict) -> bool:
    """True when some load of ``kernel`` may be out of range and stays so after splitting: it
    would have to be read under a condition (a masked load once vectorised). A pointwise kernel
    is split into boxes (:func:`split_boxes`); other kernels are not split."""
    if not isinstance(kernel, Pointwise):
        used = set().union(*(sympy.sympify(e).free_symbols for e in exprs(kernel)))
        return bool(guarded_loads(kernel.loads, space(kernel), shapes) & used)
    body = sympy.sympify(kernel.body)
    for box in split_boxes(body, kernel.shape, guarded_loads(kernel.loads, kernel.shape, shapes)):
        part = resolve_in_box(body, box)
        if guarded_loads(kernel.loads, box, shapes) & part.free_symbols:
            return True
    return False
