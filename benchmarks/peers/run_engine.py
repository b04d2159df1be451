"""Time one engine on one model, alone in this process (bench_peers.py runs one per engine).

    python run_engine.py ENGINE MODEL FEEDS.npz THREADS REPEAT OUT.npz

ENGINE: polyfuse (an artifact directory), onnxruntime (.onnx), litert (.tflite, XNNPACK),
mnn (.mnn). Writes OUT.npz: ``ms`` (each timed run) and ``out0``, ``out1``... (the outputs, in
the ONNX model's order), and prints the median. Two untimed runs come first.
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


def main(engine, model, feeds_path, threads, repeat, out_path) -> int:
    with np.load(feeds_path) as f:
        feeds = {k: f[k] for k in f.files}
    run = {"polyfuse": _polyfuse, "onnxruntime": _onnxruntime, "litert": _litert, "mnn": _mnn}[engine](
        model, feeds, int(threads))
    for _ in range(2):
        outs = run()
    ms = []
    for _ in range(int(repeat)):
        t = time.perf_counter()
        outs = run()
        ms.append((time.perf_counter() - t) * 1e3)
    np.savez(out_path, ms=np.array(ms), **{f"out{i}": np.asarray(o) for i, o in enumerate(outs)})
    print(f"{engine}: median {np.median(ms):.3f} ms over {repeat}")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
