"""``polyfuse inspect``: what the compiler makes of a model, without building it."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path


from .build.memory import plan_memory
from .cost.model import kernel_bytes, kernel_flops
from .errors import InputError
from .fusion.classify import mapping_type
from .kernel import lower_graph
from .pipeline import frontend, kernels
from .targets import get as get_target


def intermediate_bytes(lowered) -> int:
    """Bytes of tensors kernels write that are not model outputs (each written once, read again)."""
    outs = set(lowered.graph.outputs)
    return sum(lowered.graph.values[k.output].nbytes for k in lowered.kernels if k.output not in outs)


def summarize(model, shapes=None, fusion: bool = True, target="host") -> tuple[dict, object, object]:
    target = get_target(target)
    comp = frontend(model, shapes)  # imported once; the unfused figures are taken before fusion edits the graph
    unfused = lower_graph(comp.graph)
    unfused_bytes = intermediate_bytes(unfused)
    mappings = Counter(mapping_type(k).name.lower() for k in unfused.kernels)
    kernels(comp, fusion, target)
    lowered, report = comp.lowered, comp.fusion
    kinds = Counter(type(k).__name__.lower() for k in lowered.kernels)
    plan = plan_memory(lowered)
    summary = {
        "model": comp.graph.name, "target": target.name, "opset": comp.graph.opset, "onnx_nodes": comp.onnx_nodes,
        "graph_nodes": len(comp.graph.nodes), "fusion": fusion, "kernels": len(lowered.kernels),
        "launches": len(lowered.kernels),  # one per kernel per inference (an NDRange on OpenCL)
        "kernels_unfused": len(unfused.kernels), "kernels_by_kind": dict(sorted(kinds.items())),
        "views": len(lowered.views), "mapping_types_unfused": dict(sorted(mappings.items())),
        "intermediate_bytes_unfused": unfused_bytes,
        "intermediate_bytes_fused": intermediate_bytes(lowered),
        "flops": sum(kernel_flops(k) for k in lowered.kernels),
        "bytes_moved": sum(kernel_bytes(k, comp.graph) for k in lowered.kernels),
        "arena_bytes": plan.arena_bytes, "weights_bytes": plan.weights_bytes,
        "attention_kernels": report.attention if report else 0,
        "expression_ops_before": report.ops_before if report else None,
        "expression_ops_after": report.ops_after if report else None,
        "refused_fusions": len(report.refusals) if report else 0,
        "ops": dict(sorted(Counter(n.op_type for n in comp.graph.nodes).items())),
        "inputs": {n: [int(d) for d in comp.graph.values[n].shape] for n in comp.graph.inputs},
        "notes": comp.graph.notes,
    }
    return summary, comp, report


def _mib(n: int) -> str:
    return f"{n / 2**20:.2f} MiB"


def inspect_model(model, shapes=None, as_json: bool = False, show_graph: bool = False, explain: bool = False,
                  fusion: bool = True, svg=None, html=None, target="host") -> str:
    s, comp, report = summarize(model, shapes, fusion, target)
    if svg or html:
        from .visualize import groups_from_lowered, render_html, render_svg

        groups = groups_from_lowered(comp.lowered)
        for flag, path, render in (("--svg", svg, render_svg), ("--html", html, render_html)):
            if path:
                try:
                    Path(path).write_text(render(comp.graph, groups, title=s["model"]), encoding="utf-8")
                except OSError as e:
                    raise InputError(f"{flag} {path}: cannot write it ({e.strerror or e})") from None
    refusals = [str(r) for r in report.refusals] if report else []
    if as_json:
        if explain:
            s["refusals"] = refusals
        return json.dumps(s, indent=2)
    ratio = s["intermediate_bytes_unfused"] / max(1, s["intermediate_bytes_fused"])
    lines = [f"{s['model']} (opset {s['opset']}): {s['onnx_nodes']} ONNX nodes, {s['graph_nodes']} after folding",
             f"kernels: {s['kernels']} launches per inference ({', '.join(f'{k} {v}' for k, v in s['kernels_by_kind'].items())}), "
             f"{s['kernels_unfused']} without fusion; {s['views']} views",
             "per-op mapping types: " + ", ".join(f"{k} {v}" for k, v in s["mapping_types_unfused"].items()),
             f"intermediate tensors: {_mib(s['intermediate_bytes_fused'])} fused, "
             f"{_mib(s['intermediate_bytes_unfused'])} unfused ({ratio:.1f}x less)",
             f"for {s['target']}: {s['flops'] / 1e9:.3f} GFLOP in matrix products, {_mib(s['bytes_moved'])} moved by "
             f"kernels (each reads its inputs and writes its output once), peak arena {_mib(s['arena_bytes'])}, "
             f"weights {_mib(s['weights_bytes'])}"]
    if report:
        lines.append(f"expression operations: {s['expression_ops_before']} as written, {s['expression_ops_after']} "
                     f"after composition, simplification and CSE; {s['refused_fusions']} fusions refused"
                     + ("" if explain else " (--explain lists them)"))
    lines.append("ops: " + ", ".join(f"{k} {v}" for k, v in s["ops"].items()))
    lines += [f"note: {n}" for n in s["notes"]]
    if explain:
        lines += ["refused fusions:"] + [f"  {r}" for r in refusals]
    if show_graph:
        lines.append(str(comp.graph))
    return "\n".join(lines)
