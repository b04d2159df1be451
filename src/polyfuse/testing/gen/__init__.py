"""Random valid ONNX graphs for differential testing (see :mod:`polyfuse.testing.fuzz`).

``random_graph(seed)`` builds a small model over the ops polyfuse supports: pointwise math
with broadcasting, comparisons and Where, Cast (through float64 and back too), reductions over
any axes, MatMul/Gemm with transposes, LayerNormalization, Softmax, and the movement ops
(Concat, Split, Slice, Expand, Transpose, Reshape, Flatten, Gather, Unsqueeze, Squeeze), on odd
sizes (1, 3, 7, 17, 33, 65), in chains with several consumers and with intermediate values among
the outputs. The same seed always gives the same graph and feeds.

A difference between two engines is only a bug where the answer is well defined, so every
tensor carries what the generator knows of its values (:class:`~.core.Info`):

* ``exact``: every element is a multiple of 2**-bits below 2**22 in magnitude (inputs are
  multiples of 1/4), so it is computed without rounding whatever the order of operations.
  Ops that are discontinuous (comparisons, Cast to integers or bool, Log/Sqrt/Div near 0)
  only take exact operands: a rounding difference can never flip their result.
* ``lo``/``hi``: bounds of the finite values, to keep Exp and Pow far from overflow and to
  let Log/Sqrt/Div take inexact operands only far from their poles.
* ``special``: the tensor may hold NaN or +-inf (graph inputs sometimes do, on purpose).
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import helper

from .core import _ONNX, IR_VERSION, OPSETS, Builder, Graph
from .movement import gen_concat, gen_expand, gen_gather, gen_reshape, gen_slice, gen_split, gen_transpose
from .nn import gen_gemm, gen_layer_norm, gen_matmul, gen_reduce, gen_softmax
from .pointwise import gen_binary, gen_cast, gen_clip, gen_compare, gen_unary, gen_where

GENERATORS = (  # (generator, weight)
    (gen_unary, 6), (gen_binary, 8), (gen_compare, 2), (gen_where, 2), (gen_clip, 1), (gen_cast, 2),
    (gen_reduce, 3), (gen_softmax, 2), (gen_layer_norm, 2), (gen_matmul, 3), (gen_gemm, 1),
    (gen_transpose, 2), (gen_reshape, 3), (gen_expand, 2), (gen_slice, 2), (gen_concat, 2), (gen_split, 2),
    (gen_gather, 2),
)


def random_graph(seed: int, opset: int | None = None, max_nodes: int = 12) -> Graph:
    """A random valid model and its feeds, from ``seed`` alone (and ``opset``, if given)."""
    rng = np.random.default_rng(seed)
    opset = int(rng.choice(OPSETS)) if opset is None else opset
    b = Builder(rng, opset)
    for _ in range(int(b.pick((1, 2, 3), (3, 3, 1)))):
        b.leaf(b.shape(), const=False)
    target = int(rng.integers(1, max_nodes + 1)) if not b.coin(0.1) else 2 * max_nodes
    gens, weights = zip(*GENERATORS)
    tries = 0
    while len(b.nodes) < target and tries < 20 * target:
        tries += 1
        b.pick(gens, weights)(b)
    made = [t for t in b.pool if not t.leaf]
    if not made:  # nothing applied: one Neg of the first input keeps the graph valid
        x = b.pool[0]
        made = b.node("Neg", [x.name], [(x.dtype, x.shape, x.info)])
    outs = [t for t in made if t.name not in b.consumed or b.coin(0.2)]
    outputs = [helper.make_tensor_value_info(t.name, _ONNX[t.dtype], list(t.shape)) for t in outs]
    graph = helper.make_graph(b.nodes, f"fuzz{seed}", b.inputs, outputs, b.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=IR_VERSION)
    return Graph(model, b.feeds, dict(b.ops))


def merge(graphs: dict[str, Graph]) -> Graph:
    """One model holding every graph side by side, the names of graph ``k`` prefixed ``k_``:
    compiling and running many small graphs at once costs one build instead of one each."""
    opsets = {g.model.opset_import[0].version for g in graphs.values()}
    if len(opsets) != 1:
        raise ValueError(f"graphs of several opsets {sorted(opsets)} cannot be merged")
    nodes, inputs, outputs, inits, feeds, ops = [], [], [], [], {}, {}
    for k, g in graphs.items():
        p = f"{k}_"
        m = onnx.ModelProto()
        m.CopyFrom(g.model)
        for j, n in enumerate(m.graph.node):
            n.input[:] = [p + i if i else "" for i in n.input]
            n.output[:] = [p + o if o else "" for o in n.output]
            n.name = p + (n.name or f"node{j}")
        for coll in (m.graph.input, m.graph.output, m.graph.initializer):
            for v in coll:
                v.name = p + v.name
        nodes += m.graph.node
        inputs += m.graph.input
        outputs += m.graph.output
        inits += m.graph.initializer
        feeds.update({p + k2: v for k2, v in g.feeds.items()})
        for op, c in g.ops.items():
            ops[op] = ops.get(op, 0) + c
    graph = helper.make_graph(nodes, "fuzz_batch", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opsets.pop())], ir_version=IR_VERSION)
    return Graph(model, feeds, ops)

