"""What ``polyfuse nas`` leaves behind: pareto.json, pareto.png and best.onnx, in a new folder."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import onnx

from ..errors import InputError
from .builder import build_encoder
from .search import Result

def check_output(out: Path) -> None:
    """``out`` must be absent or an empty folder (checked before a search, and again when writing)."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(f"-o {out}: exists and is not an empty folder (choose a new one)")


def _plot(result: Result, path: Path) -> None:
    try:
        import matplotlib
    except ImportError:
        raise InputError("pareto.png needs matplotlib: pip install 'polyfuse[nas]'") from None

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [c for c in result.candidates if c.feasible]
    front = result.pareto()
    fig, ax = plt.subplots(figsize=(6, 4.5))
    ax.scatter([c.predicted_ms for c in ok], [c.quality for c in ok], s=12, c="0.6", label="candidates")
    ax.plot([c.predicted_ms for c in front], [c.quality for c in front], "o-", c="C0", label="Pareto front")
    ax.axvline(result.budget_ms, c="C3", ls="--", lw=1, label=f"budget {result.budget_ms:g} ms")
    ax.set_xscale("log")
    ax.set_xlabel(f"predicted ms ({result.target}, profile {result.profile})")
    ax.set_ylabel("quality")
    ax.legend(loc="lower right", fontsize=8)
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())  # the log axis' own minor labels overlap
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(result: Result, out: Path) -> Path:
    """The three files into ``out`` (absent or empty), written in a sibling folder first."""
    out = Path(out)
    check_output(out)
    best = result.best()
    if best is None:
        raise InputError(f"no candidate within {result.budget_ms:g} ms had a quality (all failed or over budget): "
                         "see the messages above")
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        doc = {"space": result.space.name, "seq": result.space.seq, "target": result.target,
               "profile": result.profile, "budget_ms": result.budget_ms, "trials": len(result.candidates),
               "best": best.to_json(), "pareto": [c.to_json() for c in result.pareto()],
               "candidates": [c.to_json() for c in result.candidates]}
        (tmp / "pareto.json").write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
        _plot(result, tmp / "pareto.png")
        onnx.save(build_encoder(best.config), str(tmp / "best.onnx"))
        if out.exists():
            out.rmdir()
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
