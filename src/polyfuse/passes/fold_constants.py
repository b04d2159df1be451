"""Constant folding and shape inference in one walk.

Every node whose inputs are all constant is evaluated with the numpy reference interpreter
(this folds the Shape -> Gather -> Concat -> Reshape subgraphs exporters emit, once input shapes
are bound). Every other node gets its output dtype and shape: elementwise ops by broadcasting
(the dtype from evaluating one element), the rest by evaluating the reference on zeros, so the
reference is the single source of truth for shape semantics. Where that evaluation would
touch large tensors (an input of more than EVAL_MAX_ELEMENTS, or an output that large of an op
that can grow its input, like Expand), onnx's own shape inference on the node alone answers
instead, so compiling a model with multi-GiB intermediates does not allocate them. Everything
smaller is evaluated (the reference also checks what onnx lets through, such as a Pad cropping
below zero), and the evaluation remains the fallback when onnx cannot say.

A folded result much larger than the constants it came from (an Expand of a scalar, a large
ConstantOfShape) stays a computation, so the weights blob does not grow, unless no kernel can
compute it (a Constant, a float Range: ``ops.info.has_kernel``).
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..errors import PolyfuseError, UnsupportedError
from ..ir import Graph, Node
from ..ops import reference
from ..ops.info import OpClass, check_storage_use, const_inputs, has_kernel, op_class, reads_only_shapes

FOLD_MAX_ELEMENTS = 1 << 16  # fold anything up to this size; larger only if no larger than its inputs
EVAL_MAX_ELEMENTS = 1 << 22  # shape inference by evaluation up to inputs of this size (16 MiB of float32)
GROWING = frozenset({"Expand", "Tile", "Pad", "Resize", "Upsample", "OneHot", "Einsum", "Range", "ConstantOfShape"})


def _evaluate(graph: Graph, node: Node, args: list) -> list[np.ndarray]:
    n_out = len(node.outputs)
    try:
        with np.errstate(all="ignore"):
            outs = reference.evaluate(node.op_type, args, node.attrs, opset=graph.opset, num_outputs=n_out)
    except PolyfuseError:
        raise
    except Exception as e:
        ins = ", ".join(f"{i}{list(a.shape) if a is not None else ''}" for i, a in zip(node.inputs, args))
        raise UnsupportedError(f"node {node.name!r} ({node.op_type}) cannot be evaluated on inputs "
                               f"{ins}: {e}") from None
    return [np.asarray(o) for o in outs]


def _infer_elementwise(graph: Graph, node: Node) -> None:
    vals = [graph.values[i] if i else None for i in node.inputs]
    try:
        shape = np.broadcast_shapes(*[v.shape for v in vals if v is not None])
    except ValueError:
        shapes = ", ".join(f"{v.name}{list(v.shape)}" for v in vals if v is not None)
        raise UnsupportedError(f"node {node.name!r} ({node.op_type}): inputs {shapes} do not broadcast") from None
    probe = [None if v is None else np.zeros((1,) * len(v.shape), v.dtype) for v in vals]
    out = _evaluate(graph, node, probe)[0]
    v = graph.values[node.outputs[0]]
    v.dtype, v.shape = out.dtype, tuple(int(d) for d in shape)


def _broadcasts_to(shape, target) -> bool:
    try:
        return tuple(np.broadcast_shapes(shape, target)) == tuple(target)
    except ValueError:
        return False


def _infer_contraction(graph: Graph, node: Node) -> None:
    """MatMul/Gemm shapes by numpy's rules, without multiplying zeros."""
    a, b = graph.values[node.inputs[0]], graph.values[node.inputs[1]]
    mismatch = UnsupportedError(f"node {node.name!r} ({node.op_type}): shapes {list(a.shape)} and {list(b.shape)} "
                                "do not multiply")
    if node.op_type == "Gemm":
        if len(a.shape) != 2 or len(b.shape) != 2:
            raise UnsupportedError(f"node {node.name!r} (Gemm): inputs must be 2-D, got {list(a.shape)} and "
                                   f"{list(b.shape)}")
        m, k = a.shape[::-1] if node.attrs.get("transA", 0) else a.shape
        k2, n = b.shape[::-1] if node.attrs.get("transB", 0) else b.shape
        if k != k2:
            raise mismatch
        c = node.input(2)
        if c and not _broadcasts_to(graph.values[c].shape, (m, n)):
            raise UnsupportedError(f"node {node.name!r} (Gemm): C {list(graph.values[c].shape)} does not "
                                   f"broadcast to [{m}, {n}]")
        shape = (m, n)
    else:
        if not a.shape or not b.shape:
            raise UnsupportedError(f"node {node.name!r} (MatMul): inputs must have rank 1 or more, got "
                                   f"{list(a.shape)} and {list(b.shape)}")
        sa = a.shape if len(a.shape) > 1 else (1,) + tuple(a.shape)
        sb = b.shape if len(b.shape) > 1 else tuple(b.shape) + (1,)
        try:
            batch = tuple(np.broadcast_shapes(sa[:-2], sb[:-2]))
        except ValueError:
            raise mismatch from None
        if sa[-1] != sb[-2]:
            raise mismatch
        shape = batch + (sa[-2],) * (len(a.shape) > 1) + \
            (sb[-1],) * (len(b.shape) > 1)
    v = graph.values[node.outputs[0]]
    v.dtype, v.shape = np.dtype(a.dtype), tuple(int(d) for d in shape)


def _check_shape_inputs(graph: Graph, node: Node) -> None:
    for k in const_inputs(node.op_type):
        name = node.input(k)
        if name and not graph.values[name].is_const:
            raise UnsupportedError(f"node {node.name!r} ({node.op_type}): input {k} ({name!r}) decides the output "
                                   "shape (or the axis the op runs along) but is only known at run time; polyfuse "
                                   "compiles static shapes (give symbolic input dims with --shape so shape "
                                   "computations fold)")


def _infer_by_onnx(graph: Graph, node: Node, least: int = 0) -> bool:
    """Output dtypes and static shapes of ``node`` from onnx.shape_inference on the node alone
    (small constant inputs, such as shapes and axes, as initializers; a large one, a weight, by
    its type alone); False where onnx cannot give them all."""
    ins, inits = [], []
    for name in dict.fromkeys(i for i in node.inputs if i):
        v = graph.values[name]
        if v.is_const and v.numel <= FOLD_MAX_ELEMENTS:
            inits.append(numpy_helper.from_array(np.asarray(v.const), name))
        ins.append(helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape))
    attrs = {k: numpy_helper.from_array(np.asarray(a)) if isinstance(a, np.ndarray) else a
             for k, a in node.attrs.items()}
    try:
        proto = helper.make_node(node.op_type, node.inputs, node.outputs, domain=node.domain or None, **attrs)
        g = helper.make_graph([proto], "node", ins, [helper.make_empty_tensor_value_info(o) for o in node.outputs if o],
                              initializer=inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid(node.domain or "", graph.opset)])
        out = {v.name: v.type.tensor_type for v in onnx.shape_inference.infer_shapes(m, strict_mode=True).graph.output}
    except Exception:  # noqa: BLE001 (onnx cannot infer it: evaluate instead)
        return False
    found = []
    for name in (o for o in node.outputs if o):
        t = out.get(name)
        if t is None or not t.elem_type or not t.HasField("shape") or \
                not all(d.HasField("dim_value") for d in t.shape.dim):
            return False
        found.append((name, np.dtype(helper.tensor_dtype_to_np_dtype(t.elem_type)),
                      tuple(int(d.dim_value) for d in t.shape.dim)))
    if any(d < 0 for _, _, shape in found for d in shape):
        return False  # onnx lets some invalid nodes through (a Pad cropping below zero): the reference says why
    if max(int(np.prod(shape, dtype=np.int64)) for _, _, shape in found) <= least:
        return False  # small enough to evaluate: the reference also checks what onnx does not
    for name, dtype, shape in found:
        graph.values[name].dtype, graph.values[name].shape = dtype, shape
    return True


def _infer_by_evaluation(graph: Graph, node: Node) -> None:
    _check_shape_inputs(graph, node)
    big = max((graph.values[i].numel for i in node.inputs if i), default=0) > EVAL_MAX_ELEMENTS
    if (big and _infer_by_onnx(graph, node)) or \
            (node.op_type in GROWING and _infer_by_onnx(graph, node, least=EVAL_MAX_ELEMENTS)):
        return
    args = []
    for i in node.inputs:
        v = graph.values[i] if i else None
        args.append(None if v is None else (v.const if v.is_const else np.zeros(v.shape, v.dtype)))
    for name, out in zip(node.outputs, _evaluate(graph, node, args)):
        if name:
            graph.values[name].dtype, graph.values[name].shape = out.dtype, tuple(int(d) for d in out.shape)


def _check_types(graph: Graph, node: Node, names: list[str]) -> None:
    """Narrow element types only go through Cast and data movement (ir/narrow_types.py)."""
    check_storage_use(node.op_type, [graph.values[n].dtype for n in names if n], f"node {node.name!r} ({node.op_type})")


def fold_constants(graph: Graph) -> Graph:
    kept = []
    for node in graph.nodes:
        _check_types(graph, node, node.inputs)  # before the reference evaluates it
        ins = [graph.values[i] for i in node.inputs if i]
        if all(v.is_const for v in ins) or reads_only_shapes(node):
            args = [None if not i else (graph.values[i].const if graph.values[i].is_const
                                        else np.zeros(graph.values[i].shape, graph.values[i].dtype))
                    for i in node.inputs]
            outs = _evaluate(graph, node, args)
            limit = max(FOLD_MAX_ELEMENTS, sum(v.numel for v in ins))
            if all(o.size <= limit for o in outs) or not has_kernel(node, [o.dtype for o in outs]):
                for name, o in zip(node.outputs, outs):
                    if name:
                        v = graph.values[name]
                        v.const, v.dtype, v.shape = np.array(o, order="C"), o.dtype, tuple(o.shape)
                continue
        cls = op_class(node)
        if cls in (OpClass.ELEMENTWISE, OpClass.IDENTITY):
            _infer_elementwise(graph, node)
        elif cls is OpClass.CONTRACTION:
            _infer_contraction(graph, node)
        else:
            _infer_by_evaluation(graph, node)
        _check_types(graph, node, node.outputs)  # a kernel's too (a large ConstantOfShape of a narrow value)
        kept.append(node)
    graph.nodes = kept
    return graph
