"""The native runtime module ``polyfuse._runtime``.

``pip install`` builds it. In a source checkout without a build (``PYTHONPATH=src``), it is
compiled once with pybind11 into the cache, so polyfuse works either way.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import sysconfig
from pathlib import Path

from ..build.cache import cache_dir, digest
from ..build.compiler import _run, compiler_id, cxx

_SOURCE = Path(__file__).with_name("_runtime.cpp")


def load_runtime():
    try:
        return importlib.import_module("polyfuse._runtime")
    except ImportError:
        return _build_and_import()


def _build_and_import():
    import pybind11

    exe = cxx()
    suffix = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
    flags = ["-O2", "-std=c++17", "-fPIC", "-shared", "-I", pybind11.get_include(),
             "-I", sysconfig.get_paths()["include"]]
    key = digest("pyruntime", compiler_id(exe), sys.version, pybind11.__version__, *flags, _SOURCE.read_bytes())
    out = cache_dir() / "runtime" / key / f"_runtime{suffix}"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f"tmp{os.getpid()}{suffix}")
        try:
            _run([exe, *flags, str(_SOURCE), "-o", str(tmp), "-ldl"], "the polyfuse runtime module")
            os.replace(tmp, out)
        finally:
            tmp.unlink(missing_ok=True)
    spec = importlib.util.spec_from_file_location("polyfuse._runtime", out)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    sys.modules["polyfuse._runtime"] = mod
    return mod
