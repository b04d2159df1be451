"""The graph IR.

A :class:`Graph` is a list of :class:`Node` in topological order over named :class:`Value`s.
Shapes are tuples whose entries are ``int`` or ``sympy.Symbol`` (ONNX ``dim_param``); the
``bind_shapes`` pass replaces symbols by integers before lowering. Constant values (ONNX
initializers and folded results) carry their data in ``Value.const``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sympy


@dataclass
class Value:
    name: str
    dtype: np.dtype | None = None
    shape: tuple | None = None  # ints and sympy Symbols; None while unknown
    const: np.ndarray | None = None

    @property
    def is_const(self) -> bool:
        return self.const is not None

    @property
    def is_static(self) -> bool:
        return self.shape is not None and all(isinstance(d, (int, np.integer)) for d in self.shape)

    @property
    def numel(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1

    @property
    def nbytes(self) -> int:
        return self.numel * np.dtype(self.dtype).itemsize


@dataclass
class Node:
    op_type: str
    inputs: list[str]  # "" marks an omitted optional input
    outputs: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)
    name: str = ""
    domain: str = ""

    def input(self, i: int) -> str:
        """Name of input ``i``, or "" when it is omitted."""
        return self.inputs[i] if i < len(self.inputs) else ""


@dataclass
class Graph:
    nodes: list[Node]
    values: dict[str, Value]
    inputs: list[str]
    outputs: list[str]
    opset: int
    name: str = "model"
    notes: list[str] = field(default_factory=list)  # things the compile report tells the user

    def value(self, name: str) -> Value:
        return self.values[name]

    def producers(self) -> dict[str, Node]:
        return {o: n for n in self.nodes for o in n.outputs if o}

    def consumers(self) -> dict[str, list[Node]]:
        uses: dict[str, list[Node]] = {}
        for n in self.nodes:
            for i in n.inputs:
                if i:
                    uses.setdefault(i, []).append(n)
        return uses

    def verify(self) -> None:
        """Check SSA form and topological order; raise AssertionError naming the first defect."""
        defined = set(self.inputs) | {v.name for v in self.values.values() if v.is_const}
        for n in self.nodes:
            for i in n.inputs:
                assert not i or i in defined, f"node {n.name!r} ({n.op_type}) uses undefined value {i!r}"
            for o in n.outputs:
                assert not o or o not in defined, f"value {o!r} is defined twice (node {n.name!r})"
                assert not o or o in self.values, f"output {o!r} of node {n.name!r} has no Value"
                defined.add(o)
        for o in self.outputs:
            assert o in defined, f"graph output {o!r} is never defined"

    def __str__(self) -> str:
        return print_graph(self)


def dims_str(shape) -> str:
    return "?" if shape is None else "[" + ",".join(str(d) for d in shape) + "]"


def _type_str(v: Value | None) -> str:
    if v is None or v.dtype is None:
        return "?"
    return f"{np.dtype(v.dtype).name}{dims_str(v.shape)}"


def _attr_str(attrs: dict) -> str:
    def one(x):
        if isinstance(x, np.ndarray):
            return f"tensor<{x.dtype.name}{list(x.shape)}>"
        return repr(x)

    return ", ".join(f"{k}={one(v)}" for k, v in sorted(attrs.items()))


def print_graph(g: Graph) -> str:
    """One line per node: ``%out:type = Op(%in, ...) {attrs}  # node-name``."""
    lines = [f"graph {g.name} (opset {g.opset})"]
    for name in g.inputs:
        lines.append(f"  input %{name}: {_type_str(g.values.get(name))}")
    n_const = sum(1 for v in g.values.values() if v.is_const)
    lines.append(f"  {n_const} constants")
    for n in g.nodes:
        outs = ", ".join(f"%{o}:{_type_str(g.values.get(o))}" for o in n.outputs if o)
        ins = ", ".join(f"%{i}" if i else "_" for i in n.inputs)
        attrs = f" {{{_attr_str(n.attrs)}}}" if n.attrs else ""
        lines.append(f"  {outs} = {n.op_type}({ins}){attrs}  # {n.name}")
    lines.append("  return " + ", ".join(f"%{o}" for o in g.outputs))
    return "\n".join(lines)


def is_symbolic(d) -> bool:
    return isinstance(d, sympy.Basic) and not d.is_Integer
