"""BERT family: polyfuse vs onnxruntime latency, achieved GFLOP/s, peak memory and accuracy.

    python3 benchmarks/bench_vs_ort.py [--arch tiny-bert mobilebert distilbert bert] [--threads 2]
                                       [--repeat 20] [--seq 128]

For each model (transformers' default config, random weights; torchscript exporter, opset 17;
batch 1, sequence --seq) this exports the ONNX file, compiles it with polyfuse into an artifact
directory and opens an onnxruntime session (all graph optimizations, the same thread count).
Both are timed in this process, alternating (polyfuse.bench.time_alternating: 3 warm-up runs
each, then --repeat rounds, each timed run preceded by polyfuse.bench.settle: a pause of at
least 50 ms that lasts until the other runtime's threads have stopped spinning; a model whose rounds
are short gets more of them, enough to fill --min-seconds, since the median of 20 runs of a
few milliseconds moves with every disturbance on a shared machine), and the medians are
reported with:

* speedup = onnxruntime median / polyfuse median (> 1: polyfuse is faster);
* achieved GFLOP/s = model FLOPs / median. Model FLOPs are 2*M*N*K (times the batch dims)
  summed over every MatMul and Gemm node, with shapes from polyfuse's own frontend
  (polyfuse.pipeline.frontend: ONNX import, input shapes bound, constants folded, shapes
  inferred, dead code removed; before any fusion). Everything else (softmax, layer norm, GELU,
  bias adds) is not counted, so this is the matrix-multiply work only;
* that rate as a percentage of the fp32 FMA peak measured on this machine with
  benchmarks/peak_flops.cpp (built with g++ -O2 -march=native; the line for --threads threads)
  and of the design's nominal --nominal-gflops (228 GFLOP/s);
* peak memory: each runtime in its own child process (this script with --rss-worker): the
  increase of the peak RSS from after its imports (numpy, polyfuse, the runtime's native module)
  to after loading the model (polyfuse.load of the artifact directory / onnxruntime session
  creation) and running it once, in MiB (Linux: VmRSS before, VmHWM after, the high-water mark
  reset after the imports, since ru_maxrss inherits the parent's across exec; see rss_worker);
* the largest absolute difference of every output (polyfuse vs onnxruntime).

Results go to --json (default benchmarks/results/bench_vs_ort.json) with the machine (CPU
model, cores, measured peak); if matplotlib is importable (requirements-test.txt), a chart of
the medians and speedups goes to --png. A model that fails (export, compile, run, memory
worker) or whose outputs differ by more than --tol is reported and the others still run; the
exit status is then 1.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DEFAULT_ARCHS = ("tiny-bert", "mobilebert", "distilbert", "bert")
NOMINAL_GFLOPS = 228.0
RSS_TAG = "RSS-RESULT "


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("model name", "Model", "Hardware")) and ":" in line:
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def measured_peak(threads: int) -> tuple[float, str, dict]:
    """fp32 FMA peak (GFLOP/s) at `threads` threads from peak_flops.cpp, the ISA it used, all lines."""
    sys.path.insert(0, str(HERE))
    from bench_gemm import peak_gflops  # builds and runs peak_flops.cpp

    peaks, isa = peak_gflops(threads)
    return peaks[max(t for t in peaks if t <= threads)], isa, peaks


def matmul_flops(path, shapes: dict) -> tuple[float, int]:
    """(FLOPs, number of nodes) of all MatMul/Gemm nodes: 2 * numel(output) * K each."""
    from polyfuse.pipeline import frontend

    g = frontend(path, shapes).graph
    total, count = 0, 0
    for n in g.nodes:
        if n.op_type not in ("MatMul", "Gemm"):
            continue
        a, out = g.values[n.inputs[0]], g.values[n.outputs[0]]
        if not (a.is_static and out.is_static):
            raise ValueError(f"{n.op_type} node {n.name!r}: shapes not static ({a.shape} -> {out.shape})")
        if n.op_type == "MatMul":
            k = a.shape[-1]  # also right for a 1-D A
        else:
            k = a.shape[0] if n.attrs.get("transA", 0) else a.shape[1]
        total += 2 * out.numel * int(k)
        count += 1
    return float(total), count


# --- peak memory, one child process per runtime ---------------------------------------------

def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def rss_worker(kind: str, target: str, feeds_path: str, threads: int) -> None:
    """Child: print the peak-RSS increase (MiB) of loading `target` with `kind` and running it once,
    and the seconds the load took (polyfuse.load; onnxruntime's session creation).

    On Linux ru_maxrss cannot be used as is: a child started by subprocess inherits the parent's
    high-water mark across exec (it read ~500 MiB here, before any import). So the high-water
    mark is reset after the imports (writing 5 to /proc/self/clear_refs) and the increase is
    VmHWM after load+run minus VmRSS before; without /proc it falls back to ru_maxrss."""
    feeds = dict(np.load(feeds_path))
    if kind == "polyfuse":
        import polyfuse
        from polyfuse.runtime.native import load_runtime

        load_runtime()
    else:
        import onnxruntime  # noqa: F401

        from polyfuse.bench import ort_session
    try:
        Path("/proc/self/clear_refs").write_text("5")
        base, method = _status_kib("VmRSS"), "VmHWM"
    except (OSError, KeyError):
        base, method = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "ru_maxrss"
    t0 = time.perf_counter()
    if kind == "polyfuse":
        model = polyfuse.load(target, threads=threads)
        load_s = time.perf_counter() - t0
        model.run(None, feeds)
    else:
        sess = ort_session(target, threads)
        load_s = time.perf_counter() - t0
        sess.run(None, feeds)
    peak = _status_kib("VmHWM") if method == "VmHWM" else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    scale = 1024 * 1024 if method == "ru_maxrss" and sys.platform == "darwin" else 1024  # bytes on macOS
    print(RSS_TAG + json.dumps({"baseline_mib": base / scale, "peak_mib": peak / scale,
                                "increase_mib": (peak - base) / scale, "method": method, "load_s": load_s}),
          flush=True)


def peak_rss(kind: str, target: Path, feeds_path: Path, threads: int) -> dict:
    cmd = [sys.executable, __file__, "--rss-worker", kind, str(target), str(feeds_path), "--threads", str(threads)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    for line in p.stdout.splitlines():
        if p.returncode == 0 and line.startswith(RSS_TAG):
            return {k: round(v, 3 if k == "load_s" else 1) if isinstance(v, float) else v
                    for k, v in json.loads(line[len(RSS_TAG):]).items()}
    raise RuntimeError(f"{kind} memory worker failed (exit {p.returncode}):\n{p.stdout[-2000:]}{p.stderr[-4000:]}")


# --- one model -----------------------------------------------------------------------------

def rounds_for(fns: dict, repeat: int, min_seconds: float) -> int:
    """At least ``repeat`` rounds, and enough that they take ``min_seconds`` (one round: each
    callable once, after its pause; timed once here)."""
    from polyfuse.bench import SETTLE_S

    t0 = time.perf_counter()
    for f in fns.values():
        f()
    per_round = time.perf_counter() - t0 + len(fns) * SETTLE_S
    return max(repeat, int(min_seconds / per_round) + 1)


def bench_one(arch: str, workdir: Path, threads: int, repeat: int, seq: int, peak: float, nominal: float,
              min_seconds: float = 0.0) -> dict:
    import polyfuse
    from polyfuse.bench import ort_session, time_alternating
    from polyfuse.testing.transformers_export import example_inputs, export_onnx

    r: dict = {"arch": arch, "exporter": "torchscript", "opset": 17, "batch": 1, "seq": seq, "threads": threads}
    path, artifact, feeds_path = workdir / f"{arch}.onnx", workdir / f"{arch}.polyfuse", workdir / f"{arch}.npz"
    stage = "export"
    try:
        t0 = time.perf_counter()
        export_onnx(arch, "default", path, exporter="torchscript", opset=17, seq=seq)
        r["export_s"] = round(time.perf_counter() - t0, 1)
        feeds = example_inputs(arch, "default", 1, seq)
        shapes = {k: v.shape for k, v in feeds.items()}
        np.savez(feeds_path, **feeds)

        stage = "flop count"
        flops, n_mm = matmul_flops(path, shapes)
        r["matmul_nodes"], r["gflop"] = n_mm, round(flops / 1e9, 4)

        stage = "compile"
        t0 = time.perf_counter()
        model = polyfuse.compile(path, shapes=shapes, threads=threads, output_dir=artifact)
        r["compile_s"] = round(time.perf_counter() - t0, 1)
        r["kernels"] = model.manifest["stats"]["kernels"]

        stage = "onnxruntime session"
        sess = ort_session(path, threads)

        stage = "run"
        names = model.output_names
        ours, ref = model.run(None, feeds), sess.run(names, feeds)
        r["max_abs_error"] = {n: float(np.max(np.abs(a.astype(np.float64) - b))) if a.size else 0.0
                              for n, a, b in zip(names, ours, ref, strict=True)}

        stage = "timing"
        fns = {"polyfuse": lambda: model.run(None, feeds), "onnxruntime": lambda: sess.run(None, feeds)}
        r["rounds"] = rounds_for(fns, repeat, min_seconds)
        times = time_alternating(fns, r["rounds"])
        for k, v in times.items():
            med = statistics.median(v)
            gf = flops / med / 1e9
            r[k] = {"median_ms": round(med * 1e3, 3), "min_ms": round(min(v) * 1e3, 3), "gflops": round(gf, 2),
                    "pct_of_measured_peak": round(100 * gf / peak, 1) if peak else None,
                    "pct_of_nominal": round(100 * gf / nominal, 1)}
        r["speedup"] = round(r["onnxruntime"]["median_ms"] / r["polyfuse"]["median_ms"], 3)
        fns = model = sess = ours = ref = None  # free the weights before the memory workers start

        for kind, target in (("polyfuse", artifact), ("onnxruntime", path)):
            stage = f"{kind} memory worker"
            r[kind]["rss"] = peak_rss(kind, target, feeds_path, threads)
        r["ok"] = True
    except Exception as e:  # noqa: BLE001 - report and go on with the next model
        r["ok"], r["error"] = False, f"{stage}: {type(e).__name__}: {e}"
        traceback.print_exc()
    finally:
        path.unlink(missing_ok=True)
        feeds_path.unlink(missing_ok=True)
        shutil.rmtree(artifact, ignore_errors=True)
    return r


def report(r: dict, tol: float) -> bool:
    if not r["ok"]:
        print(f"{r['arch']}: FAILED ({r['error']})", flush=True)
        return False
    err = max(r["max_abs_error"].values())
    ok = err <= tol
    print(f"{r['arch']}: {r['matmul_nodes']} MatMul/Gemm, {r['gflop']:.3f} GFLOP | export {r['export_s']} s, "
          f"compile {r['compile_s']} s ({r['kernels']} kernels) | median of {r['rounds']} rounds")
    for k in ("polyfuse", "onnxruntime"):
        x = r[k]
        print(f"  {k:12s} {x['median_ms']:9.2f} ms  {x['gflops']:7.1f} GFLOP/s  {x['pct_of_measured_peak']:5.1f}% of "
              f"measured peak  {x['pct_of_nominal']:5.1f}% of nominal  | peak RSS +{x['rss']['increase_mib']:.1f} MiB")
    print(f"  speedup {r['speedup']:.2f}x (onnxruntime / polyfuse) | max abs error {err:.2e} "
          f"{'ok' if ok else f'FAIL (> {tol})'}", flush=True)
    return ok


def plot(rows: list, path: Path, threads: int) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    rows = [r for r in rows if r["ok"]]
    if not rows:
        return False
    x = np.arange(len(rows))
    fig, (ax, sp) = plt.subplots(1, 2, figsize=(2.6 * len(rows) + 3, 4), width_ratios=(3, 2))
    for i, k in enumerate(("polyfuse", "onnxruntime")):
        bars = ax.bar(x + (i - 0.5) * 0.38, [r[k]["median_ms"] for r in rows], 0.38, label=k)
        ax.bar_label(bars, fmt="%.1f", fontsize=8)
    ax.set_xticks(x, [r["arch"] for r in rows])
    ax.set_ylabel("median latency (ms)")
    ax.set_yscale("log")
    ax.set_title(f"batch 1, seq {rows[0]['seq']}, {threads} threads")
    ax.legend()
    bars = sp.bar(x, [r["speedup"] for r in rows], 0.6, color="tab:green")
    sp.bar_label(bars, fmt="%.2fx", fontsize=8)
    sp.axhline(1.0, color="gray", linestyle="--", linewidth=1)
    sp.set_xticks(x, [r["arch"] for r in rows])
    sp.set_ylabel("speedup (onnxruntime / polyfuse)")
    sp.set_title("polyfuse speedup")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", nargs="+", default=list(DEFAULT_ARCHS), choices=DEFAULT_ARCHS)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--repeat", type=int, default=20, help="timed rounds per model, at least (default 20)")
    p.add_argument("--min-seconds", type=float, default=10.0,
                   help="more rounds for a fast model, until its rounds take this long (default 10)")
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--tol", type=float, default=1e-3, help="largest accepted max abs error (default 1e-3)")
    p.add_argument("--nominal-gflops", type=float, default=NOMINAL_GFLOPS)
    p.add_argument("--json", default=str(HERE / "results" / "bench_vs_ort.json"))
    p.add_argument("--png", default=str(HERE / "results" / "bench_vs_ort.png"))
    p.add_argument("--rss-worker", nargs=3, metavar=("KIND", "MODEL", "FEEDS"), help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.threads < 1:
        p.error("--threads must be >= 1")
    if a.rss_worker:
        rss_worker(*a.rss_worker, threads=a.threads)
        return 0

    import onnxruntime

    import polyfuse

    peak, isa, peaks = measured_peak(a.threads)
    machine = {"cpu": cpu_model(), "cores": os.cpu_count(), "isa": isa, "threads": a.threads,
               "measured_peak_gflops": peak, "measured_peak_by_threads": {str(t): g for t, g in sorted(peaks.items())},
               "nominal_peak_gflops": a.nominal_gflops,
               "polyfuse": polyfuse.__version__, "onnxruntime": onnxruntime.__version__}
    print(f"{machine['cpu']}, {a.threads} threads: measured fp32 FMA peak {peak:.1f} GFLOP/s ({isa}), "
          f"nominal {a.nominal_gflops:.0f}; batch 1, seq {a.seq}, median of at least {a.repeat} rounds "
          f"(or {a.min_seconds:g} s of them)", flush=True)
    rows, bad = [], 0
    with tempfile.TemporaryDirectory(prefix="pf-bench-vs-ort-") as d:
        for arch in a.arch:
            r = bench_one(arch, Path(d), a.threads, a.repeat, a.seq, peak, a.nominal_gflops, a.min_seconds)
            bad += not report(r, a.tol)
            rows.append(r)

    out = Path(a.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": machine, "repeat": a.repeat, "min_seconds": a.min_seconds, "tol": a.tol,
                               "models": rows}, indent=2) + "\n")
    ok_rows = [r for r in rows if r["ok"]]
    if ok_rows:
        print(f"\n{'model':12s} {'polyfuse ms':>12s} {'ort ms':>10s} {'speedup':>8s} {'pf GF/s':>8s} {'ort GF/s':>9s} "
              f"{'pf %pk':>7s} {'pf RSS':>8s} {'ort RSS':>8s}")
        for r in ok_rows:
            pf, rt = r["polyfuse"], r["onnxruntime"]
            print(f"{r['arch']:12s} {pf['median_ms']:12.2f} {rt['median_ms']:10.2f} {r['speedup']:7.2f}x "
                  f"{pf['gflops']:8.1f} {rt['gflops']:9.1f} {pf['pct_of_measured_peak']:6.1f}% "
                  f"{pf['rss']['increase_mib']:7.1f}M {rt['rss']['increase_mib']:7.1f}M")
    png = " and " + a.png if plot(rows, Path(a.png), a.threads) else ""
    print(f"{len(rows) - bad}/{len(rows)} models ok; results in {out}{png}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
