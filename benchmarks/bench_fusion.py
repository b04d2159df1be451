"""Fused vs unfused (``fusion=False``) in one process, alternating: kernel counts, bytes, latency.

    python3 benchmarks/bench_fusion.py                          # MobileBERT, BERT-base, DistilBERT
    python3 benchmarks/bench_fusion.py --arch mobilebert --repeat 30

transformers' default configs (random weights, seed 0), TorchScript export, opset 17, batch 1,
sequence 128, same thread count for both. Prints kernels and intermediate bytes of each build,
both medians, the speedup (unfused / fused), and the largest difference between the two
builds' outputs and onnxruntime's. Results also go to benchmarks/results/bench_fusion.json.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

import polyfuse
from polyfuse.bench import ort_session, time_alternating
from polyfuse.inspect import summarize
from polyfuse.testing.transformers_export import example_inputs, export_onnx


def run(arch: str, workdir: Path, threads: int, repeat: int, seq: int) -> dict:
    path = workdir / f"{arch}.onnx"
    export_onnx(arch, "default", path, exporter="torchscript", opset=17, seq=seq)
    feeds = example_inputs(arch, "default", 1, seq)
    shapes = {k: v.shape for k, v in feeds.items()}
    s, _, _ = summarize(path, shapes)
    fused = polyfuse.compile(path, shapes=shapes, threads=threads)
    unfused = polyfuse.compile(path, shapes=shapes, threads=threads, fusion=False)
    ref = ort_session(path, threads).run(None, feeds)
    err = {name: max(float(np.max(np.abs(a - b))) for a, b in zip(m.run(None, feeds), ref))
           for name, m in (("fused", fused), ("unfused", unfused))}
    times = time_alternating({"fused": lambda: fused.run(None, feeds), "unfused": lambda: unfused.run(None, feeds)},
                             repeat)
    med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    path.unlink()
    return {"arch": arch, "seq": seq, "threads": threads, "kernels_fused": s["kernels"],
            "kernels_unfused": s["kernels_unfused"], "intermediate_bytes_fused": s["intermediate_bytes_fused"],
            "intermediate_bytes_unfused": s["intermediate_bytes_unfused"], "fused_ms": round(med["fused"], 2),
            "unfused_ms": round(med["unfused"], 2), "speedup": round(med["unfused"] / med["fused"], 2),
            "max_abs_error_vs_onnxruntime": err}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", nargs="*", default=["mobilebert", "bert", "distilbert"])
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--repeat", type=int, default=20)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--json", default=str(Path(__file__).parent / "results" / "bench_fusion.json"))
    a = p.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for arch in a.arch:
            r = run(arch, Path(d), a.threads, a.repeat, a.seq)
            rows.append(r)
            print(f"{arch:10s} kernels {r['kernels_unfused']:5d} -> {r['kernels_fused']:4d} | intermediate "
                  f"{r['intermediate_bytes_unfused'] / 2**20:7.1f} -> {r['intermediate_bytes_fused'] / 2**20:6.1f} MiB "
                  f"({r['intermediate_bytes_unfused'] / r['intermediate_bytes_fused']:.1f}x) | unfused "
                  f"{r['unfused_ms']:8.2f} ms, fused {r['fused_ms']:8.2f} ms, speedup {r['speedup']:.2f}x | max abs err "
                  f"vs onnxruntime {max(r['max_abs_error_vs_onnxruntime'].values()):.1e}", flush=True)
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    Path(a.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
