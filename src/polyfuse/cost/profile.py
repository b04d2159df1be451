"""Device profiles: what the cost model knows about a device, as a small versioned JSON file.

A profile names a device (or a phone: one file may describe its CPU for android-cpu and its GPU
for android-gpu) and gives, per target: the fp32 peak of the threads polyfuse uses, the memory
bandwidth, the cost of one kernel launch, and per kernel kind two efficiency curves:

    compute efficiency = compute_efficiency * work^p / (work^p + half_work^p)   (work: multiply-adds)
    memory efficiency  = memory_efficiency * bytes^p / (bytes^p + half_bytes^p)

(p, the optional ``steepness``, is 1 unless given)
so a small GEMM or a short pointwise pass gets a smaller share of the peak than a large one.
Shipped profiles (``polyfuse/cost/profiles/``) come from public specs and published measurements
and say ``"calibrated": false`` until ``polyfuse calibrate`` fits them on the device.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError

FORMAT = "polyfuse-profile"
VERSION = 1
SHIPPED = Path(__file__).resolve().parent / "profiles"
KINDS = ("pointwise", "reduction", "contraction", "attention", "gemmchain")
# the profile used when none is named: this machine's target gets a generic one, a phone target a
# mid-range phone of 2020 (Snapdragon 865)
DEFAULTS = {"host": "host-generic", "android-cpu": "sd865", "android-gpu": "sd865"}


@dataclass(frozen=True)
class Curve:
    compute_efficiency: float
    half_work: float
    memory_efficiency: float
    half_bytes: float
    steepness: float = 1.0  # p: how fast the efficiency rises with size (1: hyperbolic)

    def compute(self, work: float) -> float:
        return self.compute_efficiency * _rise(work, self.half_work, self.steepness)

    def memory(self, nbytes: float) -> float:
        return self.memory_efficiency * _rise(nbytes, self.half_bytes, self.steepness)


def _rise(x: float, half: float, p: float) -> float:
    """x^p / (x^p + half^p): 0 for nothing, 1/2 at ``half``, towards 1 for large x (1 when x is 0:
    nothing to do is done at the full rate)."""
    return 1.0 if not x else 1.0 / (1.0 + (half / x) ** p)


@dataclass(frozen=True)
class DeviceProfile:
    name: str  # the profile's name (a shipped name or the file's)
    target: str
    device: str  # what it describes, in words
    calibrated: bool
    peak_gflops: float  # fp32, the threads polyfuse runs
    bandwidth_gbs: float
    launch_us: float
    curves: dict  # kind -> Curve


def shipped() -> list[str]:
    return sorted(p.stem for p in SHIPPED.glob("*.json"))


def _number(d: dict, key: str, where: str, positive: bool = True) -> float:
    v = d.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or (v <= 0 if positive else v < 0):
        raise InputError(f"{where}: {key!r} must be a {'positive' if positive else 'non-negative'} number, "
                         f"got {v!r}")
    return float(v)


def _device(d, name: str, target: str, calibrated: bool, where: str) -> DeviceProfile:
    if not isinstance(d, dict):
        raise InputError(f"{where}: targets.{target} must be an object")
    kinds = d.get("kinds")
    if not isinstance(kinds, dict) or set(kinds) != set(KINDS):
        raise InputError(f"{where}: targets.{target}.kinds must describe exactly {', '.join(KINDS)}")
    curves = {}
    for k in KINDS:
        c, at = kinds[k], f"{where}: targets.{target}.kinds.{k}"
        if not isinstance(c, dict):
            raise InputError(f"{at} must be an object")
        curves[k] = Curve(*(_number(c, f, at, positive=f.endswith("efficiency"))
                            for f in ("compute_efficiency", "half_work", "memory_efficiency", "half_bytes")),
                          _number(c, "steepness", at) if "steepness" in c else 1.0)
        if curves[k].compute_efficiency > 1 or curves[k].memory_efficiency > 1:
            raise InputError(f"{at}: an efficiency is a share of the peak, at most 1")
    return DeviceProfile(name, target, str(d.get("device", "")), calibrated, _number(d, "peak_gflops", where),
                         _number(d, "bandwidth_gbs", where), _number(d, "launch_us", where, positive=False), curves)


def load_profile(spec: "str | Path | DeviceProfile | None", target: str) -> DeviceProfile:
    """The profile ``spec`` (a shipped name such as ``sd865``, a JSON file, or a DeviceProfile
    already loaded) for ``target``; None: the default for the target."""
    if isinstance(spec, DeviceProfile):
        if spec.target != target:
            raise InputError(f"profile {spec.name!r} describes {spec.target}, not {target}")
        return spec
    if spec is None:
        spec = DEFAULTS.get(target)
        if spec is None:
            raise InputError(f"no default device profile for target {target!r}; give one with --profile")
    path, where = Path(spec), f"profile {spec}"
    if not path.suffix and (SHIPPED / f"{spec}.json").is_file():
        path = SHIPPED / f"{spec}.json"
    if not path.is_file():
        raise InputError(f"profile {str(spec)!r}: no such file, and not a shipped profile ({', '.join(shipped())})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"{where}: not a readable JSON file ({e})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise InputError(f"{where}: not a polyfuse device profile (no \"format\": \"{FORMAT}\")")
    if data.get("version") != VERSION:
        raise InputError(f"{where}: version {data.get('version')!r}; this polyfuse reads version {VERSION}")
    targets = data.get("targets")
    if not isinstance(targets, dict) or target not in targets:
        have = ", ".join(targets) if isinstance(targets, dict) else "none"
        raise InputError(f"{where} describes no device for target {target!r} (it has: {have})")
    return _device(targets[target], str(data.get("name", path.stem)), target, data.get("calibrated") is True, where)
