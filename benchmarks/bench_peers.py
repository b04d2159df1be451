"""polyfuse against LiteRT (XNNPACK), MNN and onnxruntime on the BERT family, each engine alone.

    bash benchmarks/peers/install.sh                  # the peers, in benchmarks/peers/.venv
    python3 benchmarks/bench_peers.py [--arch tiny-bert mobilebert distilbert bert] [--threads 2]

Per model (transformers' default configs, random weights, seed 0, eager attention, 1 x 128):
benchmarks/peers/export.py writes the ONNX (polyfuse, onnxruntime, MNN), the TFLite (litert-torch)
and the MNN file from one PyTorch instance. Then, in ``--rounds`` rounds, every engine runs in its
own process (benchmarks/peers/run_engine.py: two untimed runs, then ``--repeat`` timed), with a
pause between processes, so no engine's spinning workers share the cores with another's. Printed
per engine: the median over rounds of each round's median latency, the range of those, GFLOP/s
(MatMul/Gemm FLOPs of the ONNX graph / latency), the share of the fp32 peak measured by
peak_flops.cpp in the same run, the max abs error against onnxruntime, and polyfuse's speedup
over each peer (peer ms / polyfuse ms), also per round (the median and range of each round's peer
ms / polyfuse ms: engines of one round ran in the same phase of a shared machine). Each round
starts with peak_flops.cpp --pingpong, a cache line's round trip between the two CPUs, printed
as the round's phase: on the shared 2-vCPU machines here every engine runs slower, polyfuse more,
in spells where it reads 325 ns and up instead of ~55. Each process's steal time (the share of
the CPUs' time the hypervisor gave to other guests, /proc/stat) is printed beside it, and the
per-round speedup is also given over the calm rounds only (under 2% steal for both engines).
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_gemm import pingpong_probe  # noqa: E402
from bench_vs_ort import DEFAULT_ARCHS, cpu_model, matmul_flops, measured_peak  # noqa: E402

ENGINES = ("polyfuse", "onnxruntime", "litert", "mnn")
FILE = {"onnxruntime": ".onnx", "litert": ".tflite", "mnn": ".mnn"}
PAUSE_S = 1.0
CALM = 0.02  # a round is calm for two engines when the hypervisor took under 2% of the CPUs during both


def _export(arch: str, work: Path, venv: Path, seq: int) -> None:
    if all((work / f"{arch}{e}").is_file() for e in (".onnx", ".tflite", ".mnn", ".npz")):
        return
    env = {"PYTHONPATH": str(HERE.parent / "src"), "PATH": f"{venv / 'bin'}:/usr/bin:/bin"}
    subprocess.run([str(venv / "bin" / "python"), str(HERE / "peers" / "export.py"), arch, str(work), "--seq", str(seq)],
                   check=True, env=env)


def _cpu_times() -> tuple[int, int] | None:
    """(steal, total) of all CPUs' times in /proc/stat (Linux), or None."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
        v = [int(x) for x in fields[1:9]]  # user nice system idle iowait irq softirq steal
    except (OSError, ValueError, IndexError):
        return None
    return v[7], sum(v)


def _run(engine: str, model: Path, feeds: Path, threads: int, repeat: int, out: Path, venv: Path) -> dict:
    python = sys.executable if engine in ("polyfuse", "onnxruntime") else str(venv / "bin" / "python")
    subprocess.run([python, str(HERE / "peers" / "run_engine.py"), engine, str(model), str(feeds), str(threads),
                    str(repeat), str(out)], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with np.load(out) as f:
        return {k: f[k] for k in f.files}


def bench(arch: str, a, peak: float, probe) -> dict:
    import polyfuse

    work = Path(a.work)
    _export(arch, work, Path(a.venv), a.seq)
    onnx_path, feeds = work / f"{arch}.onnx", work / f"{arch}.npz"
    with np.load(feeds) as f:
        shapes = {k: f[k].shape for k in f.files}
    artifact = work / f"{arch}.polyfuse"
    polyfuse.compile(str(onnx_path), shapes=shapes, output_dir=artifact, overwrite=True)
    flops, _ = matmul_flops(str(onnx_path), shapes)
    models = {e: artifact if e == "polyfuse" else work / f"{arch}{FILE[e]}" for e in a.engines}
    medians = {e: [] for e in a.engines}
    steal = {e: [] for e in a.engines}  # share of the CPUs' time the hypervisor took during each process
    pingpong = []
    outs = {}
    for r in range(a.rounds):
        time.sleep(PAUSE_S)
        pingpong.append(probe())
        for e in a.engines:
            time.sleep(PAUSE_S)
            t0 = _cpu_times()
            res = _run(e, models[e], feeds, a.threads, a.repeat, work / f"{arch}.{e}.out.npz", Path(a.venv))
            t1 = _cpu_times()
            steal[e].append((t1[0] - t0[0]) / max(1, t1[1] - t0[1]) if t0 and t1 else None)
            medians[e].append(float(np.median(res["ms"])))
            outs[e] = [res[k] for k in sorted(k for k in res if k.startswith("out"))]
        phase = "" if pingpong[-1] is None else f" (cross-CPU round trip {pingpong[-1]:.0f} ns)"
        print(f"  {arch}: round {r + 1}/{a.rounds}{phase}: " +
              ", ".join(f"{e} {medians[e][-1]:.2f}" + ("" if steal[e][-1] is None else f" (steal {steal[e][-1]:.1%})")
                        for e in a.engines), flush=True)
    ref = outs.get("onnxruntime")
    rows = {}
    for e in a.engines:
        ms = statistics.median(medians[e])
        err = None
        if ref is not None:
            err = max(float(np.max(np.abs(np.asarray(o, np.float64).reshape(np.shape(w)) - w)))
                      for o, w in zip(outs[e], ref))
        rows[e] = {"ms": ms, "range": [min(medians[e]), max(medians[e])], "gflops": flops / ms / 1e6,
                   "peak_share": flops / ms / 1e6 / peak, "max_abs_err_vs_ort": err, "rounds_ms": medians[e],
                   "rounds_steal": steal[e]}
    pf = rows.get("polyfuse", {}).get("ms")
    for e, row in rows.items():
        row["polyfuse_speedup"] = row["ms"] / pf if pf else None
        if "polyfuse" in medians:  # the same round's processes ran minutes apart at most: same machine phase
            paired = [m / p for m, p in zip(medians[e], medians["polyfuse"])]
            row["paired_speedup"] = {"median": statistics.median(paired), "range": [min(paired), max(paired)]}
            calm = [q for q, s1, s2 in zip(paired, steal[e], steal["polyfuse"]) if (s1 or 0) < CALM and (s2 or 0) < CALM]
            row["calm_rounds"] = len(calm)
            if calm:
                row["calm_speedup"] = {"median": statistics.median(calm), "range": [min(calm), max(calm)]}
    return {"arch": arch, "gflop": flops / 1e9, "engines": rows, "pingpong_ns": pingpong}


def plot(doc: dict, path: Path) -> None:
    """Grouped bars: each engine's latency relative to polyfuse's, per model (higher: slower)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    archs = [r["arch"] for r in doc["results"]]
    engines = list(doc["results"][0]["engines"])
    fig, ax = plt.subplots(figsize=(7, 3.6))
    w = 0.8 / len(engines)
    for i, e in enumerate(engines):
        ax.bar([x + i * w for x in range(len(archs))], [r["engines"][e]["polyfuse_speedup"] for r in doc["results"]],
               w, label=e)
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set_xticks([x + w * (len(engines) - 1) / 2 for x in range(len(archs))], archs)
    ax.set_ylabel("latency / polyfuse's")
    ax.set_title(f"1 x {doc['seq']}, {doc['threads']} threads, fp32; {doc['cpu']}", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", nargs="+", default=list(DEFAULT_ARCHS), choices=DEFAULT_ARCHS)
    p.add_argument("--engines", nargs="+", default=list(ENGINES), choices=ENGINES)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeat", type=int, default=20, help="timed runs per process (default 20)")
    p.add_argument("--rounds", type=int, default=3, help="processes per engine, alternating (default 3)")
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--venv", default=str(HERE / "peers" / ".venv"), help="the peers' environment (peers/install.sh)")
    p.add_argument("--work", default="/tmp/polyfuse-peers", help="exported models and artifacts")
    p.add_argument("--json", default=str(HERE / "results" / "bench_peers.json"))
    p.add_argument("--png", default=str(HERE / "results" / "bench_peers.png"))
    a = p.parse_args(argv)
    if not (Path(a.venv) / "bin" / "python").is_file():
        print(f"no peers environment at {a.venv}: run bash benchmarks/peers/install.sh first", file=sys.stderr)
        return 2
    peak, isa, _ = measured_peak(a.threads)
    probe = pingpong_probe()
    print(f"{cpu_model()}, {a.threads} threads, fp32 peak {peak:.0f} GFLOP/s ({isa}, peak_flops.cpp, this run)")
    results = []
    for arch in a.arch:
        r = bench(arch, a, peak, probe)
        results.append(r)
        print(f"{arch} ({r['gflop']:.2f} GFLOP of MatMul/Gemm), median of {a.rounds} process medians:")
        print(f"  {'engine':<12} {'ms':>9} {'range':>17} {'GFLOP/s':>8} {'peak':>6} {'err vs ort':>10} "
              f"{'polyfuse speedup':>16} {'per round':>16} {'calm rounds':>18}")
        for e, row in r["engines"].items():
            err = "-" if row["max_abs_err_vs_ort"] is None else f"{row['max_abs_err_vs_ort']:.1e}"
            pr = row.get("paired_speedup")
            paired = f"{pr['median']:.2f}x {pr['range'][0]:.2f}-{pr['range'][1]:.2f}" if pr else "-"
            cr = row.get("calm_speedup")
            calm = f"{cr['median']:.2f}x {cr['range'][0]:.2f}-{cr['range'][1]:.2f} ({row['calm_rounds']})" if cr else "-"
            print(f"  {e:<12} {row['ms']:9.3f} {row['range'][0]:8.3f}-{row['range'][1]:<8.3f} {row['gflops']:8.1f} "
                  f"{row['peak_share']:6.1%} {err:>10} {row['polyfuse_speedup']:15.2f}x {paired:>16} {calm:>18}")
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    doc = {"cpu": cpu_model(), "threads": a.threads, "peak_gflops": peak, "isa": isa, "seq": a.seq, "repeat": a.repeat,
           "rounds": a.rounds, "results": results}
    Path(a.json).write_text(json.dumps(doc, indent=2) + "\n")
    plot(doc, Path(a.png))
    print(f"wrote {a.json} and {a.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
