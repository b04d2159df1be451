"""Differential fuzzing: random valid graphs, compiled by polyfuse fused and unfused, against
onnxruntime (:mod:`.oracle`).

    python -m polyfuse.testing.fuzz --graphs 10000 [--seed S] [--batch 40] [--out DIR] [--target T]

Graph ``i`` of a run is ``random_graph(S * 1000000 + i, opset)`` (:mod:`.gen`), so any graph
can be made again from the numbers in a report. Graphs are compiled many at a time (one model
holding a batch side by side); a batch that polyfuse refuses or fails to build is split until
the graphs at fault are found. Each graph whose output differs from onnxruntime's, or that
raises anything but a :class:`~polyfuse.errors.PolyfuseError` (or a BuildError: generated code
that does not compile is a bug), is minimized
(:mod:`.minimize`) and written to ``DIR/<name>/`` as ``model.onnx``, ``feeds.npz`` and
``report.txt``. A PolyfuseError is a refusal, counted by its message, not a failure.
"""
from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

from ..errors import BuildError, PolyfuseError
from .gen import merge, random_graph
from .gen.core import OPSETS, Graph
from .minimize import minimize
from .oracle import compare, reference64, rounding_spread, run_ort

GRAPH_SEED_STRIDE = 1_000_000


@dataclass
class Outcome:
    kind: str  # "ok" | "refused" | "crash" | "mismatch"
    detail: str = ""
    output: str | None = None  # the first output that differs (its name in the graph)


@dataclass
class Failure:
    name: str  # e.g. "seed12_opset17_fused"
    kind: str
    detail: str
    graph: Graph
    fusion: bool
    output: str | None


@dataclass
class Summary:
    graphs: int = 0
    ops: Counter = field(default_factory=Counter)
    refused: Counter = field(default_factory=Counter)
    failures: list = field(default_factory=list)


TARGET = ["host"]  # the target every check compiles for (fuzz(..., target=) and --target set it)


def _compile_run(g: Graph, fusion: bool) -> list[np.ndarray]:
    import polyfuse

    return polyfuse.compile(g.model, target=TARGET[0], threads=2, fusion=fusion).run(None, g.feeds)


def _reference(g: Graph) -> dict:
    try:
        return reference64(g.model, g.feeds)
    except Exception:  # noqa: BLE001 - the float64 tie-breaker is optional
        return {}


class _Spread:
    """:func:`rounding_spread` of a model, computed on first use (only a value that misses both
    onnxruntime's answer and the float64 one needs it), once, from either build's thread."""

    def __init__(self, g: Graph, truth: dict):
        self.g, self.truth, self.lock, self.value = g, truth, threading.Lock(), None

    def __call__(self) -> dict:
        with self.lock:
            if self.value is None:
                try:
                    self.value = rounding_spread(self.g.model, self.g.feeds, self.truth) if self.truth else {}
                except Exception:  # noqa: BLE001 - like the float64 evaluation, optional
                    self.value = {}
            return self.value


def _outcomes(graphs: dict[str, Graph], fusion: bool, expected: dict, truth: dict,
              spread: _Spread) -> dict[str, Outcome]:
    """name -> Outcome for every graph, compiling them merged and splitting on errors."""
    merged = merge(graphs)
    try:
        outs = _compile_run(merged, fusion)
    except Exception as e:  # noqa: BLE001 - which graph raised is found by splitting
        if len(graphs) > 1:
            names = list(graphs)
            half = len(names) // 2
            res = _outcomes({n: graphs[n] for n in names[:half]}, fusion, expected, truth, spread)
            res.update(_outcomes({n: graphs[n] for n in names[half:]}, fusion, expected, truth, spread))
            return res
        (name,) = graphs
        if isinstance(e, PolyfuseError) and not isinstance(e, BuildError):  # generated code must compile
            return {name: Outcome("refused", str(e).splitlines()[0])}
        return {name: Outcome("crash", f"{type(e).__name__}: {e}")}
    res = {n: Outcome("ok") for n in graphs}
    for vi, got in zip(merged.model.graph.output, outs):
        name, output = vi.name.split("_", 1)
        if res[name].kind != "ok":
            continue
        bad = compare(vi.name, got, expected[vi.name], truth.get(vi.name))
        if bad is not None and bad.what.startswith("value differs"):
            bad = compare(vi.name, got, expected[vi.name], truth.get(vi.name), spread().get(vi.name))
        if bad is not None:
            res[name] = Outcome("mismatch", str(bad), output)
    return res


def check(graphs: dict[str, Graph]) -> dict[str, tuple[Outcome, Outcome]]:
    """name -> (fused outcome, unfused outcome). Names must not contain "_"."""
    merged = merge(graphs)
    expected = dict(zip([o.name for o in merged.model.graph.output], run_ort(merged.model, merged.feeds)))
    truth = _reference(merged)
    spread = _Spread(merged, truth)
    with ThreadPoolExecutor(2) as pool:  # the two C++ builds run side by side (the compiler is a process)
        fused, unfused = pool.map(lambda fusion: _outcomes(graphs, fusion, expected, truth, spread), (True, False))
    return {n: (fused[n], unfused[n]) for n in graphs}


def fails_like(kind: str, fusion: bool) -> callable:
    """A predicate for the minimizer: the graph still fails in the same way."""
    def still_fails(g: Graph) -> bool:
        try:
            out = check({"m": g})["m"]
        except Exception:  # noqa: BLE001 - a cut that onnxruntime rejects is not the same failure
            return False
        return out[0 if fusion else 1].kind == kind
    return still_fails


def _run_batch(seed: int, first: int, count: int, opset: int, summary: Summary, log) -> None:
    graphs = {f"g{i}": random_graph(seed * GRAPH_SEED_STRIDE + i, opset) for i in range(first, first + count)}
    for g in graphs.values():
        summary.ops.update(g.ops)
    for name, (fused, unfused) in check(graphs).items():
        summary.graphs += 1
        i = int(name[1:])
        for fusion, out in ((True, fused), (False, unfused)):
            if out.kind == "refused":
                summary.refused[out.detail[:120]] += 1
            elif out.kind != "ok":
                label = f"seed{seed * GRAPH_SEED_STRIDE + i}_opset{opset}_{'fused' if fusion else 'unfused'}"
                log(f"FAIL {label}: {out.kind}: {out.detail[:300]}")
                summary.failures.append(Failure(label, out.kind, out.detail, graphs[name], fusion, out.output))


def save_failure(f: Failure, out_dir: Path, log=print) -> Path:
    """Minimize ``f`` and write ``model.onnx``, ``feeds.npz`` and ``report.txt`` under ``out_dir``."""
    small = minimize(f.graph, fails_like(f.kind, f.fusion), f.output, log)
    d = out_dir / f.name
    d.mkdir(parents=True, exist_ok=True)
    onnx.save(small.model, d / "model.onnx")
    np.savez(d / "feeds.npz", **small.feeds)
    again = check({"m": small})["m"][0 if f.fusion else 1]
    nodes = ", ".join(f"{n.op_type}" for n in small.model.graph.node)
    (d / "report.txt").write_text(f"{f.name}: {f.kind} ({'fused' if f.fusion else 'unfused'})\n"
                                  f"original: {f.detail}\nminimized ({len(small.model.graph.node)} nodes: {nodes}): "
                                  f"{again.kind}: {again.detail}\n")
    return d


def fuzz(graphs: int, seed: int = 0, batch: int = 40, log=print, target: str = "host") -> Summary:
    """Check ``graphs`` random graphs compiled for ``target`` (one whose library loads here:
    host, or android-gpu on this machine's OpenCL device); failures are in the summary, not yet
    minimized."""
    TARGET[0] = target
    summary = Summary()
    t0 = time.perf_counter()
    for j, first in enumerate(range(0, graphs, batch)):
        _run_batch(seed, first, min(batch, graphs - first), OPSETS[j % len(OPSETS)], summary, log)
        log(f"[{summary.graphs}/{graphs}] {len(summary.failures)} failures, {sum(summary.refused.values())} refused, "
            f"{time.perf_counter() - t0:.0f} s")
    return summary


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m polyfuse.testing.fuzz", description=__doc__.split("\n\n")[0])
    p.add_argument("--graphs", type=int, default=1000, help="how many random graphs (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="run seed: graph i is random_graph(seed * 10**6 + i)")
    p.add_argument("--batch", type=int, default=40, help="graphs compiled together (default 40)")
    p.add_argument("--out", default="fuzz-failures", help="folder for minimized failing graphs")
    p.add_argument("--target", default="host", help="host (default) or android-gpu (this machine's OpenCL device)")
    args = p.parse_args(argv)
    os.environ.setdefault("POLYFUSE_ARTIFACT_CACHE", "0")  # every graph is new: caching them only fills the disk
    t0 = time.perf_counter()
    s = fuzz(args.graphs, args.seed, args.batch, target=args.target)
    for f in s.failures:
        print(f"minimizing {f.name} ...")
        print(f"  written to {save_failure(f, Path(args.out), log=lambda m: None)}")
    ops = ", ".join(f"{op} {n}" for op, n in sorted(s.ops.items(), key=lambda x: -x[1]))
    print(f"\n{s.graphs} graphs in {time.perf_counter() - t0:.0f} s: {len(s.failures)} failures "
          f"({sum(f.kind == 'mismatch' for f in s.failures)} mismatches, {sum(f.kind == 'crash' for f in s.failures)} "
          f"crashes), {sum(s.refused.values())} refusals")
    print(f"ops covered ({len(s.ops)}): {ops}")
    for reason, n in s.refused.most_common():
        print(f"  refused {n}x: {reason}")
    return 1 if s.failures else 0


if __name__ == "__main__":
    sys.exit(main())
