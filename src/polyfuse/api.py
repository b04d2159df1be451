"""The Python API: ``polyfuse.compile`` and ``polyfuse.load``."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np

from . import __version__
from .build import artifact_cache
from .build.artifact import FORMAT, check_replaceable, read_manifest, write_artifact, write_weights
from .codegen.templates import render_for
from .pipeline import Compilation, compile_model
from .errors import InputError
from .runtime.model import CompiledModel, check_threads, load  # noqa: F401
from .targets import Target, get as get_target


# CMake sets these itself (build type, standard, position independence, threads)
CMAKE_OWNS = ("-O3", "-std=c++17", "-fPIC", "-pthread", "-DNDEBUG")


def _manifest(comp: Compilation, target: Target) -> dict:
    g = comp.graph

    def info(name):
        v = g.values[name]
        return {"name": name, "dtype": np.dtype(v.dtype).name, "shape": [int(d) for d in v.shape]}

    return {
        "format": FORMAT, "format_version": 1, "polyfuse_version": __version__, "abi_version": 1,
        "target": target.name, "model_name": g.name, "opset": g.opset,
        "inputs": [info(n) for n in g.inputs], "outputs": [info(n) for n in g.outputs],
        "fusion": comp.fusion is not None, "built": comp.library is not None,
        "for_device": target.device_variant is None and get_target(target.name).device_variant is not None,
        "precision": target.precision,
        "stats": {"onnx_nodes": comp.onnx_nodes, "graph_nodes": len(g.nodes), "kernels": len(comp.lowered.kernels),
                  "distinct_kernels": comp.n_functions, "arena_bytes": comp.plan.arena_bytes,
                  "weights_bytes": comp.plan.weights_bytes},
        "notes": list(g.notes), "timings_s": comp.timings,
    }


def build_artifact(model, directory, *, target: str | Target = "host", shapes=None, fusion: bool = True,
                   overwrite: bool = False) -> tuple[Path, dict, Compilation | None]:
    """Compile ``model`` and write its artifact directory; returns (directory, manifest, compilation).

    ``directory`` must be absent, empty, or (with ``overwrite``) an earlier artifact holding only
    files polyfuse writes (see build/artifact.py); this is checked before compiling. If the
    compile fails, ``directory`` is left as it was. An unchanged model compiled with the same
    options and polyfuse is copied from the compile cache instead (see build/artifact_cache.py);
    the compilation is then None."""
    directory = Path(directory)
    target = get_target(target)
    check_replaceable(directory, overwrite)
    k = artifact_cache.key(model, target=target, shapes=shapes, fusion=fusion)
    if k and artifact_cache.fetch(k, directory, overwrite=overwrite):
        return directory, read_manifest(directory), None
    comp = compile_model(model, target=target, shapes=shapes, fusion=fusion)
    path, manifest = write_compiled(comp, directory, target, overwrite)
    if k:
        artifact_cache.store(k, path)
    return path, manifest, comp


def write_compiled(comp: Compilation, directory, target: Target, overwrite: bool = False) -> tuple[Path, dict]:
    """Write the artifact of a finished compilation (pipeline.backend) for ``target``."""
    tc = target.toolchain
    files = {name: render_for(target.templates, f"{name}.j2", version=__version__, target=target.name,
                              sources=["model.cpp"] + [f"runtime/{s}" for s in target.runtime_sources],
                              runner_sources=[f"runtime/{s}" for s in target.runner_sources],
                              flags=[f for f in tc.flags if f not in CMAKE_OWNS], arch_flags=tc.arch_flags,
                              link_flags=tc.link_flags)
             for name in target.artifact_templates}
    manifest = _manifest(comp, target)
    path = write_artifact(directory, target, source=comp.source, files=files, library=comp.library, manifest=manifest,
                          write_weights_to=lambda f: write_weights(f, comp.graph, comp.plan), overwrite=overwrite)
    return path, manifest


def compile(model, target: str = "host", *, shapes: dict | None = None, threads: int | None = None,
            fusion: bool = True, output_dir=None, overwrite: bool = False, device: str | None = None,
            precision: str = "fp32"):
    """Compile an ONNX model (path, ``onnx.ModelProto``, bytes, or a polyfuse Graph).

    ``shapes`` binds symbolic input dims, e.g. ``{"input_ids": (1, 128)}``; ``threads`` (>= 1)
    defaults to all cores; ``fusion=False`` compiles one kernel per operator. The artifact goes
    to ``output_dir`` if given (an absent or empty directory, or with ``overwrite=True`` an
    earlier artifact; see :func:`build_artifact`), else to a temporary directory owned by the
    returned model (``CompiledModel.save`` keeps a copy). A failed compile leaves nothing behind.

    A target whose code does not run in this process (``android-cpu``) needs ``device``:
    ``"qemu"`` (emulated here) or ``"adb"`` / ``"adb:SERIAL"`` (a phone); the result is then a
    DeviceModel whose ``run`` goes through the artifact's pf_run on that device.

    ``precision="fp16"`` (android-gpu) stores intermediates and weights as half precision and
    computes in float32 (kernel/store_half.py); inputs and outputs stay float32.
    """
    check_threads(threads)
    t = get_target(target).at_precision(precision)
    if device is not None:
        t = t.for_device()  # android-gpu for a phone: the host side cross-built for its CPU
    if not t.loads_here and device is None:
        raise InputError(f"target {t.name!r} does not run in this process: pass device='qemu' or device='adb[:SERIAL]'")
    owned = output_dir is None
    root = Path(tempfile.mkdtemp(prefix="polyfuse-")) if owned else None
    directory = root / "model" if owned else Path(output_dir)
    try:
        build_artifact(model, directory, target=t, shapes=shapes, fusion=fusion, overwrite=overwrite)
        return load(directory, threads, device=device, _owned_tmp=owned)
    except BaseException:
        if root is not None:
            shutil.rmtree(root, ignore_errors=True)
        raise
