"""The graph IR.

A :class:`Graph` is a list of :class:`Node` in topological order over named :class:`Value`s.
Shapes are tuples whose entries are ``int`` or ``sympy.Symbol`` (ONNX ``dim_param``); the
``bind_shapes`` pass replaces symbols by integers before lowering. Constant values (ONNX
initializers and folded results) carry their data in ``Value.const``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sympy

from ..errors import ModelError, UnsupportedError

MAX_ELEMENTS = 2**31 - 1  # per tensor: the kernels' GEMM dimensions and some strides are 32-bit


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

    def verify(self, where: str = "graph") -> None:
        """Check SSA form, topological order and tensor sizes; raise ModelError naming the first
        defect (UnsupportedError for a tensor larger than MAX_ELEMENTS). Never an assert: the
        checks must hold under ``python -O`` too."""
        defined = {n: "a graph input" for n in self.inputs}
        defined.update({v.name: "a constant" for v in self.values.values() if v.is_const})
        for n in self.nodes:
            node = f"node {n.name!r} ({n.op_type})"
            for i in n.inputs:
                if i and i not in defined:
                    raise ModelError(f"{where}: {node} uses value {i!r}, which nothing defines before it")
            for o in n.outputs:
                if o and o in defined:
                    raise ModelError(f"{where}: value {o!r} is produced twice: by {defined[o]} and by {node}")
                if o and o not in self.values:
                    raise ModelError(f"{where}: output {o!r} of {node} has no Value")
                if o:
                    defined[o] = node
        for o in self.outputs:
            if o not in defined:
                raise ModelError(f"{where}: graph output {o!r} is produced by no node (nor is it an input or constant)")
        for v in self.values.values():
            if v.shape is not None and all(isinstance(d, (int, np.integer)) for d in v.shape):
                if math.prod(int(d) for d in v.shape) > MAX_ELEMENTS:
                    raise UnsupportedError(f"{where}: tensor {v.name!r} has shape {dims_str(v.shape)}, "
                                           f"{math.prod(int(d) for d in v.shape)} elements; polyfuse compiles tensors "
                                           f"of at most 2^31-1 elements")

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
