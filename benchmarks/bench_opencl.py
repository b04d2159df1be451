"""android-gpu on this machine's OpenCL device: device time per kernel, against onnxruntime on the CPU.

    python3 benchmarks/bench_opencl.py [--arch tiny-bert mobilebert distilbert bert] [--seq 128] [--runs 10]

For each model (transformers' default config, random weights; torchscript exporter, opset 17;
batch 1 x --seq) this compiles an android-gpu artifact, runs its pf_run --bench N with PF_PROFILE=1
(every launch's device time from OpenCL profiling events, the median over the runs) and prints:

* per kernel kind: launches, device ms, and the achieved GFLOP/s (matrix-product FLOPs only, as
  `polyfuse inspect` counts them) and GB/s (each kernel reads every input buffer and writes its
  output once: a floor on its traffic);
* the ten slowest launches with the ops they fuse;
* the sum of device times, pf_run's median wall latency (a second run, without profiling), and onnxruntime's median on the CPU
  (all cores, same inputs);
* with --torch-cuda, where PyTorch sees a CUDA GPU: the same transformers model in PyTorch eager
  on that GPU (float32, TF32 off), median of --runs: what the vendor's own kernels do on the
  device that runs polyfuse's OpenCL.

A model that fails is reported with its error and the others still run; the JSON is rewritten
after each model, so an interrupted run keeps what it measured.

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
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import onnx

import polyfuse
from polyfuse import pipeline
from polyfuse.bench import ort_session, time_alternating
from polyfuse.cost.model import kernel_bytes, kernel_flops
from polyfuse.cost.profiler import measure
from polyfuse.testing.transformers_export import ARCHS, build_model, example_inputs, export_onnx

RESULTS = Path(__file__).resolve().parent / "results"


def device_name() -> str:
    try:
        out = subprocess.run(["clinfo", "-l"], capture_output=True, text=True, timeout=60).stdout
        return next((line.split(":", 1)[1].strip() for line in out.splitlines() if "Device #" in line), "unknown")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def torch_cuda_ms(arch: str, feeds: dict, runs: int) -> float | None:
    """PyTorch eager on the CUDA GPU, float32 without TF32: median ms of ``runs`` (None without CUDA)."""
    import torch

    if not torch.cuda.is_available():
        return None
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    model = build_model(arch, "default").to("cuda")
    kw = {k: torch.from_numpy(np.ascontiguousarray(v)).to("cuda") for k, v in feeds.items()}
    times = []
    with torch.no_grad():
        for i in range(runs + 5):
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            model(**kw)
            torch.cuda.synchronize()
            if i >= 5:
                times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def bench(arch: str, seq: int, runs: int, work: Path, torch_cuda: bool = False) -> dict:
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
    per = dict(enumerate(got.launch_ms))
    wall = measure(art, feeds, runs, profile=False).wall_ms  # the latency without profiling events
    ort = time_alternating({"onnxruntime": lambda: sess.run(None, feeds)}, 10)["onnxruntime"]
    ort_ms = statistics.median(ort) * 1e3
    cuda_ms = torch_cuda_ms(arch, feeds, runs) if torch_cuda else None
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
                pf_run_median_ms=wall, onnxruntime_cpu_ms=ort_ms, torch_cuda_ms=cuda_ms, max_abs_error=err, kinds=dict(kinds), kernels=rows)


def report(r: dict) -> str:
    if "error" in r:
        return f"{r['arch']}: FAILED: {r['error']}"
    cuda = f", PyTorch eager on the GPU {r['torch_cuda_ms']:.2f} ms" if r.get("torch_cuda_ms") else ""
    lines = [f"{r['arch']}: {r['launches']} launches | device time {r['device_ms']:.2f} ms (sum of launches), "
             f"pf_run median {r['pf_run_median_ms']:.2f} ms, onnxruntime on the CPU {r['onnxruntime_cpu_ms']:.2f} ms{cuda} | "
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
    p.add_argument("--torch-cuda", action="store_true", help="also time PyTorch eager on a CUDA GPU, if any")
    a = p.parse_args(argv)
    dev = device_name()
    print(f"OpenCL device: {dev}")
    out = dict(device=dev, models=[])
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    failed = 0
    with tempfile.TemporaryDirectory(prefix="pf-bench-opencl-") as d:
        for arch in a.arch:
            t0 = time.perf_counter()
            try:
                r = bench(arch, a.seq, a.runs, Path(d), a.torch_cuda)
            except Exception as e:  # one model's failure is a result too; the others still run
                r, failed = dict(arch=arch, seq=a.seq, error=f"{type(e).__name__}: {e}"[-2000:]), failed + 1
            print(report(r) + f"  [{time.perf_counter() - t0:.0f} s]", flush=True)
            out["models"].append(r)
            Path(a.json).write_text(json.dumps(out, indent=1) + "\n")
    print(f"results in {a.json}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
