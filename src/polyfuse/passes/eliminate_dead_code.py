"""Remove nodes whose outputs nobody uses and constants nothing reads."""
from __future__ import annotations

from ..ir import Graph


def eliminate_dead_code(graph: Graph) -> Graph:
    live = set(graph.outputs)
    kept = []
    for n in reversed(graph.nodes):
        if any(o in live for o in n.outputs if o):
            kept.append(n)
            live.update(i for i in n.inputs if i)
    graph.nodes = kept[::-1]
    live.update(graph.inputs)
    live.update(o for n in graph.nodes for o in n.outputs)
    graph.values = {k: v for k, v in graph.values.items() if k in live}
    return graph
