"""polyfuse against LiteRT (XNNPACK), MNN and onnxruntime on the BERT family, each engine alone.

    bash benchmarks/peers/install.sh                  # the peers, in benchmarks/peers/.venv
    python3 benchmarks/bench_peers.py [--arch tiny-bert mobilebert distilbert bert] [--threads 2]

Per model (transformers' default configs, random weights, seed 0, eager attention, 1 x 128):
benchmarks/peers/export.py writes the ONNX (polyfuse, onnxruntime, MNN), the TFLite (litert-torch)
and the MNN file from one PyTorch instance. Every engine is then loaded once, in its own process
(benchmarks/peers/run_engine.py), and the engines time blocks of runs in turn: ``--blocks``
cycles, in each of which every engine runs one block (the same number of runs for all, sized so
the slowest engine's block takes ~``--block-seconds``), the engine that goes first rotating, with
a pause before each block so no engine's spinning workers share the cores with another's, and
``--warmup`` untimed runs at the start of each block (default 1: every engine's first runs after
the pause are slow; measured in docs/development.md).
Printed per engine: the median over blocks of each block's median latency, the range of those,
GFLOP/s (MatMul/Gemm FLOPs of the ONNX graph / latency), the share of the fp32 peak measured by
peak_flops.cpp at the start of the run ("peak") and the median share of each block against the
peak measured at the start of its cycle ("cycle": the same phase of the machine, whose peak moves
~10% between phases), the max abs error against onnxruntime, and polyfuse's speedup
over each peer (peer ms / polyfuse ms), also per cycle: the median, interquartile range and
range of each cycle's peer block / polyfuse block. A cycle's blocks run seconds apart, so each
such ratio compares the engines in one phase of a shared machine; whole processes run minutes
apart (this script's earlier design) put up to 28% of phase noise into each ratio. Each cycle
starts with peak_flops.cpp --pingpong, a cache line's round trip between the two CPUs, printed
as the cycle's phase: on the shared 2-vCPU machines here every engine runs slower in spells where
it reads 325 ns and up instead of ~55. Each block's steal time (the share of the CPUs' time the
hypervisor gave to other guests, /proc/stat) is kept too, and the per-cycle speedup is also given
over the calm cycles only (under 2% steal in both engines' blocks).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_gemm import peak_probe, pingpong_probe  # noqa: E402
from bench_vs_ort import DEFAULT_ARCHS, cpu_model, matmul_flops, measured_peak  # noqa: E402

ENGINES = ("polyfuse", "onnxruntime", "litert", "mnn")
FILE = {"onnxruntime": ".onnx", "litert": ".tflite", "mnn": ".mnn"}
PAUSE_S = 0.5  # before each block; the CPU time idle engines use meanwhile is measured (idle_cpu)
CALM = 0.02  # a cycle is calm for two engines when the hypervisor took under 2% of the CPUs during both


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


class _Server:
    """One engine on one model in its own process (peers/run_engine.py), timing blocks of runs on demand."""

    def __init__(self, engine: str, model: Path, feeds: Path, threads: int, venv: Path):
        python = sys.executable if engine in ("polyfuse", "onnxruntime") else str(venv / "bin" / "python")
        self.engine = engine
        self.p = subprocess.Popen([python, str(HERE / "peers" / "run_engine.py"), engine, str(model), str(feeds),
                                   str(threads)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, text=True)
        self.warm_ms = float(self._reply("@ready")[0])

    def _reply(self, tag: str) -> list[str]:
        for line in self.p.stdout:
            if line.startswith(tag):
                return line.split()[1:]
        raise RuntimeError(f"{self.engine}: run_engine.py exited with code {self.p.wait()}")

    def _send(self, line: str) -> None:
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()

    def run(self, n: int, warmup: int = 0) -> list[float]:
        """n timed runs, after `warmup` untimed ones."""
        self._send(f"run {n} {warmup}")
        return [float(x) for x in self._reply("@ms")]

    def outputs(self, path: Path) -> list[np.ndarray]:
        self._send(f"save {path}")
        self._reply("@saved")
        with np.load(path) as f:
            return [f[k] for k in sorted((k for k in f.files if k.startswith("out")), key=lambda k: int(k[3:]))]

    def close(self) -> None:
        if self.p.poll() is None:
            try:
                self._send("quit")
                self.p.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.p.kill()
                self.p.wait()


def _proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds a process has used so far (Linux /proc), or 0.0."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def _spread(values: list[float]) -> dict:
    q = statistics.quantiles(values, n=4) if len(values) >= 2 else [values[0]] * 3
    return {"median": statistics.median(values), "range": [min(values), max(values)], "iqr": [q[0], q[2]]}


def bench(arch: str, a, peak: float, probe, peak_now) -> dict:
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
    servers = {}
    try:
        for e in a.engines:
            servers[e] = _Server(e, models[e], feeds, a.threads, Path(a.venv))
        # Every engine runs the same number of runs per block, sized so the slowest takes ~--block-seconds.
        runs = max(3, min(2000, round(a.block_seconds * 1e3 / max(s.warm_ms for s in servers.values()))))
        blocks = {e: [] for e in a.engines}  # each block's median ms
        steal = {e: [] for e in a.engines}  # share of the CPUs' time the hypervisor took during each block
        pingpong = []
        cycle_peaks = []  # the fp32 peak measured at the start of each cycle
        idle_cpu = 0.0  # the most, over blocks
        for c in range(a.blocks):
            time.sleep(PAUSE_S)
            pingpong.append(probe())
            cycle_peaks.append(peak_now())
            order = a.engines[c % len(a.engines):] + a.engines[:c % len(a.engines)]  # each engine leads in turn
            for e in order:
                time.sleep(PAUSE_S)
                others = [s.p.pid for o, s in servers.items() if o != e]
                idle0, t0, w0 = sum(map(_proc_cpu_s, others)), _cpu_times(), time.perf_counter()
                ms = servers[e].run(runs, a.warmup)
                t1, w1 = _cpu_times(), time.perf_counter()
                # CPU the waiting engines used during this block (spinning workers), as a share of the cores' time
                idle_cpu = max(idle_cpu, (sum(map(_proc_cpu_s, others)) - idle0) / ((w1 - w0) * (os.cpu_count() or 1)))
                steal[e].append((t1[0] - t0[0]) / max(1, t1[1] - t0[1]) if t0 and t1 else None)
                blocks[e].append(statistics.median(ms))
            parts = ([] if pingpong[-1] is None else [f"cross-CPU round trip {pingpong[-1]:.0f} ns"]) + \
                ([] if cycle_peaks[-1] is None else [f"peak {cycle_peaks[-1]:.0f} GFLOP/s"])
            phase = f" ({', '.join(parts)})" if parts else ""
            print(f"  {arch}: cycle {c + 1}/{a.blocks}{phase}: " +
                  ", ".join(f"{e} {blocks[e][-1]:.2f}" + ("" if steal[e][-1] is None else f" (steal {steal[e][-1]:.1%})")
                            for e in a.engines), flush=True)
        outs = {e: s.outputs(work / f"{arch}.{e}.out.npz") for e, s in servers.items()}
    finally:
        for s in servers.values():
            s.close()
    ref = outs.get("onnxruntime")
    rows = {}
    for e in a.engines:
        ms = statistics.median(blocks[e])
        err = None
        if ref is not None:
            err = max(float(np.max(np.abs(np.asarray(o, np.float64).reshape(np.shape(w)) - w)))
                      for o, w in zip(outs[e], ref))
        rows[e] = {"ms": ms, "range": [min(blocks[e]), max(blocks[e])], "gflops": flops / ms / 1e6,
                   "peak_share": flops / ms / 1e6 / peak, "max_abs_err_vs_ort": err, "blocks_ms": blocks[e],
                   "blocks_steal": steal[e]}
        shares = [flops / m / 1e6 / q for m, q in zip(blocks[e], cycle_peaks) if q]
        if shares:  # each block against the peak measured seconds before it, in the same phase
            rows[e]["cycle_peak_share"] = _spread(shares)
    pf = rows.get("polyfuse", {}).get("ms")
    for e, row in rows.items():
        row["polyfuse_speedup"] = row["ms"] / pf if pf else None
        if "polyfuse" in blocks:  # blocks of one cycle ran seconds apart: the same phase of the machine
            paired = [m / p for m, p in zip(blocks[e], blocks["polyfuse"])]
            row["paired_speedup"] = _spread(paired)
            calm = [q for q, s1, s2 in zip(paired, steal[e], steal["polyfuse"]) if (s1 or 0) < CALM and (s2 or 0) < CALM]
            row["calm_cycles"] = len(calm)
            if calm:
                row["calm_speedup"] = _spread(calm)
    if idle_cpu > 0.01:
        print(f"  warning: engines waiting their turn used up to {idle_cpu:.1%} of the cores during another's block",
              flush=True)
    return {"arch": arch, "gflop": flops / 1e9, "runs_per_block": runs, "engines": rows, "pingpong_ns": pingpong,
            "cycle_peak_gflops": cycle_peaks, "idle_engines_cpu_max": idle_cpu}


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
        rows = [r["engines"][e] for r in doc["results"]]
        # the bar: the ratio of the medians; the whisker: the interquartile range of the per-cycle ratios
        iqr = [row.get("paired_speedup", {}).get("iqr") for row in rows]
        err = None if None in iqr else [[max(0.0, row["polyfuse_speedup"] - q[0]) for row, q in zip(rows, iqr)],
                                        [max(0.0, q[1] - row["polyfuse_speedup"]) for row, q in zip(rows, iqr)]]
        ax.bar([x + i * w for x in range(len(archs))], [row["polyfuse_speedup"] for row in rows], w, label=e,
               yerr=err, capsize=2)
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set_xticks([x + w * (len(engines) - 1) / 2 for x in range(len(archs))], archs)
    ax.set_ylabel("latency / polyfuse's (whiskers: IQR per cycle)", fontsize=8)
    ax.set_title(f"1 x {doc['seq']}, {doc['threads']} threads, fp32; {doc['cpu']}", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", nargs="+", default=list(DEFAULT_ARCHS), choices=DEFAULT_ARCHS)
    p.add_argument("--engines", nargs="+", default=list(ENGINES), choices=ENGINES)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--blocks", type=int, default=15, help="cycles of one block per engine (default 15)")
    p.add_argument("--block-seconds", type=float, default=0.6, help="the slowest engine's block (default 0.6 s)")
    p.add_argument("--warmup", type=int, default=1,
                   help="untimed runs at the start of every block, after its pause (default 1)")
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
    probe, peak_now = pingpong_probe(), peak_probe(a.threads)
    print(f"{cpu_model()}, {a.threads} threads, fp32 peak {peak:.0f} GFLOP/s ({isa}, peak_flops.cpp, this run)")
    results = []
    for arch in a.arch:
        r = bench(arch, a, peak, probe, peak_now)
        results.append(r)
        print(f"{arch} ({r['gflop']:.2f} GFLOP of MatMul/Gemm), {a.blocks} blocks of {r['runs_per_block']} runs each:")
        print(f"  {'engine':<12} {'ms':>9} {'range':>17} {'GFLOP/s':>8} {'peak':>6} {'cycle':>6} {'err vs ort':>10} "
              f"{'speedup':>8} {'per cycle: median [IQR] range':>32} {'calm cycles':>14}")
        for e, row in r["engines"].items():
            err = "-" if row["max_abs_err_vs_ort"] is None else f"{row['max_abs_err_vs_ort']:.1e}"
            pr, cr = row.get("paired_speedup"), row.get("calm_speedup")
            paired = (f"{pr['median']:.3f}x [{pr['iqr'][0]:.3f}-{pr['iqr'][1]:.3f}] {pr['range'][0]:.2f}-{pr['range'][1]:.2f}"
                      if pr else "-")
            calm = f"{cr['median']:.3f}x ({row['calm_cycles']})" if cr else "-"
            cyc = f"{row['cycle_peak_share']['median']:6.1%}" if "cycle_peak_share" in row else f"{'-':>6}"
            print(f"  {e:<12} {row['ms']:9.3f} {row['range'][0]:8.3f}-{row['range'][1]:<8.3f} {row['gflops']:8.1f} "
                  f"{row['peak_share']:6.1%} {cyc} {err:>10} {row['polyfuse_speedup']:7.3f}x {paired:>32} {calm:>14}")
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    doc = {"cpu": cpu_model(), "threads": a.threads, "peak_gflops": peak, "isa": isa, "seq": a.seq,
           "blocks": a.blocks, "block_seconds": a.block_seconds, "warmup": a.warmup, "results": results}
    Path(a.json).write_text(json.dumps(doc, indent=2) + "\n")
    plot(doc, Path(a.png))
    print(f"wrote {a.json} and {a.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
