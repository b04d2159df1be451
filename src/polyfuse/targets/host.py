"""``host``: x86-64 (or whatever this machine is), C++ compiled for this very CPU."""
from __future__ import annotations

from ..codegen.printer import CPrinter
from .base import SCHEDULE, Target, Toolchain

# -fno-math-errno and -fno-trapping-math change no result: they let the compiler vectorise
# libm-free math and speculate divisions inside selects (softmax's NaN guard), since polyfuse
# never reads errno or floating-point exception flags. No -ffast-math: NaN and inf must behave.
# -ffp-contract=off: each operation rounds, as the model defines it. gcc's default contracts
# a*b - c into one fused multiply-add, which changes results where exactness matters: a
# LayerNorm of a constant row fused after a Mul computed x - x0 as fma(x', s, -x0), the rounding
# error of x0 itself, and divided it by sqrt(1e-12). The hand-written kernels ask for FMAs
# explicitly (intrinsics, pf_fma). Threads come from polyfuse's own pool (kernels/pf_pool.cpp);
# OpenMP is used only for its ``simd`` pragmas (-fopenmp-simd), so no OpenMP runtime is loaded.
CXX_FLAGS = ("-O3", "-std=c++17", "-fPIC", "-pthread", "-fopenmp-simd", "-fno-math-errno", "-fno-trapping-math",
             "-ffp-contract=off", "-DNDEBUG")
RUNTIME_SOURCES = ("pf_gemm.cpp", "pf_pool.cpp", "pf_model.cpp")
RUNTIME_HEADERS = ("pf_runtime.h", "pf_model_abi.h", "pf_model.h", "pf_gemm.h", "pf_memory.h", "pf_pool.h")
RUNNER_SOURCES = ("pf_run_main.cpp",)

HOST = Target(
    name="host",
    description="this machine's CPU (x86-64 AVX-512/AVX2 or arm64 NEON), C++ built with -march=native",
    toolchain=Toolchain(candidates=("g++", "c++"), flags=CXX_FLAGS, arch_flags=("-march=native",)),
    printer=CPrinter,
    templates=("host",),
    kernels=("",),
    runtime_sources=RUNTIME_SOURCES,
    runtime_headers=RUNTIME_HEADERS,
    runner_sources=RUNNER_SOURCES,
    vector_bits=None,
    fp16=False,
    loads_here=True,
    schedule=SCHEDULE,
)
