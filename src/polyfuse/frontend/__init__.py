"""Frontends: turn a model file into polyfuse's graph IR."""
from .onnx_import import import_onnx, load_onnx  # noqa: F401
