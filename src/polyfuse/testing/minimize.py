"""Shrink a failing graph to a small one that still fails (delta debugging on nodes).

Steps, each kept only while ``still_fails`` holds:

1. keep only the first failing output;
2. move the output up: make one of its producer's inputs the output instead, while that fails;
3. keep only the nodes within d steps above it (d = 1, 2, ...: the smallest that still fails),
   every value entering them becoming a graph input fed with onnxruntime's value for it;
4. cut single nodes the same way (their outputs become inputs, and whatever only fed them is
   dropped), until no cut keeps the failure.

The result reads like a hand-written regression case: a few nodes, real data at the cut.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import onnx

from .gen.core import Graph
from .oracle import run_ort


def _with_outputs(model: onnx.ModelProto, outputs: list[onnx.ValueInfoProto]) -> onnx.ModelProto:
    m = onnx.ModelProto()
    m.CopyFrom(model)
    del m.graph.output[:]
    m.graph.output.extend(outputs)
    return _prune(m)


def _prune(m: onnx.ModelProto) -> onnx.ModelProto:
    """Drop nodes, inputs and initializers that no output needs."""
    need = {o.name for o in m.graph.output}
    keep = []
    for n in reversed(m.graph.node):
        if any(o in need for o in n.output):
            keep.append(n)
            need.update(i for i in n.input if i)
    del m.graph.node[:]
    m.graph.node.extend(reversed(keep))
    for coll in (m.graph.input, m.graph.initializer):
        kept = [v for v in coll if v.name in need]
        del coll[:]
        coll.extend(kept)
    return m


def _value_infos(model: onnx.ModelProto) -> dict[str, onnx.ValueInfoProto]:
    inferred = onnx.shape_inference.infer_shapes(model)
    return {v.name: v for v in list(inferred.graph.value_info) + list(inferred.graph.output)}


def _intermediates(model: onnx.ModelProto, feeds: dict, infos: dict) -> dict[str, np.ndarray]:
    """onnxruntime's value of every node output that shape inference could type."""
    names = [o for n in model.graph.node for o in n.output if o in infos]
    m = _with_outputs(model, [infos[o] for o in names])
    del m.graph.node[:]
    m.graph.node.extend(model.graph.node)  # keep every node: _prune must not drop them
    for coll, src in ((m.graph.input, model.graph.input), (m.graph.initializer, model.graph.initializer)):
        del coll[:]
        coll.extend(src)
    return dict(zip(names, run_ort(m, feeds)))


def _cut(g: Graph, node_index: int, values: dict, infos: dict) -> Graph | None:
    """``g`` with node ``node_index`` replaced by graph inputs holding its outputs' values."""
    m = onnx.ModelProto()
    m.CopyFrom(g.model)
    node = m.graph.node[node_index]
    outs = [o for o in node.output if o]
    if any(o not in values or o not in infos for o in outs):
        return None
    if {o.name for o in m.graph.output} & set(outs) and len(m.graph.output) == len(outs):
        return None  # an output fed straight from an input tests nothing
    del m.graph.node[node_index]
    m.graph.input.extend(infos[o] for o in outs)
    feeds = dict(g.feeds)
    feeds.update({o: values[o] for o in outs})
    m = _prune(m)
    names = {i.name for i in m.graph.input}
    return Graph(m, {k: v for k, v in feeds.items() if k in names}, g.ops)


def _cone(g: Graph, output: str, depth: int, values: dict, infos: dict) -> Graph | None:
    """Only the nodes at most ``depth`` steps above ``output``; what enters them is fed."""
    producer = {o: n for n in g.model.graph.node for o in n.output if o}
    keep, frontier = set(), {output}
    for _ in range(depth):
        nodes = {id(producer[v]): producer[v] for v in frontier if v in producer}
        keep |= set(nodes)
        frontier = {i for n in nodes.values() for i in n.input if i}
    m = onnx.ModelProto()
    m.CopyFrom(g.model)
    kept = [n for n in g.model.graph.node if id(n) in keep]
    made = {o for n in kept for o in n.output}
    consts = {t.name for t in m.graph.initializer}
    entering = sorted({i for n in kept for i in n.input if i and i not in made and i not in consts})
    fed = [i for i in entering if i not in {v.name for v in m.graph.input}]
    if len(kept) == len(g.model.graph.node) or any(i not in values or i not in infos for i in fed):
        return None
    del m.graph.node[:]
    m.graph.node.extend(kept)
    m.graph.input.extend(infos[i] for i in fed)
    del m.graph.output[:]
    m.graph.output.extend(o for o in g.model.graph.output if o.name == output)
    m = _prune(m)
    feeds = {**g.feeds, **{i: values[i] for i in fed}}
    names = {i.name for i in m.graph.input}
    return Graph(m, {k: v for k, v in feeds.items() if k in names}, g.ops)


def minimize(g: Graph, still_fails: Callable[[Graph], bool], first_output: str | None = None,
             log: Callable[[str], None] = lambda s: None) -> Graph:
    """A smaller graph for which ``still_fails`` is true (``g`` itself when nothing shrinks)."""
    if first_output is not None and len(g.model.graph.output) > 1:
        out = [o for o in g.model.graph.output if o.name == first_output]
        m = _with_outputs(g.model, out)
        names = {i.name for i in m.graph.input}
        cand = Graph(m, {k: v for k, v in g.feeds.items() if k in names}, g.ops)
        if out and still_fails(cand):
            g = cand
    moved = len(g.model.graph.output) == 1
    while moved:
        moved = False
        infos = _value_infos(g.model)
        producer = {o: n for n in g.model.graph.node for o in n.output if o}
        node = producer.get(g.model.graph.output[0].name)
        for i in [] if node is None else [i for i in node.input if i in producer and i in infos]:
            m = _with_outputs(g.model, [infos[i]])
            names = {v.name for v in m.graph.input}
            cand = Graph(m, {k: v for k, v in g.feeds.items() if k in names}, g.ops)
            if still_fails(cand):
                log(f"minimize: output moved up to {i}")
                g, moved = cand, True
                break
    if len(g.model.graph.output) == 1:
        infos = _value_infos(g.model)
        values = _intermediates(g.model, g.feeds, infos)
        for depth in range(1, len(g.model.graph.node)):
            cand = _cone(g, g.model.graph.output[0].name, depth, values, infos)
            if cand is not None and still_fails(cand):
                log(f"minimize: {len(g.model.graph.node)} -> {len(cand.model.graph.node)} nodes (depth {depth})")
                g = cand
                break
    changed = True
    while changed:
        changed = False
        infos = _value_infos(g.model)
        values = _intermediates(g.model, g.feeds, infos)
        for k in reversed(range(len(g.model.graph.node))):
            cand = _cut(g, k, values, infos)
            if cand is not None and still_fails(cand):
                log(f"minimize: {len(g.model.graph.node)} -> {len(cand.model.graph.node)} nodes")
                g, changed = cand, True
                break
    return g

