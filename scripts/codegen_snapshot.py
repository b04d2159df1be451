"""Write the generated source of a fixed set of models, for every target, into one folder.

Run it before and after a change to code generation and diff the two folders: a refactor must
leave them byte-identical. The set: the bundled tiny BERT, the minimized regression and oracle
graphs under tests/, N random graphs of the fuzzer, and any ONNX files given with --model.

    python3 scripts/codegen_snapshot.py OUT [--fuzz 150] [--model /tmp/models/bert.onnx ...]
"""
from __future__ import annotations

import argparse
import logging
import pathlib

import onnx

from polyfuse import __version__, pipeline
from polyfuse.build.memory import plan_memory
from polyfuse.codegen.model import generate
from polyfuse.targets import TARGETS, get
from polyfuse.testing.gen import random_graph

ROOT = pathlib.Path(__file__).resolve().parent.parent


def models(fuzz: int, extra: list[str]) -> dict:
    out = {"tiny_bert": ROOT / "examples/tiny_bert.onnx"}
    for p in extra:
        out[pathlib.Path(p).stem] = pathlib.Path(p)
    for folder in ("regressions", "oracle_cases"):
        for p in sorted((ROOT / "tests" / folder).glob("*/model.onnx")):
            out[p.parent.name] = p
    for s in range(fuzz):
        out[f"fuzz{s}"] = random_graph(s).model
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--fuzz", type=int, default=150, help="random graphs of the fuzzer (seeds 0..N-1)")
    ap.add_argument("--model", action="append", default=[], help="another ONNX file")
    args = ap.parse_args()
    logging.disable(logging.WARNING)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ms = models(args.fuzz, args.model)
    for name, m in ms.items():
        for t in TARGETS:
            try:
                comp = pipeline.frontend(onnx.load(str(m)) if isinstance(m, pathlib.Path) else m)
                pipeline.kernels(comp, True, t)
                text = generate(comp.lowered, plan_memory(comp.lowered), version=__version__, target=get(t)).text
            except Exception as e:  # a refusal is part of the snapshot too
                text = f"ERROR {type(e).__name__}: {e}\n"
            (out / f"{name}.{t}.cpp").write_text(text)
    print(f"{len(ms)} models x {len(TARGETS)} targets -> {out}")


if __name__ == "__main__":
    main()
