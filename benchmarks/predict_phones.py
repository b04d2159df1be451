"""Predicted latency of the BERT family on phones, from the cost model (no phone, no build).

    python3 benchmarks/predict_phones.py [--arch tiny-bert mobilebert distilbert bert] [--seq 128]
                                         [--profile sd865 sd855 kirin980]

Each model (transformers' default config, random weights; torchscript exporter, opset 17; batch
1 x --seq) goes through polyfuse.estimate for android-cpu and android-gpu with each shipped phone
profile. The profiles come from public specs and are uncalibrated: the numbers say how fusion and
the device's peak, bandwidth and launch cost shape the time, not what a phone measures. Prints a
markdown table and keeps it in benchmarks/results/predict_phones.json.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import polyfuse
from polyfuse.testing.transformers_export import ARCHS, example_inputs, export_onnx

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", nargs="+", default=["tiny-bert", "mobilebert", "distilbert", "bert"], choices=ARCHS)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--profile", nargs="+", default=["sd865", "sd855", "kirin980"])
    ap.add_argument("--json", type=Path, default=RESULTS / "predict_phones.json")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for arch in args.arch:
            path = Path(tmp) / f"{arch}.onnx"
            export_onnx(arch, "default", path, exporter="torchscript", opset=17, seq=args.seq)
            shapes = {k: v.shape for k, v in example_inputs(arch, "default", 1, args.seq).items()}
            for profile in args.profile:
                for target in ("android-cpu", "android-gpu"):
                    t0 = time.perf_counter()
                    est = polyfuse.estimate(path, shapes=shapes, target=target, profile=profile)
                    j = est.to_json()
                    rows.append({"arch": arch, "seq": args.seq, "profile": profile, "target": target,
                                 "device": j["profile"]["device"], "calibrated": j["profile"]["calibrated"],
                                 "total_ms": j["total_ms"], "launches": j["launches"], "by_bound": j["by_bound"],
                                 "estimate_s": round(time.perf_counter() - t0, 2)})
    print(f"| model (1 x {args.seq}) | profile | android-cpu ms | android-gpu ms | launches |")
    print("|---|---|---|---|---|")
    for arch in args.arch:
        for profile in args.profile:
            r = {x["target"]: x for x in rows if x["arch"] == arch and x["profile"] == profile}
            print(f"| {arch} | {profile} | {r['android-cpu']['total_ms']:.2f} | {r['android-gpu']['total_ms']:.2f} | "
                  f"{r['android-gpu']['launches']} |")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"uncalibrated": True, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
