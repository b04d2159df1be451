"""Shared pytest fixtures for polyfuse tests.

Fixtures
--------
export_model
    Session-scoped function ``(arch, size="small", exporter="torchscript",
    opset=17, seq=128, **kwargs) -> pathlib.Path`` that exports a BERT-family
    model (see ``polyfuse.testing.transformers_export``) once per key and
    returns the cached path.  Extra ``kwargs`` (``batch``, ``dynamic``,
    ``seed``, ``attn_implementation`` ...) go to ``export_onnx`` and are part
    of the key.  Skips the test when torch / transformers are missing.

    Exports go to a per-session temp dir.  Set ``POLYFUSE_EXPORT_CACHE=1``
    (or to a directory) to keep them across sessions under
    ``~/.cache/polyfuse-tests`` (or that directory), keyed by torch /
    transformers / onnx versions and the export arguments.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import pathlib
import sys

import pytest

# Make `import polyfuse` work from a plain checkout (src layout, not installed).
_SRC = pathlib.Path(__file__).resolve().parent.parent / "src"
if importlib.util.find_spec("polyfuse") is None and _SRC.is_dir():
    sys.path.insert(0, str(_SRC))


def _export_cache_dir(tmp_path_factory) -> pathlib.Path:
    env = os.environ.get("POLYFUSE_EXPORT_CACHE", "").strip()
    if not env or env == "0":
        return tmp_path_factory.mktemp("onnx_exports")
    base = pathlib.Path.home() / ".cache" / "polyfuse-tests" if env == "1" else pathlib.Path(env)
    import onnx
    import torch
    import transformers

    tag = f"torch-{torch.__version__}_transformers-{transformers.__version__}_onnx-{onnx.__version__}"
    path = base / tag.replace("+", "_")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def export_model(tmp_path_factory):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    pytest.importorskip("onnx")
    from polyfuse.testing import transformers_export as te

    cache_dir = _export_cache_dir(tmp_path_factory)
    done: dict[str, pathlib.Path] = {}

    def _export(
        arch: str,
        size: str = "small",
        exporter: str = "torchscript",
        opset: int = 17,
        seq: int = 128,
        **kwargs,
    ) -> pathlib.Path:
        key = dict(arch=arch, size=size, exporter=exporter, opset=opset, seq=seq, **kwargs)
        blob = json.dumps(key, sort_keys=True, default=str)
        if blob in done:
            return done[blob]
        digest = hashlib.sha1(blob.encode()).hexdigest()[:10]
        name = f"{arch}-{size}-{exporter}-op{opset}-s{seq}-{digest}.onnx"
        path = cache_dir / name
        if not path.exists():
            tmp = cache_dir / f".{name}.{os.getpid()}.tmp.onnx"
            te.export_onnx(arch, size, tmp, exporter=exporter, opset=opset, seq=seq, **kwargs)
            os.replace(tmp, path)  # atomic: concurrent sessions never see partial files
        done[blob] = path
        return path

    return _export
