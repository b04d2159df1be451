"""benchmarks/peers/run_engine.py's protocol, as bench_peers.py drives it, with polyfuse as the
engine (the peers themselves live in their own environment, not the test suite's)."""
import sys
from pathlib import Path

import numpy as np

import polyfuse
from polyfuse.bench import sample_inputs

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_peers  # noqa: E402

TINY = Path(__file__).resolve().parents[1] / "examples" / "tiny_bert.onnx"


def test_an_engine_times_blocks_on_demand_and_saves_its_outputs(tmp_path):
    import onnxruntime as ort

    m = polyfuse.compile(str(TINY), output_dir=tmp_path / "art")
    feeds = sample_inputs(m.inputs)
    np.savez(tmp_path / "feeds.npz", **feeds)
    server = bench_peers._Server("polyfuse", tmp_path / "art", tmp_path / "feeds.npz", 1, tmp_path)
    try:
        assert server.warm_ms > 0
        times = server.run(3)
        assert len(times) == 3 and all(t > 0 for t in times)
        assert len(server.run(1)) == 1
        assert len(server.run(2, warmup=2)) == 2  # untimed runs first: only the timed ones come back
        outs = server.outputs(tmp_path / "out.npz")
    finally:
        server.close()
    assert server.p.returncode == 0
    want = ort.InferenceSession(str(TINY), providers=["CPUExecutionProvider"]).run(None, feeds)
    assert len(outs) == len(want)
    for got, ref in zip(outs, want):
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)  # the tests' tolerance for tiny BERT


def test_spread_of_ratios():
    s = bench_peers._spread([1.0, 2.0, 3.0, 4.0, 5.0])
    assert s["median"] == 3.0 and s["range"] == [1.0, 5.0] and s["iqr"][0] < 3.0 < s["iqr"][1]
    assert bench_peers._spread([1.5]) == {"median": 1.5, "range": [1.5, 1.5], "iqr": [1.5, 1.5]}


def test_peak_probe_measures_the_peak_now():
    """The per-cycle peak: peak_flops.cpp at the asked thread count, a positive GFLOP/s figure;
    a thread count it did not run gives None, not another count's figure."""
    import bench_gemm

    probe = bench_gemm.peak_probe(1, seconds=0.02)
    first, second = probe(), probe()
    assert first is not None and second is not None and first > 0.5 and second > 0.5  # any CPU of this decade
    assert bench_gemm.peak_probe(0, seconds=0.02)() is None  # peak_flops runs 1 thread for 0; no "threads=0" line
