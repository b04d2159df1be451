"""The runtime's vectorisable math (kernels/pf_runtime.h) against numpy over the whole float
range that matters, including overflow, underflow, infinities and NaN."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

import polyfuse
from helpers import model


@pytest.fixture(scope="module")
def exp_model():
    m = model([helper.make_node("Exp", ["x"], ["y"])], [("x", np.float32, [4096])], [("y", np.float32, None)])
    return polyfuse.compile(m)


def test_exp_relative_error_over_the_normal_range(exp_model):
    x = np.linspace(-87.3, 88.7, 4096).astype(np.float32)
    got = exp_model.run(None, {"x": x})[0]
    want = np.exp(x.astype(np.float64))
    rel = np.abs(got - want) / want
    assert rel.max() <= 2e-7, rel.max()


def test_exp_specials(exp_model):
    x = np.zeros(4096, np.float32)
    special = np.array([np.nan, np.inf, -np.inf, 89.0, 1e30, -88.0, -1e30, 0.0, -0.0, 1e-30], np.float32)
    x[:special.size] = special
    got = exp_model.run(None, {"x": x})[0][:special.size]
    assert np.isnan(got[0])
    assert got[1] == np.inf and got[2] == 0.0 and got[3] == np.inf and got[4] == np.inf
    assert 0.0 <= got[5] < 1.2e-38 and got[6] == 0.0
    assert got[7] == 1.0 and got[8] == 1.0 and got[9] == 1.0


def test_sigmoid_saturates_without_nan():
    m = model([helper.make_node("Sigmoid", ["x"], ["y"])], [("x", np.float32, [7])], [("y", np.float32, None)])
    x = np.array([-1000, -90, -10, 0, 10, 90, 1000], np.float32)
    got = polyfuse.compile(m).run(None, {"x": x})[0]
    with np.errstate(over="ignore"):  # exp(1000) overflows to inf in the reference too: 1 / inf = 0
        want = 1 / (1 + np.exp(-x.astype(np.float64)))
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
