"""``polyfuse.estimate``: how fast a model will run after polyfuse fuses it, without building it.

    est = polyfuse.estimate("model.onnx", shapes={"input_ids": (1, 128)}, target="android-gpu",
                            profile="sd865")
    est.total_ms, est.groups[0].bound

The model goes through the compiler's front end and fusion for the target (no code generation,
no C++ build); each fused kernel is priced by the device profile (cost/profile.py, cost/model.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..pipeline import frontend, kernels
from ..targets import get as get_target
from .model import KernelCost, price
from .profile import DeviceProfile, load_profile, shipped  # noqa: F401


@dataclass
class Estimate:
    model: str
    target: str
    precision: str
    profile: DeviceProfile
    groups: list = field(default_factory=list)  # KernelCost per launch, in order

    @property
    def total_ms(self) -> float:
        return sum(g.ms for g in self.groups)

    def to_json(self) -> dict:
        p = self.profile
        return {"model": self.model, "target": self.target, "precision": self.precision,
                "profile": {"name": p.name, "device": p.device, "calibrated": p.calibrated},
                "total_ms": round(self.total_ms, 6), "launches": len(self.groups),
                "flops": sum(g.flops for g in self.groups), "bytes": sum(g.bytes for g in self.groups),
                "by_bound": {b: round(sum(g.ms for g in self.groups if g.bound == b), 6)
                             for b in ("compute", "memory", "launch")},
                "groups": [g.to_json() for g in self.groups]}

    def table(self, top: int = 15) -> str:
        p = self.profile
        lines = [f"{self.model} on {p.device} ({self.target}, {self.precision}; profile {p.name}, "
                 f"{'calibrated' if p.calibrated else 'uncalibrated: public specs'}): "
                 f"{self.total_ms:.3f} ms predicted, {len(self.groups)} launches",
                 f"{'ms':>9} {'share':>6} {'bound':>8} {'GFLOP':>8} {'MiB':>8}  kernel (fused ops)"]
        total = self.total_ms or 1.0
        for g in sorted(self.groups, key=lambda g: -g.ms)[:top]:
            ops = ",".join(dict.fromkeys(g.ops))
            lines.append(f"{g.ms:9.4f} {g.ms / total:6.1%} {g.bound:>8} {g.flops / 1e9:8.4f} {g.bytes / 2**20:8.3f}  "
                         f"{g.kind} {g.name[-50:]} ({ops[:60]})")
        if len(self.groups) > top:
            lines.append(f"... {len(self.groups) - top} more kernels (--json lists all)")
        return "\n".join(lines)


def estimate(model, *, shapes=None, target: str = "host", profile=None, precision: str = "fp32",
             fusion: bool = True) -> Estimate:
    """Predicted time of ``model`` (a path, ModelProto or Graph) compiled for ``target`` on the
    device ``profile`` describes (a shipped name, a JSON file or a DeviceProfile; default: the
    target's, see cost/profile.py DEFAULTS)."""
    t = get_target(target).at_precision(precision)
    prof = load_profile(profile, t.name)
    comp = kernels(frontend(model, shapes), fusion, t)
    return Estimate(comp.graph.name, t.name, t.precision, prof, price(comp.lowered, prof, t.schedule))


__all__ = ["Estimate", "KernelCost", "DeviceProfile", "estimate", "load_profile", "shipped"]
