"""The differential oracle: onnxruntime's answer, a float64 evaluation, and the verdict.

polyfuse's output must match onnxruntime's (same shape and dtype; same NaN positions; same
+-inf positions and signs; integers and bools exactly; floats within :data:`RTOL`/:data:`ATOL`).
A float that misses onnxruntime's value is still accepted when onnxruntime is itself that far
from the truth: when polyfuse is no further than :data:`WORSE` times onnxruntime's distance
from a float64 evaluation of the same graph (plus the tolerance), and a NaN where polyfuse agrees
with the float64 evaluation (onnxruntime's ReduceMax keeps a NaN only when it comes first in
the row; numpy and polyfuse always propagate it). Badly conditioned values
(LayerNorm of a nearly constant row, a difference of nearly equal numbers) come out
differently in any two float32 engines; this keeps them from being reported, while an answer
that is wrong where onnxruntime is right is always reported.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper

from ..ops import reference

RTOL, ATOL = 1e-4, 1e-5
WORSE = 4.0
OVERFLOW = 1e38  # float64 values this large may be +-inf or finite in float32, either way


def run_ort(model: onnx.ModelProto, feeds: dict) -> list[np.ndarray]:
    """onnxruntime with its graph optimizations off: each node as ONNX defines it."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def _wide(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float64) if x.dtype == np.float32 else x


def reference64(model: onnx.ModelProto, feeds: dict, widen: bool = True) -> dict[str, np.ndarray]:
    """Every value of the graph evaluated by polyfuse's numpy reference (checked against
    onnxruntime op by op): in float64, float32 data and casts widened, or with ``widen=False``
    in the model's own types."""
    wide = _wide if widen else (lambda x: x)
    env = {t.name: wide(numpy_helper.to_array(t)) for t in model.graph.initializer}
    env.update({k: wide(np.asarray(v)) for k, v in feeds.items()})
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    for node in model.graph.node:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        attrs = {k: numpy_helper.to_array(v) if isinstance(v, onnx.TensorProto) else v for k, v in attrs.items()}
        if widen and node.op_type == "Cast" and attrs.get("to") == onnx.TensorProto.FLOAT:
            attrs["to"] = onnx.TensorProto.DOUBLE
        args = [env[i] if i else None for i in node.input]
        with np.errstate(all="ignore"):
            outs = reference.evaluate(node.op_type, args, attrs, opset=opset, num_outputs=len(node.output))
        env.update({o: wide(v) for o, v in zip(node.output, outs) if o})
    return env


@dataclass
class Mismatch:
    output: str
    what: str

    def __str__(self) -> str:
        return f"{self.output}: {self.what}"


def compare(name: str, got: np.ndarray, want: np.ndarray, truth: np.ndarray | None) -> Mismatch | None:
    """The first way ``got`` (polyfuse) differs from ``want`` (onnxruntime), or None."""
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape or got.dtype != want.dtype:
        return Mismatch(name, f"{got.dtype}{list(got.shape)}, onnxruntime gives {want.dtype}{list(want.shape)}")
    if got.dtype.kind not in "fc":
        bad = got != want
        if truth is not None and np.shape(truth) == got.shape:
            bad &= got != np.asarray(truth).astype(got.dtype)  # onnxruntime's NaN handling upstream (ReduceMax)
        if bad.any():
            at = tuple(int(i) for i in np.argwhere(bad)[0])
            return Mismatch(name, f"{int(bad.sum())} of {bad.size} elements differ, e.g. at {list(at)}: "
                                  f"{got[at]} vs {want[at]}")
        return None
    g, w = got.astype(np.float64), want.astype(np.float64)
    t = None if truth is None or np.shape(truth) != got.shape else np.asarray(truth, np.float64)
    nan = np.isnan(g) != np.isnan(w)
    inf = (np.isinf(g) | np.isinf(w)) & (g != w) & ~np.isnan(g) & ~np.isnan(w)
    if t is not None:
        nan &= np.isnan(g) != np.isnan(t)  # onnxruntime's own NaN handling is position-dependent (ReduceMax)
        inf &= ~(np.abs(t) > OVERFLOW)
    finite = np.isfinite(g) & np.isfinite(w)
    with np.errstate(invalid="ignore", over="ignore"):
        off = finite & (np.abs(g - w) > ATOL + RTOL * np.abs(w))
        if t is not None:
            tf = np.where(np.isfinite(t), t, 0.0)
            off &= ~(np.abs(g - tf) <= WORSE * np.abs(w - tf) + ATOL + RTOL * np.abs(tf)) | ~np.isfinite(t)
    for mask, what in ((nan, "NaN where onnxruntime has none, or the reverse"), (inf, "infinity differs"),
                       (off, "value differs")):
        if mask.any():
            at = tuple(int(i) for i in np.argwhere(mask)[0])
            ref = "" if t is None else f", float64 {t[at]:.9g}"
            return Mismatch(name, f"{what} at {int(mask.sum())} of {mask.size} elements, e.g. {list(at)}: "
                                  f"polyfuse {g[at]:.9g}, onnxruntime {w[at]:.9g}{ref}")
    return None
