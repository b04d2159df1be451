"""Does the cost model predict what runs? Predicted against measured latency of BERT-like encoders.

    python3 benchmarks/validate_cost_model.py [--target host|android-gpu] [--profile FILE] [--threads 2] [--repeat 10]

Builds 24 encoders (nas/builder.py: layers 2-12, hidden 128-768, 2-12 heads, feed-forward
512-3072, sequence 32-256, four MobileBERT-style bottlenecked ones), none of them in the
calibration set (cost/calibrate.py). For each: the cost model's prediction (polyfuse.estimate,
no build), then the compiled model's measured latency (the artifact's pf_run --bench, median,
with PF_PROFILE=1 for each launch's time; the fastest of --rounds passes over all 24 models). Without --profile it first runs polyfuse calibrate
here for --target (android-gpu: this machine's OpenCL device). Prints per model predicted and measured ms, then Spearman's rank correlation and the mean
absolute percentage error of the totals, and the per-launch MAPE; keeps the table in
benchmarks/results/validate_cost_model.json and a scatter plot (predicted vs measured) in
benchmarks/results/validate_cost_model.png. Goal on host: Spearman >= 0.95, total MAPE <= 10%.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

import polyfuse
from polyfuse.cost.profiler import measure
from polyfuse.nas.builder import EncoderConfig, build_encoder, example_feeds

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"

# (layers, hidden, heads, intermediate, seq, bottleneck): disjoint from cost/calibrate.py's set
VARIANTS = [
    (2, 128, 2, 512, 32, 0), (2, 256, 4, 1024, 64, 0), (4, 256, 4, 1024, 128, 0), (4, 128, 2, 512, 256, 0),
    (3, 384, 6, 1536, 128, 0), (6, 384, 6, 1536, 64, 0), (4, 512, 8, 2048, 32, 0), (6, 512, 8, 2048, 128, 0),
    (2, 768, 12, 3072, 256, 0), (4, 768, 12, 3072, 64, 0), (6, 768, 12, 3072, 128, 0), (12, 768, 12, 3072, 128, 0),
    (8, 256, 4, 512, 128, 0), (12, 128, 2, 512, 128, 0), (3, 640, 10, 2560, 96, 0), (5, 448, 7, 1792, 160, 0),
    (2, 512, 8, 3072, 256, 0), (6, 320, 5, 1280, 200, 0), (4, 768, 6, 1024, 32, 0), (10, 192, 3, 768, 64, 0),
    (6, 512, 4, 512, 128, 128), (12, 512, 4, 512, 128, 128), (4, 384, 4, 768, 64, 96), (8, 512, 4, 1024, 256, 128),
]


def spearman(a, b) -> float:
    ra, rb = (np.argsort(np.argsort(x)).astype(float) for x in (a, b))
    return float(np.corrcoef(ra, rb)[0, 1])


def _build(job) -> None:
    v, target, threads, out = job
    polyfuse.compile(build_encoder(EncoderConfig(*v)), target, threads=threads, output_dir=out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", default="host", choices=("host", "android-gpu"),
                    help="a target whose code runs here (default host)")
    ap.add_argument("--profile", help="a calibrated profile JSON (default: run polyfuse calibrate first)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3, help="timing passes over all models; each keeps its fastest")
    ap.add_argument("--jobs", type=int, default=1, help="models compiled at once (default 1; timing is always serial)")
    ap.add_argument("--json", type=Path, default=RESULTS / "validate_cost_model.json")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="validate-") as tmp:
        profile = args.profile
        if profile is None:
            profile = str(Path(tmp) / f"{args.target}.json")
            subprocess.run([sys.executable, "-m", "polyfuse", "calibrate", "--target", args.target,
                            "--threads", str(args.threads), "-o", profile], check=True)
        rows, per_launch, built = [], [], []
        for v in VARIANTS:  # estimates one at a time, each timed alone
            c = EncoderConfig(*v)
            t0 = time.perf_counter()
            est = polyfuse.estimate(build_encoder(c), target=args.target, profile=profile)
            built.append([c, est, time.perf_counter() - t0, Path(tmp) / c.name(), None, None])
        jobs = [(v, args.target, args.threads, b[3]) for v, b in zip(VARIANTS, built)]
        if args.jobs > 1:
            with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
                list(pool.map(_build, jobs))
        else:
            for j in jobs:
                _build(j)
        for r in range(args.rounds):  # slow spells of a shared machine last seconds: keep each model's best round
            for b in built:
                got = measure(b[3], example_feeds(b[0]), args.repeat, args.threads)
                b[4] = got.launch_ms if b[4] is None else [min(x, y) for x, y in zip(b[4], got.launch_ms)]
                b[5] = got.wall_ms if b[5] is None else min(b[5], got.wall_ms)
            print(f"timing round {r + 1}/{args.rounds} done", flush=True)
        for n, (c, est, est_s, _dir, launch_ms, wall_ms) in enumerate(built):
            per_launch += [(g.ms, ms) for g, ms in zip(est.groups, launch_ms)]
            rows.append({"config": c.name(), "launches": len(est.groups), "predicted_ms": round(est.total_ms, 4),
                         "measured_ms": wall_ms, "kernels_ms": round(sum(launch_ms), 4), "estimate_s": round(est_s, 3)})
            r = rows[-1]
            print(f"[{n + 1:2d}/{len(VARIANTS)}] {c.name():36s} predicted {r['predicted_ms']:9.3f} ms  measured "
                  f"{r['measured_ms']:9.3f} ms  ({r['predicted_ms'] / r['measured_ms'] - 1:+.1%})", flush=True)
        built.clear()
        pred = np.array([r["predicted_ms"] for r in rows])
        meas = np.array([r["measured_ms"] for r in rows])
        pl = np.array(per_launch)
        summary = {"spearman": round(spearman(pred, meas), 4),
                   "total_mape": round(float(np.mean(np.abs(pred - meas) / meas)), 4),
                   "launch_mape": round(float(np.mean(np.abs(pl[:, 0] - pl[:, 1]) / pl[:, 1])), 4),
                   "launch_mape_time_weighted": round(float(np.sum(np.abs(pl[:, 0] - pl[:, 1])) / np.sum(pl[:, 1])), 4),
                   "target": args.target, "threads": args.threads, "profile": json.loads(Path(profile).read_text()) if Path(profile).is_file() else profile}
        print(f"Spearman {summary['spearman']:.3f}, total MAPE {summary['total_mape']:.1%}, per-launch MAPE "
              f"{summary['launch_mape']:.1%} (time-weighted {summary['launch_mape_time_weighted']:.1%}), "
              f"{len(rows)} models, {len(per_launch)} launches")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"summary": summary, "models": rows}, indent=1) + "\n")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.loglog(meas, pred, "o")
    lo, hi = min(meas.min(), pred.min()) * 0.8, max(meas.max(), pred.max()) * 1.25
    ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
    ax.set_xlabel("measured ms (pf_run median)")
    ax.set_ylabel("predicted ms (polyfuse.estimate)")
    ax.set_title(f"{len(rows)} encoders: Spearman {summary['spearman']:.3f}, MAPE {summary['total_mape']:.1%}")
    fig.tight_layout()
    fig.savefig(args.json.with_suffix(".png"), dpi=120)


if __name__ == "__main__":
    main()
