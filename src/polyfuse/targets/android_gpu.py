"""``android-gpu``: OpenCL kernels for Adreno and Mali-class GPUs (and any OpenCL 1.2 device).

The fused kernels are OpenCL C (codegen/opencl_printer.py, codegen_templates/android-gpu/),
embedded in a small C++ host program that loads the OpenCL driver with dlopen
(kernels/opencl/pf_cl.cpp): the library it builds has no link-time OpenCL dependency, runs on
this machine's OpenCL device (a GPU, else PoCL on the CPU) and, built with the NDK from the
artifact's CMakeLists.txt, on a phone's GPU driver (compiled with ``--device adb``, the host side is cross-built for the
phone's arm64 CPU, as android-cpu is). Constant GEMM operands are read in place, not packed.

GEMM chains are off by default here (``chain_max_second_weights`` 0): a chain runs one work-group
per block of rows (its intermediate in 16 KiB of local memory), too few to fill a GPU. Measured on
an NVIDIA H200 (benchmarks/results/bench_opencl_h200.json), MobileBERT's 96 chains ran at
57 GFLOP/s and took 56 of its 61 ms while its plain GEMMs ran at 440; the cost model, with that
GPU's calibrated profile and with every shipped phone profile (sd865, sd855, kirin980), predicts
two tiled GEMMs faster than the chain. ``--tune`` still tries chains as a variant.
"""
from __future__ import annotations

from dataclasses import replace

from ..codegen.opencl_printer import OpenCLPrinter
from .android_cpu import ANDROID_CPU
from .base import SCHEDULE, Target, Toolchain
from .host import CXX_FLAGS, RUNNER_SOURCES

ANDROID_GPU = Target(
    name="android-gpu",
    description="OpenCL 1.2 GPUs (Adreno, Mali; PoCL here): OpenCL C kernels, host code loading the driver at run time",
    toolchain=Toolchain(candidates=("g++", "c++"), flags=CXX_FLAGS, arch_flags=(), link_flags=("-ldl",)),
    printer=OpenCLPrinter,
    templates=("android-gpu", "android-cpu"),  # the latter for the arm64 toolchain file
    kernels=("opencl", ""),
    runtime_sources=("pf_cl.cpp", "pf_model.cpp"),
    runtime_headers=("pf_cl.h", "pf_cl_functions.h", "pf_cl_prelude.h", "pf_model_abi.h", "pf_model.h"),
    runner_sources=RUNNER_SOURCES,
    vector_bits=None,
    fp16=False,
    loads_here=True,
    # no GEMM chains by default (see above); when --tune tries them, a chain's row block of the
    # intermediate lives in local memory: 16 KiB fits every GPU. Attention is one work-group per
    # query row, not blocks of rows.
    schedule={**SCHEDULE, "chain_max_second_weights": 0, "chain_tile_bytes": 16384, "attention_rows": 0},
    packs_weights=False,
    precisions=("fp32", "fp16"),  # fp16: half storage (vload_half / vstore_half), float32 arithmetic
    # --device adb: the host side cross-built for the phone's arm64 CPU, as android-cpu builds
    device_variant={
        "toolchain": replace(ANDROID_CPU.toolchain, link_flags=(*ANDROID_CPU.toolchain.link_flags, "-ldl")),
        "loads_here": False,
        "emulator": ANDROID_CPU.emulator,
        "artifact_templates": ("CMakeLists.txt", "aarch64-linux-gnu.cmake"),
        "build_commands": ANDROID_CPU.build_commands,
    },
)
