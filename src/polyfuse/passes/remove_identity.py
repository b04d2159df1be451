"""Remove Identity nodes by renaming their uses (kept only where a graph output needs a copy)."""
from __future__ import annotations

from ..ir import Graph
from ..ops.info import OpClass, op_class


def remove_identity(graph: Graph) -> Graph:
    rename: dict[str, str] = {}
    kept = []
    outputs = set(graph.outputs)
    for n in graph.nodes:
        n.inputs = [rename.get(i, i) for i in n.inputs]
        if op_class(n) is OpClass.IDENTITY and n.outputs[0] not in outputs:
            rename[n.outputs[0]] = n.inputs[0]
            continue
        kept.append(n)
    graph.nodes = kept
    return graph
