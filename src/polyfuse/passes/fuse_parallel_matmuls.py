"""Horizontal fusion: MatMuls that read the same input become one wider MatMul.

Attention's Q, K and V projections (and MobileBERT's bottleneck layers) multiply one activation
by several constant weights. One GEMM against the concatenated weights reads ``x`` once and
gives the GEMM kernel a wider N; a Split along the last axis recreates every branch value
under its original name, so consumers and graph outputs are untouched::

    x ──> MatMul(W1) ──> Add(b1) ──> y1        x ──> MatMul(W1|W2|W3) ──> Add(b1|b2|b3) ──> Split ──> y1
    x ──> MatMul(W2) ──> Add(b2) ──> y2   =>                                                ├──> y2
    x ──> MatMul(W3) ──> Add(b3) ──> y3                                                     └──> y3

A branch is a MatMul (``x`` of rank >= 2) or a Gemm (transA=0, alpha=1, beta=1; transB is
applied to the constant) by a constant float32 ``[K, N_i]``. The bias Adds are folded in only if
every branch has one: a constant ``[N_i]`` / ``[1, ..., 1, N_i]`` Add that is the sole consumer of
the branch output and whose own output is used. Otherwise only the products are fused and the
Split recreates the MatMul outputs (the Adds stay). A Gemm's own ``C`` is always folded (other
branches get zeros in the concatenated bias). Needs shapes and constants (run after
fold_constants) and opset >= 13 (Split's sizes as an input).
"""
from __future__ import annotations

import numpy as np

from ..ir import Graph, Node, Value


def _gemm_bias(graph: Graph, node: Node, n: int) -> tuple[bool, np.ndarray | None]:
    """(fusable, C as an [n] vector or None) for a Gemm's optional bias input."""
    if not node.input(2):
        return True, None
    c = graph.values[node.input(2)]
    if not c.is_const or c.const.dtype != np.float32 or float(node.attrs.get("beta", 1.0)) != 1.0 or c.const.ndim > 2:
        return False, None
    if any(d != 1 for d in c.const.shape[:-1]) or (c.const.ndim and c.const.shape[-1] not in (1, n)):
        return False, None
    return True, np.broadcast_to(c.const.reshape(-1).astype(np.float32), (n,))


def _as_linear(graph: Graph, node: Node) -> tuple[np.ndarray, np.ndarray | None] | None:
    """(W [K, N], own bias [N] or None) when ``node`` computes ``x @ W (+ bias)`` with constant W."""
    if node.op_type not in ("MatMul", "Gemm") or node.domain not in ("", "ai.onnx"):
        return None
    x, w = graph.values.get(node.input(0)), graph.values.get(node.input(1))
    if x is None or w is None or not w.is_const or x.shape is None or len(x.shape) < 2:
        return None
    if np.dtype(x.dtype) != np.float32 or w.const.dtype != np.float32 or w.const.ndim != 2:
        return None
    weight, bias = w.const, None
    if node.op_type == "Gemm":
        if len(x.shape) != 2 or node.attrs.get("transA", 0) or float(node.attrs.get("alpha", 1.0)) != 1.0:
            return None
        weight = weight.T if node.attrs.get("transB", 0) else weight
        ok, bias = _gemm_bias(graph, node, weight.shape[1])
        if not ok:
            return None
    if weight.shape[0] != x.shape[-1] or weight.shape[1] == 0:
        return None
    return weight, bias


def find_parallel_matmuls(graph: Graph) -> list[list[Node]]:
    """Groups (in graph order) of >= 2 fusable MatMul/Gemm nodes reading the same input with the same K."""
    groups: dict[tuple[str, int], list[Node]] = {}
    for node in graph.nodes:
        lin = _as_linear(graph, node)
        if lin is not None:
            groups.setdefault((node.inputs[0], lin[0].shape[0]), []).append(node)
    return [g for g in groups.values() if len(g) >= 2]


def _bias_add(graph: Graph, node: Node, consumers: dict, outputs: set) -> tuple[Node, np.ndarray] | None:
    """The Add of a constant [N] bias that is the only consumer of ``node``'s output, if any."""
    y = node.outputs[0]
    uses = consumers.get(y, [])
    if y in outputs or len(uses) != 1 or uses[0].op_type != "Add" or uses[0].domain not in ("", "ai.onnx"):
        return None
    add = uses[0]
    if len(add.inputs) != 2 or add.inputs.count(y) != 1:
        return None
    out = add.outputs[0]
    if out not in outputs and not consumers.get(out):
        return None  # dead: nothing to recreate
    b = graph.values[add.inputs[1] if add.inputs[0] == y else add.inputs[0]]
    n, rank = graph.values[y].shape[-1], len(graph.values[y].shape)
    if not b.is_const or b.const.dtype != np.float32 or not 1 <= b.const.ndim <= rank:
        return None
    if b.const.shape[-1] != n or any(d != 1 for d in b.const.shape[:-1]):
        return None
    return add, b.const.reshape(-1)


def _new_value(graph: Graph, base: str, dtype, shape, const=None) -> str:
    name, k = base, 1
    while name in graph.values:
        k += 1
        name = f"{base}_{k}"
    graph.values[name] = Value(name, np.dtype(dtype), tuple(shape), const)
    return name


def _fuse_group(graph: Graph, group: list[Node], consumers: dict, outputs: set) -> tuple[list[Node], list[Node]]:
    """New nodes replacing ``group`` (to insert where group[0] was), and the nodes they replace."""
    x = graph.values[group[0].inputs[0]]
    linears = [_as_linear(graph, n) for n in group]
    adds = [None if own is not None else _bias_add(graph, n, consumers, outputs) for n, (_, own) in zip(group, linears)]
    fold_adds = all(own is not None or add is not None for (_, own), add in zip(linears, adds))
    weights, biases, branch_outs, removed = [], [], [], list(group)
    for node, (w, own), add in zip(group, linears, adds):
        weights.append(w)
        if own is not None:
            biases.append(own)
            branch_outs.append(node.outputs[0])
        elif fold_adds:
            biases.append(add[1])
            branch_outs.append(add[0].outputs[0])
            removed.append(add[0])
        else:
            biases.append(None)
            branch_outs.append(node.outputs[0])
    sizes = [w.shape[1] for w in weights]
    prefix = f"{group[0].name or group[0].outputs[0]}/hfused"
    out_shape = tuple(x.shape[:-1]) + (sum(sizes),)
    w_cat = np.ascontiguousarray(np.concatenate(weights, axis=1), dtype=np.float32)
    w_name = _new_value(graph, f"{prefix}_weight", np.float32, w_cat.shape, w_cat)
    y = _new_value(graph, f"{prefix}_matmul", np.float32, out_shape)
    new_nodes = [Node("MatMul", [x.name, w_name], [y], name=y)]
    if any(b is not None for b in biases):
        b_cat = np.concatenate([np.zeros(n, np.float32) if b is None else b for b, n in zip(biases, sizes)])
        b_name = _new_value(graph, f"{prefix}_bias", np.float32, b_cat.shape, np.ascontiguousarray(b_cat, np.float32))
        y_biased = _new_value(graph, f"{prefix}_add", np.float32, out_shape)
        new_nodes.append(Node("Add", [y, b_name], [y_biased], name=y_biased))
        y = y_biased
    split = np.array(sizes, np.int64)
    split_name = _new_value(graph, f"{prefix}_split_sizes", np.int64, split.shape, split)
    new_nodes.append(Node("Split", [y, split_name], branch_outs, {"axis": -1}, name=f"{prefix}_split"))
    return new_nodes, removed


def fuse_parallel_matmuls(graph: Graph) -> Graph:
    if graph.opset < 13:
        return graph
    groups = find_parallel_matmuls(graph)
    if not groups:
        return graph
    consumers, outputs = graph.consumers(), set(graph.outputs)
    inserted: dict[int, list[Node]] = {}
    removed: set[int] = set()
    for group in groups:
        new_nodes, replaced = _fuse_group(graph, group, consumers, outputs)
        inserted[id(group[0])] = new_nodes
        removed.update(id(n) for n in replaced)
    nodes = []
    for node in graph.nodes:
        nodes.extend(inserted.get(id(node), ()))
        if id(node) not in removed:
            nodes.append(node)
    graph.nodes = nodes
    n_branches = sum(len(g) for g in groups)
    what = "group" if len(groups) == 1 else "groups"
    graph.notes.append(f"horizontal fusion: {len(groups)} {what} of parallel MatMuls ({n_branches} -> {len(groups)})")
    return graph
