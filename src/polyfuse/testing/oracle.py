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

onnxruntime can also be lucky: a sum that cancels to 0 can come out exact in one summation
order and a few units of the terms' last place off in another. :func:`rounding_spread` estimates
how far float32 rounding may move each value (Monte Carlo arithmetic: the float64 evaluation
repeated with every float32 result perturbed by its rounding error bound), and a value within
:data:`WORSE` times that spread of the float64 value is accepted too. The bound per node is the
textbook one (Higham, *Accuracy and Stability of Numerical Algorithms*, ch. 3-4): a sum of n terms
is off by at most n·u·Σ|terms| and, with rounding errors treated as independent random
variables, by √n·u·Σ|terms| with high probability (Higham and Mary, "A new approach to
probabilistic rounding error analysis", 2019), which is the scale used; any other result is off
by a few units of its last place, and data movement by nothing.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper

from ..ops import reference
from ..ops.info import OPS, Rounding

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
    return _evaluate(model, feeds, widen)


def _opset(model: onnx.ModelProto) -> int:
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def _float32_names(model: onnx.ModelProto) -> set[str]:
    """The names of the graph's float32 values (inputs, initializers, node outputs), by shape inference."""
    g = onnx.shape_inference.infer_shapes(model).graph
    f = onnx.TensorProto.FLOAT
    return ({v.name for v in [*g.input, *g.value_info, *g.output] if v.type.tensor_type.elem_type == f}
            | {t.name for t in g.initializer if t.data_type == f})


def _evaluate(model: onnx.ModelProto, feeds: dict, widen: bool, after=None,
              f32: set[str] | None = None) -> dict[str, np.ndarray]:
    """:func:`reference64`; ``after(node, args, attrs, outs)``, when given, may replace a node's
    outputs; ``f32``: the model's :func:`_float32_names`, when the caller has them."""
    wide = _wide if widen else (lambda x: x)
    env = {t.name: wide(numpy_helper.to_array(t)) for t in model.graph.initializer}
    env.update({k: wide(np.asarray(v)) for k, v in feeds.items()})
    opset = _opset(model)
    if widen and f32 is None:
        f32 = _float32_names(model)
    for node in model.graph.node:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        attrs = {k: numpy_helper.to_array(v) if isinstance(v, onnx.TensorProto) else v for k, v in attrs.items()}
        if widen and node.op_type == "Cast" and attrs.get("to") == onnx.TensorProto.FLOAT:
            attrs["to"] = onnx.TensorProto.DOUBLE
        args = [env[i] if i else None for i in node.input]
        if widen and node.op_type == "Clip" and node.input[0] in f32:
            # an omitted bound is float32's lowest / largest, not float64's: Clip(inf) is FLT_MAX
            lim = np.finfo(np.float32)
            lo, hi = (args + [None, None])[1:3]
            args = [args[0], np.float64(lim.min) if lo is None else lo, np.float64(lim.max) if hi is None else hi]
        with np.errstate(all="ignore"):
            outs = [wide(v) for v in reference.evaluate(node.op_type, args, attrs, opset=opset,
                                                        num_outputs=len(node.output))]
            if after is not None:
                outs = after(node, args, attrs, outs)
        env.update({o: v for o, v in zip(node.output, outs) if o})
    return env


U = 2.0 ** -24  # float32's unit roundoff
ULPS = 4  # any other float32 result: within a few units of its last place (libm, polyfuse's vector math)


def _terms(op: str, args: list, attrs: dict, out: np.ndarray) -> int:
    """How many terms one output element of a summing node (Rounding.SUM, ROW_SUM) adds up (an upper bound)."""
    a = np.asarray(args[0])
    if op == "MatMul" or (op == "Gemm" and not attrs.get("transA")):
        return a.shape[-1]
    if op == "Gemm":
        return a.shape[0]
    if op == "CumSum":
        return a.shape[int(np.asarray(args[1]).reshape(-1)[0])]
    if op == "Softmax":
        return a.shape[int(attrs.get("axis", -1))] if a.ndim else 1
    if op == "LayerNormalization":
        return int(np.prod(a.shape[int(attrs.get("axis", -1)):])) if a.ndim else 1
    return max(1, a.size // max(out.size, 1))


def _unit_hash(v: np.ndarray, salt: int) -> np.ndarray:
    """A pseudo-random number in [-1, 1) per element that is a function of the element's value
    (splitmix64 of its bits and ``salt``): equal values get equal perturbations, as a correctly
    rounded operation gives equal results for equal arguments. A constant row stays constant;
    independent noise would make a LayerNorm of it look arbitrarily ill-conditioned."""
    with np.errstate(over="ignore"):
        z = np.ascontiguousarray(v, np.float64).view(np.uint64) + np.uint64(salt * 0x9E3779B97F4A7C15 % (1 << 64))
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) * 2.0 ** -52 - 1.0


def rounding_spread(model: onnx.ModelProto, feeds: dict, truth: dict, samples: int = 8,
                    seed: int = 0) -> dict[str, np.ndarray]:
    """name -> how far float32 rounding may move each float32 value of the graph from ``truth``
    (:func:`reference64`): the largest deviation over ``samples`` evaluations in which every
    float32 result is perturbed by a pseudo-random fraction of its error bound (a sum of n terms
    by √n·u·Σ|terms|, any other result by ULPS·u of itself, data movement not at all), drawn as
    a function of the value
    (:func:`_unit_hash`). A sample that changes an integer or
    bool value (a comparison flipped) is dropped for every value computed from it: past a
    discontinuity the spread says nothing. Non-finite spreads count as 0 (no leniency)."""
    f32 = _float32_names(model)
    salt = iter(range(seed * 1_000_003 + 1, 1 << 62))
    opset = _opset(model)

    def perturb(node, args, attrs, outs):
        res = []
        for name, out in zip(node.output, outs):
            op = OPS.get(node.op_type)
            rounding = op.rounding if op is not None else Rounding.ULPS
            if name not in f32 or out.dtype != np.float64 or rounding is Rounding.EXACT:
                res.append(out)
                continue
            d = _unit_hash(out, next(salt))
            if rounding in (Rounding.SUM, Rounding.ROW_SUM):
                d *= np.sqrt(_terms(node.op_type, args, attrs, out))
            if rounding is Rounding.SUM:
                absargs = [np.abs(x) if x is not None and x.dtype.kind == "f" else x for x in args]
                absattrs = {k: abs(v) if k in ("alpha", "beta") else v for k, v in attrs.items()}
                terms = reference.evaluate(node.op_type, absargs, absattrs, opset=opset)[0]
                res.append(out + U * d * np.asarray(terms, np.float64))
            elif rounding is Rounding.ROW_SUM:
                res.append(out * (1 + U * d))
            else:
                res.append(out * (1 + ULPS * U * d))
        return res

    spread = {n: np.zeros(np.shape(truth[n])) for n in f32 if n in truth}
    for _ in range(samples):
        env = _evaluate(model, feeds, True, perturb, f32)
        # A flipped comparison (an integer or bool value off its true value) voids the sample for
        # the values computed from it, not for the rest of the graph: the fuzzer compiles 40
        # graphs as one, and one graph's flip must not take the spread of the others.
        void = {k for k, v in env.items() if np.asarray(v).dtype.kind in "biu" and not np.array_equal(v, truth.get(k))}
        for node in model.graph.node:
            if any(i in void for i in node.input if i):
                void.update(o for o in node.output if o)
        for n, s in spread.items():
            if n in void:
                continue
            with np.errstate(invalid="ignore"):
                dev = np.abs(np.asarray(env[n], np.float64) - truth[n])
            spread[n] = np.fmax(s, np.where(np.isfinite(dev), dev, 0.0))
    return spread


@dataclass
class Mismatch:
    output: str
    what: str

    def __str__(self) -> str:
        return f"{self.output}: {self.what}"


def compare(name: str, got: np.ndarray, want: np.ndarray, truth: np.ndarray | None,
            spread: np.ndarray | None = None) -> Mismatch | None:
    """The first way ``got`` (polyfuse) differs from ``want`` (onnxruntime), or None. ``spread``:
    the value's :func:`rounding_spread`, when known."""
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
        with np.errstate(invalid="ignore"):  # polyfuse on the float64 value where onnxruntime has an
            # infinity: onnxruntime's ReduceMax dropped a NaN that a later IsNaN/Where would replace
            inf &= ~(np.isfinite(t) & np.isfinite(g) & (np.abs(g - t) <= ATOL + RTOL * np.abs(t)))
    finite = np.isfinite(g) & np.isfinite(w)
    with np.errstate(invalid="ignore", over="ignore"):
        off = finite & (np.abs(g - w) > ATOL + RTOL * np.abs(w))
        if t is not None:
            tf = np.where(np.isfinite(t), t, 0.0)
            s = 0.0 if spread is None or np.shape(spread) != got.shape else spread
            off &= ~(np.abs(g - tf) <= WORSE * np.fmax(np.abs(w - tf), s) + ATOL + RTOL * np.abs(tf)) | ~np.isfinite(t)
    for mask, what in ((nan, "NaN where onnxruntime has none, or the reverse"), (inf, "infinity differs"),
                       (off, "value differs")):
        if mask.any():
            at = tuple(int(i) for i in np.argwhere(mask)[0])
            ref = "" if t is None else f", float64 {t[at]:.9g}"
            return Mismatch(name, f"{what} at {int(mask.sum())} of {mask.size} elements, e.g. {list(at)}: "
                                  f"polyfuse {g[at]:.9g}, onnxruntime {w[at]:.9g}{ref}")
    return None
