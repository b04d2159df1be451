"""Serve one engine on one model for bench_peers.py: load it once, then time blocks of runs on demand.

    python run_engine.py ENGINE MODEL FEEDS.npz THREADS

ENGINE: polyfuse (an artifact directory), onnxruntime (.onnx), litert (.tflite, XNNPACK),
mnn (.mnn). After loading and two untimed runs it prints ``@ready MS`` (the second run's time),
then answers commands read from stdin, one per line:

    run N       N timed runs          -> @ms T1 ... TN   (milliseconds)
    save PATH   writes the last outputs to PATH (.npz: out0, out1... in the ONNX model's order) -> @saved
    quit

Replies start with ``@`` so that anything an engine's library prints on stdout is told apart.
Between commands the process only waits on stdin: bench_peers.py runs the engines' blocks in
turn, with pauses, so no engine's spinning workers share the cores with another's.
"""
from __future__ import annotations

import sys
import time

import numpy as np


def _polyfuse(model, feeds, threads):
    import polyfuse

    m = polyfuse.load(model, threads)
    return lambda: m.run(None, feeds)


def _onnxruntime(model, feeds, threads):
    from polyfuse.bench import ort_session  # the options polyfuse's own bench uses

    s = ort_session(model, threads)
    return lambda: s.run(None, feeds)


def _litert(model, feeds, threads):
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=model, num_threads=threads)
    it.allocate_tensors()
    ins = it.get_input_details()  # the converted module's positional inputs, in the ONNX order
    outs = sorted(it.get_output_details(), key=lambda d: -len(d["shape"]))  # last_hidden_state, then pooled
    arrays = [a.astype(d["dtype"]) for a, d in zip(feeds.values(), sorted(ins, key=lambda d: d["index"]))]

    def run():
        for a, d in zip(arrays, sorted(ins, key=lambda d: d["index"])):
            it.set_tensor(d["index"], a)
        it.invoke()
        return [it.get_tensor(d["index"]) for d in outs]
    return run


def _mnn(model, feeds, threads):
    import MNN.expr as F
    import MNN.nn as nn

    rt = nn.create_runtime_manager(({"backend": "CPU", "numThread": threads, "precision": "high"},))
    names = list(feeds)
    net = nn.load_module_from_file(model, names, [], runtime_manager=rt)
    inputs = [F.const(a.astype(np.int32).flatten().tolist(), list(a.shape), F.NCHW, F.int) for a in feeds.values()]

    def run():
        outs = net.onForward(inputs)
        return [np.array(o.read()) for o in outs]
    return run


def _timed(run):
    t = time.perf_counter()
    outs = run()
    return (time.perf_counter() - t) * 1e3, outs


def main(engine, model, feeds_path, threads) -> int:
    with np.load(feeds_path) as f:
        feeds = {k: f[k] for k in f.files}
    run = {"polyfuse": _polyfuse, "onnxruntime": _onnxruntime, "litert": _litert, "mnn": _mnn}[engine](
        model, feeds, int(threads))
    run()
    ms, outs = _timed(run)
    print(f"@ready {ms:.4f}", flush=True)
    for line in sys.stdin:
        cmd, _, arg = line.strip().partition(" ")
        if cmd == "run":  # run N [W]: W untimed runs first, then N timed
            n, _, w = arg.partition(" ")
            for _ in range(int(w or 0)):
                run()
            times = []
            for _ in range(int(n)):
                ms, outs = _timed(run)
                times.append(ms)
            print("@ms " + " ".join(f"{t:.4f}" for t in times), flush=True)
        elif cmd == "save":
            np.savez(arg, **{f"out{i}": np.asarray(o) for i, o in enumerate(outs)})
            print("@saved", flush=True)
        elif cmd == "quit":
            break
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
