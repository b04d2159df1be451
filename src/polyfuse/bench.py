"""``polyfuse bench``: polyfuse and onnxruntime in one process, alternating; medians and ratio."""
from __future__ import annotations

import os
import statistics
import threading
import time

import numpy as np

from .errors import InputError


def sample_inputs(inputs) -> dict:
    """Deterministic values for ``inputs`` (each with a name, dtype and shape: a model's inputs, or a
    graph's input Values), valid for any model: ones for integer inputs, normal floats otherwise."""
    rng = np.random.default_rng(0)
    feeds = {}
    for i in inputs:
        if np.issubdtype(i.dtype, np.floating):
            feeds[i.name] = rng.standard_normal(i.shape).astype(i.dtype)
        else:
            feeds[i.name] = np.ones(i.shape, i.dtype)
    return feeds


def ort_session(path, threads: int):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


SETTLE_S = 0.05  # least pause before each timed run
SETTLE_MAX_S = 0.5  # most time to wait, after that pause, for the process's other threads to stop


def _other_threads_running() -> bool:
    """Whether a thread of this process other than the caller is running or runnable (Linux)."""
    me = str(threading.get_native_id())
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return False
    for tid in tids:
        if tid == me:
            continue
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue  # the thread has exited
        if state == "R":
            return True
    return False


def settle(least: float = SETTLE_S, most: float = SETTLE_MAX_S) -> float:
    """Pause at least ``least`` seconds, then until no other thread of the process is running
    (at most ``most`` seconds more); returns the seconds waited.

    Runtimes keep their worker threads spinning for a while after a run, and the next runtime
    measured would share the cores with them (MobileBERT, 2 cores: polyfuse 111 ms right after
    onnxruntime, 62 ms after a 50 ms pause). onnxruntime 1.32's intra-op worker spins 56-60 ms
    after a run of tiny BERT on this machine, longer than the 50 ms pause that used to be all,
    so the run after it shared a core with that worker for its first few milliseconds."""
    t0 = time.perf_counter()
    time.sleep(least)
    deadline, idle_polls = t0 + least + most, 0
    while idle_polls < 2 and time.perf_counter() < deadline:  # two polls in a row, 1 ms apart
        idle_polls = 0 if _other_threads_running() else idle_polls + 1
        if idle_polls < 2:
            time.sleep(0.001)
    return time.perf_counter() - t0


def time_alternating(fns: dict, repeat: int, warmup: int = 3, settle_s: float = SETTLE_S) -> dict:
    """Run each callable ``warmup`` times, then ``repeat`` rounds alternating; seconds per run.

    Before each timed run the process settles (``settle``: at least ``settle_s`` seconds, then
    until the other runtime's threads have stopped spinning)."""
    for f in fns.values():
        for _ in range(warmup):
            f()
    times = {k: [] for k in fns}
    for _ in range(repeat):
        for k, f in fns.items():
            settle(settle_s)
            t0 = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t0)
    return times


def bench_model(path, shapes=None, threads=None, repeat: int = 20, vs: str | None = None,
                target: str = "host", precision: str = "fp32") -> str:
    from .api import compile as pf_compile
    from .runtime.model import check_threads

    if repeat < 1:
        raise InputError(f"repeat must be >= 1, got {repeat}")
    threads = check_threads(threads) or os.cpu_count() or 1
    model = pf_compile(path, target, shapes=shapes, threads=threads, precision=precision)
    feeds = sample_inputs(model.inputs)
    fns = {"polyfuse": lambda: model.run(None, feeds)}
    if vs == "onnxruntime":
        sess = ort_session(path, threads)
        fns["onnxruntime"] = lambda: sess.run(None, feeds)
    times = time_alternating(fns, repeat)
    med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    ins = ", ".join(f"{i.name}{list(i.shape)}" for i in model.inputs)
    lines = [f"{path} ({ins}), target {model.manifest.get('target')} ({precision}), {threads} threads, "
             f"median of {repeat}:"]
    lines += [f"  {k:12s} {v:9.3f} ms" for k, v in med.items()]
    if vs == "onnxruntime":
        ours, ref = model.run(None, feeds), sess.run(None, feeds)
        err = max(float(np.max(np.abs(a.astype(np.float64) - b))) if a.size else 0.0 for a, b in zip(ours, ref))
        lines.append(f"  speedup      {med['onnxruntime'] / med['polyfuse']:9.2f}x  (onnxruntime / polyfuse)")
        lines.append(f"  max abs error vs onnxruntime: {err:.3g}")
    return "\n".join(lines)


def bench_on_device(path, target: str, device: str, shapes=None, threads=None, repeat: int = 20,
                    vs: str | None = None, precision: str = "fp32") -> str:
    """Latency of ``path`` compiled for ``target`` and timed by its own pf_run (``--bench``) on
    ``device``; with ``vs="onnxruntime"``, its outputs are checked against onnxruntime here
    (no speedup: the two run on different machines)."""
    from .api import compile as pf_compile
    from .runtime.model import check_threads

    if repeat < 1:
        raise InputError(f"repeat must be >= 1, got {repeat}")
    threads = check_threads(threads)
    model = pf_compile(path, target, shapes=shapes, threads=threads, device=device, precision=precision)
    feeds = sample_inputs(model.inputs)
    median, low = model.latency(feeds, repeat)
    lines = [f"{path} ({', '.join(f'{i.name}{list(i.shape)}' for i in model.inputs)}), target {target} on {device}, "
             f"{threads or 'all'} threads, pf_run --bench {repeat}:",
             f"  polyfuse     median {median:9.3f} ms, min {low:9.3f} ms"]
    if device == "qemu":
        lines.append("  (under qemu: emulated, so this says nothing about a phone's speed)")
    if vs == "onnxruntime":
        ours, ref = model.run(None, feeds), ort_session(path, threads or os.cpu_count() or 1).run(None, feeds)
        err = max(float(np.max(np.abs(a.astype(np.float64) - b))) if a.size else 0.0 for a, b in zip(ours, ref))
        lines.append(f"  max abs error vs onnxruntime (on this machine): {err:.3g}")
    return "\n".join(lines)


def profile_model(path, shapes=None, threads=None, repeat: int = 20, target: str = "host", precision: str = "fp32",
                  device_profile=None, as_json: bool = False, top: int = 15, device: str | None = None) -> str:
    """``bench --profile``: every launch's time, measured by the artifact's pf_run with
    PF_PROFILE=1 (here, or on ``device``: qemu, adb[:SERIAL]), next to the cost model's
    prediction (cost/profiler.py)."""
    import json

    from .api import compile as pf_compile
    from .cost import estimate
    from .cost.profiler import compare, measure, table
    from .runtime.model import check_threads

    if repeat < 1:
        raise InputError(f"repeat must be >= 1, got {repeat}")
    threads = check_threads(threads) or (None if device else os.cpu_count() or 1)  # a phone's: all its cores
    model = pf_compile(path, target, shapes=shapes, threads=threads, precision=precision, device=device)
    measured = measure(model.directory, sample_inputs(model.inputs), repeat, threads, device=device)
    est = estimate(path, shapes=shapes, target=target, profile=device_profile, precision=precision)
    c = compare(est, measured)
    c["threads"] = threads
    if measured.device:
        c["device"] = measured.device
    return json.dumps(c, indent=1) if as_json else table(c, top)
