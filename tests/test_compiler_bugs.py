"""Compiler bugs polyfuse works around (tests/compiler_bugs/README.md).

The reproducer is built with the host compiler: at -O2 it must be right (it has no undefined
behaviour); at -O3 with AVX2 it is either right (a fixed compiler) or wrong exactly as documented
for gcc 12.2. Either way polyfuse's own code for the same graph must match onnxruntime, and
must not put a load inside a ?: (the pattern gcc 12.2 miscompiles)."""
from __future__ import annotations

import platform
import re
import subprocess

import numpy as np
import pytest
from onnx import helper, numpy_helper, TensorProto

import polyfuse
from polyfuse.build.compiler import cxx
from polyfuse.resources import kernels_dir
from polyfuse.testing.oracle import run_ort
from polyfuse.testing.gen.core import Graph
from polyfuse.testing.fuzz import check

HERE = __import__("pathlib").Path(__file__).parent / "compiler_bugs"


def _build_and_run(tmp_path, flags, source="gcc12_select_of_loads.cpp") -> str:
    exe = tmp_path / "repro"
    subprocess.run([cxx(), *flags, str(HERE / source), "-o", str(exe)], check=True, capture_output=True)
    r = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60)
    return r.stdout.strip().splitlines()[-1]


@pytest.mark.skipif(platform.machine() != "x86_64", reason="the reproducer needs x86-64 AVX2")
def test_reproducer_is_right_at_O2_and_right_or_the_documented_miscompile_at_O3(tmp_path):
    assert _build_and_run(tmp_path, ["-O2", "-march=x86-64-v3"]) == "0 wrong"
    assert _build_and_run(tmp_path, ["-O3", "-march=x86-64-v3"]) in ("0 wrong", "18 wrong")


def test_polyfuse_concat_reads_no_load_under_a_condition(tmp_path):
    """The graph the reproducer came from: Concat of [33,3], [33,3], [7,3] along rows, then Sigmoid."""
    rng = np.random.default_rng(0)
    c = np.round(rng.uniform(-3, 3, (7, 3)) * 4).astype(np.float32) / 4
    g = helper.make_graph([helper.make_node("Concat", ["x", "x", "c"], ["y"], axis=0), helper.make_node("Sigmoid", ["y"], ["z"])],
                          "concat", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [33, 3])],
                          [helper.make_tensor_value_info("z", TensorProto.FLOAT, [73, 3])], [numpy_helper.from_array(c, "c")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
    x = np.round(rng.uniform(-3, 3, (33, 3)) * 4).astype(np.float32) / 4
    for threads in (1, 2):
        cm = polyfuse.compile(m, threads=threads, output_dir=tmp_path / f"t{threads}")
        np.testing.assert_allclose(cm.run(None, {"x": x})[0], run_ort(m, {"x": x})[0], rtol=1e-6, atol=1e-7)
    src = (tmp_path / "t1" / "model.cpp").read_text()
    stores = [ln for ln in src.splitlines() if ln.strip().startswith("p0[")]
    assert len(stores) == 3, stores  # one loop nest per Concat piece
    assert not any(re.search(r"\?[^:]*p\d\[", ln) for ln in stores), stores


def _avx512bw() -> bool:
    try:
        return "avx512bw" in open("/proc/cpuinfo").read().split()
    except OSError:
        return False


@pytest.mark.skipif(platform.machine() != "x86_64" or not _avx512bw(), reason="the reproducer needs an AVX-512BW host")
def test_and_reproducer_is_right_at_O2_and_right_or_the_documented_miscompile_at_O3(tmp_path):
    flags = ["-mavx512f", "-mavx512bw"]
    assert _build_and_run(tmp_path, ["-O2", *flags], "gcc12_and_of_loads.cpp") == "0 wrong"
    assert _build_and_run(tmp_path, ["-O3", *flags], "gcc12_and_of_loads.cpp") in ("0 wrong", "64 wrong")


def test_polyfuse_and_or_read_both_operands_unconditionally(tmp_path):
    """The graph the And reproducer came from (bool[65, 7, 1] inputs), with an Or beside it. The
    short-circuit && and || put the second operand's load under a condition: on an AVX-512BW host
    gcc 12.2 gave True && True = False for 15 of 18 such elements. Checked against onnxruntime
    (exact: booleans), fused and unfused, and in the source: no && or || beside a load."""
    shape = [65, 7, 1]
    vi = [helper.make_tensor_value_info(n, TensorProto.BOOL, shape) for n in "abc"]
    g = helper.make_graph([helper.make_node("And", ["a", "b"], ["y"]), helper.make_node("Or", ["a", "c"], ["z"])],
                          "and_or", vi, [helper.make_tensor_value_info(n, TensorProto.BOOL, shape) for n in "yz"])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)], ir_version=10)
    rng = np.random.default_rng(771)
    feeds = {"a": rng.random(shape) < 0.05, "b": rng.random(shape) < 0.5, "c": rng.random(shape) < 0.1}
    fused, unfused = check({"andor": Graph(m, feeds)})["andor"]
    assert fused.kind == "ok", fused.detail
    assert unfused.kind == "ok", unfused.detail
    polyfuse.compile(m, output_dir=tmp_path / "art")
    loads = [ln for ln in (tmp_path / "art" / "model.cpp").read_text().splitlines() if re.search(r"p\d\[", ln)]
    assert loads and not any("&&" in ln or "||" in ln for ln in loads), loads


@pytest.mark.skipif(platform.machine() != "x86_64", reason="the reproducer needs x86-64 AVX")
def test_sunk_load_reproducer_and_pf_select(tmp_path):
    """gcc12_select_sunk_load.cpp: `c ? a : b` with `a` a load computed before the select is
    still vectorised as a masked load (4 of 21 wrong with gcc 12.2); polyfuse's pf_select, a
    bitwise blend, must be right under the same flags (built with -DUSE_PF_SELECT)."""
    flags = ["-O3", "-march=x86-64-v3", "-fno-trapping-math", "-std=c++17"]
    src = "gcc12_select_sunk_load.cpp"
    assert _build_and_run(tmp_path, ["-O2", *flags[1:]], src) == "0 wrong"
    assert _build_and_run(tmp_path, flags, src) in ("0 wrong", "4 wrong")
    kernels = str(kernels_dir())
    for isa in ("-march=x86-64-v3", "-mavx", "-march=native"):
        assert _build_and_run(tmp_path, ["-O3", isa, *flags[2:], "-DUSE_PF_SELECT", "-I", kernels], src) == "0 wrong", isa
