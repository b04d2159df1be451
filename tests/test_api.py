"""polyfuse.compile accepts a path, a ModelProto, bytes or a Graph, and threads change nothing
numerically; CompiledModel.run mirrors onnxruntime's InferenceSession.run."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper

import polyfuse
from helpers import model, run_ort
from polyfuse.frontend import import_onnx


def _mlp():
    rng = np.random.default_rng(0)
    w1, w2 = rng.standard_normal((24, 40)).astype(np.float32), rng.standard_normal((40, 8)).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"]), helper.make_node("Gelu", ["h"], ["g"], domain=""),
             helper.make_node("MatMul", ["g", "w2"], ["o"]), helper.make_node("Softmax", ["o"], ["y"], axis=-1),
             helper.make_node("ReduceMax", ["o"], ["m"], keepdims=0)]
    return model(nodes, [("x", np.float32, ["n", 24])], [("y", np.float32, None), ("m", np.float32, None)],
                 [("w1", w1), ("w2", w2)], opset=20)


@pytest.fixture(scope="module")
def feeds():
    return {"x": np.random.default_rng(1).standard_normal((13, 24)).astype(np.float32)}


@pytest.mark.parametrize("form", ["path", "proto", "bytes", "graph"])
def test_every_model_form_compiles_to_the_same_result(form, feeds, tmp_path):
    m = _mlp()
    p = tmp_path / "mlp.onnx"
    onnx.save(m, p)
    arg = {"path": p, "proto": m, "bytes": m.SerializeToString(), "graph": import_onnx(m)}[form]
    cm = polyfuse.compile(arg, shapes={"x": (13, 24)})
    for ours, ref in zip(cm.run(None, feeds), run_ort(m, feeds)):
        np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-5)


def test_wake_before_runs_changes_nothing(feeds):
    """The library exports pf_wake (kernels/pf_model_abi.h); run() calls it before checking the
    feeds. Waking the workers, on its own, twice, or before the first run, runs nothing."""
    import ctypes

    cm = polyfuse.compile(_mlp(), shapes={"x": (13, 24)}, threads=2)
    assert hasattr(ctypes.CDLL(str(cm.directory / "libpfmodel.so")), "pf_wake")
    cm._session.wake()
    cm._session.wake()
    first = cm.run(None, feeds)
    cm._session.wake()
    for ours, again, ref in zip(first, cm.run(None, feeds), run_ort(_mlp(), feeds)):
        np.testing.assert_array_equal(ours, again)
        np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-5)


def test_feeds_may_be_strided_arrays(feeds):
    """A feed that is not C-contiguous is copied, not refused; outputs come in the order asked."""
    cm = polyfuse.compile(_mlp(), shapes={"x": (13, 24)})
    x = feeds["x"]
    strided = np.asfortranarray(x)
    assert not strided.flags.c_contiguous
    ref = run_ort(_mlp(), feeds)
    for got in (cm.run(None, {"x": strided}), cm.run(["m", "y"], feeds)[::-1]):
        for ours, r in zip(got, ref):
            np.testing.assert_allclose(ours, r, rtol=1e-5, atol=1e-5)


def test_threads_and_call_forms(feeds):
    m = _mlp()
    one = polyfuse.compile(m, shapes={"x": (13, 24)}, threads=1)
    two = polyfuse.compile(m, shapes={"x": (13, 24)}, threads=2)
    a, b = one.run(None, feeds), two.run(["m", "y"], feeds)
    np.testing.assert_allclose(a[0], b[1], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(a[1], b[0], rtol=1e-6, atol=1e-7)
    named = two(**feeds)
    assert list(named) == ["y", "m"]
    assert one.inputs[0].shape == (13, 24) and one.inputs[0].dtype == np.float32


def test_a_model_without_inputs_runs():
    """A graph whose outputs are all constants (ONNX's test_constant) has no inputs: its library
    reports 0 inputs and run() copies the outputs from the weights. Exact: no arithmetic at run time."""
    c = np.random.default_rng(2).standard_normal((5, 5)).astype(np.float32)
    nodes = [helper.make_node("Constant", [], ["c"], value=onnx.numpy_helper.from_array(c)),
             helper.make_node("Relu", ["c"], ["r"])]
    cm = polyfuse.compile(model(nodes, [], [("c", np.float32, [5, 5]), ("r", np.float32, [5, 5])]))
    assert cm.input_names == []
    got_c, got_r = cm.run(None, {})
    np.testing.assert_array_equal(got_c, c)
    np.testing.assert_array_equal(got_r, np.maximum(c, 0))


def _residual_chain(layers=6, d=128):
    """MatMul -> Softmax -> residual Add, ``layers`` times: a dozen kernels whose intermediates
    all live in the arena, so two inferences sharing it at once corrupt each other's values."""
    rng = np.random.default_rng(2)
    inits, nodes, cur = [], [], "x"
    for i in range(layers):
        inits.append((f"w{i}", (rng.standard_normal((d, d)) / np.sqrt(d)).astype(np.float32)))
        nodes += [helper.make_node("MatMul", [cur, f"w{i}"], [f"h{i}"]),
                  helper.make_node("Softmax", [f"h{i}"], [f"a{i}"], axis=-1),
                  helper.make_node("Add", [f"a{i}", cur], [f"r{i}"])]
        cur = f"r{i}"
    return model(nodes, [("x", np.float32, [64, d])], [(cur, np.float32, None)], inits, opset=20)


def _hammer(call, inputs, refs, n_threads=8, calls=50) -> list:
    """``n_threads`` threads each make ``calls`` calls, cycling through the inputs at different
    offsets; returns (thread, call, input index) of every result not bit-identical to refs."""
    import threading

    bad, start = [], threading.Barrier(n_threads)

    def work(t):
        start.wait()
        for c in range(calls):
            j = (7 * t + c) % len(inputs)
            if not np.array_equal(call(inputs[j]), refs[j]):
                bad.append((t, c, j))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(n_threads)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return bad


@pytest.mark.parametrize("threads", [1, 2])
def test_concurrent_runs_on_one_model_match_serial_runs(threads):
    """run() releases the GIL and every call shares the model's arena: calls from 8 Python
    threads at once must each return exactly (bit for bit) what the same call returns alone.
    (Without the lock in pf_run, 8 to 215 of the 400 results were wrong in four runs.)"""
    m = _residual_chain()
    cm = polyfuse.compile(m, threads=threads)
    xs = [np.random.default_rng(10 + i).standard_normal((64, 128)).astype(np.float32) for i in range(16)]
    refs = [cm.run(None, {"x": x})[0] for x in xs]
    # The serial results are right (fp32 MatMul/Softmax chain: rtol 1e-5, atol 1e-5 against onnxruntime).
    np.testing.assert_allclose(refs[0], run_ort(m, {"x": xs[0]})[0], rtol=1e-5, atol=1e-5)
    assert _hammer(lambda x: cm.run(None, {"x": x})[0], xs, refs) == []


def test_concurrent_pf_run_through_the_c_api():
    """The artifact's C API (pf_model_abi.h) is thread-safe per instance too, for toolchains that
    call it directly: 8 threads calling pf_run (through ctypes, which releases the GIL) on one
    instance get exactly the serial results."""
    import ctypes

    cm = polyfuse.compile(_residual_chain(), threads=1)
    lib = ctypes.CDLL(str(cm.directory / "libpfmodel.so"))
    lib.pf_create.restype = ctypes.c_void_p
    lib.pf_create.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t]
    lib.pf_run.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
    lib.pf_destroy.argtypes = [ctypes.c_void_p]
    err = ctypes.create_string_buffer(512)
    handle = lib.pf_create(str(cm.directory / "weights.bin").encode(), 1, err, len(err))
    assert handle, err.value

    def call(x):
        y = np.empty((64, 128), np.float32)
        ins, outs = (ctypes.c_void_p * 1)(x.ctypes.data), (ctypes.c_void_p * 1)(y.ctypes.data)
        assert lib.pf_run(handle, ins, outs) == 0
        return y

    try:
        xs = [np.random.default_rng(30 + i).standard_normal((64, 128)).astype(np.float32) for i in range(16)]
        refs = [call(x) for x in xs]
        np.testing.assert_array_equal(refs[0], cm.run(None, {"x": xs[0]})[0])
        assert _hammer(call, xs, refs) == []
    finally:
        lib.pf_destroy(handle)


def test_concurrent_runs_on_separate_loads_of_one_artifact():
    """The documented way to run concurrently: one model per caller. Loads of one artifact share
    the library (its thread pool, its thread-local GEMM buffers) but not the arena; 8 threads,
    each on its own load with 2 threads, get exactly the serial results."""
    first = polyfuse.compile(_residual_chain(), threads=2)
    models = [first] + [polyfuse.load(first.directory, threads=2) for _ in range(7)]
    xs = [np.random.default_rng(50 + i).standard_normal((64, 128)).astype(np.float32) for i in range(16)]
    refs = [first.run(None, {"x": x})[0] for x in xs]
    import threading

    local = threading.local()
    slots = iter(models)
    lock = threading.Lock()

    def call(x):
        if not hasattr(local, "model"):
            with lock:
                local.model = next(slots)
        return local.model.run(None, {"x": x})[0]

    assert _hammer(call, xs, refs) == []
