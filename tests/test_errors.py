"""Bad input gets one clear message naming what and where, a non-zero exit, no traceback,
and no partial output left behind."""
from __future__ import annotations

import json
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
    rc, _, err = cli("compile", relu_path, "--target", "tpu", "-o", tmp_path / "o4")
    _assert_clean_error(rc, err, "unknown target 'tpu'", "android-gpu")
    assert not (tmp_path / "o3").exists() and not (tmp_path / "o4").exists()


def test_compile_refuses_to_overwrite_foreign_directory(tmp_path, relu_path):
    d = tmp_path / "mine"
    d.mkdir()
    (d / "precious.txt").write_text("keep me")
    rc, _, err = cli("compile", relu_path, "-o", d)
    _assert_clean_error(rc, err, "refusing to overwrite")
    assert (d / "precious.txt").read_text() == "keep me"


# --- Every bad model, artifact or argument is one PolyfuseError naming the culprit (issue 17, part 4) ---

def _domain_model(domain, op, name, default_opset=True, **attrs):
    m = model([helper.make_node(op, ["x"], ["y"], domain=domain, name=name, **attrs)], [("x", np.float32, [2])],
              [("y", np.float32, None)])
    if not default_opset:
        del m.opset_import[:]
    m.opset_import.append(helper.make_opsetid(domain, 1))
    return m


def _two(op1, op2, out="y"):
    return [helper.make_node(op1, ["x"], [out], name="first"), helper.make_node(op2, ["x"], [out], name="second")]


F32 = np.float32
BAD_MODELS = {
    # id: (model, error class, words the message must contain)
    "output_without_producer": (model([helper.make_node("Relu", ["x"], ["y"])], [("x", F32, [2])],
                                      [("y", F32, None), ("z", F32, [2])]), ModelError, ["'z'", "produced by no node"]),
    "output_of_nameless_node_output": (model([helper.make_node("Relu", ["x"], [""])], [("x", F32, [2])],
                                             [("y", F32, None)]), ModelError, ["'y'"]),
    "tensor_with_two_producers": (model(_two("Relu", "Neg"), [("x", F32, [2])], [("y", F32, None)]), ModelError,
                                  ["'y'", "first", "second"]),
    "node_output_named_like_an_input": (model([helper.make_node("Relu", ["x"], ["x"], name="self_loop"),
                                               helper.make_node("Neg", ["x"], ["y"])], [("x", F32, [2])],
                                              [("y", F32, None)]), ModelError, ["'x'", "graph input", "self_loop"]),
    "input_over_2^31_elements": (model([helper.make_node("Relu", ["x"], ["y"])], [("x", F32, [1 << 16, 1 << 16])],
                                       [("y", F32, None)]), UnsupportedError, ["'x'", "2^31"]),
    "intermediate_over_2^31_elements": (model([helper.make_node("Add", ["x", "w"], ["y"], name="outer")],
                                              [("x", F32, [1 << 16, 1])], [("y", F32, None)],
                                              [("w", np.zeros((1, 1 << 16), F32))]), UnsupportedError, ["'y'", "2^31"]),
    "negative_dimension": (model([helper.make_node("Relu", ["x"], ["y"])], [("x", F32, [-3, 2])], [("y", F32, None)]),
                           ModelError, ["'x'", "negative"]),
    "ai.onnx.ml_only": (_domain_model("ai.onnx.ml", "Binarizer", "bin_1", default_opset=False), UnsupportedError,
                        ["ai.onnx.ml::Binarizer", "bin_1"]),
    "ai.onnx.ml_in_a_network": (_domain_model("ai.onnx.ml", "Normalizer", "norm_1"), UnsupportedError,
                                ["ai.onnx.ml::Normalizer", "norm_1", "ai.onnx.ml:"]),
    "ai.onnx.training": (_domain_model("ai.onnx.training", "Adagrad", "opt_1", default_opset=False),
                         UnsupportedError, ["ai.onnx.training::Adagrad", "opt_1"]),
    "ai.onnx.preview.training": (_domain_model("ai.onnx.preview.training", "Gradient", "grad_1", xs=["x"], y="y"),
                                 UnsupportedError, ["ai.onnx.preview.training::Gradient", "grad_1", "training"]),
    "missing_required_attribute": (model([helper.make_node("Concat", ["x", "x"], ["y"], name="cat_1")],
                                         [("x", F32, [2])], [("y", F32, None)]), ModelError, ["cat_1", "axis"]),
    "too_few_inputs": (model([helper.make_node("Add", ["x"], ["y"], name="add_1")], [("x", F32, [2])],
                             [("y", F32, None)]), ModelError, ["add_1", "1 input"]),
    "input_listed_twice": (model([helper.make_node("Relu", ["x"], ["y"])], [("x", F32, [2]), ("x", F32, [3])],
                                 [("y", F32, None)]), ModelError, ["'x'", "more than once"]),
    "output_listed_twice": (model([helper.make_node("Relu", ["x"], ["y"])], [("x", F32, [2])],
                                  [("y", F32, None), ("y", F32, None)]), ModelError, ["'y'", "more than once"]),
    "output_is_an_input": (model([helper.make_node("Relu", ["x"], ["y"])], [("x", F32, [2])],
                                 [("y", F32, None), ("x", F32, [2])]), UnsupportedError, ["'x'", "graph input"]),
    "gemm_inner_dims_differ": (model([helper.make_node("Gemm", ["x", "w"], ["y"], name="gemm_1")],
                                     [("x", F32, [4, 3])], [("y", F32, None)], [("w", np.ones((4, 5), F32))]),
                               UnsupportedError, ["gemm_1", "[4, 3]", "[4, 5]"]),
    "gemm_of_a_vector": (model([helper.make_node("Gemm", ["x", "w"], ["y"], name="gemm_2")],
                               [("x", F32, [3])], [("y", F32, None)], [("w", np.ones((3, 5), F32))]),
                         UnsupportedError, ["gemm_2", "2-D"]),
    # Shapes the reference would have accepted by numpy's looser rules (found by mutating tests/opcases.py)
    "flatten_axis_out_of_range": (model([helper.make_node("Flatten", ["x"], ["y"], axis=7, name="flat_1")],
                                        [("x", F32, [2, 3])], [("y", F32, None)]), UnsupportedError, ["flat_1", "axis 7"]),
    "reshape_to_minus_2": (model([helper.make_node("Reshape", ["x", "s"], ["y"], name="reshape_1")],
                                 [("x", F32, [2, 2])], [("y", F32, None)], [("s", np.array([-2, 2], np.int64))]),
                           UnsupportedError, ["reshape_1", "[-2, 2]"]),
    "slice_steps_of_other_length": (model([helper.make_node("Slice", ["x", "b", "e", "a", "st"], ["y"], name="slice_1")],
                                          [("x", F32, [4, 6])], [("y", F32, None)],
                                          [("b", np.array([0, 1], np.int64)), ("e", np.array([3, 5], np.int64)),
                                           ("a", np.array([0, 1], np.int64)), ("st", np.array([2], np.int64))]),
                                    UnsupportedError, ["slice_1", "lengths"]),
    "split_negative_sizes": (model([helper.make_node("Split", ["x", "s"], ["a", "b"], axis=0, name="split_1")],
                                   [("x", F32, [6, 2])], [("a", F32, None), ("b", F32, None)],
                                   [("s", np.array([9, -3], np.int64))]), UnsupportedError, ["split_1", "[9, -3]"]),
    "pad_crops_below_zero": (model([helper.make_node("Pad", ["x", "p"], ["y"], mode="edge", name="pad_1")],
                                   [("x", F32, [5, 6])], [("y", F32, None)], [("p", np.array([1, 0, -9, 0], np.int64))]),
                             UnsupportedError, ["pad_1", "crop"]),
    "layernorm_scale_of_other_shape": (model([helper.make_node("LayerNormalization", ["x", "g"], ["y"], name="ln_1")],
                                             [("x", F32, [4, 3, 5])], [("y", F32, None)], [("g", np.ones((3, 5), F32))]),
                                       UnsupportedError, ["ln_1", "normalized shape"]),
}


@pytest.mark.parametrize("case", sorted(BAD_MODELS))
def test_bad_model_is_one_named_error(case, tmp_path):
    m, cls, needles = BAD_MODELS[case]
    with pytest.raises(cls) as e:
        polyfuse.compile(m)
    for n in needles:
        assert n in str(e.value), str(e.value)
    p = tmp_path / "bad.onnx"
    onnx.save(m, p)
    rc, _, err = cli("compile", p, "-o", tmp_path / "out")
    _assert_clean_error(rc, err, *needles)
    assert not (tmp_path / "out").exists()


def test_graph_verify_raises_model_error_even_under_python_O(tmp_path):
    """Graph.verify() is the check of a polyfuse Graph given to polyfuse.compile directly: a
    ModelError, not an assert (which `python -O` would remove)."""
    code = ("import numpy as np, polyfuse, onnx\n"
            "from onnx import helper, TensorProto\n"
            "from polyfuse.frontend import import_onnx\n"
            "from polyfuse.ir import Node\n"
            "vi = lambda n: helper.make_tensor_value_info(n, TensorProto.FLOAT, [2])\n"
            "g = import_onnx(helper.make_model(helper.make_graph([helper.make_node('Relu', ['x'], ['y'])], 'g',"
            " [vi('x')], [vi('y')]), opset_imports=[helper.make_opsetid('', 17)]))\n"
            "g.nodes.append(Node('Neg', ['x'], ['y'], name='again'))\n"
            "try:\n    polyfuse.compile(g)\n"
            "except polyfuse.errors.ModelError as e:\n    print('ModelError:', e)\n")
    r = subprocess.run([sys.executable, "-O", "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "ModelError:" in r.stdout and "'y'" in r.stdout and "again" in r.stdout, r


@pytest.fixture(scope="module")
def relu_artifact(tmp_path_factory):
    """A compiled Relu model on x float32[3, 4], with weights (a constant Add) so weights.bin is not empty."""
    d = tmp_path_factory.mktemp("art") / "relu"
    m = model([helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Add", ["r", "b"], ["y"])],
              [("x", np.float32, [3, 4])], [("y", np.float32, None)], [("b", np.arange(4, dtype=np.float32))])
    polyfuse.compile(m, output_dir=d)
    return d


def _edit_manifest(**fields):
    def edit(d):
        m = json.loads((d / "manifest.json").read_text())
        m.update(fields)
        (d / "manifest.json").write_text(json.dumps(m))
    return edit


def _truncate(name, keep):
    def edit(d):
        data = (d / name).read_bytes()
        (d / name).write_bytes(data[:keep(len(data))])
    return edit


ARTIFACT_EDITS = {
    # id: (edit of the artifact directory, file the message names, more words it contains)
    "manifest_truncated": (_truncate("manifest.json", lambda n: n // 2), "manifest.json", "unreadable"),
    "manifest_not_polyfuse": (_edit_manifest(format="something-else"), "manifest.json", "not a polyfuse"),
    "manifest_inputs_missing": (_edit_manifest(inputs=None), "manifest.json", "'inputs'"),
    "manifest_dtype_unknown": (_edit_manifest(outputs=[{"name": "y", "dtype": "float99", "shape": [3, 4]}]),
                               "manifest.json", "'outputs'"),
    "manifest_shape_edited": (_edit_manifest(inputs=[{"name": "x", "dtype": "float32", "shape": [5, 4]}]),
                              "manifest.json", "input 'x'"),
    "manifest_dtype_edited": (_edit_manifest(outputs=[{"name": "y", "dtype": "float64", "shape": [3, 4]}]),
                              "manifest.json", "output 'y'"),
    "manifest_extra_input": (_edit_manifest(inputs=[{"name": n, "dtype": "float32", "shape": [3, 4]} for n in "xz"]),
                             "manifest.json", "2 inputs"),
    "weights_truncated": (_truncate("weights.bin", lambda n: n - 1), "weights.bin", "bytes"),
    "weights_missing": (lambda d: (d / "weights.bin").unlink(), "weights.bin", "missing"),
    "library_truncated": (_truncate("libpfmodel.so", lambda n: n // 2), "libpfmodel.so", "truncated"),
    "library_tail_cut": (_truncate("libpfmodel.so", lambda n: n - 1), "libpfmodel.so", "truncated"),
    "library_not_elf": (lambda d: (d / "libpfmodel.so").write_text("hello"), "libpfmodel.so", "not a shared library"),
}


@pytest.mark.parametrize("case", sorted(ARTIFACT_EDITS))
def test_damaged_artifact_is_one_named_error(case, relu_artifact, tmp_path):
    """A hand-edited or truncated file of an artifact: ArtifactError naming the file, exit 2,
    never a crash (a truncated library would kill the process with SIGBUS inside dlopen)."""
    from polyfuse.errors import ArtifactError

    edit, fname, word = ARTIFACT_EDITS[case]
    d = tmp_path / "relu"
    polyfuse.load(relu_artifact).save(d)
    edit(d)
    with pytest.raises(ArtifactError) as e:
        polyfuse.load(d)
    assert fname in str(e.value) and word in str(e.value), str(e.value)
    np.save(tmp_path / "x.npy", np.zeros((3, 4), np.float32))
    rc, _, err = cli("run", d, "--input", f"x={tmp_path / 'x.npy'}", "-o", tmp_path / "out")
    _assert_clean_error(rc, err, fname, word)


def test_threads_must_be_positive(relu_path, tmp_path):
    for bad in (0, -2, 1.5, True):
        with pytest.raises(InputError, match="threads"):
            polyfuse.compile(relu_path, shapes={"x": (3, 4)}, threads=bad)
    np.save(tmp_path / "x.npy", np.zeros((3, 4), np.float32))
    for bad in ("0", "-1"):
        rc, _, err = cli("run", relu_path, "--shape", "x=3,4", "--input", f"x={tmp_path / 'x.npy'}", "--threads", bad,
                         "-o", tmp_path / f"out{bad}")
        _assert_clean_error(rc, err, "--threads", bad)
        rc, _, err = cli("bench", relu_path, "--shape", "x=3,4", "--threads", bad)
        _assert_clean_error(rc, err, "--threads", bad)
    rc, _, err = cli("bench", relu_path, "--shape", "x=3,4", "--repeat", "0")
    _assert_clean_error(rc, err, "repeat")


def test_feed_byte_order_is_converted_and_other_dtypes_named(relu_path, tmp_path):
    """A big-endian float32 feed holds the same numbers: it is byte-swapped (exactly) and runs;
    any other dtype is refused naming the expected dtype and the one given, byte order included."""
    cm = polyfuse.compile(relu_path, shapes={"x": (3, 4)})
    x = np.linspace(-2, 2, 12, dtype=np.float32).reshape(3, 4)
    np.testing.assert_array_equal(cm.run(None, {"x": x.astype(">f4")})[0], np.maximum(x, 0))  # exact: Relu
    with pytest.raises(InputError, match=r"input 'x': expected dtype float32, got float64, byte order '>f8'"):
        cm.run(None, {"x": x.astype(">f8")})
    with pytest.raises(InputError, match="input 'x': not an array of float32"):
        cm.run(None, {"x": [[1.0, 2.0], [3.0]]})
    np.save(tmp_path / "big.npy", x.astype(">f4"))
    np.save(tmp_path / "f64.npy", x.astype(np.float64))
    rc, _, err = cli("run", relu_path, "--shape", "x=3,4", "--input", f"x={tmp_path / 'big.npy'}", "-o", tmp_path / "o")
    assert rc == 0, err
    np.testing.assert_array_equal(np.load(tmp_path / "o" / "y.npy"), np.maximum(x, 0))
    rc, _, err = cli("run", relu_path, "--shape", "x=3,4", "--input", f"x={tmp_path / 'f64.npy'}", "-o", tmp_path / "p")
    _assert_clean_error(rc, err, "input 'x'", "expected dtype float32", "float64")


def test_unwritable_drawing_is_an_input_error(relu_path, tmp_path):
    rc, _, err = cli("inspect", relu_path, "--svg", tmp_path / "no" / "such" / "dir" / "g.svg")
    _assert_clean_error(rc, err, "--svg", "g.svg")


def test_python_api_misuse_is_a_polyfuse_error(relu_path):
    """Wrong argument types to compile/run: InputError or ModelError naming the argument."""
    for bad in ("abc", 5, (3.5, 4)):
        with pytest.raises(InputError, match="--shape x"):
            polyfuse.compile(relu_path, shapes={"x": bad})
    with pytest.raises(InputError, match="shapes must be a dict"):
        polyfuse.compile(relu_path, shapes=[3, 4])
    for bad in (123, None):
        with pytest.raises(ModelError, match="expected a model as a path"):
            polyfuse.compile(bad)
    cm = polyfuse.compile(relu_path, shapes={"x": (3, 4)})
    with pytest.raises(InputError, match="output_names"):
        cm.run(5, {"x": np.zeros((3, 4), np.float32)})


def test_bad_shapes_are_refused_even_when_the_model_is_in_the_compile_cache(relu_path):
    """The compile cache is keyed by the shapes: (3.5, 4) must not be read as (3, 4) and hit."""
    polyfuse.compile(relu_path, shapes={"x": (3, 4)})
    for bad in ((3.5, 4), (True, 4)):
        with pytest.raises(InputError, match="--shape x"):
            polyfuse.compile(relu_path, shapes={"x": bad})


def test_pad_with_an_empty_constant_value_pads_with_zero():
    """An empty constant_value tensor (found by mutation) raised IndexError in the lowering; it
    means the default 0, as in the reference interpreter. Exact comparison: padding copies."""
    m = model([helper.make_node("Pad", ["x", "p", "c"], ["y"])], [("x", np.int64, [3, 4])], [("y", np.int64, None)],
              [("p", np.array([1, 0, 0, 2], np.int64)), ("c", np.zeros((0,), np.int64))])
    x = np.arange(12, dtype=np.int64).reshape(3, 4)
    np.testing.assert_array_equal(polyfuse.compile(m).run(None, {"x": x})[0], np.pad(x, ((1, 0), (0, 2))))
