"""``polyfuse compile --tune``: the cost model ranks schedule variants; the best few are built,
timed on this machine, and the fastest is kept.

A variant is the target's schedule (targets/base.py SCHEDULE) with one knob changed: a GEMM
chain's largest second weights off (no chains) or 4x (or, where the target forms none, the common
limit), its row tile halved or doubled, attention's
query-row blocks halved or doubled (where the target splits attention so), and the merging of
parallel MatMuls off. The front end runs once; each variant is fused and priced (cost/model.py:
launches, bytes with each block's re-reads, work), then the ``k`` best predicted, and the
target's own schedule, are built and timed in alternating rounds (pf_run, one process each), and
the one with the lowest median wins. Variants whose generated code is identical are timed once.
"""
from __future__ import annotations

import copy
import hashlib
import json
import logging
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from .errors import InputError, PolyfuseError
from .targets.base import SCHEDULE

log = logging.getLogger("polyfuse")


@dataclass
class Variant:
    label: str  # "default" or "knob=value"
    target: object  # the Target record with this schedule
    predicted_ms: float | None = None
    refused: str = ""  # why fusion or code generation refused it
    source: str = ""  # hash of its generated code, once built
    measured_ms: list = field(default_factory=list)  # pf_run's median latency, per round

    def to_json(self) -> dict:
        return {"variant": self.label, "schedule": dict(self.target.schedule),
                "predicted_ms": None if self.predicted_ms is None else round(self.predicted_ms, 4),
                "measured_ms": round(statistics.median(self.measured_ms), 4) if self.measured_ms else None,
                "measured_range_ms": [round(min(self.measured_ms), 4), round(max(self.measured_ms), 4)]
                if self.measured_ms else None, "refused": self.refused or None}


def variants(target) -> list[Variant]:
    """The target's schedule, then each knob changed alone."""
    s = dict(target.schedule)
    chains = s["chain_max_second_weights"]  # 0: the target forms no chains; then try the common limit
    alternatives = {"chain_max_second_weights": (0, 4 * chains) if chains else (SCHEDULE["chain_max_second_weights"],),
                    "chain_tile_bytes": (s["chain_tile_bytes"] // 2, 2 * s["chain_tile_bytes"]),
                    "attention_rows": (s["attention_rows"] // 2, 2 * s["attention_rows"]) if s["attention_rows"] else (),
                    "parallel_matmuls": (1 - s["parallel_matmuls"],)}
    out = [Variant("default", target)]
    for knob, values in alternatives.items():
        for v in values:
            if v != s[knob] and (v or knob in ("chain_max_second_weights", "parallel_matmuls")):
                out.append(Variant(f"{knob}={v}", replace(target, schedule={**s, knob: v})))
    return out


def _copy(front):
    """A copy of a front-end Compilation that shares its constant arrays (fusion never edits one)."""
    memo = {id(v.const): v.const for v in front.graph.values.values() if v.const is not None}
    return copy.deepcopy(front, memo)


def rank(front, target, profile) -> list[Variant]:
    """Every variant fused and priced, best predicted first (the default first among equals)."""
    from .cost.model import price
    from .pipeline import kernels

    out = variants(target)
    for v in out:
        try:
            comp = kernels(_copy(front), True, v.target)
        except PolyfuseError as e:
            v.refused = str(e).splitlines()[0]
            continue
        v.predicted_ms = sum(c.ms for c in price(comp.lowered, profile, v.target.schedule))
    return sorted(out, key=lambda v: (v.predicted_ms is None, round(v.predicted_ms or 0, 6)))


def tune(model, directory, *, target, shapes=None, k: int = 3, seconds: float = 600, repeat: int = 10,
         rounds: int = 3, threads: int | None = None, profile=None, overwrite: bool = False,
         device: str | None = None):
    """Compile ``model`` into ``directory`` with the fastest measured of the target's default and
    the ``k`` best predicted variants that generate other code; returns (directory, manifest,
    ranked variants). Variants are timed here, or on ``device`` (qemu, adb[:SERIAL]) for a target
    built for one (``target.for_device()``). No new build starts once ``seconds`` have passed (the
    default is always built). ``directory`` is checked first and written only at the end."""
    from .api import write_compiled
    from .bench import sample_inputs
    from .build.artifact import MANIFEST, check_replaceable, copy_artifact, read_manifest
    from .cost.profile import load_profile
    from .cost.profiler import measure
    from .devices import check_device_use
    from .pipeline import backend, frontend, quiet

    if k < 1 or rounds < 1 or repeat < 1:
        raise InputError(f"--tune: k, rounds and repeat must be at least 1 (got {k}, {rounds}, {repeat})")
    if device:
        target = target.for_device()  # android-gpu timed on a phone: its host side built for the phone's CPU
    check_device_use(target, device, "--tune")
    directory = Path(directory)
    check_replaceable(directory, overwrite)
    prof = load_profile(profile, target.name)
    t0 = time.perf_counter()
    front = frontend(model, shapes)
    with quiet():
        ranked = rank(front, target, prof)
    log.info("tune: %d variants priced by profile %s", len(ranked), prof.name)
    default = next(v for v in ranked if v.label == "default")
    order = [default] + [v for v in ranked if v is not default and v.predicted_ms is not None]
    tmp = Path(tempfile.mkdtemp(prefix="polyfuse-tune-"))
    try:
        built, by_source = [], {}
        for v in order:
            if len(built) == k + 1:
                break
            if built and time.perf_counter() - t0 > seconds:
                log.info("tune: time limit (%.0f s) reached after %d builds", seconds, len(built))
                break
            log.info("tune: building %s (predicted %.3f ms)", v.label, v.predicted_ms or float("nan"))
            try:
                with quiet():
                    comp = backend(_copy(front), v.target)
            except PolyfuseError as e:
                v.refused = str(e).splitlines()[0]
                continue
            v.source = hashlib.sha1(comp.source.encode()).hexdigest()
            if v.source in by_source:
                log.info("tune: %s generates the same code as %s", v.label, by_source[v.source].label)
                continue
            by_source[v.source] = v
            where, _ = write_compiled(comp, tmp / f"v{len(built)}", v.target)
            built.append((v, where))
        feeds = sample_inputs([front.graph.values[n] for n in front.graph.inputs])
        for r in range(rounds):  # alternating: a slow spell of a shared machine hits every variant
            for v, where in built:
                v.measured_ms.append(measure(where, feeds, repeat, threads, profile=False, device=device).wall_ms)
            log.info("tune: timing round %d/%d done", r + 1, rounds)
        for v in ranked:  # a variant with the same code as a timed one shares its times
            if not v.measured_ms and v.source in by_source:
                v.measured_ms = by_source[v.source].measured_ms
        best, where = min(built, key=lambda b: statistics.median(b[0].measured_ms))
        manifest = read_manifest(where)
        manifest["tuning"] = {"profile": prof.name, "chosen": best.label, "repeat": repeat, "rounds": rounds,
                              "variants": [v.to_json() for v in ranked]}
        (where / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        copy_artifact(where, directory, overwrite=overwrite)
        return directory, manifest, ranked
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def table(ranked: list[Variant], chosen: str) -> str:
    lines = [f"{'variant':<34} {'predicted ms':>12} {'measured ms':>12}  range"]
    for v in ranked:
        j = v.to_json()
        pred = f"{j['predicted_ms']:.3f}" if j["predicted_ms"] is not None else "-"
        meas = f"{j['measured_ms']:.3f}" if j["measured_ms"] is not None else "-"
        rng = f"{j['measured_range_ms'][0]:.3f}-{j['measured_range_ms'][1]:.3f}" if j["measured_range_ms"] else ""
        note = "  <- kept" if v.label == chosen else (f"  refused: {v.refused[:60]}" if v.refused else "")
        lines.append(f"{v.label:<34} {pred:>12} {meas:>12}  {rng}{note}")
    return "\n".join(lines)
