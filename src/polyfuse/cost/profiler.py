"""``polyfuse bench --profile``: each launch's measured time next to the cost model's prediction.

The artifact's own pf_run runs the model ``repeat`` times with PF_PROFILE=1; the generated code
times every launch (host and android-cpu: a steady clock around each kernel call; android-gpu:
OpenCL profiling events) and prints one ``pf_profile <launch> <kernel> <runs> <median ns>`` line
per launch when it exits (the first run, cold, not counted), and android-gpu a ``pf_device <name>``
line naming the OpenCL device. Launch j is the cost model's group j (both follow the fused
kernel order).
"""
from __future__ import annotations

import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from . import Estimate


@dataclass
class Measured:
    launch_ms: list  # median ms per launch, in launch order
    wall_ms: float  # pf_run's median latency of a whole inference
    device: str = ""  # the OpenCL device that ran it (android-gpu; empty for CPU targets)


def parse_profile(stderr: str) -> list[float]:
    """Median ms per launch from pf_profile lines, in launch order."""
    per = {}
    for line in stderr.splitlines():
        if line.startswith("pf_profile "):
            f = line.split()
            per[int(f[1])] = int(f[4]) / 1e6
    return [per[j] for j in sorted(per)]


def opencl_device(printed: str) -> str:
    """The OpenCL device an android-gpu pf_run named (its pf_device line), or ""."""
    return next((line[len("pf_device "):].strip() for line in printed.splitlines() if line.startswith("pf_device ")), "")


def measure(directory: Path, feeds: dict, repeat: int, threads: int | None = None, profile: bool = True,
            device: str | None = None) -> Measured:
    """Run the artifact's pf_run ``repeat`` times on ``feeds`` (with PF_PROFILE=1 unless not ``profile``:
    then launch_ms is empty), here or, for an artifact built for one, on ``device`` (qemu, adb[:SERIAL]);
    a device's Measured.device describes it."""
    if device:
        return _measure_on_device(directory, feeds, repeat, threads, profile, device)
    runner = Path(directory) / "pf_run"
    if not runner.is_file():
        raise InputError(f"{directory}: has no pf_run to profile with (an artifact for a device: profile there)")
    with tempfile.TemporaryDirectory(prefix="polyfuse-profile-") as tmp:
        args = []
        for i, (name, value) in enumerate(feeds.items()):
            np.save(Path(tmp) / f"in{i}.npy", value)
            args += ["--input", f"{name}={Path(tmp) / f'in{i}.npy'}"]
        cmd = [str(runner), str(directory), *args, "-o", str(Path(tmp) / "out"), "--bench", str(repeat)]
        if threads:
            cmd += ["--threads", str(threads)]
        r = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, PF_PROFILE="1" if profile else "0"), timeout=3600)
    if r.returncode != 0:
        raise InputError(f"{runner}: failed while profiling: {r.stderr.strip()[-2000:]}")
    return Measured(parse_profile(r.stderr), _median_ms(r.stdout, str(runner)), opencl_device(r.stderr))


def _measure_on_device(directory, feeds, repeat, threads, profile, device) -> Measured:
    from ..runtime.device_model import DeviceModel

    model = DeviceModel(directory, device, threads)
    with tempfile.TemporaryDirectory(prefix="polyfuse-profile-") as tmp:
        printed = model.run_feeds(feeds, Path(tmp) / "out", bench=repeat, profile=profile)
    opencl, where = opencl_device(printed), model.device.describe()
    return Measured(parse_profile(printed), _median_ms(printed, f"pf_run on {device}"),
                    f"{opencl} on {where}" if opencl else where)


def _median_ms(printed: str, who: str) -> float:
    """The median latency of pf_run --bench's summary line."""
    try:
        return float(printed.split("median ")[1].split()[0])
    except (IndexError, ValueError):
        raise InputError(f"{who}: printed no latency: {printed[-500:]}") from None


def compare(est: Estimate, measured: Measured) -> dict:
    """Per launch: measured and predicted ms, achieved GFLOP/s and GB/s; and the totals."""
    if len(measured.launch_ms) != len(est.groups):
        raise InputError(f"profile has {len(measured.launch_ms)} launches, the cost model {len(est.groups)}: "
                         "the artifact and the model differ")
    rows = []
    for j, (g, ms) in enumerate(zip(est.groups, measured.launch_ms)):
        rows.append({"launch": j, "name": g.name, "kind": g.kind, "ops": g.ops, "flops": g.flops, "bytes": g.bytes,
                     "bound": g.bound, "predicted_ms": round(g.ms, 6), "measured_ms": round(ms, 6),
                     "gflops": round(g.flops / ms / 1e6, 3) if ms else None,
                     "gbs": round(g.bytes / ms / 1e6, 3) if ms else None})
    total = sum(measured.launch_ms)
    return {"model": est.model, "target": est.target, "precision": est.precision,
            "profile": {"name": est.profile.name, "device": est.profile.device, "calibrated": est.profile.calibrated},
            "measured_ms": round(total, 6), "wall_ms": measured.wall_ms, "predicted_ms": round(est.total_ms, 6),
            "launches": rows}


def table(c: dict, top: int = 15) -> str:
    p = c["profile"]
    on = f" on {c['device']}" if c.get("device") else ""
    lines = [f"{c['model']} ({c['target']}{on}, {c['precision']}): kernels {c['measured_ms']:.3f} ms measured "
             f"(whole inference {c['wall_ms']:.3f} ms), {c['predicted_ms']:.3f} ms predicted by profile {p['name']} "
             f"({'calibrated' if p['calibrated'] else 'uncalibrated'}); ratio {c['predicted_ms'] / max(c['measured_ms'], 1e-12):.2f}",
             f"{'measured':>9} {'predicted':>9} {'GFLOP/s':>8} {'GB/s':>7} {'bound':>8}  launch kernel (fused ops)"]
    for r in sorted(c["launches"], key=lambda r: -r["measured_ms"])[:top]:
        ops = ",".join(dict.fromkeys(r["ops"]))
        lines.append(f"{r['measured_ms']:9.4f} {r['predicted_ms']:9.4f} {r['gflops'] or 0:8.2f} {r['gbs'] or 0:7.2f} "
                     f"{r['bound']:>8}  {r['launch']:>4} {r['kind']} {r['name'][-40:]} ({ops[:50]})")
    if len(c["launches"]) > top:
        lines.append(f"... {len(c['launches']) - top} more launches (--json lists all)")
    return "\n".join(lines)
