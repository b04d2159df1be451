"""ONNX -> IR import.

Loads a model from a path, bytes or ``onnx.ModelProto`` (with external-data files beside the
model), inlines local functions, converts models older than opset 13 with
``onnx.version_converter``, checks the opset and that every operator is supported, and
builds a :class:`~polyfuse.ir.Graph`. Symbolic dims (``dim_param``) become sympy symbols.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import onnx
import onnx.version_converter
import sympy
from onnx import numpy_helper

from ..errors import ModelError, UnsupportedError
from ..ir import Graph, Node, Value
from ..ir.narrow_types import NARROW_TYPES
from .check_model import DEFAULT_DOMAINS, check_names, check_nodes, check_operators
from .onnx_weights import PLAIN, split_weights, tensor_view

MIN_OPSET, MAX_OPSET = 13, 21


def load_onnx(model) -> onnx.ModelProto:
    """Load ``model`` (path, bytes or ModelProto) with its external data, or raise ModelError."""
    return _load(model, split=False)[0]


def _load(model, split: bool) -> tuple[onnx.ModelProto, dict]:
    """(proto, {initializer index: its raw bytes}); with ``split``, a file's large initializers
    are views of the file's bytes, left out of the proto (onnx_weights.py), where it can."""
    if isinstance(model, onnx.ModelProto):
        return model, {}
    if isinstance(model, (bytes, bytearray, memoryview)):
        try:
            proto = onnx.load_from_string(bytes(model))
        except Exception as e:  # protobuf raises DecodeError and friends
            raise ModelError(f"model bytes are not a valid ONNX model ({_short(e)})") from None
        _check_no_external(proto, "model bytes")
        return proto, {}
    if not isinstance(model, (str, os.PathLike)):
        raise ModelError(f"expected a model as a path, bytes, onnx.ModelProto or polyfuse Graph, got "
                         f"{type(model).__name__}")
    path = Path(os.fspath(model))
    if not path.exists():
        raise ModelError(f"{path}: no such file")
    if path.is_dir():
        raise ModelError(f"{path}: is a directory, expected an .onnx file")
    raws = {}
    try:
        got = split_weights(path.read_bytes()) if split else None
        if got is not None:
            proto, raws = got
        else:
            proto = onnx.load(str(path), load_external_data=False)
    except OSError as e:
        raise ModelError(f"{path}: cannot read the model ({e.strerror or _short(e)})") from None
    except Exception as e:
        raise ModelError(f"{path}: not a valid ONNX model, the file may be truncated or corrupt ({_short(e)})") from None
    if not proto.graph.node and not proto.graph.output:
        raise ModelError(f"{path}: not a valid ONNX model (no graph found; is this an ONNX file?)")
    _load_external(proto, path)
    return proto, raws


def _short(e: Exception) -> str:
    s = str(e).strip().splitlines()
    return s[0][:200] if s else type(e).__name__


def _external_tensors(proto: onnx.ModelProto):
    for t in proto.graph.initializer:
        if t.data_location == onnx.TensorProto.EXTERNAL:
            yield t
    for n in proto.graph.node:
        for a in n.attribute:
            if a.type == onnx.AttributeProto.TENSOR and a.t.data_location == onnx.TensorProto.EXTERNAL:
                yield a.t


def _check_no_external(proto, where: str) -> None:
    for t in _external_tensors(proto):
        raise ModelError(f"{where}: tensor {t.name!r} is stored in an external data file; "
                         "pass the model's path instead of its bytes")


def _load_external(proto: onnx.ModelProto, path: Path) -> None:
    base = path.parent.resolve()
    for t in _external_tensors(proto):
        info = {e.key: e.value for e in t.external_data}
        loc = info.get("location", "")
        f = (base / loc).resolve()
        if not loc or base not in f.parents:
            raise ModelError(f"{path}: tensor {t.name!r} names external data {loc!r} outside the model's folder")
        if not f.is_file():
            raise ModelError(f"{path}: external data file {f} (tensor {t.name!r}) is missing")
        need = int(info.get("offset", 0)) + int(info.get("length", 0))
        if f.stat().st_size < need:
            raise ModelError(f"{path}: external data file {f} is truncated (tensor {t.name!r} needs {need} bytes)")
    try:
        onnx.external_data_helper.load_external_data_for_model(proto, str(base))
    except Exception as e:
        raise ModelError(f"{path}: could not read external data ({_short(e)})") from None


def _opset(proto: onnx.ModelProto) -> int | None:
    for imp in proto.opset_import:
        if imp.domain in DEFAULT_DOMAINS:
            return int(imp.version)
    return None


_NP_OF_ONNX = {**PLAIN, **{t.onnx_code: t.dtype for t in NARROW_TYPES}}


def _value_from_type_proto(name: str, tp: onnx.TypeProto, where: str) -> Value:
    if not tp.HasField("tensor_type"):
        raise UnsupportedError(f"{where}: graph value {name!r} is not a tensor (sequence/map types are not supported)")
    tt = tp.tensor_type
    if tt.elem_type not in _NP_OF_ONNX:
        raise UnsupportedError(f"{where}: value {name!r} has element type "
                               f"{onnx.TensorProto.DataType.Name(tt.elem_type)}, which polyfuse does not support")
    shape = None
    if tt.HasField("shape"):
        dims = []
        for k, d in enumerate(tt.shape.dim):
            if d.HasField("dim_value"):
                if d.dim_value < 0:
                    raise ModelError(f"{where}: value {name!r} has a negative dimension ({d.dim_value}) at axis {k}")
                dims.append(int(d.dim_value))
            else:
                dims.append(sympy.Symbol(d.dim_param or f"{name}_dim{k}", integer=True, positive=True))
        shape = tuple(dims)
    return Value(name, np.dtype(_NP_OF_ONNX[tt.elem_type]), shape)


def _attr_value(a: onnx.AttributeProto):
    v = onnx.helper.get_attribute_value(a)
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, onnx.TensorProto):
        return numpy_helper.to_array(v)
    if isinstance(v, list):
        return [x.decode("utf-8", "replace") if isinstance(x, bytes) else x for x in v]
    if isinstance(v, onnx.GraphProto):
        raise UnsupportedError(f"attribute {a.name!r} holds a subgraph (control flow is not supported)")
    return v


def upgrade_opset(proto: onnx.ModelProto, opset: int, where: str) -> onnx.ModelProto:
    """Convert a model older than MIN_OPSET (tested: opsets 1 and 7-12) to MIN_OPSET with
    onnx.version_converter, which rewrites the ops whose signature changed (attributes that became
    inputs, such as Split's ``split`` and the reductions' ``axes`` at 13), or raise UnsupportedError."""
    try:
        return onnx.version_converter.convert_version(proto, MIN_OPSET)
    except Exception as e:  # the converter raises RuntimeError, ConvertError, ValidationError ...
        why = re.sub(r"^\S+:\d+: \w+: Assertion `.*?` failed: ", "", _short(e))  # drop the C++ assert's location
        raise UnsupportedError(f"{where}: model opset {opset} is older than the supported range {MIN_OPSET}-"
                               f"{MAX_OPSET}, and onnx.version_converter could not convert it: {why}") from None


def import_onnx(model, name: str | None = None) -> Graph:
    """Import ``model`` (path, bytes or ModelProto) into a Graph, or raise a PolyfuseError."""
    where = str(model) if isinstance(model, (str, os.PathLike)) else "model"
    proto, raws = _load(model, split=True)
    opset = _opset(proto)
    if raws and (proto.functions or (opset is not None and opset < MIN_OPSET)):
        proto, raws = load_onnx(model), {}  # the inliner and the converter need whole tensors
    if opset is None:
        check_operators(proto, opset, where)  # a model of other domains only: say which
        raise ModelError(f"{where}: model declares no default-domain (ai.onnx) opset")
    if proto.functions:
        try:
            proto = onnx.inliner.inline_local_functions(proto)
        except Exception as e:
            raise ModelError(f"{where}: could not inline the model's local functions ({_short(e)})") from None
    check_operators(proto, opset, where)
    converted_from = None
    if opset < MIN_OPSET:
        proto, converted_from, opset = upgrade_opset(proto, opset, where), opset, MIN_OPSET
        check_operators(proto, opset, where)  # the converter may have rewritten an op into others
    check_names(proto, where)
    check_nodes(proto, opset, where)

    g = proto.graph
    values: dict[str, Value] = {}
    for i, t in enumerate(g.initializer):
        try:
            arr = tensor_view(t, raws[i]) if i in raws else numpy_helper.to_array(t)
        except Exception as e:
            raise ModelError(f"{where}: initializer {t.name!r} is corrupt ({_short(e)})") from None
        # C-ordered and read-only, a view of the file's bytes or to_array's own: no second copy of every weight
        values[t.name] = Value(t.name, arr.dtype, tuple(arr.shape), arr if arr.flags.c_contiguous else np.array(arr, order="C"))
    inputs = []
    for vi in g.input:
        if vi.name in values:  # an initializer that is also listed as an input: a constant
            continue
        values[vi.name] = _value_from_type_proto(vi.name, vi.type, where)
        inputs.append(vi.name)
    nodes = []
    for i, n in enumerate(g.node):
        try:
            attrs = {a.name: _attr_value(a) for a in n.attribute}
        except UnsupportedError as e:
            raise UnsupportedError(f"{where}: node {n.name or i!r} ({n.op_type}): {e}") from None
        node = Node(n.op_type, list(n.input), list(n.output), attrs, n.name or f"{n.op_type}_{i}", n.domain)
        for o in node.outputs:
            if o and o not in values:
                values[o] = Value(o)
        nodes.append(node)
    outputs = [o.name for o in g.output]
    for o in g.output:  # declared output types are hints; inference decides
        if not o.type.HasField("tensor_type"):
            values.setdefault(o.name, Value(o.name))
            continue
        declared = _value_from_type_proto(o.name, o.type, where)
        v = values.setdefault(o.name, declared)
        if v.dtype is None:
            v.dtype = declared.dtype
    graph = Graph(nodes, values, inputs, outputs, opset, name or (g.name or "model"))
    graph.nodes = _toposort(graph, where)
    graph.verify(where)
    if converted_from is not None:
        graph.notes.append(f"model opset {converted_from} converted to {MIN_OPSET} with onnx.version_converter")
    if opset > MAX_OPSET:
        graph.notes.append(f"model opset {opset} is newer than the tested range {MIN_OPSET}-{MAX_OPSET}")
    return graph


def _toposort(graph: Graph, where: str) -> list[Node]:
    """ONNX requires topological order, but exporters occasionally break it: sort stably."""
    ready = set(graph.inputs) | {v.name for v in graph.values.values() if v.is_const} | {""}
    pending, order = list(graph.nodes), []
    while pending:
        rest = []
        for n in pending:
            if all(i in ready for i in n.inputs):
                order.append(n)
                ready.update(n.outputs)
            else:
                rest.append(n)
        if len(rest) == len(pending):
            missing = sorted({i for n in rest for i in n.inputs if i not in ready})[:5]
            raise ModelError(f"{where}: node {rest[0].name!r} uses value(s) {missing} that nothing defines "
                             "(or the graph has a cycle)")
        pending = rest
    return order
