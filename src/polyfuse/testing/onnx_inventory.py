"""What an exported ONNX model contains: op counts, functions, I/O, dims and dtypes, and the
export patterns that matter to polyfuse's frontend (shape arithmetic, NaN guards around Softmax).

Used to write the op inventory of docs/models.md::

    from polyfuse.testing.onnx_inventory import op_inventory
    op_inventory("bert_torchscript_17.onnx")["ops"]
"""
from __future__ import annotations

import collections
import os
from typing import Any

_ONNX_DTYPES = {
    1: "float32", 2: "uint8", 3: "int8", 5: "int16", 6: "int32", 7: "int64",
    9: "bool", 10: "float16", 11: "float64", 16: "bfloat16",
}


def _dtype_name(elem_type: int) -> str:
    return _ONNX_DTYPES.get(elem_type, str(elem_type))


def op_inventory(model_or_path) -> dict[str, Any]:
    """Summarise an ONNX model: op counts (with domains), functions, I/O, dims ...

    Returns a JSON-friendly dict.  Ops inside local functions are counted
    separately under ``function_ops``.
    """
    import onnx

    if isinstance(model_or_path, (str, os.PathLike)):
        m = onnx.load(str(model_or_path), load_external_data=False)
    else:
        m = model_or_path
    g = m.graph

    def key(n):
        return f"{n.domain}::{n.op_type}" if n.domain not in ("", "ai.onnx") else n.op_type

    ops = collections.Counter(key(n) for n in g.node)
    fops = collections.Counter(key(n) for f in m.functions for n in f.node)

    def vi(v):
        t = v.type.tensor_type
        dims = [d.dim_param if d.HasField("dim_param") else (d.dim_value if d.HasField("dim_value") else "?") for d in t.shape.dim]
        return {"name": v.name, "dtype": _dtype_name(t.elem_type), "shape": dims}

    try:
        inferred = onnx.shape_inference.infer_shapes(m).graph.value_info
    except (onnx.shape_inference.InferenceError, ValueError):  # best effort: keep the declared ones
        inferred = g.value_info
    dim_params = sorted(
        {d.dim_param for v in list(g.input) + list(g.output) for d in v.type.tensor_type.shape.dim if d.dim_param}
    )
    inner_dim_params = sorted(
        {
            d.dim_param
            for v in inferred
            for d in v.type.tensor_type.shape.dim
            if d.dim_param
        }
        - set(dim_params)
    )
    init_dtypes = collections.Counter(_dtype_name(t.data_type) for t in g.initializer)
    const_dtypes = collections.Counter()
    for n in g.node:
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value":
                    const_dtypes[_dtype_name(a.t.data_type)] += 1
                else:
                    const_dtypes[a.name] += 1
    # dtypes of intermediate values (after ONNX shape inference)
    value_dtypes = collections.Counter(
        _dtype_name(v.type.tensor_type.elem_type) for v in inferred
    )

    # Shape -> Gather -> ... -> Concat -> Reshape/Expand chains (shape arithmetic).
    producer = {o: n for n in g.node for o in n.output}

    def reaches_shape(name, depth=0):
        n = producer.get(name)
        if n is None or depth > 12:
            return False
        if n.op_type == "Shape":
            return True
        return any(reaches_shape(i, depth + 1) for i in n.input if i)

    dyn_reshape = sum(
        1 for n in g.node if n.op_type in ("Reshape", "Expand") and len(n.input) > 1 and reaches_shape(n.input[1])
    )
    shape_gather_concat = 0
    for n in g.node:
        if n.op_type == "Concat" and any(reaches_shape(i) for i in n.input):
            shape_gather_concat += 1

    # IsNaN/Where guard around Softmax (torch's SDPA symbolic / decomposition
    # replaces NaN rows produced by fully masked rows with 0).
    consumers = collections.defaultdict(list)
    for n in g.node:
        for i in n.input:
            consumers[i].append(n)
    softmax_guards = 0
    for n in g.node:
        if n.op_type == "Softmax":
            for c in consumers[n.output[0]]:
                if c.op_type == "Where" or c.op_type == "IsNaN":
                    softmax_guards += 1
                    break

    size = None
    if isinstance(model_or_path, (str, os.PathLike)):
        size = os.path.getsize(model_or_path)
    return {
        "node_count": len(g.node),
        "ops": dict(sorted(ops.items(), key=lambda kv: (-kv[1], kv[0]))),
        "domains": sorted({n.domain or "ai.onnx" for n in g.node} | {n.domain or "ai.onnx" for f in m.functions for n in f.node}),
        "opset_import": {o.domain or "ai.onnx": o.version for o in m.opset_import},
        "ir_version": m.ir_version,
        "functions": [f"{f.domain}::{f.name}" for f in m.functions],
        "function_ops": dict(fops),
        "inputs": [vi(v) for v in g.input],
        "outputs": [vi(v) for v in g.output],
        "dim_params": dim_params,
        "internal_dim_params": inner_dim_params,
        "initializers": len(g.initializer),
        "initializer_dtypes": dict(init_dtypes),
        "constant_nodes": ops.get("Constant", 0),
        "constant_dtypes": dict(const_dtypes),
        "value_info_dtypes": dict(value_dtypes),
        "softmax_nan_guards": softmax_guards,
        "shape_fed_reshape_expand": dyn_reshape,
        "shape_fed_concat": shape_gather_concat,
        "external_data": any(
            t.data_location == onnx.TensorProto.EXTERNAL for t in g.initializer
        ),
        "file_size": size,
    }
