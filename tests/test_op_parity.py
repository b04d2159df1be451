"""Every supported op, compiled by polyfuse, against onnxruntime and the numpy reference.

All cases of one opset are merged into one model (each case's values prefixed ``cN_``), so
the suite builds one native library per opset instead of one per case. Tolerance: float32
rtol 1e-5 + atol 1e-5 (float64: 1e-9), exact for integers and bools, NaN where ORT has NaN.
"""
from __future__ import annotations

import functools
import os
import sys
from collections import defaultdict

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper

sys.path.insert(0, os.path.dirname(__file__))
import opcases  # noqa: E402

import polyfuse  # noqa: E402
from polyfuse.ops import reference  # noqa: E402


def _compile_time_inputs(case) -> frozenset:
    """Inputs that decide the output shape are compile-time constants for polyfuse."""
    from polyfuse.ops.info import const_inputs

    return case.const_inputs | frozenset(const_inputs(case.op_type))


def _merged_model(cases):
    nodes, inputs, inits, outputs = [], [], [], []
    for n, case in enumerate(cases):
        p = f"c{n}_"
        names = []
        for i, x in enumerate(case.inputs):
            if x is None:
                names.append("")
                continue
            name = p + opcases.input_name(i)
            names.append(name)
            if i in _compile_time_inputs(case):
                inits.append(numpy_helper.from_array(x, name))
            else:
                inputs.append(helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(x.dtype), x.shape))
        outs = [f"{p}out{j}" for j in range(case.num_outputs)]
        nodes.append(helper.make_node(case.op_type, names, outs, name=f"{p}{case.op_type}",
                                      **opcases.onnx_attrs(case.attrs)))
        outputs += [onnx.ValueInfoProto(name=o) for o in outs]
    graph = helper.make_graph(nodes, "opcases", inputs, outputs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", cases[0].opset)],
                             ir_version=opcases.IR_VERSION)


_BY_OPSET = defaultdict(list)
for _c in opcases.CASES:
    _BY_OPSET[_c.opset].append(_c)


@pytest.fixture(scope="module")
def compiled():
    """opset -> (compiled model, {case id: index within the merged model}, feeds of all cases)."""
    out = {}
    for opset, cases in _BY_OPSET.items():
        out[opset] = (polyfuse.compile(_merged_model(cases), threads=2), {c.id: n for n, c in enumerate(cases)},
                      {k: v for n, c in enumerate(cases) for k, v in _case_feeds(c, n).items()})
    return out


def _case_feeds(case, n) -> dict:
    consts = {opcases.input_name(i) for i in _compile_time_inputs(case)}
    return {f"c{n}_{k}": v for k, v in opcases.feeds(case).items() if k not in consts}


@functools.lru_cache(maxsize=None)
def ort_runs_opset(opset: int) -> bool:
    """Whether the installed onnxruntime loads a model of this opset (1.32 runs opset 28; 1.30
    refuses it as 'under development')."""
    from helpers import model

    m = model([helper.make_node("Identity", ["x"], ["y"])], [("x", np.float32, [1])], [("y", np.float32, [1])],
              opset=opset)
    try:
        ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    except Exception:  # onnxruntime's own Fail/InvalidGraph: the version it rejects
        return False
    return True


def _ort(case):
    """onnxruntime's outputs for the case, or None where it cannot load the case's opset."""
    if not ort_runs_opset(case.opset):
        return None
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(opcases.make_model(case).SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess.run(None, opcases.feeds(case))


def _close(got, want, what):
    assert got.dtype == want.dtype, f"{what}: dtype {got.dtype} != {want.dtype}"
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    if np.issubdtype(want.dtype, np.floating):
        tol = 1e-9 if want.dtype == np.float64 else 1e-5
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol, equal_nan=True, err_msg=what)
    else:
        np.testing.assert_array_equal(got, want, err_msg=what)


@pytest.mark.parametrize("case", opcases.CASES, ids=[c.id for c in opcases.CASES])
def test_op_matches_onnxruntime_and_reference(case, compiled):
    model, index, feeds = compiled[case.opset]
    n = index[case.id]
    names = [f"c{n}_out{j}" for j in range(case.num_outputs)]
    ours = model.run(names, feeds)
    ref = reference.evaluate(case.op_type, case.inputs, case.attrs, opset=case.opset, num_outputs=case.num_outputs)
    by_ort = _ort(case) or [None] * len(ref)  # None: this onnxruntime cannot load the opset; numpy still checks
    for j, (got, want, mine) in enumerate(zip(ours, by_ort, ref)):
        if want is not None:
            _close(got, want, f"{case.id} output {j} vs onnxruntime")
        _close(got, mine, f"{case.id} output {j} vs numpy reference")
