"""DeviceModel: an artifact for a target that does not run in this process (android-cpu),
run through its own pf_run on a device (polyfuse.devices: ``qemu`` or ``adb[:SERIAL]``).

``run(output_names, feeds)`` behaves like CompiledModel.run; each call writes the feeds as
.npy files, runs pf_run once on the device and reads its outputs back.
"""
from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

import numpy as np

from ..build.artifact import MANIFEST, copy_artifact, read_manifest
from ..errors import ArtifactError, InputError
from .model import _infos


def _filename(k: int) -> str:
    return f"in{k}.npy"  # never a model's name: those stay inside pf_run's arguments


class DeviceModel:
    def __init__(self, directory, device: str, threads: int | None = None, *, _owned_tmp: bool = False):
        self._owned_tmp = False
        from ..devices import get_device
        from ..targets import get as get_target

        self.directory = Path(directory)
        self.manifest = read_manifest(self.directory)
        self.target = get_target(self.manifest.get("target"))
        if self.target.loads_here:
            raise InputError(f"device {device!r}: {self.directory} is a {self.target.name} artifact, which runs here "
                             "without a device; leave out the device")
        if not self.manifest.get("built", True):
            cmds = "; or ".join(c.format(dir=self.directory) for c in self.target.build_commands)
            raise ArtifactError(f"{self.directory}: holds only sources (no {self.target.name} compiler was found when "
                                f"it was compiled); build it first: {cmds}")
        where = self.directory / MANIFEST
        self.inputs = _infos(self.manifest, "inputs", where)
        self.outputs = _infos(self.manifest, "outputs", where)
        self.threads = threads
        self.device_name = device
        self.device = get_device(device, self.target)
        self._owned_tmp = _owned_tmp  # compile() without output_dir: the temporary folder is ours

    def save(self, directory, *, overwrite: bool = False) -> Path:
        """Copy this model's artifact to ``directory`` (see CompiledModel.save)."""
        return copy_artifact(self.directory, Path(directory), overwrite=overwrite)

    def __del__(self):
        if getattr(self, "_owned_tmp", False):
            shutil.rmtree(self.directory.parent, ignore_errors=True)  # the mkdtemp() root

    @property
    def input_names(self) -> list[str]:
        return [i.name for i in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [o.name for o in self.outputs]

    def run_files(self, inputs: list[tuple[str, Path]], out: Path, bench: int | None = None) -> str:
        """pf_run on the device with .npy ``inputs`` ((name, path) pairs), outputs into ``out``
        (absent or empty); returns what pf_run printed."""
        extra = (["--threads", str(self.threads)] if self.threads else []) + (["--bench", str(bench)] if bench else [])
        return self.device.run(self.directory, inputs, out, extra)

    def run(self, output_names=None, feeds=None) -> list[np.ndarray]:
        if not isinstance(feeds, dict):
            raise InputError(f"feeds must be a dict of input name -> array, got {type(feeds).__name__}")
        unknown = sorted(set(feeds) - set(self.input_names), key=str)
        if unknown:
            raise InputError(f"unknown input(s) {unknown}; the model's inputs are {self.input_names}")
        names = self.output_names if output_names is None else list(output_names)
        missing = [n for n in names if n not in self.output_names]
        if missing:
            raise InputError(f"unknown output(s) {missing}; the model's outputs are {self.output_names}")
        with tempfile.TemporaryDirectory(prefix="polyfuse-device-") as tmp:
            files = []
            for k, info in enumerate(self.inputs):
                if info.name not in feeds:
                    raise InputError(f"missing input {info.name!r} ({info.dtype.name}{list(info.shape)})")
                a = np.asarray(feeds[info.name])
                if a.dtype.newbyteorder("=") == info.dtype and not a.dtype.isnative:
                    a = a.astype(info.dtype)  # the other byte order: exact
                np.save(Path(tmp) / _filename(k), np.ascontiguousarray(a))
                files.append((info.name, Path(tmp) / _filename(k)))
            out = Path(tmp) / "out"
            self.run_files(files, out)
            got = {}
            for info, path in zip(self.outputs, output_filenames(self.output_names)):
                got[info.name] = np.load(out / path)
        return [got[n] for n in names]

    def __repr__(self) -> str:
        return f"DeviceModel({self.manifest.get('model_name')!r}, target={self.target.name!r}, device={self.device_name!r})"


def output_filenames(names: list[str]) -> list[str]:
    """The .npy file name of each output, as `polyfuse run` and pf_run write them: characters
    outside [A-Za-z0-9_.-] become '_', no leading dot, repeats get _1, _2, ..."""
    taken: set = set()
    out = []
    for name in names:
        base = re.sub(r"[^A-Za-z0-9_.-]", "_", name).lstrip(".") or "output"
        cand, k = base, 1
        while cand in taken:
            cand, k = f"{base}_{k}", k + 1
        taken.add(cand)
        out.append(cand + ".npy")
    return out
