"""Every artifact runs without Python: the C API (runtime/pf_model.h) and the pf_run program,
on the bundled tiny BERT, against onnxruntime (rtol 1e-4, atol 1e-5) and `polyfuse run`."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import polyfuse
from helpers import run_ort

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "examples" / "tiny_bert.onnx"
SEQ = 16

C_PROGRAM = r"""
#include <stdio.h>
#include <stdlib.h>
#include "pf_model.h"

/* usage: prog ARTIFACT DIR: reads DIR/in<i>.bin, writes DIR/out<j>.bin; prints each tensor's metadata */
static int load(const char* path, void* buf, size_t n) {
  FILE* f = fopen(path, "rb");
  size_t got = f ? fread(buf, 1, n, f) : 0;
  if (f) fclose(f);
  return got == n;
}

int main(int argc, char** argv) {
  char err[512], path[4096];
  pf_model* m = pf_model_open(argv[1], 2, err, sizeof err);
  if (!m) { fprintf(stderr, "open: %s\n", err); return 3; }
  int ni = pf_model_num_inputs(m), no = pf_model_num_outputs(m), i, k;
  const void** in = calloc((size_t)ni + 1, sizeof(void*));
  void** out = calloc((size_t)no + 1, sizeof(void*));
  for (i = 0; i < ni + no; ++i) {
    const pf_tensor_info* t = i < ni ? pf_model_input(m, i) : pf_model_output(m, i - ni);
    printf("%s %s %s", i < ni ? "input" : "output", t->name, t->dtype);
    for (k = 0; k < t->rank; ++k) printf(" %lld", (long long)t->shape[k]);
    printf(" %zu\n", t->bytes);
    void* buf = malloc(t->bytes);
    if (i < ni) {
      snprintf(path, sizeof path, "%s/in%d.bin", argv[2], i);
      if (!load(path, buf, t->bytes)) { fprintf(stderr, "cannot read %s\n", path); return 4; }
      in[i] = buf;
    } else {
      out[i - ni] = buf;
    }
  }
  if (pf_model_input(m, ni) != NULL || pf_model_output(m, -1) != NULL) { fprintf(stderr, "range\n"); return 5; }
  if (pf_model_run(m, in, out, err, sizeof err) != 0) { fprintf(stderr, "run: %s\n", err); return 6; }
  for (i = 0; i < no; ++i) {
    snprintf(path, sizeof path, "%s/out%d.bin", argv[2], i);
    FILE* f = fopen(path, "wb");
    fwrite(out[i], 1, pf_model_output(m, i)->bytes, f);
    fclose(f);
  }
  pf_model_close(m);
  return 0;
}
"""


@pytest.fixture(scope="module")
def art(tmp_path_factory):
    d = tmp_path_factory.mktemp("c_api") / "tiny_bert"
    with np.load(REPO / "examples" / "tiny_bert_inputs.npz") as f:
        feeds = {k: f[k][:, :SEQ] for k in f.files}
    polyfuse.compile(MODEL, shapes={k: v.shape for k, v in feeds.items()}, output_dir=d)
    return d, feeds


def _npys(directory: Path, feeds: dict) -> list[str]:
    args = []
    for k, v in feeds.items():
        np.save(directory / f"{k}.npy", v)
        args += ["--input", f"{k}={directory / f'{k}.npy'}"]
    return args


def test_c_program_runs_tiny_bert(art, tmp_path):
    d, feeds = art
    manifest = json.loads((d / "manifest.json").read_text())
    for i, info in enumerate(manifest["inputs"]):
        feeds[info["name"]].tofile(tmp_path / f"in{i}.bin")
    (tmp_path / "prog.c").write_text(C_PROGRAM)
    cc = shutil.which("gcc") or shutil.which("cc")
    subprocess.run([cc, "-std=c99", "-Wall", "-Werror", str(tmp_path / "prog.c"), "-I", str(d / "runtime"), "-L", str(d),
                    "-lpfmodel", f"-Wl,-rpath,{d}", "-o", str(tmp_path / "prog")], check=True, capture_output=True)
    r = subprocess.run([str(tmp_path / "prog"), str(d), str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    for line, (kind, info) in zip(lines, [("input", i) for i in manifest["inputs"]] +
                                  [("output", o) for o in manifest["outputs"]]):
        size = int(np.prod(info["shape"])) * np.dtype(info["dtype"]).itemsize
        assert line.split() == [kind, info["name"], info["dtype"], *map(str, info["shape"]), str(size)]
    ref = run_ort(__import__("onnx").load(MODEL), feeds)
    for j, (info, want) in enumerate(zip(manifest["outputs"], ref)):
        got = np.fromfile(tmp_path / f"out{j}.bin", dtype=info["dtype"]).reshape(info["shape"])
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_pf_run_writes_what_polyfuse_run_writes(art, tmp_path):
    d, feeds = art
    args = _npys(tmp_path, feeds)
    r = subprocess.run([str(d / "pf_run"), str(d), *args, "-o", str(tmp_path / "c"), "--threads", "2", "--bench", "5"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "latency over 5 runs: median" in r.stdout
    py = subprocess.run(["python3", "-m", "polyfuse", "run", str(d), *args, "-o", str(tmp_path / "py")],
                        capture_output=True, text=True, timeout=300)
    assert py.returncode == 0, py.stderr
    names = sorted(p.name for p in (tmp_path / "py").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "c").iterdir()) and len(names) == 2
    for n in names:
        a, b = np.load(tmp_path / "c" / n), np.load(tmp_path / "py" / n)
        assert a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)


@pytest.mark.parametrize("case", ["missing-file", "wrong-shape", "wrong-dtype", "unknown-input", "missing-input",
                                  "not-npy", "out-not-empty", "other-target", "damaged-manifest"])
def test_pf_run_refuses_bad_input_cleanly(art, tmp_path, case):
    d, feeds = art
    feeds = dict(feeds)
    out = tmp_path / "out"
    expect = {"missing-file": "cannot open", "wrong-shape": "has shape (1, 3)", "wrong-dtype": "holds <i4",
              "unknown-input": "no input of that name", "missing-input": "missing input 'token_type_ids'",
              "not-npy": "not a .npy file", "out-not-empty": "not empty", "other-target": "for target 'android-cpu'",
              "damaged-manifest": "not valid JSON"}[case]
    if case == "wrong-shape":
        feeds["input_ids"] = feeds["input_ids"][:, :3]
    if case == "wrong-dtype":
        feeds["input_ids"] = feeds["input_ids"].astype(np.int32)
    args = _npys(tmp_path, feeds)
    if case == "missing-file":
        args[1] = f"input_ids={tmp_path / 'nope.npy'}"
    if case == "unknown-input":
        args += ["--input", f"bogus={tmp_path / 'input_ids.npy'}"]
    if case == "missing-input":
        args = args[:-2]
    if case == "not-npy":
        (tmp_path / "input_ids.npy").write_bytes(b"hello")
    if case == "out-not-empty":
        out.mkdir()
        (out / "keep.txt").write_text("mine")
    if case in ("other-target", "damaged-manifest"):
        copy = tmp_path / "art"
        shutil.copytree(d, copy)
        m = (copy / "manifest.json").read_text()
        (copy / "manifest.json").write_text(m.replace('"target": "host"', '"target": "android-cpu"')
                                            if case == "other-target" else m[: len(m) // 2])
        d = copy
    r = subprocess.run([str(d / "pf_run"), str(d), *args, "-o", str(out)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert expect in r.stderr and r.stderr.startswith("pf_run: error: ") and r.stderr.count("\n") == 1, r.stderr
    if case == "out-not-empty":
        assert [p.name for p in out.iterdir()] == ["keep.txt"]
    else:
        assert not out.exists()
    assert not list(tmp_path.glob("out.pf_run.*"))


def test_artifact_cmakelists_builds_library_and_pf_run(art, tmp_path):
    d, feeds = art
    if not shutil.which("cmake"):
        pytest.skip("no cmake (scripts/install.sh installs it)")
    b = tmp_path / "build"
    subprocess.run(["cmake", "-S", str(d), "-B", str(b), "-DCMAKE_BUILD_TYPE=Release"], check=True, capture_output=True)
    subprocess.run(["cmake", "--build", str(b), "-j2"], check=True, capture_output=True)
    args = _npys(tmp_path, feeds)
    r = subprocess.run([str(b / "pf_run"), str(d), *args, "-o", str(tmp_path / "o")], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    ref = run_ort(__import__("onnx").load(MODEL), feeds)
    manifest = json.loads((d / "manifest.json").read_text())
    for info, want in zip(manifest["outputs"], ref):
        np.testing.assert_allclose(np.load(tmp_path / "o" / f"{info['name']}.npy"), want, rtol=1e-4, atol=1e-5)
