"""Structural checks of an ONNX model before import, each failure one PolyfuseError naming what.

- operators: every node in the default domain with an op polyfuse compiles; anything else is
  listed at once by domain and op type with its nodes (UnsupportedError), with a word on the
  domains users meet most (ai.onnx.ml, the training domains);
- names: graph inputs and outputs unique, no output that merely repeats a graph input;
- nodes: input/output counts and required attributes as the operator's ONNX schema at the
  model's opset says (ModelError naming the node).

Which values exist, and that each is produced once, is Graph.verify's (ir/graph.py).
"""
from __future__ import annotations

from collections import Counter, defaultdict

import onnx

from ..errors import ModelError, UnsupportedError
from ..ops.reference import SUPPORTED_OPS

DEFAULT_DOMAINS = ("", "ai.onnx")
_DOMAIN_NOTES = {
    "ai.onnx.ml": "classical machine-learning operators (scikit-learn style); polyfuse compiles neural-network "
                  "graphs of the default ai.onnx domain only",
    "ai.onnx.training": "training operators; polyfuse compiles inference graphs only",
    "ai.onnx.preview.training": "training operators; polyfuse compiles inference graphs only",
}


def check_operators(proto: onnx.ModelProto, opset: int | None, where: str) -> None:
    bad: dict[tuple[str, str], list[str]] = defaultdict(list)
    for i, n in enumerate(proto.graph.node):
        if n.domain not in DEFAULT_DOMAINS or n.op_type not in SUPPORTED_OPS:
            bad[(n.domain or "ai.onnx", n.op_type)].append(n.name or f"#{i}")
    if not bad:
        return
    version = f"model opset {opset}" if opset is not None else "the model declares no ai.onnx opset"
    lines = [f"{where}: {len(bad)} unsupported operator type(s) ({version}):"]
    for (dom, op), names in sorted(bad.items()):
        shown = ", ".join(names[:8]) + (f", ... ({len(names)} nodes)" if len(names) > 8 else "")
        lines.append(f"  {dom}::{op}  nodes: {shown}")
    for dom in sorted({d for d, _ in bad} & set(_DOMAIN_NOTES)):
        lines.append(f"  ({dom}: {_DOMAIN_NOTES[dom]})")
    raise UnsupportedError("\n".join(lines))


def check_names(proto: onnx.ModelProto, where: str) -> None:
    g = proto.graph
    for kind, names in (("input", [v.name for v in g.input]), ("output", [v.name for v in g.output])):
        twice = sorted(n for n, c in Counter(names).items() if c > 1)
        if twice:
            raise ModelError(f"{where}: graph {kind}(s) {twice} listed more than once")
        if "" in names:
            raise ModelError(f"{where}: a graph {kind} has an empty name")
    inputs = {v.name for v in g.input} - {t.name for t in g.initializer}
    echoed = [v.name for v in g.output if v.name in inputs]
    if echoed:
        raise UnsupportedError(f"{where}: graph output(s) {echoed} are graph inputs passed through unchanged; "
                               "polyfuse needs each output computed by a node (an Identity node will do)")


def check_nodes(proto: onnx.ModelProto, opset: int, where: str) -> None:
    for i, n in enumerate(proto.graph.node):
        try:
            schema = onnx.defs.get_schema(n.op_type, opset, n.domain)
        except Exception:  # noqa: BLE001 - no schema at this opset: the op's own evaluation decides
            continue
        node = f"{where}: node {n.name or f'{n.op_type}_{i}'!r} ({n.op_type})"
        n_in = len(n.input)
        while n_in and not n.input[n_in - 1]:  # trailing omitted optional inputs
            n_in -= 1
        if not schema.min_input <= n_in <= schema.max_input:
            raise ModelError(f"{node} has {n_in} input(s); {n.op_type} takes {_range(schema.min_input, schema.max_input)}")
        if not schema.min_output <= len(n.output) <= schema.max_output:
            raise ModelError(f"{node} has {len(n.output)} output(s); {n.op_type} gives "
                             f"{_range(schema.min_output, schema.max_output)}")
        given = {a.name for a in n.attribute}
        missing = sorted(a for a, spec in schema.attributes.items() if spec.required and a not in given)
        if missing:
            raise ModelError(f"{node} lacks required attribute(s) {missing}")


def _range(lo: int, hi: int) -> str:
    if lo == hi:
        return str(lo)
    return f"at least {lo}" if hi >= 1 << 30 else f"{lo} to {hi}"
