"""``polyfuse inspect``: what the compiler makes of a model, without building it."""
from __future__ import annotations

import json
from collections import Counter

from .pipeline import frontend
from .kernel import lower_graph


def summarize(model, shapes=None) -> tuple[dict, object]:
    comp = frontend(model, shapes)
    lowered = lower_graph(comp.graph)
    kinds = Counter(type(k).__name__.lower() for k in lowered.kernels)
    summary = {
        "model": comp.graph.name, "opset": comp.graph.opset, "onnx_nodes": comp.onnx_nodes,
        "graph_nodes": len(comp.graph.nodes), "kernels": len(lowered.kernels),
        "kernels_by_kind": dict(sorted(kinds.items())), "views": len(lowered.views),
        "ops": dict(sorted(Counter(n.op_type for n in comp.graph.nodes).items())),
        "inputs": {n: [int(d) for d in comp.graph.values[n].shape] for n in comp.graph.inputs},
        "notes": comp.graph.notes,
    }
    return summary, comp.graph


def inspect_model(model, shapes=None, as_json: bool = False, show_graph: bool = False) -> str:
    s, graph = summarize(model, shapes)
    if as_json:
        return json.dumps(s, indent=2)
    lines = [f"{s['model']} (opset {s['opset']}): {s['onnx_nodes']} ONNX nodes, {s['graph_nodes']} after folding, "
             f"{s['kernels']} kernel launches, {s['views']} views",
             "kernels by kind: " + ", ".join(f"{k} {v}" for k, v in s["kernels_by_kind"].items()),
             "ops: " + ", ".join(f"{k} {v}" for k, v in s["ops"].items())]
    lines += [f"note: {n}" for n in s["notes"]]
    if show_graph:
        lines.append(str(graph))
    return "\n".join(lines)
