#!/usr/bin/env python
"""Write examples/tiny_bert.onnx and examples/tiny_bert_inputs.npz.

A very small random-weight BERT (2 layers, hidden 32, 2 heads, intermediate
64, vocab 256, 128 positions), exported like a user would: TorchScript
exporter (``torch.onnx.export(..., dynamo=False)``), opset 17, dynamic
``batch`` / ``sequence`` axes, seed 0, transformers' default attention
(SDPA).  The .npz holds example inputs at batch 1, sequence 16 (int64
``input_ids``, ``attention_mask`` with 4 trailing padding positions,
``token_type_ids``), keyed by graph input name.

Deterministic: re-running it produces byte-identical files with the same
torch / transformers versions.

Usage:  python examples/make_tiny_bert.py [--out-dir DIR] [--check]
"""

from __future__ import annotations

import argparse
import importlib.util
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
SRC = HERE.parent / "src"
if importlib.util.find_spec("polyfuse") is None and SRC.is_dir():
    sys.path.insert(0, str(SRC))

import numpy as np  # noqa: E402

from polyfuse.testing import transformers_export as te  # noqa: E402

ARCH = "bert"
SEED = 0
OPSET = 17
EXAMPLE_BATCH = 1
EXAMPLE_SEQ = 16


def tiny_bert_config():
    import transformers

    return transformers.BertConfig(
        vocab_size=256,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        type_vocab_size=2,
    )


def make(out_dir: pathlib.Path = HERE) -> tuple[pathlib.Path, pathlib.Path]:
    out_dir = pathlib.Path(out_dir)
    cfg = tiny_bert_config()
    onnx_path = te.export_onnx(
        ARCH,
        "small",  # ignored for the graph: `config` replaces it
        out_dir / "tiny_bert.onnx",
        exporter="torchscript",
        opset=OPSET,
        batch=EXAMPLE_BATCH,
        seq=EXAMPLE_SEQ,
        dynamic=True,
        seed=SEED,
        config=cfg,
    )
    inputs = te.example_inputs(ARCH, "small", EXAMPLE_BATCH, EXAMPLE_SEQ, seed=SEED, config=cfg)
    npz_path = out_dir / "tiny_bert_inputs.npz"
    # np.savez is deterministic (fixed zip timestamps), savez_compressed too.
    np.savez(npz_path, **inputs)
    return onnx_path, npz_path


def reference(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Torch eager outputs of the same model (for checks)."""
    return te.reference_outputs(ARCH, "small", inputs, seed=SEED, config=tiny_bert_config())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out-dir", type=pathlib.Path, default=HERE)
    ap.add_argument("--check", action="store_true", help="run with onnxruntime and compare to torch")
    args = ap.parse_args(argv)
    onnx_path, npz_path = make(args.out_dir)
    print(f"wrote {onnx_path} ({onnx_path.stat().st_size} bytes)")
    print(f"wrote {npz_path} ({npz_path.stat().st_size} bytes)")
    if args.check:
        import onnxruntime as ort

        inputs = dict(np.load(npz_path))
        sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
        got = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, inputs)))
        ref = reference(inputs)
        err = max(float(np.abs(got[k] - ref[k]).max()) for k in ref)
        print(f"max abs error vs torch eager: {err:.3g}")
        if err > 1e-4:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
