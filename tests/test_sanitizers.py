"""The suite's generated kernels built once with -fsanitize=address,undefined (issue 17, class C).

Every op-parity case (one merged model per opset), a batch of 40 random fused graphs and the
regression graphs are generated as model.cpp, linked with the runtime and tests/sanitize/driver.cpp
into a sanitized executable, and run (with 2 threads, so the pool's paths run too). Any
out-of-bounds access or undefined behaviour aborts the run (-fno-sanitize-recover=all). Its outputs
must equal those of the normal -O3 library to the fuzzer oracle's tolerance (same NaN and inf
positions, rtol 1e-4 + atol 1e-5): the sanitized build computes the same thing."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import onnx
import pytest

import polyfuse
from polyfuse import __version__
from polyfuse.build.artifact import write_weights
from polyfuse.build.compiler import cxx
from polyfuse.build.memory import plan_memory
from polyfuse.codegen.model import generate
from polyfuse.targets import HOST
from polyfuse.pipeline import frontend, kernels
from polyfuse.resources import kernels_dir
from polyfuse.testing.gen import merge, random_graph
from polyfuse.testing.gen.core import Graph
from polyfuse.testing.oracle import compare

sys.path.insert(0, os.path.dirname(__file__))
import opcases  # noqa: E402
from test_op_parity import _BY_OPSET, _case_feeds, _merged_model  # noqa: E402

HERE = Path(__file__).parent
FLAGS = ["-O1", "-g", "-std=c++17", "-march=native", "-fopenmp-simd", "-fno-math-errno", "-fno-trapping-math", "-ffp-contract=off",
         "-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer", "-pthread"]
pytestmark = pytest.mark.skipif(shutil.which(cxx()) is None, reason="no C++ compiler")


def _models() -> dict[str, Graph]:
    out = {}
    for opset, cases in _BY_OPSET.items():
        feeds = {k: v for n, c in enumerate(cases) for k, v in _case_feeds(c, n).items()}
        out[f"ops{opset}"] = Graph(_merged_model(cases), feeds)
    out["fuzz"] = merge({f"g{i}": random_graph(91_000_000 + i, 17) for i in range(40)})
    regressions = defaultdict(dict)
    for i, d in enumerate(sorted((HERE / "regressions").iterdir())):
        with np.load(d / "feeds.npz") as f:
            g = Graph(onnx.load(d / "model.onnx"), {k: f[k] for k in f.files})
        regressions[g.model.opset_import[0].version][f"r{i}"] = g
    for opset, gs in regressions.items():
        out[f"regressions{opset}"] = merge(gs)
    return out


@pytest.fixture(scope="module")
def runtime_objects(tmp_path_factory) -> list[Path]:
    """The hand-written runtime (pf_gemm, pf_pool) compiled once with the sanitizers."""
    d = tmp_path_factory.mktemp("sanitized_runtime")
    objs = []
    for src in HOST.runtime_sources:
        obj = d / (Path(src).stem + ".o")
        r = subprocess.run([cxx(), *FLAGS, "-I", str(kernels_dir()), "-c", str(kernels_dir() / src), "-o", str(obj)],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr[-3000:]
        objs.append(obj)
    return objs


MODELS = _models()


@pytest.mark.parametrize("name", list(MODELS))
def test_generated_kernels_under_sanitizers(name, runtime_objects, tmp_path):
    g = MODELS[name]
    comp = kernels(frontend(g.model), fusion=True)
    comp.plan = plan_memory(comp.lowered)
    (tmp_path / "model.cpp").write_text(generate(comp.lowered, comp.plan, version=__version__, target=HOST).text)
    write_weights(tmp_path / "weights.bin", comp.graph, comp.plan)
    exe = tmp_path / "model_asan"
    r = subprocess.run([cxx(), *FLAGS, "-I", str(kernels_dir()), str(tmp_path / "model.cpp"), str(HERE / "sanitize" / "driver.cpp"),
                        *map(str, runtime_objects), "-o", str(exe)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    ins, outs = [], []
    for vi in g.model.graph.input:
        if vi.name in g.feeds:
            ins.append(tmp_path / f"in{len(ins)}.bin")
            ins[-1].write_bytes(np.ascontiguousarray(g.feeds[vi.name]).tobytes())
    outs = [tmp_path / f"out{j}.bin" for j in range(len(g.model.graph.output))]
    run = subprocess.run([str(exe), str(tmp_path / "weights.bin"), "2", *map(str, ins), "--", *map(str, outs)],
                         capture_output=True, text=True, timeout=600, env={**os.environ, "ASAN_OPTIONS": "detect_leaks=1"})
    assert run.returncode == 0, run.stderr[-4000:]
    want = polyfuse.compile(g.model, threads=2).run(None, g.feeds)
    for vi, w, path in zip(g.model.graph.output, want, outs):
        got = np.frombuffer(path.read_bytes(), dtype=w.dtype).reshape(w.shape)
        bad = compare(vi.name, got, w, None)
        assert bad is None, str(bad)
