"""The Einsum expansion pass: which ops each form becomes (before/expected), and that the
expanded graph computes numpy.einsum for many seeded random equations.

The random check evaluates the expanded nodes with the numpy reference, one by one, so it tests
the rewrite itself without compiling; it compares in float64 with rtol 1e-10, atol 1e-10 (both
sides sum the same products, in different orders). Compiled Einsum is checked against
onnxruntime by test_op_parity.py (the Einsum cases of opcases.py).
"""
from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from helpers import model
from polyfuse.errors import PolyfuseError, UnsupportedError
from polyfuse.frontend import import_onnx
from polyfuse.ops import reference
from polyfuse.passes import bind_shapes, expand_einsum, fold_constants


def _graph(equation, shapes, const=(), dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    arrays = [rng.uniform(-2, 2, s).astype(dtype) for s in shapes]
    names = [f"x{k}" for k in range(len(shapes))]
    inputs = [(n, dtype, list(s)) for k, (n, s) in enumerate(zip(names, shapes)) if k not in const]
    inits = [(n, a) for k, (n, a) in enumerate(zip(names, arrays)) if k in const]
    m = model([helper.make_node("Einsum", names, ["y"], equation=equation)], inputs, [("y", dtype, None)],
              inits, opset=13)
    g = fold_constants(bind_shapes(import_onnx(m), {}))
    return g, {n: a for k, (n, a) in enumerate(zip(names, arrays)) if k not in const}, arrays


def _run(graph, feeds) -> np.ndarray:
    """Evaluate the graph's nodes in order with the numpy reference."""
    env = {**{n: v.const for n, v in graph.values.items() if v.is_const}, **feeds}
    for node in graph.nodes:
        outs = reference.evaluate(node.op_type, [env[i] if i else None for i in node.inputs], node.attrs,
                                  opset=graph.opset, num_outputs=len(node.outputs))
        env.update(zip(node.outputs, outs))
    return env[graph.outputs[0]]


@pytest.mark.parametrize("equation, shapes, const, ops", [
    ("bhqd,bhkd->bhqk", [(2, 3, 7, 5), (2, 3, 13, 5)], (), ["Transpose", "MatMul"]),
    ("bhqk,bhkd->bhqd", [(2, 3, 7, 13), (2, 3, 13, 5)], (), ["MatMul"]),
    ("bid,jd->bij", [(3, 7, 5), (13, 5)], (1,), ["Reshape", "MatMul", "Reshape"]),  # weight transposed here
    ("ij,ij->i", [(7, 5), (7, 5)], (), ["Mul", "ReduceSum"]),
    ("i,j->ij", [(7,), (5,)], (), ["Reshape", "Reshape", "Mul"]),
    ("ij,jk->k", [(7, 3), (3, 5)], (), ["ReduceSum", "Reshape", "MatMul", "Reshape"]),  # [1, j] @ [j, k]
    ("ij->ji", [(7, 5)], (), ["Transpose"]),
    ("ij->ij", [(7, 5)], (), ["Identity"]),
])
def test_expansion_ops(equation, shapes, const, ops):
    g, feeds, arrays = _graph(equation, shapes, const)
    expand_einsum(g)
    assert [n.op_type for n in g.nodes] == ops
    assert g.nodes[-1].outputs == ["y"]
    np.testing.assert_allclose(_run(g, feeds), np.einsum(equation, *arrays), rtol=1e-5, atol=1e-5)


def test_constant_weight_is_stored_transposed():
    g, _, arrays = _graph("bid,jd->bij", [(3, 7, 5), (13, 5)], const=(1,))
    expand_einsum(g)
    matmul = next(n for n in g.nodes if n.op_type == "MatMul")
    np.testing.assert_array_equal(g.values[matmul.inputs[1]].const, arrays[1].T)


def _random_equation(rng):
    """A valid equation over 1-3 operands, with sizes 1, 3, 7 and some size-1 broadcast dims."""
    pool = "abcdefg"
    size = {c: int(rng.choice([1, 3, 7])) for c in pool}
    n_ops = int(rng.integers(1, 4))
    terms, shapes = [], []
    for _ in range(n_ops):
        labels = list(rng.choice(list(pool), size=int(rng.integers(0, 4)), replace=False))
        terms.append("".join(labels))
        shapes.append(tuple(1 if rng.random() < 0.15 else size[c] for c in labels))
    used = sorted(set("".join(terms)))
    out = list(rng.choice(used, size=int(rng.integers(0, len(used) + 1)), replace=False)) if used else []
    for labels, shape in zip(terms, shapes):  # a label's size must be 1 or the one size everywhere
        for c, d in zip(labels, shape):
            size[c] = d if d != 1 else size[c]
    shapes = [tuple(d if d == 1 else size[c] for c, d in zip(t, s)) for t, s in zip(terms, shapes)]
    return ",".join(terms) + "->" + "".join(out), shapes


@pytest.mark.parametrize("seed", range(4))
def test_random_equations_match_numpy(seed):
    rng = np.random.default_rng(seed)
    for _ in range(80):
        equation, shapes = _random_equation(rng)
        g, feeds, arrays = _graph(equation, shapes, dtype=np.float64, seed=int(rng.integers(1 << 30)))
        expected = reference.evaluate("Einsum", arrays, {"equation": equation}, opset=13)[0]
        expand_einsum(g)
        assert not any(n.op_type == "Einsum" for n in g.nodes)
        np.testing.assert_allclose(_run(g, feeds), expected, rtol=1e-10, atol=1e-10, err_msg=equation)


def test_diagonal_is_refused_naming_the_node():
    g, _, _ = _graph("ii->i", [(3, 3)])
    with pytest.raises(UnsupportedError, match=r"Einsum.*'ii->i'.*diagonal"):
        expand_einsum(g)


@pytest.mark.parametrize("equation, shapes, msg", [
    ("ij,jk->ik", [(2, 3), (4, 5)], "size 4"),
    ("ij,jk->iz", [(2, 3), (3, 5)], "'z' appears in no operand"),
    ("ijk,jk->ik", [(2, 3), (3, 5)], "rank 2"),
    ("ij,jk->ii", [(2, 3), (3, 5)], "repeats"),
    ("i1,jk->ik", [(2, 3), (3, 5)], "label '1'"),
    ("ij->ij", [(2, 3), (3, 5)], "1 operand terms for 2 inputs"),
])
def test_bad_equations_raise_polyfuse_errors(equation, shapes, msg):
    with pytest.raises(PolyfuseError, match=msg):
        _graph(equation, shapes)
