"""Every bug the fuzzer (or a user) found keeps its minimized graph here, under tests/regressions/<name>/
(model.onnx, feeds.npz, report.txt saying what was wrong). Each is compiled fused and unfused and
checked by the fuzzer's oracle (polyfuse.testing.oracle): same NaN/inf positions as onnxruntime,
floats within rtol 1e-4 + atol 1e-5 of it, or no more than 4x its distance from a float64 evaluation."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import onnx
import pytest

from polyfuse.testing.fuzz import check
from polyfuse.testing.gen.core import Graph

CASES = sorted(p for p in (Path(__file__).parent / "regressions").iterdir() if (p / "model.onnx").is_file())


def _load(d: Path) -> Graph:
    with np.load(d / "feeds.npz") as f:
        return Graph(onnx.load(d / "model.onnx"), {k: f[k] for k in f.files})


@pytest.fixture(scope="module")
def outcomes():
    """case name -> (fused, unfused) outcome; the cases of one opset are compiled as one model."""
    by_opset = defaultdict(dict)
    for i, d in enumerate(CASES):
        g = _load(d)
        by_opset[g.model.opset_import[0].version][f"r{i}"] = (d.name, g)
    out = {}
    for cases in by_opset.values():
        res = check({k: g for k, (_, g) in cases.items()})
        out.update({name: res[k] for k, (name, _) in cases.items()})
    return out


def test_cases_exist():
    assert len(CASES) >= 8


@pytest.mark.parametrize("case", [d.name for d in CASES])
def test_regression(case, outcomes):
    fused, unfused = outcomes[case]
    assert fused.kind == "ok", f"fused: {fused.kind}: {fused.detail}"
    assert unfused.kind == "ok", f"unfused: {unfused.kind}: {unfused.detail}"
