"""android-gpu on this machine's OpenCL device: device time per kernel, against onnxruntime on the CPU.

    python3 benchmarks/bench_opencl.py [--arch tiny-bert mobilebert distilbert bert] [--seq 128] [--runs 10]

For each model (transformers' default config, random weights; torchscript exporter, opset 17;
batch 1 x --seq) this compiles an android-gpu artifact, runs its pf_run --bench N with PF_PROFILE=1
(every launch's device time from OpenCL profiling events, the median over the runs) and prints:

* per kernel kind: launches, device ms, and the achieved GFLOP/s (matrix-product FLOPs only, as
  `polyfuse inspect` counts them) and GB/s (each kernel reads every input buffer and writes its
  output once: a floor on its traffic);
* the ten slowest launches with the ops they fuse;
* the sum of device times, pf_run's median wall latency, and onnxruntime's median on the CPU
  (all cores, same inputs).

On PoCL (an OpenCL device made of this machine's CPU) the times say how the kernels compare with
each other, not how a phone GPU runs them. The device's name is printed and kept in the JSON
(--json, default benchmarks/results/bench_opencl.json).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np
import onnx

import polyfuse
from polyfuse import pipeline
from polyfuse.bench import ort_session, time_alternating
from polyfuse.cost.model import kernel_bytes, kernel_flops
from polyfuse.cost.profiler import measure
from polyfuse.testing.transformers_export import ARCHS, example_inputs, export_onnx

RESULTS = Path(__file__).resolve().parent / "results"


def device_name() -> str:
    try:
        out = subprocess.run(["clinfo", "-l"], capture_output=True, text=True, timeout=60).stdout
        return next((line.split(":", 1)[1].strip() for line in out.splitlines() if "Device #" in line), "unknown")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def bench(arch: str, seq: int, runs: int, work: Path) -> dict:
    path = work / f"{arch}.onnx"
    export_onnx(arch, "default", path, exporter="torchscript", opset=17, seq=seq)
    feeds = example_inputs(arch, "default", 1, seq)
    shapes = {k: v.shape for k, v in feeds.items()}
    comp = pipeline.compile_model(onnx.load(path), target="android-gpu", shapes=shapes)
    art = work / f"{arch}.gpu"
    model = polyfuse.compile(path, "android-gpu", shapes=shapes, output_dir=art)
    sess = ort_session(path, os.cpu_count() or 1)
    err = max(float(np.max(np.abs(a - b))) for a, b in zip(model.run(None, feeds), sess.run(None, feeds)))
    got = measure(art, feeds, runs)  # PF_PROFILE=1: each launch's median device time
    per, wall = dict(enumerate(got.launch_ms)), got.wall_ms
    ort = time_alternating({"onnxruntime": lambda: sess.run(None, feeds)}, 10)["onnxruntime"]
    ort_ms = statistics.median(ort) * 1e3
    g = comp.graph
    rows = []
    for j, k in enumerate(comp.lowered.kernels):
        ms = per.get(j, 0.0)
        fl, by = kernel_flops(k), kernel_bytes(k, g)
        rows.append(dict(launch=j, kind=type(k).__name__, ms=ms, gflops=fl / ms / 1e6 if ms else 0.0,
                         gbps=by / ms / 1e6 if ms else 0.0, flops=fl, bytes=by, sources=list(k.sources)[:6]))
    kinds = defaultdict(lambda: dict(launches=0, ms=0.0, flops=0, bytes=0))
    for r in rows:
        d = kinds[r["kind"]]
        d["launches"] += 1
        d["ms"] += r["ms"]
        d["flops"] += r["flops"]
        d["bytes"] += r["bytes"]
    return dict(arch=arch, seq=seq, runs=runs, launches=len(rows), device_ms=sum(r["ms"] for r in rows),
                pf_run_median_ms=wall, onnxruntime_cpu_ms=ort_ms, max_abs_error=err, kinds=dict(kinds), kernels=rows)


def report(r: dict) -> str:
    lines = [f"{r['arch']}: {r['launches']} launches | device time {r['device_ms']:.2f} ms (sum of launches), "
             f"pf_run median {r['pf_run_median_ms']:.2f} ms, onnxruntime on the CPU {r['onnxruntime_cpu_ms']:.2f} ms | "
             f"max abs error {r['max_abs_error']:.2e}"]
    for kind, d in sorted(r["kinds"].items(), key=lambda x: -x[1]["ms"]):
        ms = d["ms"] or float("nan")
        lines.append(f"  {kind:12s} {d['launches']:4d} launches {d['ms']:9.2f} ms  "
                     f"{d['flops'] / ms / 1e6:8.1f} GFLOP/s {d['bytes'] / ms / 1e6:8.1f} GB/s")
    lines.append("  slowest launches:")
    for k in sorted(r["kernels"], key=lambda x: -x["ms"])[:10]:
        lines.append(f"    #{k['launch']:<4d} {k['kind']:12s} {k['ms']:8.3f} ms {k['gflops']:8.1f} GFLOP/s "
                     f"{k['gbps']:7.1f} GB/s  {', '.join(k['sources'])[:70]}")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", nargs="*", default=["tiny-bert", "mobilebert", "distilbert", "bert"], choices=ARCHS)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--runs", type=int, default=10, help="pf_run --bench runs (default 10)")
    p.add_argument("--json", default=str(RESULTS / "bench_opencl.json"))
    a = p.parse_args(argv)
    dev = device_name()
    print(f"OpenCL device: {dev}")
    out = dict(device=dev, models=[])
    with tempfile.TemporaryDirectory(prefix="pf-bench-opencl-") as d:
        for arch in a.arch:
            r = bench(arch, a.seq, a.runs, Path(d))
            print(report(r), flush=True)
            out["models"].append(r)
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    Path(a.json).write_text(json.dumps(out, indent=1) + "\n")
    print(f"results in {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
