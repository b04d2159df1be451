"""``polyfuse calibrate``: fit a device profile to this machine's measured kernel times.

A set of BERT-like encoders (nas/builder.py; two layers each, a spread of hidden sizes, heads,
feed-forward widths, sequence lengths and a bottlenecked one) is compiled for the target and each
launch timed by the artifact's pf_run (PF_PROFILE=1, medians; the fastest of three rounds over
the whole set). From those launches:

* launch cost: a fraction of the fastest launch's time (the smallest kernels are nearly all
  overhead), the one whose fit below has the least error;
* peak: the fastest compute-kind kernel's rate (GEMM, attention, GEMM chain), so a calibrated
  peak is the best throughput polyfuse's kernels reach, not the datasheet's;
* bandwidth: the fastest pointwise or reduction kernel's bytes per second;
* per kind, the five curve parameters (two efficiencies, two half sizes, the steepness) by a
  grid search minimising the time-weighted squared log error of the predicted launch times; the
  compute kinds (GEMM, attention, GEMM chain) take the reductions' memory curve and fit only their
  compute curve (a kind with no launch takes the GEMM's curve).

The validation set of benchmarks/validate_cost_model.py is disjoint from these configs.
"""
from __future__ import annotations

import logging
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from ..errors import InputError
from .profile import FORMAT, KINDS, VERSION, Curve, DeviceProfile

log = logging.getLogger("polyfuse")

# (layers, hidden, heads, intermediate, seq, bottleneck)
CALIBRATION_SET = ((2, 128, 2, 512, 64, 0), (2, 256, 4, 1024, 128, 0), (2, 384, 6, 1536, 32, 0),
                   (2, 512, 8, 2048, 256, 0), (2, 768, 12, 3072, 128, 0), (2, 512, 4, 512, 128, 128),
                   (2, 640, 10, 2560, 64, 0), (2, 192, 3, 768, 192, 0), (2, 320, 5, 1280, 96, 0),
                   (2, 256, 4, 512, 32, 0), (2, 128, 4, 256, 128, 0), (2, 384, 4, 768, 256, 96))
COMPUTE_KINDS = ("contraction", "attention", "gemmchain")
_EFF = np.linspace(0.04, 1.0, 25)
_HALF_WORK = np.concatenate([[1.0], np.logspace(2, 8, 19)])
_HALF_BYTES = np.concatenate([[1.0], np.logspace(2, 8, 19)])
_STEEPNESS = (0.35, 0.5, 0.7, 1.0, 1.4)


def _unit_profile(target: str) -> DeviceProfile:
    flat = Curve(1.0, 1.0, 1.0, 1.0)
    return DeviceProfile("unit", target, "", False, 1.0, 1.0, 0.0, {k: flat for k in KINDS})


def measure_set(target: str, threads: int | None, repeat: int, configs=None, rounds: int = 3,
                device: str | None = None) -> tuple[list, str]:
    """(KernelCost with its work and bytes, measured ms) for every launch of every config, and the
    device that ran them where it is not this machine's CPU (android-gpu's OpenCL device, or
    ``device``: qemu, adb[:SERIAL]; else ""). The
    configs are timed in ``rounds`` passes over all of them and each launch keeps its fastest
    round's median: a shared machine's slow spells last seconds, longer than one model's runs."""
    from .. import compile as pf_compile
    from ..nas.builder import EncoderConfig, build_encoder, example_feeds
    from . import estimate
    from .profiler import measure

    configs = CALIBRATION_SET if configs is None else configs
    built, ran_on = [], ""
    with tempfile.TemporaryDirectory(prefix="polyfuse-calibrate-") as tmp:
        for n, cfg in enumerate(configs):
            c = EncoderConfig(*cfg)
            onnx_model = build_encoder(c)
            model = pf_compile(onnx_model, target, threads=threads, output_dir=Path(tmp) / c.name(), device=device)
            est = estimate(onnx_model, target=target, profile=_unit_profile(target))
            built.append((c, model, est, None))
            log.info("calibrate: [%d/%d] built %s: %d launches", n + 1, len(configs), c.name(), len(est.groups))
        for r in range(rounds):
            for n, (c, model, est, best) in enumerate(built):
                m = measure(model.directory, example_feeds(c), repeat, threads, device=device)
                got, ran_on = m.launch_ms, m.device or ran_on
                if len(est.groups) != len(got):
                    raise InputError(f"calibration: {c.name()} has {len(est.groups)} kernels but pf_run timed {len(got)}")
                built[n] = (c, model, est, got if best is None else [min(a, b) for a, b in zip(best, got)])
            log.info("calibrate: timing round %d/%d done", r + 1, rounds)
    return [s for _, _, est, best in built for s in zip(est.groups, best)], ran_on


def _predict(work, macs, nbytes, launch_s, peak, bw, ce, hw, me, hb, p):
    """Seconds for arrays of launches under every combination of the broadcast parameters."""
    compute = work / (peak * ce / (1 + (hw / macs) ** p))
    memory = nbytes / (bw * me / (1 + (hb / nbytes) ** p))
    return launch_s + np.maximum(compute, memory)


def _fit_kind(samples: list, launch_s: float, peak: float, bw: float, memory=None) -> tuple[Curve, float, float]:
    """The curve minimising the time-weighted squared log error over ``samples``, the sum of
    squared log errors (unweighted: every launch counts, the small ones too), and the MAPE.
    ``memory`` (efficiency, half bytes) fixes the memory curve: a compute kind's few launches
    cannot tell a memory curve apart from a slow compute one, so it takes the memory kinds'."""
    work = np.array([max(g.flops, 1) for g, _ in samples], float)
    macs = np.array([max(g.macs, 1) for g, _ in samples], float)
    nbytes = np.array([max(g.bytes, 1) for g, _ in samples], float)
    t = np.array([ms * 1e-3 for _, ms in samples], float)
    w = t / t.sum()
    mes, hbs = ((memory[0],), (memory[1],)) if memory else (_EFF, _HALF_BYTES)
    hw, me, hb = np.meshgrid(_HALF_WORK, mes, hbs, indexing="ij")
    best, best_err = None, np.inf
    for p in _STEEPNESS:  # one compute efficiency and steepness at a time keeps the arrays small
        for ce in _EFF:
            pred = _predict(work, macs, nbytes, launch_s, peak, bw, ce, hw[..., None], me[..., None], hb[..., None], p)
            err = (np.log(pred / t) ** 2 * w).sum(axis=-1)
            j = np.unravel_index(np.argmin(err), err.shape)
            if err[j] < best_err:
                best_err, best = err[j], (ce, hw[j], me[j], hb[j], p)
    curve = Curve(*(float(x) for x in best))
    pred = _predict(work, macs, nbytes, launch_s, peak, bw, *best)
    return curve, float(np.sum(np.log(pred / t) ** 2)), float(np.mean(np.abs(pred - t) / t))


def _fit_all(samples: list, launch_s: float) -> tuple[float, float, float, dict, dict]:
    """Peak, bandwidth, total error, curves and per-kind fit for one launch cost."""
    busy = [(g, ms * 1e-3 - launch_s) for g, ms in samples if ms * 1e-3 > 2 * launch_s]
    rates = [g.flops / t for g, t in busy if g.kind in COMPUTE_KINDS]
    bws = [g.bytes / t for g, t in busy if g.kind not in COMPUTE_KINDS]
    if not rates or not bws:
        raise InputError("calibration: too few kernels above the launch cost to fit a peak and a bandwidth")
    peak, bw = max(rates), max(bws)
    kinds, fit_error, total = {}, {}, 0.0
    memory = None
    for kind in ("reduction", "pointwise", "contraction", "attention", "gemmchain"):
        own = [s for s in samples if s[0].kind == kind]
        if own:
            curve, err, mape = _fit_kind(own, launch_s, peak, bw, memory if kind in COMPUTE_KINDS else None)
            kinds[kind], fit_error[kind] = vars(curve), {"launches": len(own), "mape": round(mape, 4)}
            total += err
            if kind == "reduction" or memory is None and kind == "pointwise":
                memory = (curve.memory_efficiency, curve.half_bytes)
        else:
            kinds[kind] = dict(kinds.get("contraction") or kinds.get("reduction") or vars(Curve(1, 1, 1, 1)))
    return peak, bw, total, {k: kinds[k] for k in KINDS}, fit_error


def fit(samples: list, target: str, device: str) -> dict:
    """A calibrated profile document (the JSON of cost/profile.py) from measured launches. The
    launch cost is at most the fastest launch's time; the fraction of it that fits best is kept."""
    if not samples:
        raise InputError("calibration: no launches were measured")
    fastest = min(ms for _, ms in samples) * 1e-3
    fits = [(_fit_all(samples, fastest * f), fastest * f) for f in (0.5, 0.75, 1.0)]
    (peak, bw, _, kinds, fit_error), launch_s = min(fits, key=lambda x: x[0][2])
    name = f"calibrated-{target}"
    return {"format": FORMAT, "version": VERSION, "name": name, "calibrated": True,
            "description": f"fitted by polyfuse calibrate on {device}",
            "sources": [f"polyfuse calibrate, {time.strftime('%Y-%m-%d')}: {len(samples)} launches of "
                        f"{len(CALIBRATION_SET)} two-layer encoders (nas/builder.py)"],
            "fit": fit_error,
            "targets": {target: {"device": device, "peak_gflops": round(peak / 1e9, 3),
                                 "bandwidth_gbs": round(bw / 1e9, 3), "launch_us": round(launch_s * 1e6, 3),
                                 "kinds": kinds}}}


def this_device(target: str, ran_on: str = "") -> str:
    """The device a calibration ran on: the OpenCL device or the phone where one ran it, else
    this machine's CPU."""
    if ran_on:
        return f"{ran_on} ({target})"
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu} ({target})"


def calibrate(target: str = "host", threads: int | None = None, repeat: int = 20, rounds: int = 3,
              device: str | None = None) -> dict:
    """A calibrated profile for ``target``: its code timed here, or on ``device`` (qemu,
    adb[:SERIAL]) for a target built for another CPU (android-cpu; android-gpu with adb)."""
    from ..devices import check_device_use
    from ..targets import get as get_target

    t = get_target(target)
    check_device_use(t, device, "calibrate")
    if device and device.partition(":")[0] == "qemu":
        log.warning("calibrate --device qemu: the times are qemu's emulation, not a phone's; the profile "
                    "only shows that calibration on a device works")
    samples, ran_on = measure_set(target, threads, repeat, rounds=rounds, device=device)
    return fit(samples, target, this_device(target, ran_on))
