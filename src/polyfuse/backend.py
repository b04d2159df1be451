"""polyfuse as an ONNX backend (``onnx.backend.base.Backend``), the standard way other toolchains
and onnx's own conformance suite drive a runtime::

    import polyfuse.backend as backend
    rep = backend.prepare(model, "CPU")        # a path, bytes or onnx.ModelProto
    y, = rep.run([x])                          # or rep.run({"x": x}); outputs also by name: out["y"]
    outs = backend.run_model(model, [x])
    outs = backend.run_node(onnx.helper.make_node("Relu", ["x"], ["y"]), [x])

polyfuse compiles for static shapes, with every input that decides a shape (a Reshape's shape,
Slice's starts, a reduction's axes: ``polyfuse.ops.info`` (``const_inputs``), and whatever such an
input is computed from) known at compile time. The backend API gives inputs only at run time, so
``prepare`` imports and checks the model, and compiles it there only when every input shape is
static and no input decides a shape. Otherwise compilation waits for the first ``run``: the feed
shapes bind the input dims and the values of the shape-deciding inputs are folded in as constants.
A ``BackendRep`` keeps the last :data:`MAX_COMPILED` compiled models, keyed by the feeds' dtypes and
shapes and those inputs' values; a run with a new key compiles again (about a second for a small
graph, less from polyfuse's compile cache).

Only the CPU device is supported. ``prepare``'s keyword arguments ``threads`` and ``fusion`` go to
:func:`polyfuse.compile`; others (onnx's test runner passes its tolerances) are ignored.
Refusals are :class:`~polyfuse.errors.PolyfuseError` subclasses, as everywhere in polyfuse.
"""
from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np
import onnx
from onnx import helper, numpy_helper
from onnx.backend.base import Backend, BackendRep, Device, DeviceType, namedtupledict

from .api import compile as _compile
from .errors import InputError, ModelError, UnsupportedError
from .frontend import import_onnx, load_onnx
from .frontend.onnx_import import MAX_OPSET
from .ir import Graph
from .ir.graph import is_symbolic
from .ops.info import const_inputs, reads_only_shapes
from .runtime.model import CompiledModel

MAX_COMPILED = 8  # compiled models a BackendRep keeps (a new feed shape or shape value compiles again)


def shape_deciding_inputs(graph: Graph) -> list[str]:
    """The graph inputs whose values decide a shape: those reaching a const_inputs slot, directly
    or through nodes that compute it (a Shape node reads only its input's shape)."""
    producers = graph.producers()
    todo = [n.input(k) for n in graph.nodes for k in const_inputs(n.op_type)]
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if not name or name in seen:
            continue
        seen.add(name)
        node = producers.get(name)
        if node is not None and not reads_only_shapes(node):
            todo.extend(node.inputs)
    return [i for i in graph.inputs if i in seen]


def _fits(declared, shape) -> bool:
    return declared is None or (len(declared) == len(shape) and
                                all(is_symbolic(d) or int(d) == s for d, s in zip(declared, shape)))


class PolyfuseRep(BackendRep):
    """A prepared model: ``run(inputs)`` compiles for the feeds' shapes (once per key) and runs."""

    def __init__(self, proto: onnx.ModelProto, graph: Graph, threads: int | None = None, fusion: bool = True):
        self._bytes, self._threads, self._fusion = proto.SerializeToString(), threads, fusion
        self.input_names = list(graph.inputs)
        self.output_names = list(graph.outputs)
        self._declared = {n: graph.values[n] for n in graph.inputs}
        self._folded = shape_deciding_inputs(graph)
        self._compiled: OrderedDict[tuple, CompiledModel] = OrderedDict()
        self._lock = threading.Lock()
        if not self._folded and all(v.shape is not None and not any(map(is_symbolic, v.shape))
                                    for v in self._declared.values()):
            self._model({n: np.zeros(v.shape, v.dtype) for n, v in self._declared.items()})

    def _feeds(self, inputs) -> dict[str, np.ndarray]:
        if isinstance(inputs, dict):
            unknown = sorted(set(inputs) - set(self.input_names), key=str)
            missing = [n for n in self.input_names if n not in inputs]
            if unknown or missing:
                raise InputError(f"inputs {sorted(inputs, key=str)} given, the model's inputs are {self.input_names}")
            pairs = [(n, inputs[n]) for n in self.input_names]
        else:
            values = [inputs] if isinstance(inputs, np.ndarray) else list(inputs)
            if len(values) != len(self.input_names):
                raise InputError(f"{len(values)} inputs given, the model has {len(self.input_names)}: "
                                 f"{self.input_names}")
            pairs = list(zip(self.input_names, values))
        feeds = {}
        for name, a in pairs:
            a, v = np.asarray(a), self._declared[name]
            if a.dtype != v.dtype:
                raise InputError(f"input {name!r}: expected dtype {np.dtype(v.dtype).name}, got {a.dtype.name}")
            if not _fits(v.shape, a.shape):
                raise InputError(f"input {name!r}: shape {list(a.shape)} does not fit the declared "
                                 f"{[str(d) for d in v.shape]}")
            feeds[name] = a
        return feeds

    def _model(self, feeds: dict[str, np.ndarray]) -> CompiledModel:
        key = tuple((n, a.dtype.str, a.shape) for n, a in feeds.items()) + \
            tuple(np.ascontiguousarray(feeds[n]).tobytes() for n in self._folded)
        with self._lock:
            model = self._compiled.get(key)
            if model is None:
                model = self._compiled[key] = self._compile(feeds)
                while len(self._compiled) > MAX_COMPILED:
                    self._compiled.popitem(last=False)
            self._compiled.move_to_end(key)
            return model

    def _compile(self, feeds: dict[str, np.ndarray]) -> CompiledModel:
        shapes = {n: a.shape for n, a in feeds.items() if n not in self._folded}
        if not self._folded:
            return _compile(self._bytes, shapes=shapes, threads=self._threads, fusion=self._fusion)
        proto = onnx.ModelProto.FromString(self._bytes)
        kept = [vi for vi in proto.graph.input if vi.name not in self._folded]
        del proto.graph.input[:]
        proto.graph.input.extend(kept)
        proto.graph.initializer.extend(numpy_helper.from_array(feeds[n], n) for n in self._folded)
        return _compile(proto.SerializeToString(), shapes=shapes, threads=self._threads, fusion=self._fusion)

    def run(self, inputs, **kwargs) -> tuple:
        """``inputs``: arrays in the model's input order (initializers excluded), or a dict by name.
        Returns the outputs in the model's order, as a tuple also indexable by output name."""
        feeds = self._feeds(inputs)
        model = self._model(feeds)
        outs = model.run(None, {n: a for n, a in feeds.items() if n not in self._folded})
        return namedtupledict("Outputs", self.output_names)(*outs)


class PolyfuseBackend(Backend):
    @classmethod
    def supports_device(cls, device: str) -> bool:
        try:
            return Device(device).type == DeviceType.CPU
        except (AttributeError, ValueError):
            return False

    @classmethod
    def prepare(cls, model, device: str = "CPU", *, threads: int | None = None, fusion: bool = True,
                **kwargs) -> PolyfuseRep:
        if not cls.supports_device(device):
            raise UnsupportedError(f"device {device!r}: polyfuse's ONNX backend runs on CPU only")
        proto = load_onnx(model)
        return PolyfuseRep(proto, import_onnx(proto), threads=threads, fusion=fusion)

    @classmethod
    def run_model(cls, model, inputs, device: str = "CPU", **kwargs) -> tuple:
        return cls.prepare(model, device, **kwargs).run(inputs)

    @classmethod
    def run_node(cls, node: onnx.NodeProto, inputs, device: str = "CPU", outputs_info=None, **kwargs) -> tuple:
        """Run one node on ``inputs`` (arrays for its non-empty inputs, in order). ``opset_version``
        defaults to the newest opset polyfuse is tested with; ``outputs_info`` ((dtype, shape) per
        output) is only a hint, polyfuse infers the outputs."""
        opset = int(kwargs.pop("opset_version", MAX_OPSET))
        try:
            super().run_node(node, inputs, device, outputs_info, opset_version=opset)
        except onnx.checker.ValidationError as e:
            raise ModelError(f"node {node.name or node.op_type!r}: {str(e).strip().splitlines()[0]}") from None
        names = [i for i in node.input if i]
        arrays = [inputs] if isinstance(inputs, np.ndarray) else [np.asarray(a) for a in inputs]
        if len(arrays) != len(names):
            raise InputError(f"node {node.name or node.op_type!r} has inputs {names}, {len(arrays)} arrays given")
        ins = [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
               for n, a in zip(names, arrays)]
        outs = [helper.make_empty_tensor_value_info(o) for o in node.output if o]
        graph = helper.make_graph([node], f"{node.op_type}_node", ins, outs)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
        return cls.run_model(model, arrays, device, **kwargs)


prepare = PolyfuseBackend.prepare
run_model = PolyfuseBackend.run_model
run_node = PolyfuseBackend.run_node
supports_device = PolyfuseBackend.supports_device
is_compatible = PolyfuseBackend.is_compatible
