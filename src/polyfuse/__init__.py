"""polyfuse: a graph-level deep-learning compiler for phones and edge devices.

    import polyfuse
    model = polyfuse.compile("model.onnx", shapes={"input_ids": (1, 128)})
    outputs = model.run(None, {"input_ids": ids})
"""
__version__ = "0.1.0"

from .errors import PolyfuseError  # noqa: E402,F401
from .api import compile, load, CompiledModel  # noqa: E402,F401
from .cost import estimate  # noqa: E402,F401
