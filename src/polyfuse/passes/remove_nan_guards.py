"""Remove NaN guards around values that cannot be NaN.

Exporters wrap attention's softmax in a guard that zeroes NaN rows (fully masked rows)::

        x ──> Softmax ──> s ──┬──> IsNaN ──> m ──┐
                              │                  v
                              └───────────> Where(m, 0, s) ──> y      becomes   y = s

The guard is dropped only where ``s`` is proven finite (:func:`magnitudes`): a bound on
``|x|`` for every value, from the constants' largest magnitudes and the integer types' ranges
through each op, with no NaN or infinity anywhere on the way and no bound past the largest
float. With the finite additive masks transformers use (``finfo(float32).min``, not ``-inf``)
the scores stay finite, every softmax row has a finite maximum, and the guard does nothing.
A graph whose weights could overflow somewhere keeps its guard.
"""
from __future__ import annotations

import math

import numpy as np

from ..ir import Graph
from ..ir.narrow_types import narrow_type
from ..ops.info import OPS, OpInfo

_UNKNOWN = OpInfo("?", None, None)  # an op without a record: no bound, every input is data

INF = math.inf
# A float32 sum or product rounds to +-inf only past FLT_MAX by half an ulp (2^103); bounds are
# computed in float64 and widened by 1e-9 per op, far more than its rounding.
LIMIT = {np.dtype(np.float32): float(np.finfo(np.float32).max) + 2.0 ** 103,
         np.dtype(np.float64): float(np.finfo(np.float64).max)}
_SLACK = 1 + 1e-9


def _const_bound(v) -> float:
    x = v.const
    if x.size == 0:
        return 0.0
    lo, hi = x.min(), x.max()  # in place: no float64 copy of a weight (the bound is exact either way)
    if np.issubdtype(x.dtype, np.floating) and not (np.isfinite(lo) and np.isfinite(hi)):
        return INF  # a NaN or an infinity
    exact = int if x.dtype.kind in "iub" else float  # int: |INT64_MIN| without overflow
    return float(max(abs(exact(lo)), abs(exact(hi))))


def _type_bound(dtype) -> float:
    """Integers and bools are finite; a float graph input (or a narrow type's) may hold anything."""
    if narrow_type(dtype) is not None:
        return INF
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        return 1.0
    return float(max(abs(np.iinfo(dtype).min), np.iinfo(dtype).max)) if dtype.kind in "iu" else INF


def _reduced_count(graph: Graph, node) -> int:
    x, out = graph.values[node.inputs[0]], graph.values[node.outputs[0]]
    return max(1, x.numel // max(1, out.numel))


def _matmul_k(graph: Graph, node) -> int:
    a = graph.values[node.inputs[0]]
    return a.shape[-1] if node.op_type == "MatMul" or not node.attrs.get("transA", 0) else a.shape[0]


def _clip(graph: Graph, node, b: list[float]) -> float:
    bounds = [_const_bound(graph.values[i]) if graph.values[i].is_const else INF for i in node.inputs[1:3] if i]
    return min([b[0]] + ([max(bounds)] if len(bounds) == 2 else []))


def _div(graph: Graph, node, b: list[float]) -> float:
    d = graph.values[node.inputs[1]]
    if d.is_const and np.all(d.const != 0) and np.all(np.isfinite(d.const)):
        return b[0] / float(np.min(np.abs(d.const.astype(np.float64))))
    return INF


def _reduce_mean(graph: Graph, node, b: list[float]) -> float:  # the sum must not overflow on the way
    return b[0] if b[0] * _reduced_count(graph, node) <= LIMIT[np.dtype(np.float32)] else INF


def _contraction(graph: Graph, node, b: list[float]) -> float:
    y = b[0] * b[1] * _matmul_k(graph, node) * abs(float(node.attrs.get("alpha", 1.0)))
    return y + (b[2] * abs(float(node.attrs.get("beta", 1.0))) if len(b) > 2 else 0.0)


def _layer_norm(graph: Graph, node, b: list[float]) -> float:
    x = graph.values[node.inputs[0]]
    axis = int(node.attrs.get("axis", -1)) % len(x.shape)
    n = int(np.prod(x.shape[axis:]))
    if float(node.attrs.get("epsilon", 1e-5)) <= 0 or n * (2 * b[0]) ** 2 > LIMIT[np.dtype(x.dtype)]:
        return INF  # the variance could be 0 (divided by) or overflow
    scale = [_const_bound(graph.values[i]) if graph.values[i].is_const else INF for i in node.inputs[1:3] if i]
    return math.sqrt(n) * scale[0] + (scale[1] if len(scale) > 1 else 0.0)


# The rules ops.info's ``magnitude`` names: |output| from the data inputs' bounds ``b``.
_RULES = {
    "max": lambda graph, node, b: max(b, default=0.0),
    "unit": lambda graph, node, b: 1.0,  # |y| <= 1 for any finite input
    "sum": lambda graph, node, b: sum(b),
    "product": lambda graph, node, b: math.prod(b),
    "clip": _clip,
    "div": _div,
    "reduce_sum": lambda graph, node, b: b[0] * _reduced_count(graph, node),
    "reduce_mean": _reduce_mean,
    "contraction": _contraction,
    "layer_norm": _layer_norm,
}


def _bound(graph: Graph, node, b: list[float]) -> float:
    """The bound on |output| of ``node`` from its data inputs' bounds ``b`` (INF: unknown)."""
    rule = OPS.get(node.op_type, _UNKNOWN).magnitude
    return INF if rule is None else _RULES[rule](graph, node, b)


def magnitudes(graph: Graph) -> dict[str, float]:
    """A bound on ``|x|`` for every value (INF where none is proven, NaN and inf included)."""
    out = {}
    for name, v in graph.values.items():
        if v.dtype is None:
            continue
        out[name] = _const_bound(v) if v.is_const and narrow_type(v.dtype) is None else _type_bound(v.dtype)
    for node in graph.nodes:
        keep = OPS.get(node.op_type, _UNKNOWN).data_inputs
        ins = [i for k, i in enumerate(node.inputs) if i and (keep is None or k in keep)]
        b = [out.get(i, INF) for i in ins]
        y = INF if any(x == INF for x in b) else _bound(graph, node, b) * _SLACK
        for j, o in enumerate(node.outputs):
            if j and node.op_type != "Split":
                y = INF  # LayerNormalization's Mean and InvStdDev: not bounded here
            if o:
                v = graph.values[o]
                if v.dtype is not None and narrow_type(v.dtype) is not None:
                    out[o] = INF  # float8, bfloat16 ...: a Cast without saturate makes NaN of large values
                    continue
                limit = LIMIT.get(np.dtype(v.dtype)) if v.dtype is not None else None
                out[o] = y if limit is None or y <= limit else INF
                if v.dtype is not None and np.dtype(v.dtype).kind in "biu":
                    out[o] = min(out[o], _type_bound(v.dtype))
    return out


def finite_values(graph: Graph) -> set[str]:
    """Values proven to hold no NaN or infinity (:func:`magnitudes`)."""
    return {name for name, b in magnitudes(graph).items() if b < INF}


def remove_nan_guards(graph: Graph) -> Graph:
    finite = finite_values(graph)
    producers = graph.producers()
    rename: dict[str, str] = {}
    for node in graph.nodes:
        if node.op_type != "Where" or node.outputs[0] in graph.outputs:
            continue
        test = producers.get(node.inputs[0])
        guarded = node.inputs[2]
        if (test is not None and test.op_type == "IsNaN" and test.inputs[0] == guarded and guarded in finite
                and graph.values[guarded].shape == graph.values[node.outputs[0]].shape):
            rename[node.outputs[0]] = guarded
    if rename:
        for node in graph.nodes:
            node.inputs = [rename.get(i, i) for i in node.inputs]
        graph.notes.append(f"removed {len(rename)} NaN guard(s) around values proven finite (IsNaN -> Where)")
    return graph
