"""What a compilation target is: data the pipeline reads, never a name it tests.

A new target is one :class:`Target` record (in its own module here), one printer subclass,
one folder of ``codegen_templates/`` and one of ``kernels/``; nothing else changes.
"""
from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass

from ..errors import BuildError


@dataclass(frozen=True)
class Toolchain:
    """How a target's generated C++ becomes a library: the compiler (``$env`` if set, else the
    first of ``candidates`` on PATH) and its flags (language and math, then the ISA)."""
    candidates: tuple[str, ...]
    flags: tuple[str, ...]
    arch_flags: tuple[str, ...]
    env: str = "CXX"
    install_hint: str = "install g++ (apt-get install g++) or set CXX"

    def compiler(self) -> str:
        exe = os.environ.get(self.env) or next(filter(None, map(shutil.which, self.candidates)), None)
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
    templates: str  # folder of codegen_templates/ with model.cpp.j2 and one template per kernel kind
    kernels: str  # folder of kernels/ with the runtime sources and headers ("": the shared C++ runtime)
    runtime_sources: tuple[str, ...]  # compiled into libpfmodel.so with model.cpp
    runtime_headers: tuple[str, ...]
    runner_sources: tuple[str, ...]  # the pf_run program, linked against libpfmodel.so
    vector_bits: int | None  # widest SIMD register the generated code may assume (None: the build machine's)
    fp16: bool  # arithmetic in half precision is native
    loads_here: bool  # the library it builds can be loaded and run by this Python process

    def __post_init__(self):
        if not re.fullmatch(r"[a-z0-9-]+", self.name):  # it is printed into generated code
            raise ValueError(f"target name {self.name!r}: only a-z, 0-9 and '-'")

    def runtime_files(self) -> tuple[str, ...]:
        """Everything copied into an artifact's runtime/ folder."""
        return self.runtime_headers + self.runtime_sources + self.runner_sources
