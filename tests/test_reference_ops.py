"""The numpy reference interpreter agrees with onnxruntime on every case in opcases.CASES."""
import os
import sys

import numpy as np
import onnxruntime as ort
import pytest

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir, "src"))

import opcases  # noqa: E402
from polyfuse.ops.reference import SUPPORTED_OPS, UnsupportedOp, evaluate  # noqa: E402

# (rtol, atol) by dtype. float32: the reference computes in float64 and rounds once, ORT's
# kernels (MLAS exp/tanh/erf approximations, float32 accumulation) are within a few ulp.
TOLERANCE = {np.dtype(np.float32): (1e-5, 1e-6), np.dtype(np.float64): (1e-12, 1e-13),
             np.dtype(np.float16): (1e-3, 1e-4)}
# Ops accumulating in float32 inside ORT: absolute error grows with the reduction length and
# the magnitude of the terms, so atol is relative to the largest |expected| value.
ACCUMULATING = {"MatMul", "Gemm", "ReduceSum", "ReduceMean", "LayerNormalization", "Softmax", "Einsum"}


def run_onnxruntime(case: opcases.OpCase) -> list[np.ndarray]:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(opcases.make_model(case).SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    return session.run(None, opcases.feeds(case))


def assert_matches(actual: np.ndarray, expected: np.ndarray, op_type: str, what: str) -> None:
    assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype} != ORT {expected.dtype}"
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != ORT {expected.shape}"
    if expected.dtype.kind not in "fc":
        np.testing.assert_array_equal(actual, expected, err_msg=what)
        return
    rtol, atol = TOLERANCE[expected.dtype]
    finite = np.isfinite(expected)
    if op_type in ACCUMULATING and finite.any():
        atol = max(atol, rtol * float(np.max(np.abs(expected[finite]))))
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, equal_nan=True,
                               err_msg=what)


@pytest.mark.parametrize("case", opcases.CASES, ids=lambda c: c.id)
def test_reference_matches_onnxruntime(case):
    expected = run_onnxruntime(case)
    actual = evaluate(case.op_type, case.inputs, case.attrs, opset=case.opset,
                      num_outputs=case.num_outputs)
    assert len(actual) == len(expected) == case.num_outputs
    for j, (a, e) in enumerate(zip(actual, expected)):
        assert_matches(a, e, case.op_type, f"{case.id} output {j}")


def test_every_supported_op_has_a_case():
    covered = {c.op_type for c in opcases.CASES}
    assert SUPPORTED_OPS - covered == set()
    assert covered - SUPPORTED_OPS == set()


def test_the_op_registry_names_exactly_the_supported_ops():
    """ops/info.py holds one record per op the reference interpreter runs; none missing, none extra."""
    from polyfuse.ops.info import OPS

    assert set(OPS) - SUPPORTED_OPS == set()
    assert SUPPORTED_OPS - set(OPS) == set()
    assert all(name == rec.name for name, rec in OPS.items())


def test_op_classes_agree_with_the_forms():
    """An op the registry calls elementwise, movement or a reduction has that kind of form, and
    the reverse (Identity's elementwise form aside: it is its own class)."""
    from polyfuse.forms.elementwise import FORMS
    from polyfuse.forms.movement import MOVEMENT_OPS
    from polyfuse.forms.reduction import REDUCTION_OPS
    from polyfuse.ops.info import OPS, OpClass

    by_class = {cls: {n for n, r in OPS.items() if r.cls is cls} for cls in OpClass}
    assert by_class[OpClass.ELEMENTWISE] == set(FORMS) - {"Identity"}
    assert by_class[OpClass.MOVEMENT] == set(MOVEMENT_OPS)
    assert by_class[OpClass.REDUCTION] == set(REDUCTION_OPS)


def test_storage_ops_move_values_exactly():
    """Ops allowed on narrow types copy elements: their rounding is exact (Cast converts)."""
    from polyfuse.ops.info import OPS, Rounding

    assert [n for n, r in OPS.items() if r.storage and r.rounding is not Rounding.EXACT] == ["Cast"]


def test_case_ids_are_unique():
    ids = [c.id for c in opcases.CASES]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("op_type", ["NoSuchOp", "Conv", "LSTM", ""])
def test_unknown_op_raises(op_type):
    with pytest.raises(UnsupportedOp) as info:
        evaluate(op_type, [np.zeros(3, np.float32)], {}, opset=17)
    assert info.value.args[0] == op_type


def test_outputs_are_fresh_and_inputs_untouched():
    for case in opcases.CASES:
        before = [None if x is None else x.copy() for x in case.inputs]
        outputs = evaluate(case.op_type, case.inputs, case.attrs, opset=case.opset,
                           num_outputs=case.num_outputs)
        for x, y in zip(case.inputs, before):
            assert (x is None and y is None) or np.array_equal(x, y, equal_nan=True), case.id
        for out in outputs:
            assert out.flags.c_contiguous, case.id
            assert not any(x is not None and np.shares_memory(out, x) for x in case.inputs), case.id


@pytest.mark.parametrize("op_type, attrs", [
    ("Cast", {"to": 8}),  # STRING
    ("Constant", {"value_string": "text"}),
])
def test_unsupported_variant_raises(op_type, attrs):
    inputs = [np.zeros(3, np.float32)] if op_type == "Cast" else []
    with pytest.raises(UnsupportedOp) as info:
        evaluate(op_type, inputs, attrs, opset=17)
    assert info.value.args[0] == op_type
