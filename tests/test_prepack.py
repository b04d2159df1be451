"""Weights packed at compile time (weights.bin.packed) and the mapped weights file.

A host artifact carries its constant GEMM operands packed for its library's micro-kernel; loading
maps that file instead of packing. Where the file is missing, truncated or was packed for another
micro-kernel, the loader packs from weights.bin as before: the results never change (checked
against onnxruntime at rtol 1e-5, atol 1e-6)."""
from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import polyfuse
from polyfuse.testing.oracle import run_ort

PACKED = "weights.bin.packed"


def _model(k: int = 64):
    rng = np.random.default_rng(0)
    w1 = (rng.standard_normal((k, 96)) * np.sqrt(64 / k)).astype(np.float32)  # h as large as at K = 64
    w2 = rng.standard_normal((96, 32)).astype(np.float32)
    g = helper.make_graph([helper.make_node("MatMul", ["x", "w1"], ["h"]), helper.make_node("Relu", ["h"], ["r"]),
                           helper.make_node("MatMul", ["r", "w2"], ["y"])], "two_gemms",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [8, k])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [8, 32])],
                          [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)


def _mapped(path) -> bool:
    return any(line.rstrip().endswith(str(path)) for line in open("/proc/self/maps"))


def _check(directory, model, expect_mapped: bool, k: int = 64, atol: float = 1e-6):
    x = np.random.default_rng(1).standard_normal((8, k)).astype(np.float32)
    m = polyfuse.load(directory)
    np.testing.assert_allclose(m.run(None, {"x": x})[0], run_ort(model, {"x": x})[0], rtol=1e-5, atol=atol)
    assert _mapped(directory / PACKED) == expect_mapped
    del m


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    d = tmp_path_factory.mktemp("prepack") / "art"
    polyfuse.compile(_model(), output_dir=d)
    return d


def test_the_artifact_carries_its_packed_weights_and_loading_maps_them(artifact):
    header = (artifact / PACKED).read_bytes()[:56]
    assert header.startswith(b"PFPACK1\0") and header[8:].rstrip(b"\0")  # the micro-kernel's name
    _check(artifact, _model(), expect_mapped=True)


@pytest.mark.parametrize("damage", ["missing", "truncated", "other_kernel"])
def test_unusable_packed_weights_are_packed_again_at_load(artifact, tmp_path, damage):
    d = tmp_path / damage
    shutil.copytree(artifact, d)
    p = d / PACKED
    data = bytearray(p.read_bytes())
    if damage == "missing":
        p.unlink()
    elif damage == "truncated":
        p.write_bytes(data[:-4])
    else:  # packed for a micro-kernel this library does not have
        data[8:56] = b"some-other-kernel".ljust(48, b"\0")
        p.write_bytes(data)
    _check(d, _model(), expect_mapped=False)


def test_pf_run_writes_the_same_packed_file(artifact, tmp_path):
    # `pf_run DIR --write-packed` (how android-cpu packs, under qemu) writes what compile wrote
    # through the library here; with other arguments it prints the usage.
    import subprocess

    d = tmp_path / "art"
    shutil.copytree(artifact, d)
    (d / PACKED).unlink()
    r = subprocess.run([str(d / "pf_run"), str(d), "--write-packed"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert (d / PACKED).read_bytes() == (artifact / PACKED).read_bytes()
    assert not (d / (PACKED + ".tmp")).exists()
    r = subprocess.run([str(d / "pf_run"), str(d), "--write-packed", "--bench", "3"], capture_output=True, text=True)
    assert r.returncode == 2 and "usage" in r.stderr


def test_weights_packed_for_another_k_depth_are_packed_again(tmp_path, monkeypatch):
    # The packed layout follows the GEMM's deepest K block (kc_max(): by the CPU's L1d, or
    # PF_GEMM_KC), so the packed file names it: K = 600 is 4 blocks at 192 and 1 at 768. A file
    # packed at one depth is used at that depth and packed again at the other.
    import subprocess

    model = _model(k=600)
    polyfuse.compile(model, output_dir=tmp_path / "art")
    packed_192 = tmp_path / "packed_192"
    shutil.copytree(tmp_path / "art", packed_192)
    (packed_192 / PACKED).unlink()
    r = subprocess.run([str(packed_192 / "pf_run"), str(packed_192), "--write-packed"], capture_output=True, text=True,
                       env={**os.environ, "PF_GEMM_KC": "192"})
    assert r.returncode == 0, r.stderr
    assert (packed_192 / PACKED).read_bytes()[8:56].rstrip(b"\0").endswith(b"-kc192")
    for kc, mapped in (("768", False), ("192", True)):
        d = tmp_path / f"run_{kc}"  # a copy: its library is loaded afresh and reads PF_GEMM_KC
        shutil.copytree(packed_192, d)
        monkeypatch.setenv("PF_GEMM_KC", kc)
        # Outputs reach ~100, and float32 sums of 600 products in another order differ by up to
        # ~1e-4 there; weights read in the wrong layout are off by the outputs' own size.
        _check(d, model, expect_mapped=mapped, k=600, atol=1e-3)
