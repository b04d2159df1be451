"""CompiledModel: an artifact directory loaded into the native runtime.

``run(output_names, feeds)`` behaves like ``onnxruntime.InferenceSession.run``: feeds is a
dict of numpy arrays by input name, the result a list in ``output_names`` order (all outputs
when None).

Threads: ``run()`` may be called on one model from several threads at once. It releases the GIL
while the kernels run, and the calls on one model run one at a time (they share its arena; the
model library's ``pf_run`` takes a lock, see kernels/pf_model_abi.h), each with the model's
thread count; the checks and output allocation of one call overlap another's kernels. For
throughput from concurrent callers, load one model per caller (``polyfuse.load`` of the same
artifact): separate models have separate arenas and run at the same time. They share the
library's one thread pool, though: a parallel loop that finds it busy runs on its calling thread
alone, so with N callers ``threads=1`` each is the natural choice.
"""
from __future__ import annotations

import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..build.artifact import LIBRARY, MANIFEST, WEIGHTS, copy_artifact, read_manifest
from ..errors import ArtifactError, InputError
from ..ir.narrow_types import dtype_named
from .elf import check_library
from .native import load_runtime


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dtype: np.dtype
    shape: tuple


def _infos(manifest: dict, key: str, where: Path) -> list[TensorInfo]:
    """The manifest's ``inputs``/``outputs``, or ArtifactError naming the file (a hand edit)."""
    try:
        infos = [TensorInfo(e["name"], dtype_named(e["dtype"]), tuple(e["shape"])) for e in manifest[key]]
        for i in infos:
            if not isinstance(i.name, str) or not all(type(d) is int and d >= 0 for d in i.shape):
                raise ValueError(f"bad name or shape in {i}")
    except (KeyError, TypeError, ValueError) as e:
        raise ArtifactError(f"{where}: {key!r} is malformed ({type(e).__name__}: {e}); the manifest was edited "
                            "or damaged, recompile the model") from None
    return infos


def _check_sizes(infos: list[TensorInfo], library_bytes: list[int], kind: str, where: Path) -> None:
    """The manifest's tensors against the byte sizes compiled into the library."""
    if len(infos) != len(library_bytes):
        raise ArtifactError(f"{where}: lists {len(infos)} {kind}s, the library has {len(library_bytes)}; "
                            "the manifest was edited or belongs to another build")
    for info, nbytes in zip(infos, library_bytes):
        mine = math.prod(info.shape) * info.dtype.itemsize
        if mine != nbytes:
            raise ArtifactError(f"{where}: {kind} {info.name!r} is {info.dtype.name}{list(info.shape)} ({mine} bytes), "
                                f"the library was compiled for {nbytes} bytes; the manifest was edited or belongs "
                                "to another build")


def _describe(dt: np.dtype) -> str:
    return dt.name if dt.isnative else f"{dt.name}, byte order {dt.str!r}"


_MISSING = object()


def check_threads(threads) -> int | None:
    """``threads`` if it is None (all cores) or an integer >= 1, else InputError."""
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, (int, np.integer))
                                or not 1 <= threads <= 1 << 16):
        raise InputError(f"threads (--threads) must be a whole number from 1 to 65536, or left out for all cores; "
                         f"got {threads!r}")
    return threads


class ArtifactModel:
    """What every loaded artifact has, however it runs: its directory, manifest and tensors,
    ``save``, and (``_owned_tmp``: compiled into a temporary folder) removal of that folder."""

    _owned_tmp = False  # set once construction has succeeded

    def _read_manifest(self, directory) -> Path:
        """Reads the manifest and tensor infos; returns the manifest's path (for messages)."""
        self.directory = Path(directory)
        self.manifest = read_manifest(self.directory)
        where = self.directory / MANIFEST
        self.inputs = _infos(self.manifest, "inputs", where)
        self.outputs = _infos(self.manifest, "outputs", where)
        return where

    @property
    def input_names(self) -> list[str]:
        return [i.name for i in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [o.name for o in self.outputs]

    def save(self, directory, *, overwrite: bool = False) -> Path:
        """Copy this model's artifact (sources, weights, library) to ``directory``, which must be
        absent or empty, or with ``overwrite=True`` an earlier artifact holding only files
        polyfuse writes (anything else is refused with ArtifactError; nothing is deleted)."""
        return copy_artifact(self.directory, Path(directory), overwrite=overwrite)

    def __del__(self):
        if self._owned_tmp:
            shutil.rmtree(self.directory.parent, ignore_errors=True)  # the mkdtemp() root


class CompiledModel(ArtifactModel):
    def __init__(self, directory, threads: int | None = None, *, _owned_tmp: bool = False):
        self.threads = int(check_threads(threads) or os.cpu_count() or 1)
        where = self._read_manifest(directory)
        from ..targets import of_artifact

        t = of_artifact(self.manifest)
        if t is not None and not t.loads_here:
            raise ArtifactError(f"{self.directory}: built for {t.name}, which does not run in this process; load it "
                                "with device='qemu' or device='adb[:SERIAL]' (CLI: --device)")
        lib, weights = self.directory / LIBRARY, self.directory / WEIGHTS
        for f in (lib, weights):
            if not f.is_file():
                raise ArtifactError(f"{self.directory}: artifact is incomplete, {f.name} is missing")
        check_library(lib)  # dlopen of a truncated library would crash the process
        try:
            self._session = load_runtime().Session(str(lib), str(weights), self.threads)
        except (RuntimeError, ValueError) as e:
            raise ArtifactError(f"{self.directory}: {e}") from None
        _check_sizes(self.inputs, self._session.input_bytes, "input", where)
        _check_sizes(self.outputs, self._session.output_bytes, "output", where)
        self._owned_tmp = _owned_tmp
        self._input_index = {i.name: k for k, i in enumerate(self.inputs)}
        self._output_index = {o.name: k for k, o in enumerate(self.outputs)}

    # run() is on every inference's path: after the kernels have run, the interpreter's own
    # code and data are out of cache, and these checks cost tens of microseconds, a few
    # percent of a 2 ms model. So they do no more than they must.
    def _check_feeds(self, feeds) -> list[np.ndarray]:
        if not isinstance(feeds, dict):
            raise InputError(f"feeds must be a dict of input name -> array, got {type(feeds).__name__}")
        if len(feeds) != len(self.inputs) or not all(k in self._input_index for k in feeds):
            unknown = sorted(set(feeds) - set(self._input_index), key=str)
            if unknown:
                raise InputError(f"unknown input(s) {unknown}; the model's inputs are {self.input_names}")
        arrays = []
        for info in self.inputs:
            a = feeds.get(info.name, _MISSING)
            if a is _MISSING:
                raise InputError(f"missing input {info.name!r} ({info.dtype.name}{list(info.shape)})")
            if type(a) is not np.ndarray:
                try:
                    a = np.asarray(a)
                except (TypeError, ValueError) as e:
                    raise InputError(f"input {info.name!r}: not an array of {info.dtype.name} ({e})") from None
            if a.dtype != info.dtype:
                if a.dtype.newbyteorder("=") != info.dtype:
                    raise InputError(f"input {info.name!r}: expected dtype {info.dtype.name}, got {_describe(a.dtype)}")
                a = a.astype(info.dtype)  # the same numbers in the other byte order: swapped, exactly
            if a.shape != info.shape:
                raise InputError(f"input {info.name!r}: expected shape {list(info.shape)}, got {list(a.shape)} "
                                 f"(the model was compiled for this shape; recompile with "
                                 f"--shape {info.name}={','.join(map(str, a.shape)) or 'scalar'})")
            arrays.append(a if a.flags.c_contiguous else np.ascontiguousarray(a))
        return arrays

    def run(self, output_names=None, feeds=None) -> list[np.ndarray]:
        """Run one inference; thread-safe (concurrent calls on this model are serialised)."""
        # Worker threads asleep after an idle period take ~0.1-0.2 ms to wake: start that now, so
        # it overlaps checking the feeds instead of delaying the first kernels.
        self._session.wake()
        arrays = self._check_feeds(feeds if feeds is not None else {})
        if output_names is not None:
            try:
                wanted = [output_names] if isinstance(output_names, str) else list(output_names)
            except TypeError:
                raise InputError(f"output_names must be a list of output names or None, got "
                                 f"{type(output_names).__name__}") from None
            missing = [n for n in wanted if n not in self._output_index]
            if missing:
                raise InputError(f"unknown output(s) {missing}; the model's outputs are {self.output_names}")
        outs = [np.empty(o.shape, o.dtype) for o in self.outputs]
        self._session.run(arrays, outs)
        return outs if output_names is None else [outs[self._output_index[n]] for n in wanted]

    def __call__(self, **feeds) -> dict[str, np.ndarray]:
        return dict(zip(self.output_names, self.run(None, feeds)))

    def __repr__(self) -> str:
        ins = ", ".join(f"{i.name}:{i.dtype.name}{list(i.shape)}" for i in self.inputs)
        return f"CompiledModel({self.manifest.get('model_name')!r}, target={self.manifest.get('target')!r}, inputs=({ins}))"


def load(directory, threads: int | None = None, *, device: str | None = None, _owned_tmp: bool = False):
    """Load an artifact directory written by ``polyfuse compile`` or ``CompiledModel.save``. With
    ``device`` ("qemu", "adb", "adb:SERIAL"), an artifact for another CPU runs there (DeviceModel)."""
    if device is None:
        return CompiledModel(directory, threads, _owned_tmp=_owned_tmp)
    from .device_model import DeviceModel

    return DeviceModel(directory, device, check_threads(threads), _owned_tmp=_owned_tmp)
