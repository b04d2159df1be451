"""``polyfuse compile --tune`` (tune.py) and the cost model's per-block re-reads it ranks by.

Expected byte counts are worked out here from the encoder's configuration (hidden, heads,
intermediate, sequence) and the schedule, not read back from the code under test."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

from polyfuse.cost import estimate
from polyfuse.cost.model import rereads
from polyfuse.kernel.ir import GemmChain
from polyfuse.pipeline import frontend, kernels
from polyfuse.errors import PolyfuseError
from polyfuse.nas.builder import EncoderConfig, build_encoder, example_feeds
from polyfuse.runtime import load
from polyfuse.targets import get as get_target
from polyfuse.testing.oracle import run_ort
from polyfuse.tune import tune, variants

CFG = EncoderConfig(layers=2, hidden=128, heads=2, intermediate=512, seq=64)


def test_each_variant_changes_one_knob_of_the_targets_schedule():
    host = get_target("host")
    vs = variants(host)
    assert vs[0].label == "default" and dict(vs[0].target.schedule) == dict(host.schedule)
    for v in vs[1:]:
        changed = {k for k in host.schedule if v.target.schedule[k] != host.schedule[k]}
        assert changed == {v.label.split("=")[0]}, v.label
    assert {v.label.split("=")[0] for v in vs[1:]} == set(host.schedule)
    gpu = get_target("android-gpu")  # its attention is not split into row blocks: nothing to vary
    assert not [v for v in variants(gpu) if v.label.startswith("attention_rows")]


def _by_kind(est, kind):
    return [g for g in est.groups if g.kind == kind]


def test_smaller_blocks_are_charged_their_re_reads():
    model = build_encoder(CFG)
    host = get_target("host")
    base = estimate(model, target=host)

    # a GEMM chain (up, ReLU, down) re-reads its second weights once per block of rows
    rows = lambda tile: max(4, min(64, tile // (4 * CFG.intermediate)))  # noqa: E731
    tile = host.schedule["chain_tile_bytes"] // 4
    blocks = lambda r: -(-CFG.seq // r)  # noqa: E731
    w2 = CFG.intermediate * CFG.hidden * 4
    small = estimate(model, target=replace(host, schedule={**host.schedule, "chain_tile_bytes": tile}))
    want = (blocks(rows(tile)) - blocks(rows(host.schedule["chain_tile_bytes"]))) * w2
    assert blocks(rows(host.schedule["chain_tile_bytes"])) == 1  # so the default re-reads nothing:
    comp = kernels(frontend(model), True, host)
    assert [rereads(k, comp.graph, host.schedule) for k in comp.lowered.kernels if isinstance(k, GemmChain)] == [0, 0]
    chains = list(zip(_by_kind(base, "gemmchain"), _by_kind(small, "gemmchain")))
    assert len(chains) == CFG.layers and want > 0
    assert all(b.bytes - a.bytes == want for a, b in chains)

    # an attention re-reads each head's K and V (seq x head size each) once per block of query rows
    ar = 16
    small = estimate(model, target=replace(host, schedule={**host.schedule, "attention_rows": ar}))
    head = CFG.hidden // CFG.heads
    want = (blocks(ar) - blocks(host.schedule["attention_rows"])) * CFG.heads * 2 * CFG.seq * head * 4
    att = list(zip(_by_kind(base, "attention"), _by_kind(small, "attention")))
    assert len(att) == CFG.layers and want > 0
    assert all(b.bytes - a.bytes == want for a, b in att)


def test_tune_keeps_the_fastest_measured_variant_and_its_output_is_right(tmp_path):
    model = build_encoder(CFG)
    path, manifest, ranked = tune(model, tmp_path / "tuned", target=get_target("host"), k=2, repeat=3, rounds=2)
    t = manifest["tuning"]
    timed = [v for v in t["variants"] if v["measured_ms"] is not None]
    assert any(v["variant"] == "default" for v in timed)
    distinct = {v.source for v in ranked if v.measured_ms}
    assert len(distinct) == 3  # the default and the 2 best predicted that generate other code
    assert t["chosen"] == min(timed, key=lambda v: v["measured_ms"])["variant"]
    predicted = [v["predicted_ms"] for v in t["variants"] if v["predicted_ms"] is not None]
    assert predicted == sorted(predicted)  # ranked best predicted first
    assert json.loads((path / "manifest.json").read_text())["tuning"]["chosen"] == t["chosen"]
    feeds = example_feeds(CFG)
    got = load(path).run(None, feeds)
    for g, want in zip(got, run_ort(model, feeds)):
        np.testing.assert_allclose(g, want, rtol=1e-4, atol=1e-5)


def test_tune_refuses_before_any_work(tmp_path):
    used = tmp_path / "used"
    used.mkdir()
    (used / "notes.txt").write_text("mine")
    with pytest.raises(PolyfuseError, match="used"):
        tune(build_encoder(CFG), used, target=get_target("host"))
    assert (used / "notes.txt").read_text() == "mine" and len(list(used.iterdir())) == 1
    with pytest.raises(PolyfuseError, match="runs on a device: add --device adb"):
        tune(build_encoder(CFG), tmp_path / "arm", target=get_target("android-cpu"))
    assert not (tmp_path / "arm").exists()
    with pytest.raises(PolyfuseError, match="runs here; leave out --device"):
        tune(build_encoder(CFG), tmp_path / "host", target=get_target("host"), device="qemu")
    assert not (tmp_path / "host").exists()


@pytest.mark.skipif(not (shutil.which("qemu-aarch64") and shutil.which("aarch64-linux-gnu-g++")),
                    reason="needs qemu-user and g++-aarch64-linux-gnu")
def test_tune_on_a_device_times_the_variants_there(tmp_path):
    """--tune --device: the variants are built for the device and timed by their pf_run there
    (qemu here, as a phone would be through adb); the kept artifact runs there and is right."""
    cfg = EncoderConfig(layers=1, hidden=64, heads=2, intermediate=256, seq=32)
    model = build_encoder(cfg)
    path, manifest, ranked = tune(model, tmp_path / "tuned", target=get_target("android-cpu").for_device(), k=1,
                                  repeat=2, rounds=1, device="qemu")
    timed = [v for v in manifest["tuning"]["variants"] if v["measured_ms"] is not None]
    assert len({v.source for v in ranked if v.measured_ms}) == 2 and all(v["measured_ms"] > 0 for v in timed)
    feeds = example_feeds(cfg)
    for g, want in zip(load(path, device="qemu").run(None, feeds), run_ort(model, feeds)):
        np.testing.assert_allclose(g, want, rtol=1e-4, atol=1e-5)


def test_cli_compile_tune_prints_the_variants_and_keeps_one(tmp_path):
    import onnx

    onnx.save(build_encoder(EncoderConfig(layers=1, hidden=64, heads=2, intermediate=256, seq=32)), tmp_path / "m.onnx")
    r = subprocess.run([sys.executable, "-m", "polyfuse", "-q", "compile", str(tmp_path / "m.onnx"), "--tune", "1",
                        "--tune-repeat", "3", "-o", str(tmp_path / "out")], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    kept = [ln for ln in r.stdout.splitlines() if ln.endswith("<- kept")]
    assert len(kept) == 1 and "predicted ms" in r.stdout
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["tuning"]["chosen"] == kept[0].split()[0]
    r = subprocess.run([sys.executable, "-m", "polyfuse", "compile", str(tmp_path / "m.onnx"), "--tune",
                        "--no-fusion", "-o", str(tmp_path / "nf")], capture_output=True, text=True, timeout=600)
    assert r.returncode != 0 and "--tune" in r.stderr and not (tmp_path / "nf").exists()
