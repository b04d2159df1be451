"""benchmarks/bench_vs_ort.py's chart: a PNG of the models that ran, none when none did."""
import sys
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_vs_ort  # noqa: E402


def _row(arch, pf_ms, ort_ms, ok=True):
    return {"arch": arch, "seq": 128, "ok": ok, "speedup": ort_ms / pf_ms,
            "polyfuse": {"median_ms": pf_ms}, "onnxruntime": {"median_ms": ort_ms}}


def test_chart_written(tmp_path):
    out = tmp_path / "chart.png"
    rows = [_row("tiny-bert", 2.0, 4.0), _row("bert", 180.0, 215.0), _row("broken", 1.0, 1.0, ok=False)]
    assert bench_vs_ort.plot(rows, out, 2)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_no_chart_without_results(tmp_path):
    out = tmp_path / "chart.png"
    assert not bench_vs_ort.plot([_row("broken", 1.0, 1.0, ok=False)], out, 2)
    assert not out.exists()
