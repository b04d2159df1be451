"""DeviceModel: an artifact for a target that does not run in this process (android-cpu),
run through its own pf_run on a device (polyfuse.devices: ``qemu`` or ``adb[:SERIAL]``).

``run(output_names, feeds)`` behaves like CompiledModel.run; each call writes the feeds as
.npy files, runs pf_run once on the device and reads its outputs back.
"""
from __future__ import annotations

import re
import tempfile
from pathlib import Path

import numpy as np

from ..errors import ArtifactError, InputError
from .model import ArtifactModel


class DeviceModel(ArtifactModel):
    def __init__(self, directory, device: str, threads: int | None = None, *, _owned_tmp: bool = False):
        from ..devices import get_device
        from ..targets import get as get_target
        from ..targets import of_artifact

        self._read_manifest(directory)
        self.target = of_artifact(self.manifest) or get_target(self.manifest.get("target"))
        if self.target.loads_here:
            how = " (or compile it for the device: --device / device=...)" if self.target.device_variant else ""
            raise InputError(f"device {device!r}: {self.directory} is a {self.target.name} artifact built for this "
                             f"machine, which runs here without a device; leave out the device{how}")
        if not self.manifest.get("built", True):
            cmds = "; or ".join(c.format(dir=self.directory) for c in self.target.build_commands)
            raise ArtifactError(f"{self.directory}: holds only sources (no {self.target.name} compiler was found when "
                                f"it was compiled); build it first: {cmds}")
        self.threads = threads
        self.device_name = device
        self.device = get_device(device, self.target)
        self._owned_tmp = _owned_tmp  # compile() without output_dir: the temporary folder is ours

    def run_feeds(self, feeds, out: Path, bench: int | None = None, profile: bool = False) -> str:
        """pf_run on the device with ``feeds`` (input name -> array), outputs into ``out`` (absent
        or empty), ``--bench`` when given; returns what pf_run printed (with ``profile``: run with
        PF_PROFILE=1, its per-launch pf_profile lines included)."""
        if not isinstance(feeds, dict):
            raise InputError(f"feeds must be a dict of input name -> array, got {type(feeds).__name__}")
        unknown = sorted(set(feeds) - set(self.input_names), key=str)
        if unknown:
            raise InputError(f"unknown input(s) {unknown}; the model's inputs are {self.input_names}")
        extra = (["--threads", str(self.threads)] if self.threads else []) + (["--bench", str(bench)] if bench else [])
        with tempfile.TemporaryDirectory(prefix="polyfuse-device-") as tmp:
            files = []
            for k, info in enumerate(self.inputs):
                if info.name not in feeds:
                    raise InputError(f"missing input {info.name!r} ({info.dtype.name}{list(info.shape)})")
                a = np.asarray(feeds[info.name])
                if a.dtype.newbyteorder("=") == info.dtype and not a.dtype.isnative:
                    a = a.astype(info.dtype)  # the other byte order: exact
                path = Path(tmp) / f"in{k}.npy"  # never a model's name: those stay inside pf_run's arguments
                np.save(path, np.ascontiguousarray(a))
                files.append((info.name, path))
            return self.device.run(self.directory, files, out, extra, profile=profile)

    def latency(self, feeds, repeat: int) -> tuple[float, float]:
        """(median, min) milliseconds of ``repeat`` runs, timed by pf_run --bench on the device."""
        from ..devices import DeviceError

        with tempfile.TemporaryDirectory(prefix="polyfuse-bench-") as tmp:
            printed = self.run_feeds(feeds, Path(tmp) / "out", bench=repeat)
        m = re.search(r"median ([0-9.]+) ms, min ([0-9.]+) ms", printed)
        if not m:
            raise DeviceError(f"pf_run on {self.device_name} printed no latency: {printed.strip()[:200]}")
        return float(m.group(1)), float(m.group(2))

    def run(self, output_names=None, feeds=None) -> list[np.ndarray]:
        names = self.output_names if output_names is None else list(output_names)
        missing = [n for n in names if n not in self.output_names]
        if missing:
            raise InputError(f"unknown output(s) {missing}; the model's outputs are {self.output_names}")
        with tempfile.TemporaryDirectory(prefix="polyfuse-device-") as tmp:
            self.run_feeds(feeds, Path(tmp) / "out")
            got = {info.name: np.load(Path(tmp) / "out" / f)
                   for info, f in zip(self.outputs, output_filenames(self.output_names))}
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
