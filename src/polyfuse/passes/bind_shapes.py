"""Bind symbolic input dims to concrete sizes.

polyfuse compiles for static shapes. Each graph input's symbolic dims (``dim_param``) are bound
from the user's ``shapes`` (``--shape input_ids=1,128``); a symbol the user leaves open gets
:data:`DEFAULT_DIM` and the graph's notes say so. One symbol shared by several inputs
(``batch``, ``sequence``) must get one size.
"""
from __future__ import annotations

import numpy as np
import sympy

from ..errors import InputError
from ..ir import Graph, dims_str
from ..ir.graph import is_symbolic

DEFAULT_DIM = 1


def bind_shapes(graph: Graph, shapes: dict[str, tuple[int, ...]] | None = None) -> Graph:
    shapes = _checked(shapes)
    unknown = sorted(set(shapes) - set(graph.inputs))
    if unknown:
        raise InputError(f"--shape names {unknown}, which are not inputs of the model "
                         f"(inputs: {', '.join(graph.inputs)})")
    binding: dict[sympy.Symbol, int] = {}
    for name in graph.inputs:
        v = graph.values[name]
        given = shapes.get(name)
        if given is None:
            continue
        if any(d < 0 for d in given):
            raise InputError(f"--shape {name}: negative dimension in {given}")
        if v.shape is not None and len(v.shape) != len(given):
            raise InputError(f"--shape {name}: rank {len(given)} given, the model declares "
                             f"{name}{dims_str(v.shape)} (rank {len(v.shape)})")
        for k, (decl, d) in enumerate(zip(v.shape or given, given)):
            if is_symbolic(decl):
                if binding.setdefault(decl, d) != d:
                    raise InputError(f"--shape {name}: dim {k} ({decl}) = {d}, but {decl} = "
                                     f"{binding[decl]} from another input")
            elif int(decl) != d:
                raise InputError(f"--shape {name}: dim {k} is fixed to {decl} by the model, got {d}")
        v.shape = given
    for name in graph.inputs:
        v = graph.values[name]
        if v.shape is None:
            raise InputError(f"input {name!r} has no declared shape; give one with --shape {name}=D0,D1,...")
        free = [d for d in v.shape if is_symbolic(d) and d not in binding]
        for d in free:
            binding[d] = DEFAULT_DIM
            graph.notes.append(f"input {name!r}: dim {d} not given, using {DEFAULT_DIM} "
                               f"(set it with --shape / shapes={{{name!r}: (...)}})")
        v.shape = tuple(int(binding.get(d, d)) if is_symbolic(d) else int(d) for d in v.shape)
    for name in graph.outputs:  # declared output shapes are only hints; inference replaces them
        v = graph.values[name]
        if v.shape is not None and not v.is_const:
            v.shape = None
    return graph


def _checked(shapes) -> dict[str, tuple[int, ...]]:
    """``shapes`` as {input name: tuple of ints}, or InputError saying what is wrong with it."""
    if shapes is None:
        return {}
    if not isinstance(shapes, dict):
        raise InputError(f"shapes must be a dict of input name -> dims, got {type(shapes).__name__}")
    out = {}
    for name, dims in shapes.items():
        try:
            given = tuple(dims)
        except TypeError:
            given = None
        if given is None or not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) for d in given):
            raise InputError(f"--shape {name}: expected a sequence of whole numbers, got {dims!r}")
        out[name] = tuple(int(d) for d in given)
    return out
