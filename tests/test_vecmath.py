"""The runtime's vectorisable math (kernels/pf_runtime.h) against numpy over the whole float
range that matters, including overflow, underflow, infinities and NaN: on the host (AVX2 /
AVX-512 as the compiler vectorises it) and, where the cross compiler and qemu are installed, as
android-cpu NEON code under qemu-aarch64. Sizes are odd, so vector loops end in a tail."""
from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from onnx import helper

import polyfuse
from helpers import model

N_EXP = 4099
ARM = shutil.which("aarch64-linux-gnu-g++") and shutil.which("qemu-aarch64") and Path("/usr/aarch64-linux-gnu").is_dir()
TARGETS = ["host", pytest.param("android-cpu", marks=pytest.mark.skipif(not ARM, reason="needs g++-aarch64-linux-gnu "
                                                                             "and qemu-user"))]


def _compile(m, target: str):
    return polyfuse.compile(m) if target == "host" else polyfuse.compile(m, target, device="qemu")


@pytest.fixture(scope="module", params=TARGETS)
def target(request):
    return request.param


@pytest.fixture(scope="module")
def exp_model(target):
    m = model([helper.make_node("Exp", ["x"], ["y"])], [("x", np.float32, [N_EXP])], [("y", np.float32, None)])
    return _compile(m, target)


def test_exp_relative_error_over_the_normal_range(exp_model):
    x = np.linspace(-87.3, 88.7, N_EXP).astype(np.float32)
    got = exp_model.run(None, {"x": x})[0]
    want = np.exp(x.astype(np.float64))
    rel = np.abs(got - want) / want
    assert rel.max() <= 2e-7, rel.max()


def test_exp_specials(exp_model):
    x = np.zeros(N_EXP, np.float32)
    special = np.array([np.nan, np.inf, -np.inf, 89.0, 1e30, -88.0, -1e30, 0.0, -0.0, 1e-30], np.float32)
    x[:special.size] = special
    got = exp_model.run(None, {"x": x})[0][:special.size]
    assert np.isnan(got[0])
    assert got[1] == np.inf and got[2] == 0.0 and got[3] == np.inf and got[4] == np.inf
    assert 0.0 <= got[5] < 1.2e-38 and got[6] == 0.0
    assert got[7] == 1.0 and got[8] == 1.0 and got[9] == 1.0


def test_sigmoid_saturates_without_nan(target):
    m = model([helper.make_node("Sigmoid", ["x"], ["y"])], [("x", np.float32, [7])], [("y", np.float32, None)])
    x = np.array([-1000, -90, -10, 0, 10, 90, 1000], np.float32)
    got = _compile(m, target).run(None, {"x": x})[0]
    with np.errstate(over="ignore"):  # exp(1000) overflows to inf in the reference too: 1 / inf = 0
        want = 1 / (1 + np.exp(-x.astype(np.float64)))
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


def _unary(op: str, n: int, target: str):
    m = model([helper.make_node(op, ["x"], ["y"])], [("x", np.float32, [n])], [("y", np.float32, None)])
    return _compile(m, target)


SPECIALS = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-30, -1e-30, 1e-40, 1e30, -1e30], np.float32)


@pytest.mark.parametrize("op, ref", [("Erf", np.vectorize(math.erf)), ("Tanh", np.tanh)])
def test_erf_tanh_error_over_the_range_that_matters(op, ref, target):
    # Dense over [-12, 12] (both sides of every piece boundary) plus a log-spaced sweep of tiny inputs.
    x = np.concatenate([np.linspace(-12, 12, 48001), np.geomspace(1e-38, 1, 2000), -np.geomspace(1e-38, 1, 2000)])
    x = x.astype(np.float32)
    got = _unary(op, x.size, target).run(None, {"x": x})[0].astype(np.float64)
    want = ref(x.astype(np.float64))
    abs_err = np.abs(got - want)
    assert abs_err.max() <= 1.5e-7, (op, x[abs_err.argmax()], abs_err.max())
    small = np.abs(x) <= 1  # where the result is not near +-1, the error is relative as well
    normal = small & (np.abs(want) >= np.finfo(np.float32).tiny)  # subnormal results have fewer bits
    rel = abs_err[normal] / np.abs(want[normal])
    assert rel.max() <= 3e-7, (op, x[normal][rel.argmax()], rel.max())


@pytest.mark.parametrize("op, ref", [("Erf", np.vectorize(math.erf)), ("Tanh", np.tanh)])
def test_erf_tanh_specials(op, ref, target):
    got = _unary(op, SPECIALS.size, target).run(None, {"x": SPECIALS})[0]
    assert np.isnan(got[0])
    want = ref(SPECIALS[1:].astype(np.float64))
    np.testing.assert_allclose(got[1:], want, rtol=3e-7, atol=3e-45)  # 1e-40: subnormal, 2 ulp
    assert np.signbit(got[4]) and got[3] == 0.0  # -0 stays -0


@pytest.fixture(scope="module")
def softmax_pairs(target):
    """Softmax over rows [0, x]: the second output is exp(x) / (1 + exp(x)), so for x far below 0
    it is exp(x - max) itself, the exp that softmax computes with pf_exp_nonpos."""
    m = model([helper.make_node("Softmax", ["x"], ["y"], axis=-1)], [("x", np.float32, [N_EXP, 2])],
              [("y", np.float32, None)])
    return _compile(m, target)


def _softmax_ref(x):
    with np.errstate(invalid="ignore"):  # inf - inf in a row holding inf: NaN, as in onnxruntime
        d = x.astype(np.float64) - x.max(axis=-1, keepdims=True)
        e = np.exp(d)
        return e / e.sum(axis=-1, keepdims=True)


def test_softmax_exp_relative_error_down_to_the_smallest_normal(softmax_pairs):
    x = np.zeros((N_EXP, 2), np.float32)
    x[:, 1] = np.linspace(-87.33, 0, N_EXP)
    got = softmax_pairs.run(None, {"x": x})[0].astype(np.float64)
    want = _softmax_ref(x)
    rel = np.abs(got - want) / want
    assert rel.max() <= 4e-7, (x[np.unravel_index(rel.argmax(), rel.shape)], rel.max())  # exp 2e-7, sum and divide


def test_softmax_exp_specials(softmax_pairs):
    rows = np.array([[0, -87.4], [0, -100], [0, -1e30], [0, -np.inf], [np.nan, 0], [0, np.nan],
                     [np.inf, 0], [-np.inf, -np.inf], [5, 5], [-1e30, 0]], np.float32)
    x = np.zeros((N_EXP, 2), np.float32)
    x[:len(rows)] = rows
    got = softmax_pairs.run(None, {"x": x})[0][:len(rows)]
    want = _softmax_ref(rows)
    # Below exp(-87.33) = 1.2e-38 the result is 0 (pf_exp_nonpos), not a subnormal.
    np.testing.assert_allclose(got, want, rtol=4e-7, atol=1.2e-38)
    assert got[3, 1] == 0.0 and got[2, 1] == 0.0 and got[9, 0] == 0.0
    assert np.isnan(got[4:8]).all()  # NaN, or inf - inf: the whole row is NaN
