"""The ``polyfuse`` command line: compile, run, inspect, estimate, bench.

Every expected failure prints one ``polyfuse: error: ...`` line (or a short block for lists) on
stderr and exits 2; never a traceback. Set POLYFUSE_DEBUG=1 to see tracebacks of internal errors.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import sys
import time
from pathlib import Path

from . import __version__
from .errors import InputError, PolyfuseError
from .targets import TARGETS

log = logging.getLogger("polyfuse")


def parse_shapes(items) -> dict:
    shapes = {}
    for item in items or []:
        name, sep, dims = item.rpartition("=")
        try:
            shape = tuple(int(d) for d in dims.split(",")) if dims.strip() else ()
        except ValueError:
            shape = None
        if not sep or not name or shape is None:
            raise InputError(f"--shape {item!r}: expected NAME=D0,D1,... (for example input_ids=1,128)")
        shapes[name] = shape
    return shapes


def _add_common(p, shapes=True, threads=True, fusion=True):
    if fusion:
        p.add_argument("--no-fusion", action="store_true", help="one kernel per operator (for comparison, debugging)")
    if shapes:
        p.add_argument("--shape", action="append", metavar="NAME=D0,D1,...",
                       help="concrete shape for an input with symbolic dims (repeatable)")
    if threads:
        p.add_argument("--threads", type=int, default=None, help="threads to run with (default: all cores)")


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB"):
        if n < 1024 or unit == "MiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return ""


def cmd_compile(args) -> int:
    from .api import build_artifact
    from .targets import get as get_target

    target = get_target(args.target).at_precision(args.precision)
    if args.device:
        target = target.for_device()
    out = Path(args.output or f"{Path(args.model).stem}.{args.target}")
    t0 = time.perf_counter()
    if args.tune is not None:
        return _compile_tuned(args, target, out, t0)
    path, manifest, comp = build_artifact(args.model, out, target=target, shapes=parse_shapes(args.shape),
                                          fusion=not args.no_fusion, overwrite=args.force)
    st = manifest["stats"]
    if comp is None:
        how = "unchanged model: artifact from the compile cache"
    elif comp.library is None:
        how = "sources only"
    else:
        how = "cached build" if comp.cached else f"C++ build {comp.timings.get('build', 0):.1f} s"
    print(f"compiled {manifest['model_name']}: {st['onnx_nodes']} ONNX nodes -> {st['kernels']} kernel launches "
          f"({st['distinct_kernels']} distinct), arena {_size(st['arena_bytes'])}, "
          f"weights {_size(st['weights_bytes'])}, {time.perf_counter() - t0:.1f} s ({how})")
    for note in manifest["notes"]:
        print(f"note: {note}")
    print(f"artifact: {path}")
    if not manifest.get("built", True):
        from .targets import of_artifact

        t = of_artifact(manifest)
        print(f"no compiler for {t.name} here ({t.toolchain.install_hint}); build the library and pf_run with one of:")
        for cmd in t.build_commands:
            print("  " + cmd.format(dir=shlex.quote(str(path))))
    return 0


def _compile_tuned(args, target, out, t0) -> int:
    from .tune import table, tune

    if args.no_fusion:
        raise InputError("--tune builds and times fused variants: not with --no-fusion")
    path, manifest, ranked = tune(args.model, out, target=target, shapes=parse_shapes(args.shape), k=args.tune,
                                  seconds=args.tune_time, repeat=args.tune_repeat, profile=args.tune_profile,
                                  overwrite=args.force, device=args.device)
    tuning = manifest["tuning"]
    on = f" on {args.device}" if args.device else ""
    print(f"tuned {manifest['model_name']} for {target.name}{on} (cost model: profile {tuning['profile']}; "
          f"pf_run medians of {tuning['rounds']} rounds x {tuning['repeat']} runs):")
    print(table(ranked, tuning["chosen"]))
    print(f"kept {tuning['chosen']}: {manifest['stats']['kernels']} kernel launches, {time.perf_counter() - t0:.1f} s")
    print(f"artifact: {path}")
    return 0


def _load_inputs(items) -> dict:
    import numpy as np

    feeds = {}
    for item in items or []:
        name, sep, file = item.partition("=")
        if not sep:
            name, file = "", item
        path = Path(file)
        if not path.is_file():
            raise InputError(f"--input {item!r}: {path}: no such file")
        try:
            data = np.load(path, allow_pickle=False)
        except Exception as e:
            raise InputError(f"--input {item!r}: {path}: not a .npy/.npz file ({e})") from None
        if hasattr(data, "files"):  # .npz: every array, by its name
            feeds.update({k: data[k] for k in data.files})
        elif not name:
            raise InputError(f"--input {item!r}: a .npy file needs a name: NAME=FILE.npy")
        else:
            feeds[name] = data
    return feeds


def _compiled(model, args):
    from .api import compile as pf_compile
    from .runtime import load

    if Path(model).is_dir():
        return load(model, args.threads)
    return pf_compile(model, "host", shapes=parse_shapes(getattr(args, "shape", None)), threads=args.threads,
                      fusion=not getattr(args, "no_fusion", False))


def cmd_run(args) -> int:
    import numpy as np

    from .build.artifact import check_empty, staged
    from .runtime.device_model import output_filenames

    dest = Path(args.output)
    check_empty(dest)  # before the work; staged() checks again, and never deletes anything
    feeds = _load_inputs(args.input)
    if args.device or _foreign_artifact(args.model):
        return _run_on_device(args, feeds, dest)
    cm = _compiled(args.model, args)
    outs = cm.run(None, feeds)
    with staged(dest, check_empty) as tmp:
        for name, arr, fname in zip(cm.output_names, outs, output_filenames(cm.output_names)):
            np.save(tmp / fname, arr)
            print(f"{name}: {arr.dtype.name}{list(arr.shape)} -> {dest / fname}")
    return 0


def _foreign_artifact(model) -> bool:
    """True for an artifact directory whose target's code does not run in this process."""
    from .build.artifact import read_manifest
    from .targets import of_artifact

    if not Path(model).is_dir():
        return False
    t = of_artifact(read_manifest(Path(model)))
    return t is not None and not t.loads_here


def _run_on_device(args, feeds: dict, dest: Path) -> int:
    from .runtime.device_model import DeviceModel

    if not Path(args.model).is_dir():
        raise InputError(f"--device: {args.model} is not an artifact directory; compile it first "
                         "(polyfuse compile MODEL --target android-cpu -o DIR)")
    if not args.device:
        raise InputError(f"{args.model} was compiled for another CPU; run it with --device qemu or --device adb[:SERIAL]")
    print(DeviceModel(args.model, args.device, args.threads).run_feeds(feeds, dest), end="")
    return 0


def cmd_inspect(args) -> int:
    from .inspect import inspect_model

    print(inspect_model(args.model, shapes=parse_shapes(args.shape), as_json=args.json, show_graph=args.graph,
                        explain=args.explain, fusion=not args.no_fusion, svg=args.svg, html=args.html,
                        target=args.target))
    return 0


def cmd_estimate(args) -> int:
    from .cost import estimate

    est = estimate(args.model, shapes=parse_shapes(args.shape), target=args.target, profile=args.profile,
                   precision=args.precision, fusion=not args.no_fusion)
    print(json.dumps(est.to_json(), indent=1) if args.json else est.table(args.top))
    return 0


def cmd_calibrate(args) -> int:
    from .cost.calibrate import calibrate

    out = Path(args.output)
    if out.is_dir() or (out.exists() and not args.force):
        raise InputError(f"-o {out}: {'is a folder' if out.is_dir() else 'exists; --force replaces it'}")
    if not out.parent.is_dir():
        raise InputError(f"-o {out}: folder {out.parent} does not exist")
    doc = calibrate(args.target, threads=args.threads, repeat=args.repeat, device=args.device)
    tmp = out.with_name(out.name + ".partial")
    tmp.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    tmp.replace(out)
    dev = doc["targets"][args.target]
    print(f"{out}: {dev['device']}: peak {dev['peak_gflops']} GFLOP/s, {dev['bandwidth_gbs']} GB/s, launch "
          f"{dev['launch_us']} us; fit MAPE per launch: " + ", ".join(f"{k} {v['mape']:.1%} ({v['launches']})"
                                                                  for k, v in doc["fit"].items()))
    return 0


def cmd_nas(args) -> int:
    from .nas import get_space, search
    from .nas.report import check_output, write

    out = Path(args.output)
    check_output(out)  # before the search, not after
    executor = "ray" if args.ray is not None else args.executor
    result = search(get_space(args.space, args.seq), target=args.target, profile=args.profile,
                    budget_ms=args.budget_ms, trials=args.trials, quality=args.quality, executor=executor,
                    workers=args.workers, ray_address=args.ray or None, seed=args.seed)
    write(result, out)
    best = result.best()
    print(f"{out}: {len(result.candidates)} candidates, {len(result.pareto())} on the Pareto front within "
          f"{args.budget_ms:g} ms; best {best.config.name()}: {best.predicted_ms:.3f} ms predicted, quality "
          f"{best.quality:.4f} (pareto.json, pareto.png, best.onnx)")
    return 0


def cmd_bench(args) -> int:
    from .bench import bench_model, bench_on_device, profile_model
    from .devices import check_device_use
    from .targets import get as get_target

    check_device_use(get_target(args.target), args.device, "bench --profile" if args.profile else "bench")
    if args.profile:
        print(profile_model(args.model, shapes=parse_shapes(args.shape), threads=args.threads, repeat=args.repeat,
                            target=args.target, precision=args.precision, device_profile=args.device_profile,
                            as_json=args.json, device=args.device))
        return 0
    if args.device:  # (a target whose code runs elsewhere has one: check_device_use)
        print(bench_on_device(args.model, args.target, args.device, shapes=parse_shapes(args.shape),
                              threads=args.threads, repeat=args.repeat, vs=args.vs, precision=args.precision))
        return 0
    print(bench_model(args.model, shapes=parse_shapes(args.shape), threads=args.threads, repeat=args.repeat,
                      vs=args.vs, target=args.target, precision=args.precision))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="polyfuse", description="Compile ONNX models into fast native code.")
    p.add_argument("--version", action="version", version=f"polyfuse {__version__}")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress messages")
    sub = p.add_subparsers(dest="command", required=True)

    c = sub.add_parser("compile", help="compile a model into an artifact directory")
    c.add_argument("model", help="path to an .onnx file")
    c.add_argument("--target", default="host",
                   help=f"one of: {', '.join(TARGETS)} (default: host)")
    c.add_argument("-o", "--output", help="artifact directory (default: MODEL_STEM.TARGET); must be absent or empty")
    c.add_argument("--force", action="store_true",
                   help="replace an existing artifact there (refused if it holds files polyfuse did not write)")
    c.add_argument("--precision", choices=["fp32", "fp16"], default="fp32",
                   help="fp16 (android-gpu): intermediates and weights stored as half, arithmetic in float32")
    c.add_argument("--device", metavar="DEVICE", help="build for running on a device (qemu, adb, adb:SERIAL): for "
                   "android-gpu, the host side is cross-built for the phone's arm64 CPU")
    c.add_argument("--tune", nargs="?", type=int, const=3, default=None, metavar="K",
                   help="build the K (default 3) schedule variants the cost model predicts fastest, and the "
                   "default, time them here and keep the fastest")
    c.add_argument("--tune-time", type=float, default=600, metavar="S",
                   help="with --tune: start no new variant build after S seconds (default 600)")
    c.add_argument("--tune-repeat", type=int, default=10, metavar="N", help="with --tune: timed runs per round (default 10)")
    c.add_argument("--tune-profile", metavar="P", help="with --tune: the device profile that ranks the variants "
                   "(default: the target's, as for estimate)")
    _add_common(c, threads=False)
    c.set_defaults(func=cmd_compile)

    r = sub.add_parser("run", help="run a compiled artifact (or compile and run an .onnx) on .npy inputs")
    r.add_argument("model", help="artifact directory or .onnx file")
    r.add_argument("--input", action="append", metavar="NAME=FILE.npy | FILE.npz", help="input tensor (repeatable)")
    r.add_argument("-o", "--output", required=True, help="directory to write one OUTPUT.npy per model output")
    r.add_argument("--device", metavar="DEVICE", help="run an artifact built for another CPU (android-cpu) on: "
                   "qemu (emulated here), adb or adb:SERIAL (a phone)")
    _add_common(r)
    r.set_defaults(func=cmd_run)

    i = sub.add_parser("inspect", help="show what the compiler makes of a model")
    i.add_argument("model")
    i.add_argument("--json", action="store_true", help="machine-readable summary")
    i.add_argument("--target", default="host", help=f"one of: {', '.join(TARGETS)} (default: host)")
    i.add_argument("--graph", action="store_true", help="print the optimised graph, one line per node")
    i.add_argument("--explain", action="store_true", help="list every refused fusion with its reason")
    i.add_argument("--svg", metavar="FILE", help="draw the graph with its fusion groups as SVG")
    i.add_argument("--html", metavar="FILE", help="... as an interactive HTML page")
    _add_common(i, threads=False)
    i.set_defaults(func=cmd_inspect)

    e = sub.add_parser("estimate", help="predict a model's time after fusion from a device profile, without building it")
    e.add_argument("model", help=".onnx file")
    e.add_argument("--target", default="host", help=f"one of: {', '.join(TARGETS)} (default: host)")
    e.add_argument("--profile", help="a shipped device profile (host-generic, sd865, sd855, kirin980) or a profile "
                   "JSON file (default: host-generic for host, sd865 for the phone targets)")
    e.add_argument("--precision", choices=["fp32", "fp16"], default="fp32", help="as for compile")
    e.add_argument("--json", action="store_true", help="total_ms and every kernel (name, ops, flops, bytes, bound, ms)")
    e.add_argument("--top", type=int, default=15, help="kernels listed in the table, slowest first (default 15)")
    _add_common(e, threads=False)
    e.set_defaults(func=cmd_estimate, quick_exit=True)

    k = sub.add_parser("calibrate", help="fit a device profile for the cost model to this machine's kernel times")
    k.add_argument("--target", default="host", help="host, android-gpu (this machine's OpenCL device), or with "
                   "--device android-cpu / android-gpu (default host)")
    k.add_argument("--device", metavar="DEVICE", help="time the kernels on a device: adb[:SERIAL] (a phone) or qemu "
                   "(emulated arm64: checks the pipeline; its times are not a phone's)")
    k.add_argument("-o", "--output", required=True, help="the profile JSON to write (estimate --profile FILE)")
    k.add_argument("--force", action="store_true", help="replace an existing file")
    k.add_argument("--repeat", type=int, default=20, help="timed runs of each calibration model (default 20)")
    _add_common(k, shapes=False, fusion=False)
    k.set_defaults(func=cmd_calibrate)

    n = sub.add_parser("nas", help="search encoder architectures under a latency budget, priced by the cost model")
    n.add_argument("--space", default="bert", help="search space (default bert)")
    n.add_argument("--seq", type=int, default=None, help="sequence length of the candidates (default 128)")
    n.add_argument("--target", default="android-gpu", help=f"one of: {', '.join(TARGETS)} (default android-gpu)")
    n.add_argument("--profile", help="device profile, as for estimate (default: the target's)")
    n.add_argument("--budget-ms", type=float, required=True, help="predicted latency budget in ms")
    n.add_argument("--trials", type=int, default=200, help="candidates to evaluate (default 200)")
    n.add_argument("--quality", metavar="MODULE:FUNCTION", help="quality of an EncoderConfig, higher is better "
                   "(default: log10 of the layers' weight count, a documented proxy)")
    n.add_argument("--executor", choices=["inline", "process"], default="inline",
                   help="where quality functions run (default inline; process: a process pool of --workers)")
    n.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help="run quality functions as Ray tasks: a local Ray by default, or a cluster's address")
    n.add_argument("--workers", type=int, default=None, help="parallel quality evaluations")
    n.add_argument("--seed", type=int, default=0)
    n.add_argument("-o", "--output", required=True, help="new folder for pareto.json, pareto.png and best.onnx")
    n.set_defaults(func=cmd_nas)

    b = sub.add_parser("bench", help="time a model, optionally against onnxruntime in the same process")
    b.add_argument("model", help=".onnx file")
    b.add_argument("--vs", choices=["onnxruntime"], help="peer to compare with (same thread count)")
    b.add_argument("--repeat", type=int, default=20, help="timed runs of each (default 20)")
    b.add_argument("--target", default="host", help=f"one of: {', '.join(TARGETS)} (default: host)")
    b.add_argument("--device", metavar="DEVICE", help="for a target that does not run here: qemu, adb or adb:SERIAL")
    b.add_argument("--precision", choices=["fp32", "fp16"], default="fp32", help="as for compile")
    b.add_argument("--profile", action="store_true", help="time every launch (the artifact's pf_run with PF_PROFILE=1) "
                   "and print it next to the cost model's prediction, achieved GFLOP/s and GB/s")
    b.add_argument("--device-profile", metavar="P", help="with --profile: the device profile the prediction uses "
                   "(as estimate --profile)")
    b.add_argument("--json", action="store_true", help="with --profile: every launch as JSON")
    _add_common(b)
    b.set_defaults(func=cmd_bench)
    return p


def main(argv=None) -> int:
    return _run(build_parser().parse_args(argv))


def _run(args) -> int:
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="polyfuse: %(message)s",
                        stream=sys.stderr)
    try:
        rc = args.func(args)
        sys.stdout.flush()  # here, so that a reader gone away is a BrokenPipeError handled below
        return rc
    except PolyfuseError as e:
        print(f"polyfuse: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("polyfuse: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader of stdout went away (`| head`): stop quietly, as SIGPIPE would
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing more reaches the pipe
        return 141
    except Exception as e:  # a bug: say so in one line, keep the traceback for POLYFUSE_DEBUG
        if os.environ.get("POLYFUSE_DEBUG"):
            raise
        print(f"polyfuse: internal error: {type(e).__name__}: {e} (set POLYFUSE_DEBUG=1 for a traceback and "
              "please report it)", file=sys.stderr)
        return 70


def console() -> None:
    """The installed ``polyfuse`` command (and ``python -m polyfuse``): runs the command line as
    :func:`main` does, then exits.

    A command that only reads and prints (``quick_exit`` in its defaults: estimate) leaves with
    ``os._exit`` once its output is flushed, skipping the interpreter's teardown: freeing the
    graph and sympy's caches after pricing BERT-base took 0.2-0.27 s of a ~2 s command, and such
    a command has no files, temporary folders or child processes to finish."""
    args = build_parser().parse_args()
    rc = _run(args)
    if getattr(args, "quick_exit", False):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(rc)
    sys.exit(rc)


if __name__ == "__main__":
    console()
