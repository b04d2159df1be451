"""The compiler pipeline, in order. Each stage can be run, dumped and tested alone.

    ONNX --import--> Graph --bind_shapes--> --fold_constants--> --expand_einsum--> --remove_identity-->
    --remove_nan_guards--> --eliminate_dead_code--> [--fuse_parallel_matmuls-->] --lower--> kernels
    [--fuse-->] fewer kernels
    --plan_memory--> --generate--> C++ --build--> library
"""
from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

from . import __version__
from .build.compiler import build_shared_library
from .build.memory import MemoryPlan, plan_memory
from .codegen.model import generate
from .kernel.store_half import store_half
from .fusion.plan import FusionReport, fuse
from .frontend import import_onnx
from .ir import Graph
from .kernel import LoweredModel, lower_graph
from .passes import (bind_shapes, eliminate_dead_code, expand_einsum, fold_constants, fuse_parallel_matmuls,
                     remove_identity, remove_nan_guards)
from .targets import Target, get as get_target

log = logging.getLogger("polyfuse")


@dataclass
class Compilation:
    graph: Graph
    onnx_nodes: int
    lowered: LoweredModel | None = None
    plan: MemoryPlan | None = None
    source: str = ""
    n_functions: int = 0
    library: object = None
    cached: bool = False
    fusion: FusionReport | None = None
    timings: dict = field(default_factory=dict)


@contextmanager
def quiet():
    """The stages' progress messages off (warnings stay), for callers that compile many variants."""
    level = log.level
    log.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        log.setLevel(level)


class _Stage:
    def __init__(self, comp: Compilation, name: str, what: str = ""):
        self.comp, self.name, self.what = comp, name, what

    def __enter__(self):
        if self.what:
            log.info("%s", self.what)
        self.t0 = time.perf_counter()

    def __exit__(self, *exc):
        self.comp.timings[self.name] = round(time.perf_counter() - self.t0, 3)


def frontend(model, shapes=None) -> Compilation:
    """Import and optimise the graph: everything up to kernels."""
    t0 = time.perf_counter()
    if isinstance(model, Graph):
        graph = model
        graph.verify()  # import_onnx verifies what it builds
    else:
        graph = import_onnx(model)
    comp = Compilation(graph, len(graph.nodes))
    comp.timings["import"] = round(time.perf_counter() - t0, 3)
    log.info("imported %s: %d nodes, opset %d", graph.name, comp.onnx_nodes, graph.opset)
    with _Stage(comp, "bind_shapes"):
        bind_shapes(graph, shapes)
    graph.verify()  # now with every input's size: none too large for the shape inference below
    for note in graph.notes:
        log.warning("note: %s", note)
    with _Stage(comp, "fold_constants", "folding constants and inferring shapes"):
        fold_constants(graph)
    with _Stage(comp, "expand_einsum"):
        expand_einsum(graph)
    with _Stage(comp, "remove_identity"):
        remove_identity(graph)
    with _Stage(comp, "remove_nan_guards"):
        remove_nan_guards(graph)
    with _Stage(comp, "eliminate_dead_code"):
        eliminate_dead_code(graph)
    graph.verify()
    return comp


def kernels(comp: Compilation, fusion: bool = True, target: str | Target = "host") -> Compilation:
    """Lower to one kernel per node, then fuse for ``target`` (parallel MatMuls first, at graph level),
    and with precision fp16 keep float32 intermediates and weights as half (kernel/store_half.py)."""
    target = get_target(target)
    if fusion and target.schedule["parallel_matmuls"]:
        with _Stage(comp, "fuse_parallel_matmuls"):
            fuse_parallel_matmuls(comp.graph)
            eliminate_dead_code(comp.graph)  # the separate weights are no longer read
        comp.graph.verify()
    with _Stage(comp, "lower", f"lowering {len(comp.graph.nodes)} nodes to kernels"):
        comp.lowered = lower_graph(comp.graph)
    if fusion:
        with _Stage(comp, "fuse"):
            comp.fusion = fuse(comp.lowered, target.schedule)
        log.info("fused %d kernels into %d", comp.fusion.kernels_before, comp.fusion.kernels_after)
    if target.precision == "fp16":
        with _Stage(comp, "store_half"):
            n = store_half(comp.lowered)
        log.info("fp16: %d float32 tensors and weights stored as half, arithmetic in float32", n)
    return comp


def backend(comp: Compilation, target: str | Target = "host", fusion: bool = True) -> Compilation:
    """Kernels, memory plan, code and the native library, for ``target`` (a name or a Target)."""
    target = get_target(target)
    kernels(comp, fusion, target)
    with _Stage(comp, "plan_memory"):
        comp.plan = plan_memory(comp.lowered)
    with _Stage(comp, "generate", f"generating C++ for {len(comp.lowered.kernels)} kernels"):
        src = generate(comp.lowered, comp.plan, version=__version__, target=target)
        comp.source, comp.n_functions = src.text, src.n_functions
    if not target.loads_here and target.toolchain.find() is None:
        log.warning("no compiler for target %s (%s): writing the sources only", target.name, target.toolchain.install_hint)
        return comp  # comp.library stays None: the artifact holds what builds it elsewhere
    with _Stage(comp, "build", f"compiling {src.n_functions} distinct kernels with the C++ compiler"):
        comp.library, comp.cached = build_shared_library(comp.source, target)
    log.info("library %s (%s)", comp.library, "cached" if comp.cached else "built")
    return comp


def compile_model(model, *, target: str | Target = "host", shapes=None, fusion: bool = True) -> Compilation:
    target = get_target(target)  # an unknown target fails before any work
    return backend(frontend(model, shapes), target, fusion)
