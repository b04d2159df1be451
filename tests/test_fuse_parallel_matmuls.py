"""Horizontal fusion of MatMuls that read the same input: graph structure, then numerics vs onnxruntime."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

import polyfuse
from helpers import model, run_ort
from polyfuse.frontend import import_onnx
from polyfuse.ir import Graph, Node, Value
from polyfuse.passes import bind_shapes, fold_constants
from polyfuse.passes.fuse_parallel_matmuls import find_parallel_matmuls, fuse_parallel_matmuls

TOL = 1e-5  # rtol and atol: one GEMM of the concatenated weights against three separate ones
RNG = np.random.default_rng(0)
K = 16
X = ("x", np.float32, [2, 5, K])


def _w(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def _branch(i, n, bias_shape=None, bias_first=False):
    """x @ w{i} -> m{i} (+ b{i} -> y{i}): nodes and initializers."""
    nodes = [helper.make_node("MatMul", ["x", f"w{i}"], [f"m{i}"], name=f"mm{i}")]
    inits = [(f"w{i}", _w(K, n))]
    if bias_shape is not None:
        ins = [f"b{i}", f"m{i}"] if bias_first else [f"m{i}", f"b{i}"]
        nodes.append(helper.make_node("Add", ins, [f"y{i}"], name=f"add{i}"))
        inits.append((f"b{i}", _w(*bias_shape)))
    return nodes, inits


def _model(branches, extra_nodes=(), outputs=("y0", "y1", "y2"), inputs=(X,), extra_inits=()):
    nodes, inits = [], list(extra_inits)
    for b in branches:
        nodes += b[0]
        inits += b[1]
    return model(nodes + list(extra_nodes), list(inputs), [(o, np.float32, None) for o in outputs], inits)


def _qkv(**kw):
    """Three biased branches of widths 8, 4, 12; the bias given as [N], [1,1,N] (first operand) and [1,N]."""
    return _model([_branch(0, 8, (8,)), _branch(1, 4, (1, 1, 4), bias_first=True), _branch(2, 12, (1, 12))], **kw)


def _prepared(m):
    return fold_constants(bind_shapes(import_onnx(m)))


def _fused(m):
    g = fuse_parallel_matmuls(_prepared(m))
    g.verify()
    return g


def _ops(g):
    return [n.op_type for n in g.nodes]


def _const_input(g, node, k):
    return g.values[node.inputs[k]].const


def _check_numerics(m, g, inputs=None, fusion=True, atol=TOL):
    """Compile the fused graph; compare every output with onnxruntime on the original model."""
    inputs = inputs or {"x": RNG.standard_normal((2, 5, K)).astype(np.float32)}
    compiled = polyfuse.compile(g, threads=1, fusion=fusion)
    for name, ours, ref in zip(compiled.output_names, compiled.run(None, inputs), run_ort(m, inputs)):
        assert ours.shape == ref.shape, name
        np.testing.assert_allclose(ours, ref, rtol=TOL, atol=atol, err_msg=name)


# --- structure ---------------------------------------------------------------------------------

def test_three_biased_branches_become_matmul_add_split():
    m = _qkv()
    assert [[n.name for n in grp] for grp in find_parallel_matmuls(_prepared(m))] == [["mm0", "mm1", "mm2"]]
    g = _fused(m)
    assert _ops(g) == ["MatMul", "Add", "Split"]
    mm, add, split = g.nodes
    ws = {w: g.values[w].const for w in ("w0", "w1", "w2")}
    np.testing.assert_array_equal(_const_input(g, mm, 1), np.concatenate([ws["w0"], ws["w1"], ws["w2"]], axis=1))
    bias = np.concatenate([g.values[b].const.reshape(-1) for b in ("b0", "b1", "b2")])
    np.testing.assert_array_equal(_const_input(g, add, 1), bias)
    assert split.outputs == ["y0", "y1", "y2"] and split.attrs == {"axis": -1}
    np.testing.assert_array_equal(_const_input(g, split, 1), [8, 4, 12])
    assert g.values[mm.outputs[0]].shape == (2, 5, 24) and g.values[add.outputs[0]].dtype == np.float32
    assert g.notes == ["horizontal fusion: 1 group of parallel MatMuls (3 -> 1)"]


def test_fusion_is_idempotent():
    g = fuse_parallel_matmuls(_fused(_qkv()))
    assert _ops(g) == ["MatMul", "Add", "Split"] and len(g.notes) == 1


def test_new_names_do_not_collide():
    taken = "mm0/hfused_weight"
    m = _qkv(extra_nodes=[helper.make_node("Add", ["y0", taken], ["z"])], outputs=("z", "y1", "y2"),
             extra_inits=[(taken, _w(8))])
    g = _fused(m)
    assert g.nodes[0].inputs[1] == "mm0/hfused_weight_2"
    np.testing.assert_array_equal(g.values[taken].const.shape, (8,))


def test_differing_k_not_fused():
    """Hand-built graph: a valid model cannot multiply one x by weights of two K."""
    vals = {"x": Value("x", np.dtype(np.float32), (4, K))}
    nodes = []
    for i, k in enumerate([K, K, 12]):
        vals[f"w{i}"] = Value(f"w{i}", np.dtype(np.float32), (k, 8), _w(k, 8))
        vals[f"m{i}"] = Value(f"m{i}", np.dtype(np.float32), (4, 8))
        nodes.append(Node("MatMul", ["x", f"w{i}"], [f"m{i}"], name=f"mm{i}"))
    g = Graph(nodes, vals, ["x"], ["m0", "m1", "m2"], opset=17)
    assert [[n.name for n in grp] for grp in find_parallel_matmuls(g)] == [["mm0", "mm1"]]


def test_other_inputs_and_batched_weights_not_fused():
    batched = helper.make_node("MatMul", ["x", "w3d"], ["m3"], name="mm3")  # [2, K, 8]: not a 2-D weight
    other = helper.make_node("MatMul", ["z", "w4"], ["m4"], name="mm4")  # another input
    m = _model([_branch(0, 8), _branch(1, 8)], [batched, other], outputs=("m0", "m1", "m3", "m4"),
               inputs=(X, ("z", np.float32, [2, 5, K])), extra_inits=[("w3d", _w(2, K, 8)), ("w4", _w(K, 8))])
    g = _fused(m)
    assert _ops(g) == ["MatMul", "Split", "MatMul", "MatMul"]
    assert g.nodes[1].outputs == ["m0", "m1"]


@pytest.mark.parametrize("n_constant", [1, 2])
def test_non_constant_weight_not_fused(n_constant):
    dynamic = helper.make_node("MatMul", ["x", "v"], ["mv"], name="mmv")
    m = _model([_branch(i, 8) for i in range(n_constant)], [dynamic],
               outputs=[f"m{i}" for i in range(n_constant)] + ["mv"], inputs=(X, ("v", np.float32, [K, 8])))
    g = _fused(m)
    if n_constant == 1:
        assert _ops(g) == ["MatMul", "MatMul"] and not g.notes
    else:
        assert _ops(g) == ["MatMul", "Split", "MatMul"] and g.nodes[1].outputs == ["m0", "m1"]


def test_bias_add_with_second_consumer_keeps_the_adds():
    relu = helper.make_node("Relu", ["m1"], ["r"])  # m1 feeds its Add and a Relu
    m = _qkv(extra_nodes=[relu], outputs=("y0", "y1", "y2", "r"))
    g = _fused(m)
    assert _ops(g) == ["MatMul", "Split", "Add", "Add", "Add", "Relu"]
    assert g.nodes[1].outputs == ["m0", "m1", "m2"]
    assert [n.outputs for n in g.nodes[2:5]] == [["y0"], ["y1"], ["y2"]]
    _check_numerics(m, g)


def test_dead_bias_add_is_not_folded():
    m = _qkv(outputs=("y0", "y2"))  # y1 = Add(b1, m1) is computed but never used
    assert _ops(_fused(m)) == ["MatMul", "Split", "Add", "Add", "Add"]


def test_branch_values_that_are_graph_outputs_are_recreated():
    tail = [helper.make_node("Relu", ["y0"], ["r0"]), helper.make_node("ReduceSum", ["y1"], ["p"])]
    m = _qkv(extra_nodes=tail, outputs=("y0", "r0", "p", "y2"))
    g = _fused(m)
    assert _ops(g) == ["MatMul", "Add", "Split", "Relu", "ReduceSum"]
    assert g.outputs == ["y0", "r0", "p", "y2"]
    _check_numerics(m, g)
    m = _model([_branch(0, 8, (8,)), _branch(1, 8, (8,))], outputs=("m0", "y0", "y1"))  # a MatMul output
    g = _fused(m)
    assert _ops(g) == ["MatMul", "Split", "Add", "Add"] and g.nodes[1].outputs == ["m0", "m1"]
    _check_numerics(m, g)


def test_opset_below_13_not_fused():
    """Split takes its sizes as an input from opset 13 (the importer converts older models to 13)."""
    g = _prepared(_qkv())
    g.opset = 12
    assert _ops(fuse_parallel_matmuls(g)) == ["MatMul", "Add"] * 3


# Kernel fusion (a39b777) absorbs the head split's Reshape/Transpose into the attention GEMM's strides, then
# absorbs the Split as if the GEMM still read a contiguous operand: the head stride is lost.
@pytest.mark.parametrize("fusion", [False, True])
def test_attention_heads_read_from_the_split_match_onnxruntime(fusion):
    """Fused Q/K/V of width 16, two heads: Split -> Reshape -> Transpose -> softmax(q @ k^T) @ v."""
    heads = [("hs", np.array([2, 5, 2, 8]))]
    nodes = []
    for name, perm in (("0", [0, 2, 1, 3]), ("1", [0, 2, 3, 1]), ("2", [0, 2, 1, 3])):
        nodes += [helper.make_node("Reshape", [f"y{name}", "hs"], [f"h{name}"]),
                  helper.make_node("Transpose", [f"h{name}"], [f"t{name}"], perm=perm)]
    nodes += [helper.make_node("MatMul", ["t0", "t1"], ["s"]), helper.make_node("Softmax", ["s"], ["p"], axis=-1),
              helper.make_node("MatMul", ["p", "t2"], ["o"])]
    m = _model([_branch(i, 16, (16,)) for i in range(3)], nodes, outputs=("o",), extra_inits=heads)
    g = _fused(m)
    assert _ops(g)[:3] == ["MatMul", "Add", "Split"]
    # atol 1e-4: the outputs reach ~11 and pass through a softmax of scores of that size. Over 20
    # draws, onnxruntime's largest error against a float64 evaluation was 2.4e-5 and polyfuse's
    # 1.5e-5, so two fp32 results differ by more than 1e-5 (up to 3.0e-5 seen).
    _check_numerics(m, g, fusion=fusion, atol=1e-4)


# --- Gemm --------------------------------------------------------------------------------------

def _gemm_model(gemm_attrs=None, rows=4):
    """x[rows, K]: Gemm(x, B^T, C) with transB=1, a plain MatMul + bias Add, and a MatMul without bias."""
    attrs = dict(transB=1, **(gemm_attrs or {}))
    gemm = helper.make_node("Gemm", ["x", "bt", "c"], ["g"], name="gemm", **attrs)
    nodes = [gemm, helper.make_node("MatMul", ["x", "w1"], ["m1"], name="mm1"),
             helper.make_node("Add", ["m1", "b1"], ["y1"]), helper.make_node("MatMul", ["x", "w2"], ["m2"])]
    inits = [("bt", _w(6, K)), ("c", _w(1, 6)), ("w1", _w(K, 8)), ("b1", _w(8)), ("w2", _w(K, 5))]
    return model(nodes, [("x", np.float32, [rows, K])], [(o, np.float32, None) for o in ("g", "y1", "m2")], inits)


def test_gemm_bias_folded_with_zeros_for_unbiased_branches():
    m = _gemm_model()
    g = _fused(m)
    assert _ops(g) == ["MatMul", "Add", "Split", "Add"]  # m2 has no bias, so y1's Add stays
    assert g.nodes[2].outputs == ["g", "m1", "m2"]
    bias = _const_input(g, g.nodes[1], 1)
    np.testing.assert_array_equal(bias, np.concatenate([g.values["c"].const[0], np.zeros(13, np.float32)]))
    np.testing.assert_array_equal(_const_input(g, g.nodes[0], 1)[:, :6], g.values["bt"].const.T)
    _check_numerics(m, g, {"x": RNG.standard_normal((4, K)).astype(np.float32)})


@pytest.mark.parametrize("attrs", [dict(alpha=2.0), dict(beta=0.5), dict(transA=1)])
def test_scaled_or_transposed_gemm_not_fused(attrs):
    g = _fused(_gemm_model(attrs, rows=K))  # square x, so that transA=1 is valid
    assert _ops(g) == ["Gemm", "MatMul", "Split", "Add"]


# --- a real model --------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("fusion", [False, True])
def test_small_bert_fuses_qkv_and_matches_onnxruntime(export_model, fusion):
    import onnxruntime as ort
    from polyfuse.testing import transformers_export as te

    path = export_model("bert", "small")
    feeds = te.example_inputs("bert", "small", batch=1, seq=128)
    g = fold_constants(bind_shapes(import_onnx(path), {k: v.shape for k, v in feeds.items()}))
    n_layers = te.make_config("bert", "small").num_hidden_layers
    before = _ops(g).count("MatMul")
    fuse_parallel_matmuls(g)
    g.verify()
    assert _ops(g).count("MatMul") == before - 2 * n_layers
    assert g.notes[-1] == f"horizontal fusion: {n_layers} groups of parallel MatMuls ({3 * n_layers} -> {n_layers})"
    compiled = polyfuse.compile(g, threads=2, fusion=fusion)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for name, ours, ref in zip(compiled.output_names, compiled.run(None, feeds), sess.run(None, feeds)):
        assert ours.shape == ref.shape, name
        assert float(np.max(np.abs(ours - ref))) <= 1e-4, name
