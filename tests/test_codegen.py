"""Printer and generated-source tests: expressions print as intended C++, kernels dedupe,
and nothing taken from a model can inject code."""
from __future__ import annotations

import numpy as np
import sympy
from onnx import helper

import polyfuse
from helpers import model, run_ort
from polyfuse.codegen.view import safe_comment
from polyfuse.codegen.printer import CPrinter, float_literal
from polyfuse.forms import functions as F

x, y = sympy.symbols("x y")


def test_printer_golden():
    p = CPrinter()
    assert p(x + y) == "(x + y)"
    assert p(x - 3 * y) == "(x - (3 * y))"
    assert p(x / y) == "(x / y)"
    assert p(x ** 2) == "(x * x)"
    assert p(sympy.sqrt(x)) == "std::sqrt(x)"
    assert p(1 / sympy.sqrt(x)) == "(1.0f / std::sqrt(x))"
    assert p(F.Exp(x - y)) == "pf_exp((x - y))"  # vectorisable exp from kernels/pf_runtime.h
    assert p(F.Sqrt(x) ** -1) == "(1.0f / std::sqrt(x))"
    assert p(F.Pow(x, sympy.Float(0.5))) == "pf_pow(x, 0.5f)"
    assert p(x * F.special(0.0) + F.special(-0.0)) in ("((x * 0.0f) + (-0.0f))", "((-0.0f) + (x * 0.0f))")
    assert p(F.special(float("-inf"))) == "(-INFINITY)" and p(F.special(float("nan"))) == "NAN"
    assert p(F.Select(F.Less(x, 2), x, -y)) == "((x < 2) ? x : (-y))"
    assert p(F.cast(x, np.int64)) == "static_cast<int64_t>(x)"
    assert p(F.cast(x, np.bool_)) == "(x != 0)"
    assert p(sympy.Float(0.5) * x) == "(0.5f * x)"
    assert p(sympy.Rational(1, 2) * x) == "(0.5f * x)"


def test_float_literals_round_trip_float32():
    for v in [0.1, -3.4028234663852886e38, 1e-12, 1.0, 2.5e-45]:
        text = float_literal(v).strip("()").rstrip("f")
        assert np.float32(float(text)) == np.float32(v)
    assert float_literal(float("inf")) == "INFINITY"
    assert float_literal(-1e39) == "(-INFINITY)"
    assert float_literal(float("nan")) == "NAN"


def test_safe_comment_neutralises_comment_breakers():
    for evil in ["a*/ int x; /*", "line\nbreak", "back\\", "q\"uote", "#include <x>"]:
        s = safe_comment(evil)
        assert "*/" not in s and "\n" not in s and "\\" not in s and '"' not in s and "#" not in s


def test_hostile_names_do_not_reach_code(tmp_path):
    evil_in = 'x */ system("rm -rf /"); /*'
    evil_node = "n\n#include </etc/passwd>\n"
    evil_out = "y\\\n*/"
    m = model([helper.make_node("Relu", [evil_in], [evil_out], name=evil_node)],
              [(evil_in, np.float32, [4])], [(evil_out, np.float32, [4])], name='g*/"evil"')
    cm = polyfuse.compile(m, output_dir=tmp_path / "art")
    src = (tmp_path / "art" / "model.cpp").read_text()
    for bad in ["system(", "#include </etc", "*/\"", '"evil"']:
        assert bad not in src
    a = np.array([-1, 2, -3, 4], np.float32)
    np.testing.assert_array_equal(cm.run(None, {evil_in: a})[0], run_ort(m, {evil_in: a})[0])


def test_identical_layers_share_one_kernel_function(tmp_path):
    """Unfused, two identical Add+Relu chains are 4 launches of 2 functions; fused, one kernel."""
    nodes = [helper.make_node("Add", ["x", "b"], ["h1"]), helper.make_node("Relu", ["h1"], ["r1"]),
             helper.make_node("Add", ["r1", "b"], ["h2"]), helper.make_node("Relu", ["h2"], ["y"])]
    m = model(nodes, [("x", np.float32, [8, 16])], [("y", np.float32, None)], [("b", np.ones(16, np.float32))])
    cm = polyfuse.compile(m, output_dir=tmp_path / "art", fusion=False)
    assert cm.manifest["stats"]["kernels"] == 4
    assert cm.manifest["stats"]["distinct_kernels"] == 2
    fused = polyfuse.compile(m)
    assert fused.manifest["stats"]["kernels"] == 1
    xv = np.random.default_rng(0).standard_normal((8, 16)).astype(np.float32)
    for c in (cm, fused):
        np.testing.assert_allclose(c.run(None, {"x": xv})[0], run_ort(m, {"x": xv})[0], rtol=1e-6, atol=1e-6)


def test_identical_gemm_layers_share_one_function():
    """Two MatMul+bias+ReLU layers of the same shape (different weights; the first's result is a model
    output, so they are not chained): 2 launches, 1 function."""
    rng = np.random.default_rng(1)
    nodes = []
    for i in (1, 2):
        src = "x" if i == 1 else "r1"
        nodes += [helper.make_node("MatMul", [src, f"w{i}"], [f"m{i}"]), helper.make_node("Add", [f"m{i}", f"b{i}"], [f"a{i}"]),
                  helper.make_node("Relu", [f"a{i}"], [f"r{i}"])]
    inits = [(f"{n}{i}", rng.standard_normal((16, 16) if n == "w" else (16,)).astype(np.float32))
             for i in (1, 2) for n in ("w", "b")]
    m = model(nodes, [("x", np.float32, [8, 16])], [("r1", np.float32, None), ("r2", np.float32, None)], inits)
    cm = polyfuse.compile(m)
    assert cm.manifest["stats"]["kernels"] == 2
    assert cm.manifest["stats"]["distinct_kernels"] == 1
    xv = rng.standard_normal((8, 16)).astype(np.float32)
    for ours, ref in zip(cm.run(None, {"x": xv}), run_ort(m, {"x": xv})):
        np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-5)


def _embedding_model(pad_shift: bool):
    """Rows of a 50 x 16 table gathered by 12 ids. With ``pad_shift``, y = rows + the rows shifted
    down by one (a Pad + Slice, so row 0 of the shifted part is zero: a Select in the kernel);
    else y = LayerNorm(rows + pos)."""
    rng = np.random.default_rng(3)
    inits = [("table", rng.standard_normal((50, 16)).astype(np.float32))]
    nodes = [helper.make_node("Gather", ["table", "ids"], ["e"])]
    if pad_shift:
        nodes += [helper.make_node("Pad", ["e", "pads"], ["p"]), helper.make_node("Slice", ["p", "st", "en", "ax"], ["s"]),
                  helper.make_node("Add", ["s", "e"], ["y"])]
        inits += [("pads", np.array([0, 1, 0, 0, 0, 0], np.int64)), ("st", np.array([0], np.int64)),
                  ("en", np.array([12], np.int64)), ("ax", np.array([1], np.int64))]
    else:
        nodes += [helper.make_node("Add", ["e", "pos"], ["h"]),
                  helper.make_node("LayerNormalization", ["h", "g", "b"], ["y"], axis=-1, epsilon=1e-5)]
        inits += [("pos", rng.standard_normal((12, 16)).astype(np.float32)),
                  ("g", rng.standard_normal(16).astype(np.float32)), ("b", rng.standard_normal(16).astype(np.float32))]
    m = model(nodes, [("ids", np.int64, [1, 12])], [("y", np.float32, None)], inits)
    ids = np.array([[0, 49, -1, -50, 7, 7, 3, 20, 31, 12, 5, 48]], np.int64)  # negative ids count from the end
    return m, {"ids": ids}


def test_gathered_rows_are_read_contiguously(tmp_path):
    """A gathered row's start is computed once per row (``const int64_t gN``) before the loops over
    the row, which then read it contiguously: left inline, GCC vectorises the row with gathers."""
    m, feeds = _embedding_model(pad_shift=False)
    cm = polyfuse.compile(m, output_dir=tmp_path / "art")
    np.testing.assert_allclose(cm.run(None, feeds)[0], run_ort(m, feeds)[0], rtol=1e-5, atol=1e-5)
    src = (tmp_path / "art" / "model.cpp").read_text()
    steps = [ln for ln in src.splitlines() if "r0 +=" in ln or "r1 +=" in ln]
    assert len(steps) == 2 and not any("pf_wrap_index" in ln for ln in steps), steps
    assert any(ln.strip().startswith("const int64_t g0 = ") and "pf_wrap_index" in ln for ln in src.splitlines())


def test_gathered_rows_under_a_select_are_not_hoisted(tmp_path):
    """Only a load the kernel reads unconditionally has its index hoisted: the shifted rows sit in a
    Select's branch. (That branch's load is clamped into range, so the Select prints as
    pf_select, a blend: no load is conditional, see kernel/bounds.py.)"""
    m, feeds = _embedding_model(pad_shift=True)
    cm = polyfuse.compile(m, output_dir=tmp_path / "art")
    np.testing.assert_allclose(cm.run(None, feeds)[0], run_ort(m, feeds)[0], rtol=1e-6, atol=1e-6)
    src = (tmp_path / "art" / "model.cpp").read_text()
    hoisted = [ln for ln in src.splitlines() if ln.strip().startswith("const int64_t g")]
    store = next(ln for ln in src.splitlines() if ln.strip().startswith("p0["))
    assert len(hoisted) == 1 and "- 1" not in hoisted[0], hoisted
    assert "pf_select(" in store and "pf_wrap_index" in store.split("pf_select(", 1)[1], store


def test_only_a_plain_scale_of_the_scores_moves_into_the_gemm_alpha():
    """Attention's 1/sqrt(d) goes into the scores GEMM's alpha (the same float product); anything
    else stays an epilogue. alpha 0 would leave A and B unread (0 * inf is NaN): never folded."""
    from polyfuse.codegen.kernels import _fold_scale
    from polyfuse.kernel.ir import ACC

    assert _fold_scale(1.0, 0.125 * ACC) == (0.125, ACC)
    assert _fold_scale(1.0, -2 * ACC) == (-2.0, ACC)
    for alpha, epilogue in ((1.0, ACC), (2.0, 0.125 * ACC), (1.0, 0.125 * ACC + 1), (1.0, sympy.oo * ACC),
                            (1.0, sympy.Integer(0) * ACC), (1.0, F.Exp(ACC))):
        assert _fold_scale(alpha, epilogue) == (alpha, epilogue)
