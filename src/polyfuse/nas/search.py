"""The search: multi-objective (fast and good) under a latency budget, latency from the cost model.

optuna's NSGA-II sampler proposes architectures of the space; each gets its predicted latency
(space.LatencyModel: no build) and a quality from the user's function; a candidate over the
budget is infeasible (NSGA-II's constraint), one whose quality function raises is recorded as
failed with the error and the search goes on. The quality functions, the expensive part when they
train or fine-tune, run on an executor: inline (the default proxy's), a process pool, or Ray.
"""
from __future__ import annotations

import importlib
import logging
import math
import sys
import time
from dataclasses import asdict, dataclass, field

from ..errors import InputError
from .builder import EncoderConfig
from .space import LatencyModel, Space

log = logging.getLogger("polyfuse")


def param_count_quality(config: EncoderConfig) -> float:
    """The default quality: log10 of the encoder layers' weight count. A proxy, not an accuracy:
    within one family, larger encoders score higher on benchmarks such as GLUE, with diminishing
    returns, which the logarithm keeps. Give your own (a callable or 'module:function' taking the
    EncoderConfig) for anything that matters."""
    return math.log10(config.params)


def load_quality(spec) -> callable:
    if spec is None:
        return param_count_quality
    if callable(spec):
        return spec
    module, _, name = str(spec).partition(":")
    if not module or not name:
        raise InputError(f"quality function {spec!r}: expected 'module:function'")
    try:
        fn = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as e:
        raise InputError(f"quality function {spec!r}: {e}") from None
    if not callable(fn):
        raise InputError(f"quality function {spec!r} is not callable")
    return fn


@dataclass
class Candidate:
    number: int
    config: EncoderConfig
    predicted_ms: float
    quality: float | None = None
    error: str | None = None

    @property
    def feasible(self) -> bool:
        return self.error is None and self.quality is not None

    def to_json(self) -> dict:
        return {"number": self.number, "architecture": asdict(self.config), "predicted_ms": round(self.predicted_ms, 4),
                "quality": self.quality, "error": self.error}


@dataclass
class Result:
    space: Space
    target: str
    profile: str
    budget_ms: float
    candidates: list = field(default_factory=list)

    def within_budget(self) -> list:
        return [c for c in self.candidates if c.feasible and c.predicted_ms <= self.budget_ms]

    def pareto(self) -> list:
        """Candidates within the budget that no other is both faster than and at least as good as."""
        ok = sorted(self.within_budget(), key=lambda c: (c.predicted_ms, -c.quality))
        front, best_q = [], -math.inf
        for c in ok:
            if c.quality > best_q:
                front.append(c)
                best_q = c.quality
        return front

    def best(self) -> Candidate | None:
        front = self.pareto()
        return front[-1] if front else None


def _evaluate(quality, config):
    try:
        return float(quality(config)), None
    except Exception as e:  # noqa: BLE001 (the user's function: its failure is the candidate's)
        return None, f"{type(e).__name__}: {e}"


class _Executor:
    """Runs quality functions: inline, in a process pool, or as Ray tasks."""

    def __init__(self, kind: str, quality, workers: int | None, ray_address: str | None):
        self.kind, self.quality = kind, quality
        if kind == "process":
            from concurrent.futures import ProcessPoolExecutor

            self.pool = ProcessPoolExecutor(max_workers=workers)
        elif kind == "ray":
            try:
                import ray
            except ImportError:
                raise InputError("executor 'ray' needs Ray: pip install 'polyfuse[ray]'") from None
            if not ray.is_initialized():
                ray.init(address=ray_address, num_cpus=workers if ray_address is None else None,
                         include_dashboard=False, log_to_driver=False)
            self.ray, self.remote = ray, ray.remote(_evaluate)
        elif kind != "inline":
            raise InputError(f"executor {kind!r}: expected inline, process or ray")

    def map(self, configs: list) -> list:
        if self.kind == "inline":
            return [_evaluate(self.quality, c) for c in configs]
        if self.kind == "process":
            return list(self.pool.map(_evaluate, [self.quality] * len(configs), configs))
        return self.ray.get([self.remote.remote(self.quality, c) for c in configs])

    def close(self):
        if self.kind == "process":
            self.pool.shutdown()


def _progress(done: int, total: int, result: Result, started: float) -> None:
    best = result.best()
    msg = (f"nas: [{done}/{total}] {time.perf_counter() - started:.0f} s, {len(result.within_budget())} within "
           f"{result.budget_ms:g} ms" + (f", best {best.config.name()} {best.predicted_ms:.2f} ms quality "
                                          f"{best.quality:.3f}" if best else ""))
    if sys.stderr.isatty():
        print("\r" + msg[:160].ljust(160), end="" if done < total else "\n", file=sys.stderr, flush=True)
    elif done == total or done % max(1, total // 10) == 0:
        log.info(msg)


def search(space: Space, *, target: str, profile=None, budget_ms: float, trials: int = 200, quality=None,
           executor: str = "inline", workers: int | None = None, ray_address: str | None = None, seed: int = 0,
           batch: int = 8) -> Result:
    """NSGA-II over ``space``: minimise predicted latency, maximise quality, latency <= budget_ms."""
    try:
        import optuna
    except ImportError:
        raise InputError("polyfuse nas needs optuna: pip install 'polyfuse[nas]' (scripts/install.sh does)") from None

    from ..cost import load_profile

    if trials < 1:
        raise InputError(f"trials must be >= 1, got {trials}")
    if not budget_ms > 0:
        raise InputError(f"the latency budget must be a positive number of ms, got {budget_ms}")
    space.check()
    prof = load_profile(profile, target)
    latency = LatencyModel(target, prof)
    fastest = space.smallest()
    fastest_ms = latency(fastest)
    if fastest_ms > budget_ms:
        raise InputError(f"budget {budget_ms:g} ms is below the fastest candidate of space {space.name!r}: "
                         f"{fastest.name()} at {fastest_ms:.3f} ms predicted on {prof.device}")
    fn = load_quality(quality)
    if executor == "inline" and quality is not None and workers:
        executor = "process"
    result = Result(space, target, prof.name, budget_ms)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.NSGAIISampler(seed=seed, population_size=min(50, max(8, trials // 4)))
    study = optuna.create_study(directions=["minimize", "maximize"], sampler=sampler)
    run = _Executor(executor, fn, workers, ray_address)
    started = time.perf_counter()
    try:
        while len(result.candidates) < trials:
            asked = []
            for _ in range(min(batch, trials - len(result.candidates))):
                t = study.ask()
                b = t.suggest_categorical("bottleneck", list(space.bottleneck))
                h = t.suggest_categorical("hidden", list(space.hidden))
                heads = space.heads_for(h, b)
                if not heads:  # this hidden size cannot take the bottleneck's head counts
                    study.tell(t, state=optuna.trial.TrialState.FAIL)
                    continue
                c = space.config(t.suggest_categorical("layers", list(space.layers)), h,
                                 t.suggest_categorical(f"heads_{space.inner(h, b)}", list(heads)),
                                 t.suggest_categorical("intermediate", list(space.intermediate)), b)
                ms = latency(c)
                t.set_constraint("over_budget_ms", ms - budget_ms)  # feasible when <= 0
                asked.append((t, Candidate(len(result.candidates) + len(asked), c, ms)))
            for (t, cand), (q, err) in zip(asked, run.map([c.config for _, c in asked])):
                cand.quality, cand.error = q, err
                result.candidates.append(cand)
                if err is None:
                    study.tell(t, [cand.predicted_ms, q])
                else:
                    log.warning("nas: candidate %d (%s) failed: %s", cand.number, cand.config.name(), err)
                    study.tell(t, state=optuna.trial.TrialState.FAIL)
            _progress(len(result.candidates), trials, result, started)
    finally:
        run.close()
    return result
