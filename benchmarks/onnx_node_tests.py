"""Count onnx's node conformance tests through polyfuse.backend, for the ops polyfuse supports.

    python benchmarks/onnx_node_tests.py [-v] [-k SUBSTRING] [--write tests/onnx_node_refusals.txt]

Prints the number of cases in scope, passed, wrong (must be 0), refused by reason category
(dtype, shape input, opset, other, bug = a BuildError), and crashed (a non-PolyfuseError).
-v lists every case that did not pass; --write records the refusals as tests/test_backend.py's
expected xfails. Exits 1 if any case is wrong or crashed.
"""
from __future__ import annotations

import argparse
import collections
import logging
import sys
import time

from polyfuse.testing.onnx_node_tests import CATEGORIES, run_case, supported_cases, write_refusals


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-v", "--verbose", action="store_true", help="list every case that did not pass")
    ap.add_argument("-k", default="", help="only cases whose name contains this")
    ap.add_argument("--write", metavar="FILE", help="write the refusals to FILE (tests/onnx_node_refusals.txt)")
    args = ap.parse_args(argv)
    logging.getLogger("polyfuse").setLevel(logging.ERROR)  # not each case's compile notes

    t0 = time.perf_counter()
    cases = [c for c in supported_cases() if args.k in c.name]
    outcomes = []
    for c in cases:
        outcomes.append(o := run_case(c))
        if args.verbose and o.status != "pass":
            print(f"{o.status:8} {o.category:12} {o.name}: {o.message}", flush=True)
    status = collections.Counter(o.status for o in outcomes)
    refused = collections.Counter(o.category for o in outcomes if o.status == "refused")
    n = len(outcomes)
    print(f"onnx node tests with supported ops: {n}  ({time.perf_counter() - t0:.0f} s)")
    print(f"  passed  {status['pass']:4}  ({100 * status['pass'] / max(n, 1):.1f}%)")
    print(f"  wrong   {status['wrong']:4}")
    print(f"  refused {status['refused']:4}  " + ", ".join(f"{c}: {refused[c]}" for c in CATEGORIES))
    print(f"  crashed {status['crash']:4}")
    if args.write:
        write_refusals(args.write, outcomes)
        print(f"refusals written to {args.write}")
    return 1 if status["wrong"] or status["crash"] else 0


if __name__ == "__main__":
    sys.exit(main())
