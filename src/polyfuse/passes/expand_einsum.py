"""Rewrite each Einsum into Transpose, Reshape, MatMul, Mul and ReduceSum nodes.

Lowering Einsum through ops polyfuse already compiles lets fusion see what it is: the
attention forms become MatMuls (whose operand transposes the GEMM absorbs as strides, and
whose softmax neighbours fuse as with any exporter's MatMul), elementwise and outer products
become Muls, dot products a Mul + ReduceSum, all without a kernel kind of its own. It runs
after fold_constants, when every operand shape is known (Reshape targets must be), and an
Einsum of constants has already been folded by the numpy reference.

Operands are contracted pairwise, left to right. For a pair ``a``, ``b`` with the labels
``keep`` still needed (by the output or a later operand):

1. labels of one operand needed nowhere else are summed out (ReduceSum);
2. labels in both and kept are batch dims, in both and not kept are contracted, in one only
   are that operand's free dims;
3. no contracted label: ``Mul`` of the operands transposed to [batch, free] and broadcast;
   no free label: ``Mul`` then ``ReduceSum`` over the contracted dims; otherwise ``MatMul`` of
   ``a`` as [batch, M, K] and ``b`` as [batch, K, N] (Transpose, then a Reshape merging dims).

A dim of size 1 that broadcasts against the same label's larger size is dropped first (its
operand is constant along that label). The last step is a Transpose to the output order, and
the last node writes the Einsum's output value. Transposes and Reshapes of constant operands
are applied to the data here, so a weight is stored already transposed. A label repeated
within one operand (a diagonal, ``ii->i``) is refused with UnsupportedError.
"""
from __future__ import annotations

import numpy as np

from ..errors import UnsupportedError
from ..ir import Graph, Node, Value
from ..ops.einsum_equation import parse_einsum


class _Builder:
    """Emits the nodes replacing one Einsum; operands are (value name, labels) pairs."""

    def __init__(self, graph: Graph, node: Node, sizes: dict):
        self.graph, self.node, self.sizes, self.nodes = graph, node, sizes, []
        self.dtype = graph.values[node.inputs[0]].dtype

    def _value(self, tag: str, shape, const=None) -> str:
        base = f"{self.node.outputs[0]}/einsum_{tag}"
        name, k = base, 1
        while name in self.graph.values:
            k += 1
            name = f"{base}_{k}"
        self.graph.values[name] = Value(name, np.dtype(self.dtype if const is None else const.dtype), tuple(shape),
                                        None if const is None else np.ascontiguousarray(const))
        return name

    def _emit(self, op_type: str, inputs: list, shape, tag: str, **attrs) -> str:
        out = self._value(tag, shape)
        self.nodes.append(Node(op_type, inputs, [out], attrs, out))
        return out

    def shape(self, labels) -> list:
        return [self.sizes[lab] for lab in labels]

    def transpose(self, x, labels) -> tuple:
        """``x`` with its dims in the order of ``labels`` (a permutation of its own)."""
        name, own = x
        perm = [own.index(lab) for lab in labels]
        if perm == sorted(perm):
            return name, tuple(labels)
        v = self.graph.values[name]
        if v.is_const:
            return self._value("transposed", self.shape(labels), np.transpose(v.const, perm)), tuple(labels)
        return self._emit("Transpose", [name], self.shape(labels), "transpose", perm=perm), tuple(labels)

    def reshape(self, name: str, shape) -> str:
        v = self.graph.values[name]
        if tuple(v.shape) == tuple(shape):
            return name
        if v.is_const:
            return self._value("reshaped", shape, v.const.reshape(shape))
        target = self._value("shape", (len(shape),), np.array(shape, np.int64))
        return self._emit("Reshape", [name, target], shape, "reshape")

    def drop(self, x, labels) -> tuple:
        """``x`` without the dims of ``labels`` (each of size 1 in ``x``)."""
        name, own = x
        kept = tuple(lab for lab in own if lab not in labels)
        shape = [d for lab, d in zip(own, self.graph.values[name].shape) if lab not in labels]
        return self.reshape(name, shape), kept

    def sum_out(self, x, labels) -> tuple:
        name, own = x
        if not labels:
            return x
        axes = self._value("axes", (len(labels),), np.array([own.index(lab) for lab in labels], np.int64))
        kept = tuple(lab for lab in own if lab not in labels)
        return self._emit("ReduceSum", [name, axes], self.shape(kept), "reducesum", keepdims=0), kept

    def contract(self, a, b, keep) -> tuple:
        a = self.sum_out(a, [lab for lab in a[1] if lab not in keep and lab not in b[1]])
        b = self.sum_out(b, [lab for lab in b[1] if lab not in keep and lab not in a[1]])
        batch = [lab for lab in a[1] if lab in b[1] and lab in keep]
        summed = [lab for lab in a[1] if lab in b[1] and lab not in keep]
        a_free = [lab for lab in a[1] if lab not in b[1]]
        b_free = [lab for lab in b[1] if lab not in a[1]]
        if not summed:  # elementwise or outer product: broadcast a Mul
            an, _ = self.transpose(a, batch + a_free)
            bn, _ = self.transpose(b, batch + b_free)
            an = self.reshape(an, self.shape(batch + a_free) + [1] * len(b_free))
            bn = self.reshape(bn, self.shape(batch) + [1] * len(a_free) + self.shape(b_free))
            labels = batch + a_free + b_free
            return self._emit("Mul", [an, bn], self.shape(labels), "mul"), tuple(labels)
        if not a_free and not b_free:  # a dot product per batch index
            an, _ = self.transpose(a, batch + summed)
            bn, _ = self.transpose(b, batch + summed)
            prod = self._emit("Mul", [an, bn], self.shape(batch + summed), "mul"), tuple(batch + summed)
            return self.sum_out(prod, summed)
        an, _ = self.transpose(a, batch + a_free + summed)
        bn, _ = self.transpose(b, batch + summed + b_free)
        m, k, n = (int(np.prod(self.shape(ls), dtype=np.int64)) for ls in (a_free, summed, b_free))
        an = self.reshape(an, self.shape(batch) + [m, k])
        bn = self.reshape(bn, self.shape(batch) + [k, n])
        y = self._emit("MatMul", [an, bn], self.shape(batch) + [m, n], "matmul")
        labels = batch + a_free + b_free
        return self.reshape(y, self.shape(labels)), tuple(labels)


def _expand(graph: Graph, node: Node) -> list[Node]:
    equation = str(node.attrs.get("equation", ""))
    shapes = [graph.values[i].shape for i in node.inputs]
    spec = parse_einsum(equation, shapes)  # fold_constants has already checked it, on the same shapes
    for labels in spec.inputs:
        repeated = sorted({lab for lab in labels if labels.count(lab) > 1})
        if repeated:
            raise UnsupportedError(f"node {node.name!r} (Einsum): equation {equation!r} repeats label "
                                   f"{repeated[0]!r} within one operand (a diagonal); polyfuse does not compile that")
    b = _Builder(graph, node, spec.sizes)
    operands = []
    for name, labels, shape in zip(node.inputs, spec.inputs, shapes):
        broadcast = [lab for lab, d in zip(labels, shape) if d == 1 and spec.sizes[lab] != 1]
        operands.append(b.drop((name, labels), broadcast))
    cur = operands[0]
    for k, nxt in enumerate(operands[1:], start=1):
        keep = set(spec.output).union(*(labels for _, labels in operands[k + 1:]))
        cur = b.contract(cur, nxt, keep)
    cur = b.sum_out(cur, [lab for lab in cur[1] if lab not in spec.output])
    name, _ = b.transpose(cur, spec.output)
    out = node.outputs[0]
    if b.nodes and b.nodes[-1].outputs[0] == name:  # the last node writes the Einsum's output
        b.nodes[-1].outputs[0] = out
        del graph.values[name]
    else:  # the result is an operand itself, or a constant: copy it
        b.nodes.append(Node("Identity", [name], [out], {}, f"{node.name}/identity"))
    return b.nodes


def expand_einsum(graph: Graph) -> Graph:
    nodes = []
    for node in graph.nodes:
        nodes.extend(_expand(graph, node) if node.op_type == "Einsum" else [node])
    graph.nodes = nodes
    return graph
