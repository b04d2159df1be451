"""``android-cpu``: arm64-v8a phones, Android API 24 and up; NEON C++ cross-compiled.

The generated C++ and the runtime are the host's (the GEMM micro-kernel and the thread pool
have NEON / aarch64 paths); what differs is the toolchain: the Android NDK's clang for API 24
when $ANDROID_NDK_HOME or $ANDROID_NDK_ROOT names one, else a plain aarch64-linux-gnu-g++
(Debian's g++-aarch64-linux-gnu; its programs run under qemu-aarch64 with that sysroot).
libstdc++ / libc++ is linked statically, so pf_run and the library need nothing on the phone.
"""
from __future__ import annotations

from ..codegen.printer import CPrinter
from .base import SCHEDULE, Target, Toolchain
from .host import CXX_FLAGS, RUNNER_SOURCES, RUNTIME_HEADERS, RUNTIME_SOURCES

ANDROID_CPU = Target(
    name="android-cpu",
    description="arm64-v8a phones (Android API 24+, NEON), C++ cross-compiled with the NDK or aarch64-linux-gnu-g++",
    toolchain=Toolchain(
        candidates=("{ndk}/toolchains/llvm/prebuilt/*/bin/aarch64-linux-android24-clang++", "aarch64-linux-gnu-g++"),
        flags=CXX_FLAGS, arch_flags=("-march=armv8-a",), link_flags=("-static-libstdc++",), env="PF_ANDROID_CXX",
        install_hint="set ANDROID_NDK_HOME to an Android NDK, install aarch64-linux-gnu-g++ "
                     "(apt-get install g++-aarch64-linux-gnu), or set PF_ANDROID_CXX"),
    printer=CPrinter,
    templates=("android-cpu", "host"),
    kernels=("",),
    runtime_sources=RUNTIME_SOURCES,
    runtime_headers=RUNTIME_HEADERS,
    runner_sources=RUNNER_SOURCES,
    vector_bits=128,
    fp16=False,  # half-precision arithmetic needs armv8.2-a; API 24 phones may be armv8.0
    loads_here=False,
    schedule=SCHEDULE,  # the host's until measured on phones
    artifact_templates=("CMakeLists.txt", "aarch64-linux-gnu.cmake"),
    emulator=("qemu-aarch64", "-L", "/usr/aarch64-linux-gnu"),
    build_commands=("cmake -S {dir} -B {dir}/build -DCMAKE_TOOLCHAIN_FILE=$ANDROID_NDK_HOME/build/cmake/android.toolchain.cmake "
                    "-DANDROID_ABI=arm64-v8a -DANDROID_PLATFORM=android-24 && cmake --build {dir}/build",
                    "cmake -S {dir} -B {dir}/build -DCMAKE_TOOLCHAIN_FILE=aarch64-linux-gnu.cmake && cmake --build {dir}/build"),
)
