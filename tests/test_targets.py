"""Targets are data (src/polyfuse/targets/): every record is complete, names resolve or are
refused with the list of targets, and no code outside targets/ tests a target's name."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

import polyfuse
from polyfuse.errors import UnsupportedError
from polyfuse.resources import kernels_dir, templates_dir
from polyfuse.targets import TARGETS, Target, get

SRC = Path(polyfuse.__file__).resolve().parent
KERNEL_TEMPLATES = ("model.cpp.j2", "CMakeLists.txt.j2", "pointwise.j2", "reduction.j2", "contraction.j2",
                    "attention.j2", "gemm_chain.j2")


@pytest.mark.parametrize("name", list(TARGETS))
def test_target_record_is_complete(name):
    t = get(name)
    assert isinstance(t, Target) and t.name == name and get(t) is t
    for f in KERNEL_TEMPLATES + tuple(f"{a}.j2" for a in t.artifact_templates):
        assert any((templates_dir() / d / f).is_file() for d in t.templates), f"{name}: no template {f} in {t.templates}"
    for f in t.runtime_files():
        assert any((kernels_dir() / d / f).is_file() for d in t.kernels), f"{name}: no runtime file {f} in {t.kernels}"
    assert t.toolchain.flags


@pytest.mark.parametrize("name, words", [("tpu", ["unknown target 'tpu'", "host", "android-cpu", "android-gpu"]),
                                         ("Host", ["unknown target 'Host'"])])
def test_other_names_are_refused_with_the_list(name, words):
    with pytest.raises(UnsupportedError) as e:
        get(name)
    for w in words:
        assert w in str(e.value)


def test_no_target_name_is_tested_outside_targets():
    """The pipeline reads a Target's fields; `if target == "host"` anywhere else would be a
    second place to change for a new target."""
    names = "|".join(re.escape(n) for n in TARGETS)
    pattern = re.compile(rf"""[!=]=\s*["']({names})["']|["']({names})["']\s*[!=]=|in\s*\(\s*["']({names})["']""")
    found = [f"{f.relative_to(SRC)}:{i}" for f in SRC.rglob("*.py") if "targets" not in f.relative_to(SRC).parts
             for i, line in enumerate(f.read_text().splitlines(), 1) if pattern.search(line)]
    assert not found, found


def test_inspect_reports_phone_figures_for_a_target(tmp_path):
    """FLOPs equal 2*M*N*K over the graph's MatMul/Gemm nodes (before fusion); the arena is the
    one the compiled artifact allocates; bytes moved cover at least every weight read once."""
    import json

    import numpy as np

    from polyfuse.inspect import inspect_model
    from polyfuse.pipeline import frontend

    model = Path(__file__).resolve().parents[1] / "examples" / "tiny_bert.onnx"
    shapes = {"input_ids": (1, 16)}
    s = json.loads(inspect_model(model, shapes=shapes, as_json=True, target="android-cpu"))
    g = frontend(model, shapes).graph
    want = 0
    for n in g.nodes:
        if n.op_type in ("MatMul", "Gemm"):
            a = g.values[n.inputs[0]].shape
            k = a[0] if n.op_type == "Gemm" and n.attrs.get("transA") else a[-1]
            want += 2 * int(np.prod(g.values[n.outputs[0]].shape)) * int(k)
    assert s["target"] == "android-cpu" and s["flops"] == want > 0
    manifest = polyfuse.compile(model, shapes=shapes, output_dir=tmp_path / "a").manifest
    assert s["arena_bytes"] == manifest["stats"]["arena_bytes"] and s["kernels"] == manifest["stats"]["kernels"]
    assert s["bytes_moved"] >= manifest["stats"]["weights_bytes"] + s["intermediate_bytes_fused"]


def test_fusion_reads_the_targets_schedule():
    """The same feed-forward block is one GEMM chain for the host and two GEMMs for a target
    whose caches allow no re-read second weights: fusion takes its limits from the Target."""
    import dataclasses

    import numpy as np
    from onnx import helper

    from helpers import model
    from polyfuse.inspect import summarize
    from polyfuse.targets import HOST

    rng = np.random.default_rng(0)
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"]), helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("MatMul", ["r", "w2"], ["out"])]
    m = model(nodes, [("x", np.float32, [1, 13, 16])], [("out", np.float32, None)],
              [("w1", rng.standard_normal((16, 64)).astype(np.float32)),
               ("w2", rng.standard_normal((64, 16)).astype(np.float32))])
    small = dataclasses.replace(HOST, name="small-cache", schedule={**HOST.schedule, "chain_max_second_weights": 1024})
    assert summarize(m, target=HOST)[0]["kernels_by_kind"] == {"gemmchain": 1}
    s, _, report = summarize(m, target=small)
    assert s["kernels_by_kind"] == {"contraction": 2} and s["target"] == "small-cache"
    assert any("re-read for every block of rows" in r.reason for r in report.refusals)


def test_a_device_is_needed_exactly_where_a_targets_code_runs_elsewhere():
    """calibrate, --tune and bench share devices.check_device_use."""
    from polyfuse.devices import check_device_use
    from polyfuse.errors import InputError

    check_device_use(get("host"), None, "x")
    check_device_use(get("android-cpu"), "qemu", "x")
    check_device_use(get("android-gpu"), None, "x")  # this machine's OpenCL device
    check_device_use(get("android-gpu"), "adb", "x")  # or a phone's
    check_device_use(get("android-gpu").for_device(), "adb", "x")
    with pytest.raises(InputError, match="^x: target host's code runs here; leave out --device$"):
        check_device_use(get("host"), "qemu", "x")
    with pytest.raises(InputError, match="^x: target android-cpu's code runs on a device: add --device adb"):
        check_device_use(get("android-cpu"), None, "x")
    with pytest.raises(InputError, match="runs on a device: add --device adb"):
        check_device_use(get("android-gpu").for_device(), None, "x")
