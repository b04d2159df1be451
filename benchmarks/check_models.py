"""Full-size BERT-family check: export, compile (cold and cached), compare with onnxruntime.

    python3 benchmarks/check_models.py                       # all 4 models x 2 exporters x opsets 17, 18
    python3 benchmarks/check_models.py --arch bert --exporter torchscript --opset 17
    python3 benchmarks/check_models.py --target android-cpu --device qemu --exporter torchscript --opset 17

For each model (transformers' default configs, random weights, seed 0; batch 1, sequence 128)
prints ONNX nodes, kernel launches, cold and cached compile time, polyfuse and onnxruntime
median latency (same thread count, alternating, in this process) and the largest absolute
difference of every output. Exits non-zero if any output differs by more than --tol (1e-3).
Results are also written as JSON (--json, default benchmarks/results/check_models.json).
With --target android-gpu, the model runs on this machine's OpenCL device (PoCL on a CPU: its
time says nothing about a phone's GPU). With --target android-cpu --device qemu|adb, the model is compiled for that target, run by its
pf_run on the device, checked against onnxruntime here, and timed by pf_run --bench there
(under qemu that time is emulated and says nothing about a phone).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import polyfuse
from polyfuse.bench import ort_session, time_alternating
from polyfuse.testing.transformers_export import ARCHS, EXPORTERS, example_inputs, export_onnx


def check_on_device(path: Path, feeds: dict, target: str, device: str, threads: int, repeat: int) -> dict:
    t0 = time.perf_counter()
    model = polyfuse.compile(path, target, shapes={k: v.shape for k, v in feeds.items()}, threads=threads, device=device)
    cold = time.perf_counter() - t0
    ours, ref = model.run(None, feeds), ort_session(path, threads).run(None, feeds)
    ms = model.latency(feeds, repeat)[0]
    return {"target": target, "device": device, "onnx_nodes": model.manifest["stats"]["onnx_nodes"],
            "kernels": model.manifest["stats"]["kernels"], "compile_cold_s": round(cold, 1), "compile_cached_s": 0.0,
            "polyfuse_ms": ms, "onnxruntime_ms": float("nan"),
            "max_abs_error": {n: float(np.max(np.abs(a - b))) for n, a, b in zip(model.output_names, ours, ref)}}


def check(arch, exporter, opset, workdir: Path, threads: int, repeat: int, seq: int, target: str = "host",
          device: str | None = None) -> dict:
    path = workdir / f"{arch}_{exporter}_{opset}.onnx"
    t0 = time.perf_counter()
    export_onnx(arch, "default", path, exporter=exporter, opset=opset, seq=seq)
    export_s = time.perf_counter() - t0
    feeds = example_inputs(arch, "default", 1, seq)
    shapes = {k: v.shape for k, v in feeds.items()}
    if device:
        r = check_on_device(path, feeds, target, device, threads, repeat)
        path.unlink()
        return {"arch": arch, "exporter": exporter, "opset": opset, "seq": seq, "threads": threads,
                "export_s": round(export_s, 1), **r}
    cache = Path(tempfile.mkdtemp(prefix="pf-cache-"))  # a cold cache for this model
    os.environ["POLYFUSE_CACHE_DIR"] = str(cache)
    try:
        t0 = time.perf_counter()
        model = polyfuse.compile(path, target, shapes=shapes, threads=threads)
        cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        model = polyfuse.compile(path, target, shapes=shapes, threads=threads)
        cached = time.perf_counter() - t0
    finally:
        shutil.rmtree(cache, ignore_errors=True)
        os.environ.pop("POLYFUSE_CACHE_DIR")
    sess = ort_session(path, threads)
    ours, ref = model.run(None, feeds), sess.run(None, feeds)
    errors = {n: float(np.max(np.abs(a - b))) for n, a, b in zip(model.output_names, ours, ref)}
    times = time_alternating({"polyfuse": lambda: model.run(None, feeds), "onnxruntime": lambda: sess.run(None, feeds)},
                             repeat)
    med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    path.unlink()
    return {"arch": arch, "exporter": exporter, "opset": opset, "seq": seq, "threads": threads, "target": target,
            "onnx_nodes": model.manifest["stats"]["onnx_nodes"], "kernels": model.manifest["stats"]["kernels"],
            "export_s": round(export_s, 1), "compile_cold_s": round(cold, 1), "compile_cached_s": round(cached, 1),
            "polyfuse_ms": round(med["polyfuse"], 2), "onnxruntime_ms": round(med["onnxruntime"], 2),
            "max_abs_error": errors}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", nargs="*", default=list(ARCHS), choices=ARCHS)
    p.add_argument("--exporter", nargs="*", default=list(EXPORTERS), choices=EXPORTERS)
    p.add_argument("--opset", nargs="*", type=int, default=[17, 18])
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--repeat", type=int, default=10)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--tol", type=float, default=1e-3)
    p.add_argument("--target", default="host")
    p.add_argument("--device", help="for a target that does not run here: qemu, adb or adb:SERIAL")
    p.add_argument("--json", help="default: benchmarks/results/check_models.json (check_models_TARGET.json)")
    a = p.parse_args(argv)
    a.json = a.json or str(Path(__file__).parent / "results" /
                           ("check_models.json" if a.target == "host" else f"check_models_{a.target}.json"))
    rows, bad = [], 0
    with tempfile.TemporaryDirectory() as d:
        for arch in a.arch:
            for exporter in a.exporter:
                for opset in a.opset:
                    r = check(arch, exporter, opset, Path(d), a.threads, a.repeat, a.seq, a.target, a.device)
                    ok = max(r["max_abs_error"].values()) <= a.tol
                    bad += not ok
                    rows.append(r)
                    print(f"{arch:10s} {exporter:11s} opset {opset}: {r['onnx_nodes']:5d} nodes -> {r['kernels']:4d} "
                          f"kernels | compile cold {r['compile_cold_s']:5.1f} s, cached {r['compile_cached_s']:4.1f} s | "
                          f"polyfuse {r['polyfuse_ms']:8.2f} ms, onnxruntime {r['onnxruntime_ms']:8.2f} ms | "
                          f"max abs err {max(r['max_abs_error'].values()):.2e} {'ok' if ok else 'FAIL'}", flush=True)
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    Path(a.json).write_text(json.dumps(rows, indent=2) + "\n")
    print(f"{len(rows) - bad}/{len(rows)} within {a.tol}; results in {a.json}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
