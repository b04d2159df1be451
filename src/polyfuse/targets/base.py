"""What a compilation target is: data the pipeline reads, never a name it tests.

A new target is one :class:`Target` record (in its own module here), one printer subclass,
one folder of ``codegen_templates/`` and one of ``kernels/``; nothing else changes.
"""
from __future__ import annotations

import glob
import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType

from ..errors import BuildError, UnsupportedError


NDK_VARS = ("ANDROID_NDK_HOME", "ANDROID_NDK_ROOT")

# Schedule constants every target sets (its own values, or these):
# attention_rows: attention runs in parallel over (batch entry, block of at most this many query
#   rows): with only the heads to split, 2 threads on a 2-head model could not balance, nor use a
#   worker that wakes late. Each block re-packs K and V for its two small GEMMs. 0: the target's
#   attention is not split into row blocks (android-gpu: one work-group per query row).
# chain_max_second_weights: a GEMM chain re-reads its second weights per row block, so it is
#   formed only when they are at most this many bytes (MobileBERT's 512x128 FFN, not BERT's).
# chain_tile_bytes: target size of one row block of a GEMM chain's intermediate (an L2 share).
# parallel_matmuls: 1 to merge MatMuls that share their input into one (Q, K and V), 0 not to.
# `polyfuse compile --tune` tries each knob halved, doubled or off (tune.py).
SCHEDULE = MappingProxyType({"attention_rows": 64, "chain_max_second_weights": 1 << 20, "chain_tile_bytes": 1 << 17,
                             "parallel_matmuls": 1})


@dataclass(frozen=True)
class Toolchain:
    """How a target's generated C++ becomes a library: the compiler (``$env`` if set, else the
    first of ``candidates`` found: a name on PATH, or a glob under the Android NDK named by
    $ANDROID_NDK_HOME / $ANDROID_NDK_ROOT when it starts with ``{ndk}``) and its flags
    (language and math, then the ISA, then for linking)."""
    candidates: tuple[str, ...]
    flags: tuple[str, ...]
    arch_flags: tuple[str, ...]
    link_flags: tuple[str, ...] = ()
    env: str = "CXX"
    install_hint: str = "install g++ (apt-get install g++) or set CXX"

    def find(self) -> str | None:
        """The compiler, or None when there is none."""
        if os.environ.get(self.env):
            return os.environ[self.env]
        for c in self.candidates:
            if c.startswith("{ndk}"):
                roots = [os.environ[v] for v in NDK_VARS if os.environ.get(v)]
                found = sorted(f for r in roots for f in glob.glob(c.format(ndk=r)))
                if found:
                    return found[0]
            elif shutil.which(c):
                return shutil.which(c)
        return None

    def compiler(self) -> str:
        exe = self.find()
        if not exe:
            raise BuildError(f"no C++ compiler found: {self.install_hint}")
        return exe

    def all_flags(self) -> list[str]:
        return [*self.flags, *self.arch_flags]


@dataclass(frozen=True)
class Target:
    name: str
    description: str
    toolchain: Toolchain
    printer: type  # a codegen.printer.CPrinter (sub)class: types, literals and function names
    templates: tuple[str, ...]  # folders of codegen_templates/, searched in order, for model.cpp.j2,
    # CMakeLists.txt.j2 and one template per kernel kind (a target may reuse another's)
    kernels: tuple[str, ...]  # folders of kernels/ searched in order for the runtime sources and headers
    # ("": the shared C++ runtime at its top)
    runtime_sources: tuple[str, ...]  # compiled into libpfmodel.so with model.cpp
    runtime_headers: tuple[str, ...]
    runner_sources: tuple[str, ...]  # the pf_run program, linked against libpfmodel.so
    vector_bits: int | None  # widest SIMD register the generated code may assume (None: the build machine's)
    fp16: bool  # arithmetic in half precision is native
    loads_here: bool  # the library it builds can be loaded and run by this Python process
    schedule: Mapping[str, int]  # constants fusion and codegen tune for the target's caches and cores (see SCHEDULE)
    artifact_templates: tuple[str, ...] = ("CMakeLists.txt",)  # rendered from NAME.j2 into the artifact
    emulator: tuple[str, ...] = ()  # runs its programs here (--device qemu): command and arguments
    build_commands: tuple[str, ...] = ()  # how to build an artifact's sources ({dir}) where polyfuse could not
    packs_weights: bool = True  # constant GEMM operands are packed at load (the CPU GEMM's layout)
    # For a target whose own build runs here (android-gpu on this machine's OpenCL device): the
    # fields that differ when the artifact is built for a device reached with --device (a phone,
    # whose CPU runs the host side), e.g. the cross toolchain. None: the same build serves both.
    device_variant: Mapping[str, object] | None = None
    precisions: tuple[str, ...] = ("fp32",)  # storage precisions it offers (fp16: kernel/store_half.py)
    precision: str = "fp32"  # the one this record compiles with (at_precision)

    def __post_init__(self):
        if not re.fullmatch(r"[a-z0-9-]+", self.name):  # it is printed into generated code
            raise ValueError(f"target name {self.name!r}: only a-z, 0-9 and '-'")
        if set(self.schedule) != set(SCHEDULE):
            raise ValueError(f"target {self.name}: schedule must set exactly {sorted(SCHEDULE)}")

    def at_precision(self, precision: str) -> "Target":
        """This record compiling with ``precision`` ("fp32", "fp16"); UnsupportedError if it has none such."""
        if precision not in self.precisions:
            raise UnsupportedError(f"target {self.name}: precision {precision!r} is not supported "
                                   f"(available: {', '.join(self.precisions)})")
        return self if precision == self.precision else replace(self, precision=precision)

    def for_device(self) -> "Target":
        """The record an artifact for ``--device`` is built with (itself when it has no variant)."""
        return self if self.device_variant is None else replace(self, **self.device_variant, device_variant=None)

    def runtime_files(self) -> tuple[str, ...]:
        """Everything copied into an artifact's runtime/ folder."""
        return self.runtime_headers + self.runtime_sources + self.runner_sources
