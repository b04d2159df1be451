"""Each fusion rule and simplification, before/expected: kernel counts and kinds after fusion,
and numerics against onnxruntime (float32, rtol 1e-5 / atol 1e-5 unless stated). Random graphs
mixing elementwise, broadcast, reduction, transpose and matmul nodes agree fused vs unfused."""
from __future__ import annotations


import numpy as np
import pytest
import sympy
from onnx import helper

import polyfuse
from helpers import model, run_ort
from polyfuse.inspect import summarize

RNG = np.random.default_rng(0)


def f32(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def check(m, feeds, kinds: dict, atol=1e-5):
    """Fused kernels by kind equal ``kinds``; compiled outputs match onnxruntime."""
    s, comp, report = summarize(m)
    assert s["kernels_by_kind"] == kinds, (s["kernels_by_kind"], [str(r) for r in report.refusals])
    ours = polyfuse.compile(m).run(None, feeds)
    for a, b in zip(ours, run_ort(m, feeds)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=atol)
    return comp


def test_elementwise_chain_with_broadcasting_is_one_kernel():
    nodes = [helper.make_node("Add", ["x", "b"], ["a"]), helper.make_node("Mul", ["a", "y"], ["m"]),
             helper.make_node("Tanh", ["m"], ["t"]), helper.make_node("Sub", ["t", "x"], ["s"]),
             helper.make_node("Relu", ["s"], ["r"]), helper.make_node("Div", ["r", "c"], ["out"])]
    m = model(nodes, [("x", np.float32, [13, 17]), ("y", np.float32, [13, 1])], [("out", np.float32, None)],
              [("b", f32(17)), ("c", np.array(1.5, np.float32))])
    check(m, {"x": f32(13, 17), "y": f32(13, 1)}, {"pointwise": 1})


def test_mask_broadcast_over_heads_is_recomputed_not_written():
    """An attention mask Where(keep, 0, -inf) read by 4 heads is cheap to recompute per head: its
    constants 0 and -inf are not operations (counting them kept MobileBERT at 271 kernels, not 247)."""
    nodes = [helper.make_node("Where", ["keep", "zero", "ninf"], ["mask"]), helper.make_node("Add", ["x", "mask"], ["y"])]
    m = model(nodes, [("keep", np.bool_, [1, 1, 8, 8]), ("x", np.float32, [1, 4, 8, 8])], [("y", np.float32, None)],
              [("zero", np.float32(0)), ("ninf", np.float32(-np.inf))])
    check(m, {"keep": RNG.random((1, 1, 8, 8)) < 0.7, "x": f32(1, 4, 8, 8)}, {"pointwise": 1})


def test_scalar_constants_fold_into_one_multiply():
    """x / 1.4142 * 0.5 composes to a single multiplication by 0.35355..."""
    nodes = [helper.make_node("Div", ["x", "c"], ["d"]), helper.make_node("Mul", ["d", "h"], ["out"])]
    m = model(nodes, [("x", np.float32, [8])], [("out", np.float32, None)],
              [("c", np.array(1.4142, np.float32)), ("h", np.array(0.5, np.float32))])
    comp = check(m, {"x": f32(8)}, {"pointwise": 1})
    body = comp.lowered.kernels[0].body
    assert sympy.count_ops(body) == 1 and body.is_Mul
    coeff = float(body.as_coeff_Mul()[0])
    assert abs(coeff - np.float32(0.5) / np.float32(1.4142)) < 1e-7


def test_softmax_with_scale_mask_and_nan_guard_is_one_row_kernel():
    nodes = [helper.make_node("Mul", ["x", "scale"], ["s"]), helper.make_node("Add", ["s", "mask"], ["a"]),
             helper.make_node("Softmax", ["a"], ["p"], axis=-1), helper.make_node("IsNaN", ["p"], ["n"]),
             helper.make_node("Where", ["n", "zero", "p"], ["out"])]
    m = model(nodes, [("x", np.float32, [2, 4, 13, 13]), ("mask", np.float32, [2, 1, 1, 13])],
              [("out", np.float32, None)], [("scale", np.array(0.125, np.float32)), ("zero", np.array(0, np.float32))])
    check(m, {"x": f32(2, 4, 13, 13), "mask": f32(2, 1, 1, 13)}, {"reduction": 1})


def test_residual_add_then_layernorm_is_one_row_kernel():
    nodes = [helper.make_node("Add", ["x", "r"], ["a"]),
             helper.make_node("LayerNormalization", ["a", "g", "b"], ["out"], axis=-1, epsilon=1e-5)]
    m = model(nodes, [("x", np.float32, [13, 17]), ("r", np.float32, [13, 17])], [("out", np.float32, None)],
              [("g", f32(17)), ("b", f32(17))])
    check(m, {"x": f32(13, 17), "r": f32(13, 17)}, {"reduction": 1})


def test_decomposed_layernorm_is_one_row_kernel():
    nodes = [helper.make_node("ReduceMean", ["x"], ["mu"], axes=[-1]), helper.make_node("Sub", ["x", "mu"], ["d"]),
             helper.make_node("Pow", ["d", "two"], ["sq"]), helper.make_node("ReduceMean", ["sq"], ["var"], axes=[-1]),
             helper.make_node("Add", ["var", "eps"], ["ve"]), helper.make_node("Sqrt", ["ve"], ["sd"]),
             helper.make_node("Div", ["d", "sd"], ["n"]), helper.make_node("Mul", ["n", "w"], ["sc"]),
             helper.make_node("Add", ["sc", "b"], ["out"])]
    m = model(nodes, [("x", np.float32, [2, 13, 32])], [("out", np.float32, None)],
              [("two", np.array(2, np.float32)), ("eps", np.array(1e-5, np.float32)), ("w", f32(32)), ("b", f32(32))],
              opset=13)
    check(m, {"x": f32(2, 13, 32)}, {"reduction": 1})


@pytest.mark.parametrize("act", ["gelu_erf", "gelu_tanh", "relu", "residual", "nonorm"])
def test_matmul_epilogues(act):
    """MatMul + bias + activation/residual/NoNorm is one contraction kernel."""
    x, w, b = f32(13, 24), f32(24, 17), f32(17)
    nodes = [helper.make_node("MatMul", ["x", "w"], ["mm"]), helper.make_node("Add", ["mm", "b"], ["h"])]
    inits = [("w", w), ("b", b)]
    inputs = [("x", np.float32, [13, 24])]
    feeds = {"x": x}
    if act == "gelu_erf":
        nodes += [helper.make_node("Div", ["h", "sqrt2"], ["d"]), helper.make_node("Erf", ["d"], ["e"]),
                  helper.make_node("Add", ["e", "one"], ["e1"]), helper.make_node("Mul", ["h", "e1"], ["m"]),
                  helper.make_node("Mul", ["m", "half"], ["out"])]
        inits += [("sqrt2", np.array(1.4142135, np.float32)), ("one", np.array(1, np.float32)),
                  ("half", np.array(0.5, np.float32))]
    elif act == "gelu_tanh":
        nodes += [helper.make_node("Gelu", ["h"], ["out"], approximate="tanh")]
    elif act == "relu":
        nodes += [helper.make_node("Relu", ["h"], ["out"])]
    elif act == "residual":
        nodes += [helper.make_node("Add", ["h", "res"], ["out"])]
        inputs.append(("res", np.float32, [13, 17]))
        feeds["res"] = f32(13, 17)
    else:  # MobileBERT's NoNorm: h * gamma + beta
        nodes += [helper.make_node("Mul", ["h", "gamma"], ["g"]), helper.make_node("Add", ["g", "beta"], ["out"])]
        inits += [("gamma", f32(17)), ("beta", f32(17))]
    m = model(nodes, inputs, [("out", np.float32, None)], inits, opset=20)
    check(m, feeds, {"contraction": 1})


@pytest.mark.parametrize("batched", [False, True])
def test_matmul_epilogue_on_many_blocks(tmp_path, batched):
    """A GEMM split into many blocks over 2 threads applies its epilogue (bias, GELU, residual) to
    each block inside the GEMM once it is final; a batched product applies it in a pass after."""
    x, w, b, r = f32(2, 150, 320), f32(320, 300), f32(300), f32(2, 150, 300)
    wname, inits = ("w", [("w", w), ("b", b)]) if not batched else ("wb", [("b", b)])
    nodes = [helper.make_node("MatMul", ["x", wname], ["mm"]), helper.make_node("Add", ["mm", "b"], ["h"]),
             helper.make_node("Gelu", ["h"], ["g"]), helper.make_node("Add", ["g", "r"], ["out"])]
    inputs = [("x", np.float32, [2, 150, 320]), ("r", np.float32, [2, 150, 300])]
    feeds = {"x": x, "r": r}
    if batched:  # a per-batch weight input: the product keeps its batch loop
        inputs.append(("wb", np.float32, [2, 320, 300]))
        feeds["wb"] = np.stack([w, -w])
    m = model(nodes, inputs, [("out", np.float32, None)], inits, opset=20)
    assert summarize(m)[0]["kernels_by_kind"] == {"contraction": 1}
    ours = polyfuse.compile(m, threads=2, output_dir=tmp_path / "art")
    assert ("pf_epilogue_of" in (tmp_path / "art" / "model.cpp").read_text()) != batched
    for a, e in zip(ours.run(None, feeds), run_ort(m, feeds)):
        np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-4)


def _attention_model(heads=4, seq=13, dh=8):
    """Q/K/V projections, head split (Reshape+Transpose), scaled masked softmax, head merge."""
    hid = heads * dh
    nodes, inits = [], []
    for n in "qkv":
        nodes += [helper.make_node("MatMul", ["x", f"w{n}"], [f"{n}0"]),
                  helper.make_node("Reshape", [f"{n}0", "split"], [f"{n}1"]),
                  helper.make_node("Transpose", [f"{n}1"], [f"{n}h"], perm=[0, 2, 1, 3])]
        inits.append((f"w{n}", f32(hid, hid)))
    nodes += [helper.make_node("Transpose", ["kh"], ["kt"], perm=[0, 1, 3, 2]),
              helper.make_node("MatMul", ["qh", "kt"], ["sc"]), helper.make_node("Mul", ["sc", "scale"], ["ss"]),
              helper.make_node("Add", ["ss", "mask"], ["sm"]), helper.make_node("Softmax", ["sm"], ["p"], axis=-1),
              helper.make_node("MatMul", ["p", "vh"], ["ctx"]),
              helper.make_node("Transpose", ["ctx"], ["ct"], perm=[0, 2, 1, 3]),
              helper.make_node("Reshape", ["ct", "merge"], ["out"])]
    inits += [("split", np.array([1, seq, heads, dh])), ("merge", np.array([1, seq, hid])),
              ("scale", np.array(dh ** -0.5, np.float32))]
    m = model(nodes, [("x", np.float32, [1, seq, hid]), ("mask", np.float32, [1, 1, 1, seq])],
              [("out", np.float32, None)], inits)
    return m, {"x": f32(1, seq, hid), "mask": np.where(RNG.random((1, 1, 1, seq)) < 0.3, -1e9, 0).astype(np.float32)}


def test_head_split_and_merge_are_strides_and_attention_is_one_kernel():
    """Q, K, V become one GEMM (horizontal fusion); the Split, head split, K^T and head merge are
    strides of the attention kernel; nothing is copied."""
    m, feeds = _attention_model()
    comp = check(m, feeds, {"attention": 1, "contraction": 1})
    assert comp.lowered.views  # the Reshapes stayed views; no pointwise copy kernel exists


@pytest.mark.parametrize("bias_shape", [(3,), (1, 4, 2, 3)])
def test_consumer_of_a_transposed_gemm_result_joins_its_epilogue(bias_shape):
    """A batched MatMul writes its result through the head-merge Transpose (output strides); the
    Add after it becomes the GEMM's epilogue, read at the element the strides reach (fuzz seed 7
    found this wrong when the GEMM had a bias: tests/regressions/gemm-transposed-output-epilogue)."""
    nodes = [helper.make_node("MatMul", ["a", "b"], ["g"]),
             helper.make_node("Transpose", ["g"], ["t"], perm=[0, 2, 1, 3]),
             helper.make_node("Add", ["t", "c"], ["y"])]
    m = model(nodes, [("a", np.float32, [1, 2, 4, 5]), ("b", np.float32, [1, 2, 5, 3]),
                      ("c", np.float32, list(bias_shape))], [("y", np.float32, None)])
    check(m, {"a": f32(1, 2, 4, 5), "b": f32(1, 2, 5, 3), "c": f32(*bias_shape)}, {"contraction": 1})


@pytest.mark.parametrize("seq", [70, 150])
def test_attention_in_query_row_blocks_matches_onnxruntime(seq):
    """Longer than one block of query rows (the host's attention_rows): the blocks (2 of 35 rows, 3 of 50)
    each compute their rows of the scores, softmax and context, over 2 threads."""
    from polyfuse.targets import HOST

    assert HOST.schedule["attention_rows"] < seq
    m, feeds = _attention_model(heads=2, seq=seq, dh=8)
    assert summarize(m)[0]["kernels_by_kind"] == {"attention": 1, "contraction": 1}
    ours = polyfuse.compile(m, threads=2)
    for a, b in zip(ours.run(None, feeds), run_ort(m, feeds)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def _random_graph(seed: int):
    """A random mix of elementwise, broadcast, reduction, transpose and matmul nodes over [4, 6, 8]."""
    rng = np.random.default_rng(seed)
    nodes, inits, vals = [], [], ["x"]
    for i in range(12):
        a = vals[rng.integers(len(vals))]
        out = f"v{i}"
        kind = rng.integers(7)
        if kind == 0:
            nodes.append(helper.make_node(rng.choice(["Add", "Mul", "Sub"]), [a, vals[rng.integers(len(vals))]], [out]))
        elif kind == 1:
            inits.append((f"c{i}", rng.standard_normal(8).astype(np.float32)))
            nodes.append(helper.make_node("Add", [a, f"c{i}"], [out]))
        elif kind == 2:
            nodes.append(helper.make_node(rng.choice(["Tanh", "Relu", "Sigmoid", "Erf"]), [a], [out]))
        elif kind == 3:
            nodes += [helper.make_node("ReduceMean", [a], [f"r{i}"], axes=[-1], keepdims=1),
                      helper.make_node("Sub", [a, f"r{i}"], [out])]
        elif kind == 4:
            nodes.append(helper.make_node("Softmax", [a], [out], axis=int(rng.integers(-1, 1)) * 2 - 1 + 0))
        elif kind == 5:
            nodes += [helper.make_node("Transpose", [a], [f"t{i}"], perm=[0, 2, 1]),
                      helper.make_node("Transpose", [f"t{i}"], [out], perm=[0, 2, 1])]
        else:
            inits.append((f"w{i}", (rng.standard_normal((8, 8)) / 3).astype(np.float32)))
            nodes.append(helper.make_node("MatMul", [a, f"w{i}"], [out]))
        vals.append(out)
    nodes.append(helper.make_node("Add", [vals[-1], vals[-2]], ["out"]))
    return model(nodes, [("x", np.float32, [4, 6, 8])], [("out", np.float32, None)], inits, opset=13)


@pytest.mark.parametrize("seed", range(8))
def test_random_graphs_agree_fused_and_unfused(seed):
    m = _random_graph(seed)
    x = RNG.standard_normal((4, 6, 8)).astype(np.float32)
    fused = polyfuse.compile(m)
    unfused = polyfuse.compile(m, fusion=False)
    assert fused.manifest["stats"]["kernels"] <= unfused.manifest["stats"]["kernels"]
    a, b, ref = fused.run(None, {"x": x})[0], unfused.run(None, {"x": x})[0], run_ort(m, {"x": x})[0]
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(a, ref, rtol=1e-5, atol=1e-5)


def test_two_readers_of_one_value_fuse_into_one_epilogue():
    """Relu(h) + Tanh(h): both consumers are inlined into the Add, which becomes h's only reader."""
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Relu", ["h"], ["a"]),
             helper.make_node("Tanh", ["h"], ["b"]), helper.make_node("Add", ["a", "b"], ["out"])]
    m = model(nodes, [("x", np.float32, [4, 8])], [("out", np.float32, None)], [("w", f32(8, 8))])
    check(m, {"x": f32(4, 8)}, {"contraction": 1})


def test_refusals_have_reasons():
    """A GEMM result read by another GEMM and by an elementwise op stays in memory, and inspect says why."""
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("MatMul", ["h", "w"], ["g"]),
             helper.make_node("Relu", ["h"], ["a"]), helper.make_node("Add", ["a", "g"], ["out"])]
    m = model(nodes, [("x", np.float32, [4, 8])], [("out", np.float32, None)], [("w", f32(8, 8))])
    s, comp, report = summarize(m)
    assert s["kernels_by_kind"] == {"contraction": 2}
    assert any("2 kernels read its result" in r.reason for r in report.refusals)
    assert s["intermediate_bytes_fused"] < s["intermediate_bytes_unfused"]


def test_feed_forward_with_small_weights_is_one_gemm_chain():
    """up (+bias, ReLU) -> down (+bias, residual): one kernel; the 13x64 intermediate stays in a tile."""
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["u"]), helper.make_node("Add", ["u", "b1"], ["ub"]),
             helper.make_node("Relu", ["ub"], ["h"]), helper.make_node("MatMul", ["h", "w2"], ["d"]),
             helper.make_node("Add", ["d", "b2"], ["db"]), helper.make_node("Add", ["db", "x"], ["out"])]
    m = model(nodes, [("x", np.float32, [1, 13, 16])], [("out", np.float32, None)],
              [("w1", f32(16, 64)), ("b1", f32(64)), ("w2", f32(64, 16)), ("b2", f32(16))])
    s, _, _ = summarize(m)
    assert s["intermediate_bytes_fused"] == 0
    check(m, {"x": f32(1, 13, 16)}, {"gemmchain": 1})


def test_gemm_chain_refused_when_second_weights_are_large():
    from polyfuse.targets import HOST

    k = int(HOST.schedule["chain_max_second_weights"] // (4 * 16)) + 64  # W2 of k x 16 floats: just over the limit
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"]), helper.make_node("MatMul", ["h", "w2"], ["out"])]
    m = model(nodes, [("x", np.float32, [4, 8])], [("out", np.float32, None)],
              [("w1", f32(8, k) / 8), ("w2", f32(k, 16) / 64)])
    s, _, report = summarize(m)
    assert s["kernels_by_kind"] == {"contraction": 2}
    assert any("re-read for every block of rows" in r.reason for r in report.refusals)


@pytest.mark.parametrize("op, inputs, attrs, expected", [
    ("Add", [[4, 5], [4, 5]], {}, "ONE_TO_ONE"),
    ("Add", [[4, 5], [5]], {}, "ONE_TO_MANY"),
    ("Transpose", [[4, 5]], {"perm": [1, 0]}, "SHUFFLE"),
    ("Softmax", [[4, 5]], {"axis": -1}, "MANY_TO_MANY"),
    ("MatMul", [[4, 5], [5, 3]], {}, "MANY_TO_MANY"),
])
def test_mapping_type_is_derived_from_the_form(op, inputs, attrs, expected):
    from polyfuse.fusion.classify import Mapping, mapping_type
    from polyfuse.kernel import lower_graph
    from polyfuse.pipeline import frontend

    names = [f"x{i}" for i in range(len(inputs))]
    m = model([helper.make_node(op, names, ["y"], **attrs)], [(n, np.float32, s) for n, s in zip(names, inputs)],
              [("y", np.float32, None)])
    (k,) = lower_graph(frontend(m).graph).kernels
    assert mapping_type(k) is Mapping[expected]


def test_slice_and_gather_are_reorganize():
    from polyfuse.fusion.classify import Mapping, mapping_type
    from polyfuse.kernel import lower_graph
    from polyfuse.pipeline import frontend

    nodes = [helper.make_node("Slice", ["x", "st", "en"], ["s"]), helper.make_node("Gather", ["x", "ids"], ["g"])]
    m = model(nodes, [("x", np.float32, [6, 5]), ("ids", np.int64, [3])], [("s", np.float32, None),
              ("g", np.float32, None)], [("st", np.array([1])), ("en", np.array([4]))])
    ks = lower_graph(frontend(m).graph).kernels
    assert [mapping_type(k) for k in ks] == [Mapping.REORGANIZE, Mapping.REORGANIZE]


def test_inspect_counts_unfused_and_fused_from_one_import():
    """Parallel MatMuls are fused at graph level; the unfused figures still describe the original graph."""
    nodes = [n for i in range(3) for n in (helper.make_node("MatMul", ["x", f"w{i}"], [f"m{i}"]),
                                           helper.make_node("Add", [f"m{i}", f"b{i}"], [f"y{i}"]))]
    m = model(nodes, [("x", np.float32, [4, 8])], [(f"y{i}", np.float32, None) for i in range(3)],
              [(f"w{i}", f32(8, 8)) for i in range(3)] + [(f"b{i}", f32(8)) for i in range(3)])
    s, _, _ = summarize(m)  # the per-branch MatMul results exist only in the unfused graph
    assert s["kernels_unfused"] == 6 and s["intermediate_bytes_unfused"] == 3 * 4 * 8 * 4
    assert s["kernels"] == 4 and s["kernels_by_kind"] == {"contraction": 1, "pointwise": 3}
