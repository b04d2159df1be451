"""Remove NaN guards around values that cannot be NaN.

Exporters wrap attention's softmax in a guard that zeroes NaN rows (fully masked rows)::

        x ──> Softmax ──> s ──┬──> IsNaN ──> m ──┐
                              │                  v
                              └───────────> Where(m, 0, s) ──> y      becomes   y = s

The guard is dropped when ``s`` is finite by construction (:func:`finite_values`). With the
finite additive masks transformers use (``finfo(float32).min``, not ``-inf``), every softmax
row has a finite maximum, so no row is NaN and the guard does nothing.
"""
from __future__ import annotations

import numpy as np

from ..ir import Graph
from ..ir.narrow_types import narrow_type

# Ops whose output is finite whenever all their (data) inputs are, barring float overflow.
_CLOSED = {
    "Add", "Sub", "Mul", "Neg", "Abs", "Relu", "Max", "Min", "Clip", "Where", "Erf", "Tanh", "Sigmoid", "Gelu",
    "MatMul", "Gemm", "Transpose", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Expand", "Concat", "Slice",
    "Split", "Gather", "GatherElements", "GatherND", "Pad", "Identity", "ReduceSum", "ReduceMean", "ReduceMax",
    "Softmax", "LayerNormalization", "Cast",
}
_INDEX_INPUTS = {"Gather": (1,), "GatherElements": (1,), "GatherND": (1,), "Where": (0,)}


def _const_finite(v) -> bool:
    return not np.issubdtype(v.dtype, np.floating) or bool(np.all(np.isfinite(v.const)))


def _divides_by_nonzero_constant(graph: Graph, node) -> bool:
    if node.op_type != "Div":
        return False
    d = graph.values[node.inputs[1]]
    return d.is_const and bool(np.all(d.const != 0))


def finite_values(graph: Graph) -> set[str]:
    """Values that hold no NaN or infinity, assuming no floating-point overflow.

    Integer and bool values and finite constants are finite; float graph inputs are not
    (callers may pass anything). Ops in ``_CLOSED``, and Div by a nonzero constant, keep finiteness. LayerNormalization and
    Softmax are closed because they divide by ``sqrt(var + eps)`` with ``eps > 0`` and by a
    sum of exponentials that includes ``exp(0) = 1``. Values of narrow types (float8, bfloat16 ...)
    never count: a Cast to float8 without ``saturate`` makes NaN of large finite values.
    """
    finite = {n for n, v in graph.values.items()
              if v.dtype is not None and narrow_type(v.dtype) is None
              and (not np.issubdtype(v.dtype, np.floating) or (v.is_const and _const_finite(v)))}
    for node in graph.nodes:
        if node.op_type == "LayerNormalization" and float(node.attrs.get("epsilon", 1e-5)) <= 0:
            continue
        data = [i for k, i in enumerate(node.inputs) if i and k not in _INDEX_INPUTS.get(node.op_type, ())]
        if (node.op_type in _CLOSED or _divides_by_nonzero_constant(graph, node)) and all(i in finite for i in data):
            finite.update(o for o in node.outputs if o and narrow_type(graph.values[o].dtype) is None)
    return finite


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
        graph.notes.append(f"removed {len(rename)} NaN guard(s) around finite values (IsNaN -> Where)")
    return graph
