"""Export one BERT-family model for every engine of bench_peers.py, from one PyTorch instance.

Runs in the peers' virtual environment (benchmarks/peers/install.sh), with polyfuse's src/ on
PYTHONPATH for the exporter (polyfuse.testing.transformers_export: random weights from a config,
seed 0, nothing downloaded):

    ARCH.onnx    eager attention, static 1 x SEQ, opset 17 (polyfuse, onnxruntime; MNN's
                 converter rejects the IsNaN of the default attention, so all three take this)
    ARCH.tflite  litert-torch's conversion of the same module (LiteRT / XNNPACK)
    ARCH.mnn     mnnconvert of ARCH.onnx
    ARCH.npz     the inputs (transformers_export.example_inputs)
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("arch")
    p.add_argument("out", type=Path)
    p.add_argument("--seq", type=int, default=128)
    a = p.parse_args(argv)

    import torch
    from polyfuse.testing import transformers_export as tx

    a.out.mkdir(parents=True, exist_ok=True)
    onnx_path, tfl, mnn = (a.out / f"{a.arch}{ext}" for ext in (".onnx", ".tflite", ".mnn"))
    tx.export_onnx(a.arch, "default", onnx_path, seq=a.seq, dynamic=False, attn_implementation="eager")
    feeds = tx.example_inputs(a.arch, "default", seq=a.seq)
    np.savez(a.out / f"{a.arch}.npz", **feeds)

    import litert_torch

    wrapper = tx._make_wrapper(tx.build_model(a.arch, "default", 0, attn_implementation="eager"), a.arch)
    args = tuple(torch.from_numpy(feeds[n]) for n in tx.input_names(a.arch))
    litert_torch.convert(wrapper, args).export(str(tfl))

    # MNN's `mnnconvert` wrapper sends usage logs to Alibaba's servers and, lacking their SDK,
    # runs `pip install` with whatever pip is first on PATH (it replaced this machine's protobuf
    # once). Its converter proper is the _tools extension, called here without the wrapper.
    code = "import sys, _tools; _tools.mnnconvert(sys.argv)"
    subprocess.run([sys.executable, "-c", code, "-f", "ONNX", "--modelFile", str(onnx_path), "--MNNModel", str(mnn),
                    "--bizCode", "biz"], check=True, stdout=subprocess.DEVNULL)
    print(f"exported {a.arch}: {onnx_path.name} {tfl.name} {mnn.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
