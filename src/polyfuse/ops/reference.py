"""numpy reference interpreter for the ONNX ops polyfuse supports.

``evaluate`` runs one node on numpy arrays and returns what onnxruntime would: same dtypes,
shapes and (to float rounding) values. It is the oracle the compiler's kernels are tested
against and the constant folder's evaluator. Op implementations live in the sibling modules
``reference_elementwise``, ``reference_nn`` and ``reference_movement``.
"""
from __future__ import annotations

import numpy as np

from . import reference_elementwise, reference_movement, reference_nn  # noqa: F401  (register ops)
from ._common import REGISTRY, NodeArgs, UnsupportedOp

__all__ = ["SUPPORTED_OPS", "UnsupportedOp", "evaluate"]

SUPPORTED_OPS: frozenset[str] = frozenset(REGISTRY)


def evaluate(op_type: str, inputs: list, attrs: dict, *, opset: int,
             num_outputs: int = 1) -> list[np.ndarray]:
    """Evaluate one default-domain ONNX node.

    inputs: arrays in node input order; None for an omitted optional input (trailing ones may
    be left out). attrs: decoded attribute values (tensor attributes as np.ndarray); missing
    ones take the ONNX default. opset: the model's default-domain opset. num_outputs: the
    node's output count (Split, LayerNormalization). Returns ``num_outputs`` C-contiguous
    arrays that share no memory with the inputs.
    """
    fn = REGISTRY.get(op_type)
    if fn is None:
        raise UnsupportedOp(op_type)
    args = NodeArgs(op_type, [None if a is None else np.asarray(a) for a in inputs],
                    dict(attrs), opset, num_outputs)
    result = fn(args)
    results = result if isinstance(result, list) else [result]
    outputs = [np.asarray(r, order="C") for r in results]  # (ascontiguousarray makes 0-d 1-d)
    if len(outputs) < num_outputs:
        raise ValueError(f"{op_type}: produced {len(outputs)} outputs, node has {num_outputs}")
    return outputs[:num_outputs]
