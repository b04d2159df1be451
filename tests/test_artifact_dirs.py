"""No command or API call deletes a file polyfuse did not write, and a failed or interrupted
compile leaves the old artifact byte for byte as it was, with no temporary files behind
(build/artifact.py, build/compiler.py, api.py)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnx
import pytest
from onnx import helper

import polyfuse
from helpers import model
from polyfuse.api import build_artifact
from polyfuse.build.cache import cache_dir
from polyfuse.errors import ArtifactError, BuildError, UnsupportedError


def _relu(n=3):
    return model([helper.make_node("Relu", ["x"], ["y"])], [("x", np.float32, [n, 4])], [("y", np.float32, None)])


def _unsupported():
    return model([helper.make_node("Foo", ["x"], ["y"], name="foo_1")], [("x", np.float32, [2])],
                 [("y", np.float32, None)])


def tree(d) -> dict:
    """Every path under ``d`` with its bytes (None for folders): equal trees are byte-identical."""
    return {p.relative_to(d).as_posix(): (None if p.is_dir() else p.read_bytes()) for p in sorted(d.rglob("*"))}


def cli(*args, env=None):
    r = subprocess.run([sys.executable, "-m", "polyfuse", "-q", *map(str, args)], capture_output=True, text=True,
                       timeout=300, env={**os.environ, **(env or {})})
    return r.returncode, r.stdout, r.stderr


@pytest.fixture
def private_tmp(tmp_path, monkeypatch):
    """A temporary-files folder of the test's own (TMPDIR for subprocesses, tempfile.tempdir
    here), so that what a compile leaves there can be counted, whatever else runs on the machine."""
    d = tmp_path / "tmpdir"
    d.mkdir()
    monkeypatch.setenv("TMPDIR", str(d))
    monkeypatch.setattr(tempfile, "tempdir", str(d))
    return d


@pytest.fixture
def art(tmp_path):
    """An artifact directory of _relu(3), compiled with the CLI, and the model's path."""
    p = tmp_path / "relu.onnx"
    onnx.save(_relu(3), p)
    a = tmp_path / "out" / "art"
    rc, _, err = cli("compile", p, "-o", a)
    assert rc == 0, err
    return a, p


def _clean_error(rc, err, *needles):
    assert rc == 2 and "Traceback" not in err and err.startswith("polyfuse: error: "), err
    for n in needles:
        assert n in err, err


def test_existing_artifact_needs_force_and_user_files_stop_even_that(art, tmp_path):
    a, p = art
    before = tree(a)
    rc, _, err = cli("compile", p, "-o", a)
    _clean_error(rc, err, str(a), "--force")
    assert tree(a) == before
    (a / "notes.txt").write_text("mine")
    (a / "runtime" / "patch.h").write_text("// mine")
    (a / "plots").mkdir()
    before = tree(a)
    rc, _, err = cli("compile", p, "-o", a, "--force")
    _clean_error(rc, err, "notes.txt", "runtime/patch.h", "plots/", "did not write")
    assert tree(a) == before
    assert sorted(x.name for x in a.parent.iterdir()) == ["art"]  # no temporary sibling left


def test_force_replaces_an_artifact(art, tmp_path):
    a, _ = art
    q = tmp_path / "relu5.onnx"
    onnx.save(_relu(5), q)
    rc, _, err = cli("compile", q, "-o", a, "--force")
    assert rc == 0, err
    assert json.loads((a / "manifest.json").read_text())["inputs"][0]["shape"] == [5, 4]
    x = np.linspace(-1, 1, 20, dtype=np.float32).reshape(5, 4)
    np.testing.assert_array_equal(polyfuse.load(a).run(None, {"x": x})[0], np.maximum(x, 0))  # exact: Relu
    assert sorted(x.name for x in a.parent.iterdir()) == ["art"]


@pytest.mark.parametrize("manifest", ['{"name": "my-dataset"}', "not json", '["polyfuse-artifact"]'])
def test_directory_with_a_foreign_manifest_is_refused(tmp_path, manifest):
    d = tmp_path / "data"
    d.mkdir()
    (d / "manifest.json").write_text(manifest)
    (d / "table.csv").write_text("1,2\n")
    before = tree(d)
    q = tmp_path / "relu.onnx"
    onnx.save(_relu(), q)
    rc, _, err = cli("compile", q, "-o", d, "--force")
    _clean_error(rc, err, str(d), "not a polyfuse artifact")
    with pytest.raises(ArtifactError, match="not a polyfuse artifact"):
        polyfuse.compile(q, output_dir=d, overwrite=True)
    assert tree(d) == before


def test_file_and_symlink_destinations_are_refused(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    for dest, needle in ((f, "not a directory"), (link, "symbolic link")):
        with pytest.raises(ArtifactError, match=needle):
            polyfuse.compile(_relu(), output_dir=dest, overwrite=True)
    assert f.read_text() == "x" and link.is_symlink()


def test_save_and_compile_overwrite_in_python(tmp_path):
    cm = polyfuse.compile(_relu(3))
    dest = tmp_path / "saved"
    cm.save(dest)
    with pytest.raises(ArtifactError, match="overwrite=True"):
        cm.save(dest)
    cm.save(dest, overwrite=True)
    other = polyfuse.compile(_relu(6), output_dir=dest, overwrite=True)
    assert other.inputs[0].shape == (6, 4)
    (dest / "README").write_text("mine")
    with pytest.raises(ArtifactError, match="README"):
        cm.save(dest, overwrite=True)
    assert (dest / "README").read_text() == "mine"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cm.save(empty) == empty and (empty / "manifest.json").is_file()  # an empty directory is fine
    umask = os.umask(0)
    os.umask(umask)
    for d in (dest, empty):  # the umask's permissions, not mkdtemp's 0700
        assert d.stat().st_mode & 0o777 == 0o777 & ~umask


def test_the_compile_cache_follows_the_same_rules(tmp_path, monkeypatch):
    """A cache hit copies the cached artifact through the same checks (build/artifact_cache.py)."""
    monkeypatch.setenv("POLYFUSE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("POLYFUSE_ARTIFACT_CACHE", raising=False)
    p = tmp_path / "relu.onnx"
    onnx.save(_relu(), p)
    a = tmp_path / "a"
    assert build_artifact(p, a)[2] is not None
    with pytest.raises(ArtifactError, match="overwrite"):
        build_artifact(p, a)
    (a / "keep.txt").write_text("mine")
    with pytest.raises(ArtifactError, match="keep.txt"):
        build_artifact(p, a, overwrite=True)
    (a / "keep.txt").unlink()
    assert build_artifact(p, a, overwrite=True)[2] is None  # a hit, replacing the artifact
    assert sorted(x.name for x in tmp_path.iterdir()) == ["a", "cache", "relu.onnx"]


def _listing(d) -> set:
    return {p.relative_to(d).as_posix() for p in d.rglob("*")}


def test_failed_build_leaves_old_artifact_and_only_the_named_log(art, tmp_path, private_tmp):
    """CXX=false makes every compiler call fail: a BuildError (exit 2) naming a log file, which is
    the one thing left in the temporary folder; the build cache gains nothing, the old artifact
    is unchanged."""
    a, _ = art
    before, cache_before = tree(a), _listing(cache_dir())
    q = tmp_path / "relu7.onnx"
    onnx.save(_relu(7), q)  # not in the compile cache
    rc, _, err = cli("compile", q, "-o", a, "--force", env={"CXX": "false"})
    _clean_error(rc, err, "full log: ")
    log = err.split("full log: ")[1].split(")")[0]
    assert [str(p) for p in private_tmp.iterdir()] == [log]
    assert "false" in open(log).read()
    assert tree(a) == before
    assert sorted(x.name for x in a.parent.iterdir()) == ["art"]
    assert _listing(cache_dir()) == cache_before


def test_failed_compiles_leave_no_temporary_directory(art, private_tmp, monkeypatch):
    """An UnsupportedError, a BuildError or an interrupt (KeyboardInterrupt while the weights are
    written) during polyfuse.compile: the old artifact is byte-identical, and neither
    /tmp/polyfuse-* (here: the private temporary folder) nor the artifact's folder keeps anything."""
    a, _ = art
    before = tree(a)
    monkeypatch.setenv("POLYFUSE_ARTIFACT_CACHE", "0")
    with pytest.raises(UnsupportedError, match="foo_1"):
        polyfuse.compile(_unsupported(), output_dir=a, overwrite=True)
    with pytest.raises(UnsupportedError):
        polyfuse.compile(_unsupported())  # into an owned temporary directory
    assert list(private_tmp.iterdir()) == []

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr("polyfuse.api.write_weights", interrupted)
    for out in (a, None):
        with pytest.raises(KeyboardInterrupt):
            polyfuse.compile(_relu(9), output_dir=out, overwrite=True)
    assert list(private_tmp.iterdir()) == []
    monkeypatch.undo()
    monkeypatch.setenv("TMPDIR", str(private_tmp))
    monkeypatch.setattr(tempfile, "tempdir", str(private_tmp))
    monkeypatch.setenv("CXX", "false")
    with pytest.raises(BuildError) as e:
        polyfuse.compile(_relu(10))
    assert [p for p in private_tmp.iterdir()] == [e.value.log]  # the log the message names, only
    assert tree(a) == before and sorted(x.name for x in a.parent.iterdir()) == ["art"]


def test_run_output_is_never_deleted(art, tmp_path):
    a, _ = art
    np.save(tmp_path / "x.npy", np.ones((3, 4), np.float32))
    out = tmp_path / "results"
    out.mkdir()
    (out / "old.npy").write_text("mine")
    rc, _, err = cli("run", a, "--input", f"x={tmp_path / 'x.npy'}", "-o", out)
    _clean_error(rc, err, str(out), "not an empty directory")
    assert tree(out) == {"old.npy": b"mine"}
    (out / "old.npy").unlink()
    rc, _, err = cli("run", a, "--input", f"x={tmp_path / 'x.npy'}", "-o", out)  # empty: fine
    assert rc == 0, err
    np.testing.assert_array_equal(np.load(out / "y.npy"), np.ones((3, 4), np.float32))
