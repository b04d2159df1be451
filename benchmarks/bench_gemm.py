"""GFLOP/s of polyfuse's pf_sgemm vs numpy (OpenBLAS) and onnxruntime at transformer shapes.

    python benchmarks/bench_gemm.py [--threads 1 2] [--reps 15] [--cxxflags "-O3 -march=native"]
                                    [--json benchmarks/results/bench_gemm.json]

Shapes are M x N x K (C[M,N] = A[M,K] @ B[K,N]), M = 128, N and K in {768, 3072}.
Builds kernels/pf_gemm.cpp into a temporary shared library (with a tiny
extern "C" shim for ctypes) and, for each thread count, runs a worker
subprocess with OPENBLAS_NUM_THREADS / OMP_NUM_THREADS set so numpy's BLAS
uses the same number of threads. Prints median GFLOP/s over --reps timed
repetitions (each runs enough calls to take ~20 ms); pf_sgemm, pf_sgemm with
pre-packed B, numpy and onnxruntime are timed in alternating blocks (see
blocked_gflops). onnxruntime runs a one-node MatMul model (A an input, B a
constant initializer, so it may pre-pack B too; all graph optimizations,
intra_op_num_threads = the thread count; output bound to a preallocated array).

"%peak" is the pre-packed pf_sgemm's rate as a percentage of the machine's
fp32 FMA peak at the same thread count, measured by benchmarks/peak_flops.cpp
(built with g++ -O2 -march=native) before any GEMM runs: the best of three
0.3 s runs. The machine is shared, so each worker also samples the peak
between the GEMM samples (runs of ~0.1 s of the same FMA loop, in turn with
the GEMMs like the other rates); "%now" is the pre-packed rate as a
percentage of the median of those samples, i.e. of the peak under the same
conditions. Results also go to --json.
"""
from __future__ import annotations

import argparse
import ctypes
import functools
import json
import os
import pathlib
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
PEAK_SRC = pathlib.Path(__file__).resolve().parent / "peak_flops.cpp"
SHAPES = [(128, n, k) for n in (768, 3072) for k in (768, 3072)]

SHIM = r"""
#include "pf_gemm.h"
extern "C" {
void c_sgemm(int M, int N, int K, const float* A, const float* B, float* C, int nt) {
  pf_sgemm(M, N, K, 1.0f, A, K, 0, B, N, 0, 0.0f, C, N, nt);
}
void c_pack(int K, int N, const float* B, float* P) { pf_sgemm_pack_b(K, N, B, N, 0, P); }
size_t c_packed_size(int K, int N) { return pf_sgemm_packed_b_size(K, N); }
void c_prepacked(int M, int N, int K, const float* A, const float* P, float* C, int nt) {
  pf_sgemm_prepacked(M, N, K, 1.0f, A, K, 0, P, 0.0f, C, N, nt);
}
const char* c_name() { return pf_sgemm_kernel_name(); }
}
"""


def build(tmp: pathlib.Path, cxxflags: str) -> pathlib.Path:
    shim = tmp / "shim.cpp"
    shim.write_text(SHIM)
    lib = tmp / "libpfgemm_bench.so"
    peak_obj = tmp / "peak_flops.o"  # peak_flops_run(), with the same flags as the standalone build
    subprocess.run(["g++", "-O2", "-march=native", "-std=c++17", "-pthread", "-fPIC", "-DPEAK_FLOPS_LIBRARY",
                    "-c", str(PEAK_SRC), "-o", str(peak_obj)], check=True)
    cmd = ["g++", "-std=c++17", "-pthread", "-shared", "-fPIC", *cxxflags.split(), f"-I{ROOT / 'kernels'}",
           str(ROOT / "kernels" / "pf_gemm.cpp"), str(ROOT / "kernels" / "pf_pool.cpp"), str(shim), str(peak_obj),
           "-o", str(lib)]
    subprocess.run(cmd, check=True)
    return lib


def cpu_model() -> str:
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("model name", "Model", "Hardware")) and ":" in line:
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def scales_well(peaks: dict[int, float]) -> bool:
    """Whether the most threads reach at least 0.75 x threads x the 1-thread figure."""
    n = max(peaks)
    return n == 1 or peaks[n] >= 0.75 * n * peaks[1]


def build_peak_flops(folder: pathlib.Path) -> pathlib.Path:
    """The standalone peak_flops executable, built into ``folder`` ($CXX or g++, -O2 -march=native)."""
    exe = folder / "peak_flops"
    subprocess.run([os.environ.get("CXX", "g++"), "-O2", "-march=native", "-std=c++17", "-pthread", str(PEAK_SRC),
                    "-o", str(exe)], check=True)
    return exe


def _peak_lines(out: str) -> dict[int, tuple[float, str]]:
    """peak_flops' "threads=N gflops=G isa=I" lines: {N: (G, I)}."""
    return {int(m.group(1)): (float(m.group(2)), m.group(3))
            for m in re.finditer(r"threads=(\d+) gflops=([\d.]+) isa=(\w+)", out)}


@functools.lru_cache(maxsize=None)
def _probe_exe() -> tuple[tempfile.TemporaryDirectory, pathlib.Path]:
    """peak_flops built once per process for the probes below (the folder lives as long as the cache)."""
    tmp = tempfile.TemporaryDirectory(prefix="pf-probe-")
    return tmp, build_peak_flops(pathlib.Path(tmp.name))


def _run_probe(args: list[str], timeout: float) -> str | None:
    """peak_flops' standard output for ``args``, or None if it ran past ``timeout`` seconds."""
    try:
        return subprocess.run([str(_probe_exe()[1]), *args], capture_output=True, text=True, timeout=timeout).stdout
    except subprocess.TimeoutExpired:
        return None


def peak_gflops(max_threads: int, seconds: float = 0.3, attempts: int = 3) -> tuple[dict[int, float], str]:
    """Build and run peak_flops.cpp; ({threads: GFLOP/s} for 1..max_threads, isa name).

    A run whose figure on max_threads is under 0.75 x threads x the 1-thread figure (a vCPU the
    host did not give us for the whole run; seen here: 93.4 GFLOP/s on 2 threads against 91.9
    on 1) is repeated, after a 1 s pause, up to `attempts` runs; each thread count keeps its
    best figure over the runs, which can only make the percentages of peak lower."""
    peaks, isa = {}, "?"
    with tempfile.TemporaryDirectory(prefix="pf-peak-") as tmp:
        exe = build_peak_flops(pathlib.Path(tmp))
        for attempt in range(attempts):
            if attempt:
                time.sleep(1.0)
            out = subprocess.run([str(exe), str(max_threads), str(seconds)], check=True, capture_output=True,
                                 text=True).stdout
            for t, (g, isa) in _peak_lines(out).items():
                peaks[t] = max(peaks.get(t, 0.0), g)
            if not peaks:
                raise RuntimeError(f"peak_flops printed nothing usable: {out!r}")
            if scales_well(peaks):
                break
            n = max(peaks)
            print(f"peak_flops scales poorly ({peaks[1]:.1f} GFLOP/s on 1 thread, {peaks[n]:.1f} on {n}), "
                  f"run {attempt + 1} of {attempts}", file=sys.stderr)
    n = max(peaks)
    if not scales_well(peaks):
        print(f"warning: peak_flops scales poorly ({peaks[1]:.1f} GFLOP/s on 1 thread, {peaks[n]:.1f} on {n}): "
              "other load on the machine? Percentages of peak will be too high.", file=sys.stderr)
    return peaks, isa


def peak_probe(threads: int, seconds: float = 0.05):
    """A function that returns the fp32 FMA peak at ``threads`` threads now (peak_flops.cpp,
    ~``seconds`` per measurement, best of 3), or None if it printed nothing for that count. For a
    share of peak in the same phase of a shared machine as the run it divides (its peak moves
    10% between phases here: 212-234 GFLOP/s on 2 threads)."""
    _probe_exe()  # built now, not inside the first measurement

    def probe() -> float | None:
        out = _run_probe([str(threads), str(seconds)], 120)
        return _peak_lines(out or "").get(threads, (None,))[0]

    return probe


def pingpong_probe():
    """A function that returns a cache line's round trip between two CPUs in ns (peak_flops.cpp
    --pingpong), or None where it cannot run (one CPU). A phase label: on this project's shared
    2-vCPU machines it reads ~55 ns in most phases and 325-1500 ns in slow ones."""
    _probe_exe()

    def probe() -> float | None:
        m = re.search(r"pingpong ns=([\d.]+)", _run_probe(["--pingpong"], 60) or "")
        return float(m.group(1)) if m else None

    return probe


def ort_matmul(M: int, N: int, K: int, B, nthreads: int, tmp: pathlib.Path):
    """A one-node ONNX MatMul (A[M,K] input, B[K,N] initializer) in onnxruntime; returns run(A, C)."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("MatMul", ["A", "B"], ["C"])], "matmul",
        [helper.make_tensor_value_info("A", TensorProto.FLOAT, [M, K])],
        [helper.make_tensor_value_info("C", TensorProto.FLOAT, [M, N])],
        [numpy_helper.from_array(B, "B")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = tmp / f"matmul_{M}x{N}x{K}.onnx"
    onnx.save(model, str(path))
    so = ort.SessionOptions()  # as polyfuse.bench.ort_session
    so.intra_op_num_threads = nthreads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])

    def bind(A, C):
        io = sess.io_binding()
        io.bind_cpu_input("A", A)
        io.bind_output("C", "cpu", 0, C.dtype, list(C.shape), C.ctypes.data)
        return lambda: sess.run_with_iobinding(io)

    return bind


def blocked_gflops(fns, flops: float, reps: int, rounds: int = 3, samplers=()) -> list[float]:
    """Median GFLOP/s of each fn over `reps` samples (each ~20 ms of calls), then of each sampler.

    The fns are timed in `rounds` blocks each, alternating, so slow drifts in
    background load hit them alike. Calls are not interleaved one by one: with
    2 threads, OpenBLAS's and OpenMP's idle worker threads keep spinning for a
    while after each call and would steal the cores from the other library, so
    each block starts with a short pause and an untimed warm-up sample: after the pause, the
    first calls run below the steady rate (2 threads, 128x768x3072, pf_sgemm here: the first call
    after a 0.3 s pause ~18% slower, the next ten 1-4%), and the peak they are compared with is a
    steady-state figure. The warm-up is the same for every library.
    `samplers` are functions that return one GFLOP/s sample each (the FMA peak);
    they take their turn in the same blocks.
    """
    timed = []  # one sampler per fn, then the given samplers
    for fn in fns:
        fn()  # warm-up (thread pool, scratch buffers, page faults)
        t0 = time.perf_counter()
        fn()
        inner = max(1, int(0.02 / max(time.perf_counter() - t0, 1e-6)))

        def sample(fn=fn, inner=inner):
            t0 = time.perf_counter()
            for _ in range(inner):
                fn()
            return flops * inner / (time.perf_counter() - t0) / 1e9
        timed.append(sample)
    timed += samplers
    rates = [[] for _ in timed]
    per_block = max(1, (reps + rounds - 1) // rounds)
    for _ in range(rounds):
        for sample, r in zip(timed, rates):
            time.sleep(0.3)
            sample()  # warm-up
            r.extend(sample() for _ in range(per_block))
    return [sorted(r)[len(r) // 2] for r in rates]


def peak_sampler(lib, nthreads: int, seconds: float = 0.1):
    """A function returning one GFLOP/s sample of peak_flops_run on nthreads, each timed run ~`seconds`.

    Single runs still go down to a few percent when a vCPU is descheduled mid-run; the medians of
    5 ms, 20 ms and 100 ms runs agree within 3% on 2 threads since the calling thread is one of the
    FMA threads and each is pinned to its own CPU (before, 5 ms runs gave medians near 60% of the
    0.3 s figure).
    """
    lib.peak_flops_run.argtypes = [ctypes.c_int, ctypes.c_long]
    lib.peak_flops_run.restype = ctypes.c_double
    iters = 1 << 16
    while True:  # one call: thread start-up, then `iters` timed iterations
        t0 = time.perf_counter()
        lib.peak_flops_run(nthreads, iters)
        dt = time.perf_counter() - t0
        if dt > 0.05:
            break
        iters *= 4
    iters = max(1, int(iters * seconds / dt))
    return lambda: lib.peak_flops_run(nthreads, iters)


def aligned_empty(shape: tuple[int, ...]):
    """An uninitialised float32 array placed as the compiled runtime places its arena and packed
    weights: from 2 MiB up, on a 2 MiB boundary in memory marked for transparent huge pages
    (Linux; else anonymous memory, page aligned). numpy's own large arrays start 16 bytes past a
    64-byte boundary, so half the micro-kernel's 32-byte loads of packed B would cross a cache
    line (1-2% slower), and their 4 KiB pages put 9 MiB of packed B out of the L2 TLB's reach."""
    import mmap

    import numpy as np

    huge = 2 << 20
    nbytes = max(4, int(np.prod(shape)) * 4)
    if nbytes < huge:
        raw = np.empty(nbytes // 4 + 16, np.float32)
        start = (-raw.ctypes.data % 64) // 4
        return raw[start:start + nbytes // 4].reshape(shape)
    mem = mmap.mmap(-1, nbytes + huge, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    raw = np.frombuffer(mem, np.uint8)
    start = -raw.ctypes.data % huge
    if hasattr(mem, "madvise") and hasattr(mmap, "MADV_HUGEPAGE"):
        mem.madvise(mmap.MADV_HUGEPAGE, start, (nbytes + huge - 1) // huge * huge)
    return raw[start:start + nbytes].view(np.float32).reshape(shape)


def worker(lib_path: str, nthreads: int, reps: int, peak: float, json_out: str) -> None:
    import numpy as np

    lib = ctypes.CDLL(lib_path)
    fp = ctypes.POINTER(ctypes.c_float)
    lib.c_sgemm.argtypes = [ctypes.c_int] * 3 + [fp, fp, fp, ctypes.c_int]
    lib.c_pack.argtypes = [ctypes.c_int, ctypes.c_int, fp, fp]
    lib.c_packed_size.argtypes = [ctypes.c_int, ctypes.c_int]
    lib.c_packed_size.restype = ctypes.c_size_t
    lib.c_prepacked.argtypes = [ctypes.c_int] * 3 + [fp, fp, fp, ctypes.c_int]
    lib.c_name.restype = ctypes.c_char_p

    def ptr(a):
        return a.ctypes.data_as(fp)

    rows = []
    peak_now_sample = peak_sampler(lib, nthreads)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="pf-gemm-ort-"))
    rng = np.random.default_rng(0)
    for M, N, K in SHAPES:
        A = aligned_empty((M, K))
        A[:] = rng.standard_normal((M, K), dtype=np.float32)
        B = rng.standard_normal((K, N), dtype=np.float32)
        C = aligned_empty((M, N))
        P = aligned_empty((lib.c_packed_size(K, N),))
        lib.c_pack(K, N, ptr(B), ptr(P))
        pa, pb, pc, pp = ptr(A), ptr(B), ptr(C), ptr(P)
        flops = 2.0 * M * N * K

        ort_run = ort_matmul(M, N, K, B, nthreads, tmp)(A, C)

        want = A @ B
        for name, fn in (("pf_sgemm", lambda: lib.c_sgemm(M, N, K, pa, pb, pc, nthreads)),
                         ("pf_sgemm_prepacked", lambda: lib.c_prepacked(M, N, K, pa, pp, pc, nthreads)),
                         ("onnxruntime", ort_run)):
            C.fill(np.nan)
            fn()
            assert np.allclose(C, want, rtol=1e-4, atol=1e-4 * np.sqrt(K)), f"{name} result mismatch"
        ours, packed, ref, ort_rate, peak_now = blocked_gflops(
            [lambda: lib.c_sgemm(M, N, K, pa, pb, pc, nthreads),
             lambda: lib.c_prepacked(M, N, K, pa, pp, pc, nthreads),
             lambda: np.matmul(A, B, out=C),
             ort_run], flops, reps, samplers=[peak_now_sample])
        pct = 100.0 * packed / peak if peak > 0 else float("nan")
        pct_now = 100.0 * packed / peak_now
        print(f"{lib.c_name().decode():>14} {nthreads:>3} {M:>5}x{N:<5}x{K:<5} "
              f"{ours:9.1f} {packed:9.1f} {ref:9.1f} {ort_rate:9.1f} {pct:6.1f}% {peak_now:9.1f} {pct_now:6.1f}%",
              flush=True)
        rows.append({"kernel": lib.c_name().decode(), "threads": nthreads, "M": M, "N": N, "K": K,
                     "pf_sgemm_gflops": round(ours, 2), "pf_sgemm_prepacked_gflops": round(packed, 2),
                     "numpy_gflops": round(ref, 2), "onnxruntime_gflops": round(ort_rate, 2),
                     "peak_gflops": peak, "prepacked_pct_of_peak": round(pct, 1),
                     "interleaved_peak_gflops": round(peak_now, 2),
                     "prepacked_pct_of_interleaved_peak": round(pct_now, 1)})
    shutil.rmtree(tmp, ignore_errors=True)
    pathlib.Path(json_out).write_text(json.dumps(rows))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--cxxflags", default="-O3 -march=native")
    ap.add_argument("--json", default=str(pathlib.Path(__file__).resolve().parent / "results" / "bench_gemm.json"))
    ap.add_argument("--worker", nargs=4, metavar=("LIB", "NTHREADS", "PEAK", "JSON"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.worker[0], int(args.worker[1]), args.reps, float(args.worker[2]), args.worker[3])
        return
    peaks, isa = peak_gflops(max(args.threads))
    print(f"cpu: {cpu_model()}; fp32 FMA peak ({isa}, peak_flops.cpp): "
          + ", ".join(f"{t} thr {g:.1f}" for t, g in sorted(peaks.items())) + " GFLOP/s")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        lib = build(pathlib.Path(tmp), args.cxxflags)
        print(f"{'kernel':>14} {'thr':>3} {'M x N x K':>17} {'pf_sgemm':>9} {'prepack':>9} {'numpy':>9} {'ort':>9} "
              f"{'%peak':>7} {'peak now':>9} {'%now':>7}")
        print("  (GFLOP/s, medians; %peak: prepack / best peak_flops run before; "
              "%now: prepack / median peak sampled between the GEMM samples)")
        for t in args.threads:
            env = dict(os.environ, OPENBLAS_NUM_THREADS=str(t), OMP_NUM_THREADS=str(t))
            out = pathlib.Path(tmp) / f"rows_{t}.json"
            subprocess.run([sys.executable, __file__, "--reps", str(args.reps),
                            "--worker", str(lib), str(t), str(peaks.get(t, 0.0)), str(out)], env=env, check=True)
            rows += json.loads(out.read_text())
    result = {"machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "isa": isa,
                          "peak_gflops": {str(t): g for t, g in sorted(peaks.items())}},
              "cxxflags": args.cxxflags, "reps": args.reps, "threads": args.threads, "shapes_MxNxK": SHAPES,
              "results": rows}
    path = pathlib.Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"results in {path}")


if __name__ == "__main__":
    main()
