"""Bad input gets one clear message naming what and where, a non-zero exit, no traceback,
and no partial output left behind."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import helper

import polyfuse
from helpers import model
from polyfuse.errors import InputError, ModelError, UnsupportedError


def cli(*args, cwd=None):
    r = subprocess.run([sys.executable, "-m", "polyfuse", "-q", *map(str, args)], capture_output=True, text=True,
                       cwd=cwd, timeout=300)
    return r.returncode, r.stdout, r.stderr


def _relu_model():
    return model([helper.make_node("Relu", ["x"], ["y"])], [("x", np.float32, ["n", 4])], [("y", np.float32, None)])


@pytest.fixture
def relu_path(tmp_path):
    p = tmp_path / "relu.onnx"
    onnx.save(_relu_model(), p)
    return p


def _assert_clean_error(rc, err, *needles):
    assert rc == 2, err
    assert "Traceback" not in err
    errors = [ln for ln in err.splitlines() if "error" in ln]
    assert len(errors) == 1 and errors[0].startswith("polyfuse: error: "), err
    for n in needles:
        assert n in err, err


def test_missing_file(tmp_path):
    rc, _, err = cli("compile", tmp_path / "nope.onnx", "-o", tmp_path / "out")
    _assert_clean_error(rc, err, "nope.onnx", "no such file")
    assert not (tmp_path / "out").exists()


def test_truncated_model(tmp_path, relu_path):
    data = relu_path.read_bytes()
    bad = tmp_path / "cut.onnx"
    bad.write_bytes(data[: len(data) // 2])
    rc, _, err = cli("compile", bad, "-o", tmp_path / "out")
    _assert_clean_error(rc, err, "cut.onnx")
    assert not (tmp_path / "out").exists()


def test_unsupported_ops_listed_with_domain_nodes_and_opset(tmp_path):
    nodes = [helper.make_node("Foo", ["x"], ["a"], name="foo_1"), helper.make_node("Foo", ["a"], ["b"], name="foo_2"),
             helper.make_node("Bar", ["b"], ["y"], name="bar_1", domain="com.vendor")]
    m = model(nodes, [("x", np.float32, [2])], [("y", np.float32, None)])
    m.opset_import.append(helper.make_opsetid("com.vendor", 1))
    p = tmp_path / "unsup.onnx"
    onnx.save(m, p)
    rc, _, err = cli("compile", p, "-o", tmp_path / "out")
    _assert_clean_error(rc, err, "ai.onnx::Foo", "foo_1, foo_2", "com.vendor::Bar", "bar_1", "opset 17")
    with pytest.raises(UnsupportedError):
        polyfuse.compile(m)


def test_missing_external_data(tmp_path):
    w = np.ones((64, 64), np.float32)
    m = model([helper.make_node("MatMul", ["x", "w"], ["y"])], [("x", np.float32, [2, 64])],
              [("y", np.float32, None)], [("w", w)])
    p = tmp_path / "ext.onnx"
    onnx.save_model(m, p, save_as_external_data=True, location="weights.data", size_threshold=0)
    (tmp_path / "weights.data").unlink()
    rc, _, err = cli("compile", p, "-o", tmp_path / "out")
    _assert_clean_error(rc, err, "weights.data", "missing")
    with pytest.raises(ModelError, match="weights.data"):
        polyfuse.compile(p)


def test_external_data_loads(tmp_path):
    w = np.random.default_rng(0).standard_normal((64, 64)).astype(np.float32)
    m = model([helper.make_node("MatMul", ["x", "w"], ["y"])], [("x", np.float32, [2, 64])],
              [("y", np.float32, None)], [("w", w)])
    p = tmp_path / "ext.onnx"
    onnx.save_model(m, p, save_as_external_data=True, location="weights.data", size_threshold=0)
    x = np.ones((2, 64), np.float32)
    np.testing.assert_allclose(polyfuse.compile(p).run(None, {"x": x})[0], x @ w, rtol=1e-5, atol=1e-4)


def test_run_time_input_errors(relu_path):
    cm = polyfuse.compile(relu_path, shapes={"x": (3, 4)})
    good = np.zeros((3, 4), np.float32)
    with pytest.raises(InputError, match="missing input 'x'"):
        cm.run(None, {})
    with pytest.raises(InputError, match=r"unknown input\(s\) \['z'\]"):
        cm.run(None, {"x": good, "z": good})
    with pytest.raises(InputError, match=r"input 'x': expected shape \[3, 4\], got \[2, 4\]"):
        cm.run(None, {"x": np.zeros((2, 4), np.float32)})
    with pytest.raises(InputError, match="input 'x': expected dtype float32, got float64"):
        cm.run(None, {"x": good.astype(np.float64)})
    with pytest.raises(InputError, match="unknown output"):
        cm.run(["nope"], {"x": good})
    assert cm.run(["y"], {"x": good})[0].shape == (3, 4)  # the process is fine afterwards


def test_cli_run_bad_input_file_and_shape(tmp_path, relu_path):
    art = tmp_path / "art"
    rc, out, err = cli("compile", relu_path, "--shape", "x=3,4", "-o", art)
    assert rc == 0, err
    rc, _, err = cli("run", art, "--input", f"x={tmp_path / 'missing.npy'}", "-o", tmp_path / "o1")
    _assert_clean_error(rc, err, "missing.npy")
    np.save(tmp_path / "x.npy", np.zeros((5, 4), np.float32))
    rc, _, err = cli("run", art, "--input", f"x={tmp_path / 'x.npy'}", "-o", tmp_path / "o2")
    _assert_clean_error(rc, err, "input 'x'", "[3, 4]")
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()
    rc, _, err = cli("compile", relu_path, "--shape", "x=3", "-o", tmp_path / "o3")
    _assert_clean_error(rc, err, "--shape x", "rank")
    rc, _, err = cli("compile", relu_path, "--target", "android-gpu", "-o", tmp_path / "o4")
    _assert_clean_error(rc, err, "android-gpu")
    assert not (tmp_path / "o3").exists() and not (tmp_path / "o4").exists()


def test_compile_refuses_to_overwrite_foreign_directory(tmp_path, relu_path):
    d = tmp_path / "mine"
    d.mkdir()
    (d / "precious.txt").write_text("keep me")
    rc, _, err = cli("compile", relu_path, "-o", d)
    _assert_clean_error(rc, err, "refusing to overwrite")
    assert (d / "precious.txt").read_text() == "keep me"
