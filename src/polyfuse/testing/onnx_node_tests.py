"""onnx's node conformance tests as polyfuse runs them (tests/test_backend.py and
benchmarks/onnx_node_tests.py).

In scope are the node tests whose every node is a default-domain op in
``polyfuse.ops.reference.SUPPORTED_OPS``. :func:`run_case` runs one through ``polyfuse.backend``
exactly as onnx's runner does and says how it went:

- ``pass``: every output has the expected shape, dtype and values (the case's own rtol/atol);
- ``wrong``: polyfuse gave an answer and it is wrong (never acceptable);
- ``refused``: polyfuse raised a PolyfuseError; :func:`refusal_category` says why, for reports;
- ``crash``: any other exception (a polyfuse bug: errors must be PolyfuseErrors).

The expected refusals are kept in ``tests/onnx_node_refusals.txt`` (one ``name<TAB>category<TAB>
message`` per line, written by ``benchmarks/onnx_node_tests.py --write``).
"""
from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from ..errors import BuildError, PolyfuseError
from ..ops.reference import SUPPORTED_OPS

_DEFAULT_DOMAINS = ("", "ai.onnx")

# Why a case was refused, from the error's message: for reports only, never for pass/fail.
# First match wins; "bug" is a BuildError (the C++ compiler refused generated code).
_CATEGORIES = (
    ("dtype", re.compile(r"element type|dtype")),
    ("shape input", re.compile(r"decides the output shape|must be a compile-time constant")),
    ("opset", re.compile(r"opset \d+ is older")),
)
CATEGORIES = ("dtype", "shape input", "opset", "other", "bug")


def supported_cases() -> list:
    """onnx's node test cases (onnx.backend.test.case.test_case.TestCase) in scope, by name."""
    from onnx.backend.test.loader import load_model_tests

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")  # generating the cases warns about overflowing casts
        cases = load_model_tests(kind="node")
    return sorted((c for c in cases if all(n.domain in _DEFAULT_DOMAINS and n.op_type in SUPPORTED_OPS
                                           for n in c.model.graph.node)), key=lambda c: c.name)


def refusal_category(error: PolyfuseError) -> str:
    if isinstance(error, BuildError):
        return "bug"
    text = str(error)
    return next((cat for cat, pattern in _CATEGORIES if pattern.search(text)), "other")


@dataclass
class Outcome:
    name: str
    status: str  # pass | wrong | refused | crash
    category: str = ""  # for refusals: one of CATEGORIES
    message: str = ""


def _array(t) -> np.ndarray:
    return onnx.numpy_helper.to_array(t) if isinstance(t, onnx.TensorProto) else np.asarray(t)


def run_case(case, backend=None) -> Outcome:
    """Prepare and run ``case`` through ``backend`` (default polyfuse.backend), compare like onnx's runner."""
    from onnx.backend.test.runner import Runner

    if backend is None:
        from .. import backend
    try:
        rep = backend.prepare(case.model, "CPU")
        for inputs, expected in case.data_sets:
            outputs = rep.run([_array(i) for i in inputs])
            Runner.assert_similar_outputs([_array(e) for e in expected], outputs, rtol=case.rtol, atol=case.atol)
    except PolyfuseError as e:
        return Outcome(case.name, "refused", refusal_category(e), first_line(e))
    except AssertionError as e:
        return Outcome(case.name, "wrong", message=" ".join(str(e).split())[:300])
    except Exception as e:  # noqa: BLE001  (reported, and a test failure)
        return Outcome(case.name, "crash", message=f"{type(e).__name__}: {first_line(e)}")
    return Outcome(case.name, "pass")


def first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0][:240] if lines else type(e).__name__


def read_refusals(path: Path) -> dict[str, tuple[str, str]]:
    """name -> (category, message) from a refusals file; blank lines and # comments skipped."""
    out = {}
    for line in Path(path).read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, category, message = (line.split("\t") + ["", ""])[:3]
            out[name] = (category, message)
    return out


def write_refusals(path: Path, outcomes: list[Outcome]) -> None:
    lines = ["# onnx node tests polyfuse refuses (expected xfail in tests/test_backend.py).",
             "# Written by: python benchmarks/onnx_node_tests.py --write; name<TAB>category<TAB>message"]
    paths = re.compile(r"/(?:[\w.+-]+/)+[\w.+-]*")  # temporary files differ from run to run
    lines += [f"{o.name}\t{o.category}\t{paths.sub('<path>', o.message)}" for o in outcomes if o.status == "refused"]
    Path(path).write_text("\n".join(lines) + "\n")
