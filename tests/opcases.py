"""Catalogue of single-op test cases, and a builder of single-node ONNX models from them.

Shared by the reference-interpreter tests and the compiler's per-op tests. Each ``OpCase``
holds concrete inputs (fixed RNG seed), python attribute values and the opset. Tensor
attributes (Constant/ConstantOfShape ``value``) are stored as ``np.ndarray`` -- the decoded
form ``polyfuse.ops.reference.evaluate`` takes -- and ``make_model`` turns them into
TensorProtos.

Inputs listed in ``const_inputs`` become initializers (shapes, axes, pads, weights...); the
others are graph inputs ``in0``, ``in1``... fed by ``feeds(case)``. Outputs are ``out0``...
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import helper, numpy_helper

INT64_MAX = np.iinfo(np.int64).max
INT64_MIN = np.iinfo(np.int64).min
IR_VERSION = 10  # opsets up to 21 need IR 10; onnxruntime 1.32 loads it

F32, F64, F16 = np.float32, np.float64, np.float16
I64, I32, U8, BOOL = np.int64, np.int32, np.uint8, np.bool_


@dataclass
class OpCase:
    id: str
    op_type: str
    inputs: list
    attrs: dict = field(default_factory=dict)
    const_inputs: frozenset = frozenset()
    opset: int = 17
    num_outputs: int = 1


_rng = np.random.default_rng(1234)


def rand(shape, dtype=F32, lo=-3.0, hi=3.0) -> np.ndarray:
    """Uniform random tensor; integers are drawn from [lo, hi] inclusive, bools are fair coins."""
    shape = tuple(shape)
    if dtype is BOOL:
        return _rng.random(shape) < 0.5
    if np.issubdtype(dtype, np.integer):
        return _rng.integers(int(lo), int(hi) + 1, size=shape).astype(dtype)
    return np.asarray(_rng.uniform(lo, hi, size=shape)).astype(dtype)


def nonzero(shape, dtype=F32, lo=0.5, hi=3.0) -> np.ndarray:
    """Magnitudes in [lo, hi] with random signs: safe divisors and reciprocals."""
    return (rand(shape, dtype, lo, hi) * np.where(_rng.random(tuple(shape)) < 0.5, -1, 1)
            ).astype(dtype)


def ints(*values, dtype=I64) -> np.ndarray:
    return np.array(values, dtype=dtype)


def scalar(value, dtype=F32) -> np.ndarray:
    return np.array(value, dtype=dtype)


def shape_id(*shapes) -> str:
    return "-".join("x".join(map(str, s)) if len(s) else "scalar" for s in shapes)


def dtype_id(dtype) -> str:
    names = {F32: "f32", F64: "f64", F16: "f16", I64: "i64", I32: "i32", U8: "u8", BOOL: "bool"}
    return names[dtype]


def case(id_, op_type, inputs, attrs=None, const=(), opset=17, num_outputs=1) -> OpCase:
    return OpCase(f"{op_type}-{id_}", op_type, list(inputs), dict(attrs or {}),
                  frozenset(const), opset, num_outputs)


# --- elementwise -----------------------------------------------------------------------------

BROADCAST_SHAPES = [((13, 17), (13, 17)), ((13, 17), (17,)), ((1, 17), (13, 1)),
                    ((1, 4, 13, 13), (1, 1, 1, 13)), ((), (3, 5)), ((4, 1, 5), (3, 1))]


def _binary_cases():
    for op in ("Add", "Sub", "Mul", "Div"):
        rhs = nonzero if op == "Div" else rand
        # every broadcast pattern for Add; the others share its broadcasting, so a subset
        for sa, sb in BROADCAST_SHAPES if op == "Add" else BROADCAST_SHAPES[1:4]:
            yield case(f"f32-{shape_id(sa, sb)}", op, [rand(sa), rhs(sb)])
        for dt in (I64, I32):  # Div: negative operands check truncation toward zero
            yield case(f"{dtype_id(dt)}-13x17-17", op,
                       [rand((13, 17), dt, -50, 50), rhs((17,), dt, 1, 7)])
        yield case("f64-4x1x5-3x1", op, [rand((4, 1, 5), F64), rhs((3, 1), F64)])
    yield case("i64-scalar-divisor", "Div", [rand((13,), I64, -20, 20), scalar(-3, I64)], const=[1])


def _mod_cases():
    """fmod=0 (integers only: the divisor's sign) and fmod=1 (the dividend's sign), every sign
    combination; divisors are never 0 (onnxruntime fails the run on an integer remainder by 0)."""
    for dt in (I64, I32):
        for fmod in (0, 1):
            yield case(f"{dtype_id(dt)}-fmod{fmod}-13x17-17", "Mod",
                       [rand((13, 17), dt, -50, 50), nonzero((17,), dt, 1, 7)], {"fmod": fmod})
        yield case(f"{dtype_id(dt)}-fmod0-1x17-13x1", "Mod",
                   [rand((1, 17), dt, -20, 20), nonzero((13, 1), dt, 1, 9)])
    yield case("i64-fmod0-scalar-const-negative", "Mod", [rand((7, 3), I64, -20, 20), scalar(-3, I64)],
               const=[1])
    yield case("i32-fmod1-scalar-const", "Mod", [rand((17,), I32, -20, 20), scalar(4, I32)],
               {"fmod": 1}, const=[1])
    for dt in (F32, F64):
        yield case(f"{dtype_id(dt)}-fmod1-13x17-17", "Mod",
                   [rand((13, 17), dt, -20, 20), nonzero((17,), dt, 0.5, 7)], {"fmod": 1})
    x = np.array([-7.5, 7.5, -0.0, np.inf, 3.0, -3.0, np.nan, 1e30, -5.25], F32)
    y = np.array([2.0, -2.0, 3.0, 2.0, np.inf, -np.inf, 2.0, 7.0, 0.0], F32)
    yield case("f32-fmod1-special-values", "Mod", [x, y], {"fmod": 1})
    yield case("f32-fmod1-scalar-const-1x4x13x13", "Mod", [rand((1, 4, 13, 13), F32, -9, 9), scalar(2.5)],
               {"fmod": 1}, const=[1])
    # opset 28 defines fmod=0 on floats as Python's float % (polyfuse tests opsets up to 21 and
    # accepts newer ones with a note; onnxruntime 1.32 runs opset 28)
    x = np.array([-7.5, 7.5, -0.0, 0.0, np.inf, 3.0, -3.0, np.nan, -1e-30, 5.0, 5.0, 4.0], F32)
    y = np.array([2.0, -2.0, 3.0, -3.0, 2.0, np.inf, np.inf, 2.0, 3.0, 0.0, -np.inf, -2.0], F32)
    yield case("f32-fmod0-special-values-opset28", "Mod", [x, y], opset=28)
    for dt in (F32, F64):
        yield case(f"{dtype_id(dt)}-fmod0-13x17-17-opset28", "Mod",
                   [rand((13, 17), dt, -20, 20), nonzero((17,), dt, 0.5, 7)], opset=28)


def _max_min_cases():
    for op in ("Max", "Min"):
        yield case("f32-13x17-17", op, [rand((13, 17)), rand((17,))])
        yield case("f32-three-inputs", op, [rand((1, 17)), rand((13, 1)), rand((13, 17))])
        yield case("i64-single", op, [rand((13,), I64, -9, 9)])
        yield case("i64-scalar-const", op, [rand((2, 13), I64, -9, 9), scalar(0, I64)], const=[1])


def _pow_cases():
    yield case("f32-f32", "Pow", [rand((13, 17), F32, 0.1, 3), rand((13, 17), F32, -2, 2)])
    yield case("f32-square-const", "Pow", [rand((1, 4, 13, 13)), scalar(2.0)], const=[1])
    yield case("f32-i64-exponent", "Pow", [nonzero((13, 17)), rand((17,), I64, -3, 3)])
    yield case("f64-f64", "Pow", [rand((5, 7), F64, 0.1, 3), rand((7,), F64, -2, 2)])
    yield case("i64-i64", "Pow", [rand((13, 17), I64, -5, 5), rand((13, 17), I64, 0, 4)])
    yield case("i32-i32", "Pow", [rand((17,), I32, -5, 5), rand((17,), I32, 0, 4)])
    yield case("i64-f32-truncates", "Pow", [rand((13,), I64, 1, 9), rand((13,), F32, 0, 2)])


# op -> (lo, hi, dtypes besides float32, signed); signed: magnitudes in [lo, hi], random signs
UNARY = {
    "Sqrt": (0.01, 9.0, (), False),
    "Exp": (-10.0, 10.0, (F64,), False),
    "Log": (0.01, 100.0, (), False),
    "Tanh": (-5.0, 5.0, (), False),
    "Erf": (-4.0, 4.0, (), False),  # onnxruntime has no float64 Erf kernel
    "Sigmoid": (-20.0, 20.0, (F64,), False),
    "Relu": (-3.0, 3.0, (I32,), False),
    "Neg": (-3.0, 3.0, (F64, I64, I32), False),
    "Abs": (-3.0, 3.0, (I64, I32), False),
    "Reciprocal": (0.1, 5.0, (F64,), True),
}


def _unary_cases():
    for i, (op, (lo, hi, dtypes, signed)) in enumerate(UNARY.items()):
        gen = nonzero if signed else rand
        shape = ((13, 17), (1, 4, 13, 13))[i % 2]
        yield case(f"f32-{shape_id(shape)}", op, [gen(shape, F32, lo, hi)])
        for dt in dtypes:
            yield case(f"{dtype_id(dt)}-17", op, [gen((17,), dt, lo, hi)])
    yield case("f32-saturating", "Erf", [rand((64,), F32, -12, 12)])
    yield case("f32-scalar", "Exp", [scalar(1.5)])
    for approx in ("none", "tanh"):
        for opset in (20, 21):
            yield case(f"{approx}-f32-opset{opset}", "Gelu", [rand((13, 17), F32, -6, 6)],
                       {"approximate": approx}, opset=opset)
    yield case("default-attr-bert", "Gelu", [rand((1, 13, 64), F32, -6, 6)], opset=20)


def _clip_where_cases():
    x = rand((13, 17))
    bounds = {"min-max": [scalar(-1.0), scalar(1.5)], "only-max": [None, scalar(0.5)],
              "only-min": [scalar(-0.5)], "no-bounds": [],
              "min-gt-max": [scalar(1.0), scalar(-1.0)]}
    for name, extra in bounds.items():
        const = [i + 1 for i, v in enumerate(extra) if v is not None]
        yield case(f"f32-{name}", "Clip", [x, *extra], const=const)
    yield case("i64-min-max", "Clip", [rand((13, 17), I64, -9, 9), scalar(-3, I64), scalar(4, I64)],
               const=[1, 2])
    yield case("f32-runtime-bounds", "Clip", [x, scalar(-2.0), scalar(0.0)])

    yield case("f32-13x1-1x17-17", "Where", [rand((13, 1), BOOL), rand((1, 17)), rand((17,))])
    yield case("i64-13x17", "Where", [rand((13, 17), BOOL), rand((13, 17), I64, -9, 9),
                                     rand((13, 17), I64, -9, 9)])
    yield case("i32-17-1", "Where", [rand((17,), BOOL), rand((17,), I32), rand((1,), I32)])
    yield case("attention-mask", "Where",
               [rand((1, 1, 1, 13), BOOL), rand((1, 4, 13, 13)), scalar(-1e9)], const=[2])


def _compare_logic_cases():
    for op in ("Equal", "Less", "Greater", "GreaterOrEqual", "LessOrEqual"):
        # integer-valued floats so that ties actually occur
        yield case("f32-13x17-17", op, [rand((13, 17), I64, -3, 3).astype(F32),
                                        rand((17,), I64, -3, 3).astype(F32)])
        yield case("i64-1x17-13x1", op, [rand((1, 17), I64, -3, 3), rand((13, 1), I64, -3, 3)])
        if op in ("Equal", "Less"):
            yield case("i32-scalar", op, [rand((4, 5), I32, -3, 3), scalar(0, I32)], const=[1])
    yield case("bool", "Equal", [rand((13, 17), BOOL), rand((17,), BOOL)])
    for op in ("And", "Or"):
        yield case("13x17-17", op, [rand((13, 17), BOOL), rand((17,), BOOL)])
        yield case("1x17-13x1", op, [rand((1, 17), BOOL), rand((13, 1), BOOL)])
    yield case("13x17", "Not", [rand((13, 17), BOOL)])
    yield case("1x4x13x13", "Not", [rand((1, 4, 13, 13), BOOL)])
    for dt in (F32, F64):
        x = rand((13, 17), dt)
        x[::3, ::2] = np.nan
        x[1, 1], x[2, 2] = np.inf, -np.inf
        yield case(dtype_id(dt), "IsNaN", [x])


CAST_PAIRS = [(F32, I64), (F32, I32), (F32, BOOL), (F32, F64), (F32, F16), (F64, F32),
              (I64, F32), (I64, I32), (I64, BOOL), (I32, I64), (BOOL, F32), (BOOL, I64),
              (F16, F32), (I32, U8), (U8, F32)]


def _cast_cases():
    for i, (src, dst) in enumerate(CAST_PAIRS):
        x = rand((13, 17), src, -100, 100)
        if src is not BOOL:
            x.reshape(-1)[::5] = 0  # exact zeros: False for bool targets
        opset = (13, 19, 21)[i % 3]
        to = helper.np_dtype_to_tensor_dtype(np.dtype(dst))
        yield case(f"{dtype_id(src)}-to-{dtype_id(dst)}-opset{opset}", "Cast", [x], {"to": to},
                   opset=opset)


def elementwise_cases():
    for gen in (_binary_cases, _mod_cases, _max_min_cases, _pow_cases, _unary_cases, _clip_where_cases,
                _compare_logic_cases, _cast_cases):
        yield from gen()


# --- reductions and NN ops -------------------------------------------------------------------

# (shape, axes, keepdims, noop_with_empty_axes); axes None = attribute/input omitted
REDUCE_CONFIGS = [((13, 17), [-1], 1, 0), ((2, 13, 17), [0, 2], 0, 0), ((13, 17), None, 1, 0),
                  ((1, 4, 13, 13), [1], 1, 0), ((13, 17), None, 0, 0), ((13, 17), None, 1, 1)]
AXES_AS_INPUT_SINCE = {"ReduceSum": 13, "ReduceMean": 18, "ReduceMax": 18}
REDUCE_OPSETS = {"ReduceSum": (13, 18), "ReduceMean": (13, 18), "ReduceMax": (17, 18)}
OLD_OPSET_CONFIGS = 3  # the axes-as-attribute (or pre-18) variants run the first 3 configs only


def _reduce_case(op, opset, x, axes, keepdims, noop, tag):
    attrs = {"keepdims": keepdims}
    if noop:
        attrs["noop_with_empty_axes"] = 1
    inputs = [x]
    if axes is not None and opset >= AXES_AS_INPUT_SINCE[op]:
        inputs.append(ints(*axes))
    elif axes is not None:
        attrs["axes"] = list(axes)
    axes_id = "all" if axes is None else "_".join(map(str, axes))
    noop_id = "-noop" if noop else ""
    return case(f"{tag}-axes{axes_id}-keep{keepdims}{noop_id}-opset{opset}", op, inputs, attrs,
                const=[1] if len(inputs) > 1 else [], opset=opset)


def _reduce_cases():
    for op, since in AXES_AS_INPUT_SINCE.items():
        for opset in REDUCE_OPSETS[op]:
            configs = REDUCE_CONFIGS if opset >= 18 else REDUCE_CONFIGS[:OLD_OPSET_CONFIGS]
            for shape, axes, keepdims, noop in configs:
                yield _reduce_case(op, opset, rand(shape), axes, keepdims, noop, shape_id(shape))
        yield _reduce_case(op, 18, rand((13, 17), I64, -50, 50), [1], 0, 0, "i64")
        yield _reduce_case(op, 18, rand((5, 7), F64), [0], 1, 0, "f64")


def _cumsum_cases():
    cumsum = [  # (id, x, axis, exclusive, reverse)
        ("f32-17-axis0", rand((17,)), 0, 0, 0),
        ("f32-3x7-axis1-exclusive", rand((3, 7)), 1, 1, 0),
        ("f32-3x7-axis0-reverse", rand((3, 7)), 0, 0, 1),
        ("f32-2x13x17-axis-2-exclusive-reverse", rand((2, 13, 17)), -2, 1, 1),
        ("f32-1x1-axis-1", rand((1, 1)), -1, 0, 0),
        ("f32-1x1-axis0-exclusive", rand((1, 1)), 0, 1, 0),
        ("f64-7x3-axis-1-reverse", rand((7, 3), F64), -1, 0, 1),
        ("i64-position-ids-1x17", rand((1, 17), I64, 0, 1), 1, 0, 0),
        ("i64-3x7-axis0-exclusive-reverse", rand((3, 7), I64, -50, 50), 0, 1, 1),
        ("i32-13x17-axis1-exclusive", rand((13, 17), I32, -50, 50), 1, 1, 0),
    ]
    for id_, x, axis, exclusive, reverse in cumsum:
        attrs = {k: v for k, v in (("exclusive", exclusive), ("reverse", reverse)) if v}
        yield case(id_, "CumSum", [x, scalar(axis, I64)], attrs, const=[1], opset=14)
    yield case("axis-i32-1d", "CumSum", [rand((3, 7)), ints(-1, dtype=I32)], const=[1], opset=14)


def _softmax_layernorm_cases():
    softmax = [((13, 17), -1, F32), ((1, 4, 13, 13), 1, F32), ((1, 4, 13, 13), -1, F32),
               ((13, 17), 0, F32), ((5, 7), -1, F64)]
    for shape, axis, dt in softmax:
        yield case(f"{dtype_id(dt)}-{shape_id(shape)}-axis{axis}", "Softmax", [rand(shape, dt)],
                   {"axis": axis})
    yield case("large-values", "Softmax", [rand((13, 17), F32, -80, 80)])
    yield case("default-axis-opset13", "Softmax", [rand((2, 3, 17))], opset=13)

    x = rand((2, 13, 17))
    ln = [  # (id, inputs, attrs, num_outputs, opset)
        ("axis-1", [x, rand((17,)), rand((17,))], {"axis": -1}, 1, 17),
        ("axis-2", [x, rand((13, 17)), rand((13, 17))], {"axis": -2}, 1, 17),
        ("axis1-4d", [rand((1, 4, 13, 13)), rand((4, 13, 13)), rand((4, 13, 13))], {"axis": 1},
         1, 17),
        ("no-bias", [x, rand((17,))], {}, 1, 17),
        ("eps1e-3", [x, rand((17,)), rand((17,))], {"epsilon": 1e-3}, 1, 17),
        ("mean-invstd", [x, rand((17,)), rand((17,))], {}, 3, 17),
        ("mean-invstd-axis-2", [x, rand((13, 17)), rand((13, 17))], {"axis": -2}, 3, 17),
        ("f64-mean-invstd", [rand((3, 7), F64), rand((7,), F64), rand((7,), F64)], {}, 3, 17),
        ("bert-opset21", [rand((1, 13, 64)), rand((64,)), rand((64,))], {"epsilon": 1e-12}, 1, 21),
    ]
    for id_, inputs, attrs, nout, opset in ln:
        yield case(id_, "LayerNormalization", inputs, attrs, const=range(1, len(inputs)),
                   opset=opset, num_outputs=nout)


def _matmul_gemm_cases():
    matmul = [((13, 17), (17, 5), F32), ((1, 4, 13, 16), (1, 4, 16, 13), F32),
              ((2, 1, 3, 4), (5, 4, 6), F32), ((17,), (17, 5), F32), ((13, 17), (17,), F32),
              ((17,), (17,), F32), ((13, 17), (17, 5), I64),
              ((2, 3, 4), (4, 5), F64)]
    for sa, sb, dt in matmul:
        yield case(f"{dtype_id(dt)}-{shape_id(sa, sb)}", "MatMul",
                   [rand(sa, dt, -3, 3), rand(sb, dt, -3, 3)])
    yield case("f32-const-weight-1x13x64", "MatMul", [rand((1, 13, 64)), rand((64, 32))], const=[1])

    m, k, n = 13, 17, 5
    gemm = [  # (id, a shape, b shape, c shape or None, attrs)
        ("plain-c-n", (m, k), (k, n), (n,), {}),
        ("transA", (k, m), (k, n), (m, n), {"transA": 1}),
        ("transB", (m, k), (n, k), (1, n), {"transB": 1}),
        ("transA-transB", (k, m), (n, k), (m, 1), {"transA": 1, "transB": 1}),
        ("alpha-beta", (m, k), (k, n), (m, n), {"alpha": 0.5, "beta": 2.0}),
        ("c-scalar", (m, k), (k, n), (), {"beta": -1.0}),
        ("no-c", (m, k), (k, n), None, {"alpha": 3.0}),
    ]
    for id_, sa, sb, sc, attrs in gemm:
        inputs = [rand(sa), rand(sb)] + ([] if sc is None else [rand(sc)])
        yield case(id_, "Gemm", inputs, attrs, const=range(1, len(inputs)))
    yield case("f64", "Gemm", [rand((3, 4), F64), rand((4, 5), F64), rand((5,), F64)])


EINSUMS = [  # (equation, operand shapes, dtype, constant operands)
    ("bhqd,bhkd->bhqk", [(2, 3, 7, 17), (2, 3, 13, 17)], F32, ()),  # attention scores
    ("bhqk,bhkd->bhqd", [(2, 3, 7, 13), (2, 3, 13, 17)], F32, ()),  # attention context
    ("bqhd,bkhd->bhqk", [(1, 7, 3, 17), (1, 13, 3, 17)], F32, ()),  # heads in the middle
    ("bij,bjk->bik", [(3, 7, 17), (3, 17, 1)], F32, ()),
    ("ij,jk->ik", [(7, 17), (17, 3)], F32, ()),
    ("bid,jd->bij", [(3, 7, 17), (13, 17)], F32, (1,)),  # a constant weight, transposed
    ("ij,jk", [(7, 3), (3, 13)], F32, ()),  # implicit output
    ("...qd,...kd->...qk", [(3, 7, 17), (1, 13, 17)], F32, ()),  # ellipsis, broadcast
    ("ij,kj->ik", [(7, 17), (3, 1)], F32, ()),  # a size-1 contracted dim broadcasts
    ("ij,jk->k", [(7, 3), (3, 13)], F32, ()),  # i summed out of one operand first
    ("ij,jk,kl->il", [(7, 3), (3, 17), (17, 1)], F32, ()),  # three operands, pairwise
    ("ij,ij->ij", [(7, 17), (1, 17)], F32, ()),  # elementwise
    ("i,j->ij", [(7,), (17,)], F32, ()),  # outer product
    ("bij,bij->bi", [(3, 7, 17), (3, 7, 17)], F32, ()),  # a dot product per row
    ("ijk->ki", [(3, 7, 17)], F32, ()),
    ("ij->", [(7, 17)], F32, ()),
    ("ba", [(7, 3)], F32, ()),  # implicit: a transpose
    ("bhqd,bhkd->bhqk", [(1, 3, 7, 5), (1, 3, 13, 5)], F64, ()),
    ("ij,jk->ik", [(7, 17), (17, 3)], I32, ()),
    ("bij,bjk->bik", [(3, 7, 1), (3, 1, 13)], I64, ()),
]


def _einsum_cases():
    for k, (equation, shapes, dt, const) in enumerate(EINSUMS):
        name = equation.replace("->", "-to-").replace(",", "_").replace("...", "ell")
        yield case(f"{dtype_id(dt)}-{name}-{shape_id(*shapes)}", "Einsum",
                   [rand(s, dt, -3, 3) for s in shapes], {"equation": equation}, const=const,
                   opset=(13, 17, 21)[k % 3])


def nn_cases():
    for gen in (_reduce_cases, _cumsum_cases, _softmax_layernorm_cases, _matmul_gemm_cases, _einsum_cases):
        yield from gen()


# --- data movement ---------------------------------------------------------------------------

def _layout_cases():
    transpose = [((2, 3, 4), None, F32), ((1, 13, 4, 16), [0, 2, 1, 3], F32),
                 ((1, 4, 13, 13), [0, 1, 3, 2], F32), ((13, 17), [1, 0], I64),
                 ((2, 3, 4), [2, 0, 1], BOOL)]
    for shape, perm, dt in transpose:
        attrs = {} if perm is None else {"perm": perm}
        perm_id = "default" if perm is None else "".join(map(str, perm))
        yield case(f"{dtype_id(dt)}-{shape_id(shape)}-perm{perm_id}", "Transpose",
                   [rand(shape, dt)], attrs)

    reshape = [  # (x shape, target, allowzero, dtype, opset)
        ((1, 13, 64), [0, 0, 4, 16], 0, F32, 17), ((1, 13, 64), [0, -1], 0, F32, 17),
        ((2, 3, 4), [-1], 0, F32, 13), ((2, 3, 4), [4, -1], 0, I64, 17),
        ((1, 4, 13, 16), [0, 13, -1], 0, F32, 17), ((2, 3, 4), [0, 12], 0, BOOL, 14),
        ((0, 3), [3, 0], 1, F32, 14), ((2, 3, 4), [0, 3, 2, 2], 0, F32, 21),
        ((6,), [1, 2, 1, 3], 1, F32, 18)]
    for shape, target, allowzero, dt, opset in reshape:
        attrs = {"allowzero": 1} if allowzero else {}
        yield case(f"{dtype_id(dt)}-{shape_id(shape, target)}-allowzero{allowzero}-opset{opset}",
                   "Reshape", [rand(shape, dt), ints(*target)], attrs, const=[1], opset=opset)

    for axis in (0, 1, 2, -1, 4):
        yield case(f"2x3x4x5-axis{axis}", "Flatten", [rand((2, 3, 4, 5))], {"axis": axis})
    yield case("i64-default-axis", "Flatten", [rand((3, 4, 5), I64, -9, 9)])

    squeeze = [((1, 13, 1, 17), [0]), ((1, 13, 1, 17), [-2]), ((1, 13, 1, 17), [0, 2]),
               ((1, 13, 1, 17), None), ((1,), [0])]
    for shape, axes in squeeze:
        inputs = [rand(shape)] + ([] if axes is None else [ints(*axes)])
        axes_id = "all" if axes is None else "_".join(map(str, axes))
        yield case(f"{shape_id(shape)}-axes{axes_id}", "Squeeze", inputs, const=[1])
    yield case("i64-1x17-axes0", "Squeeze", [rand((1, 17), I64), ints(0)], const=[1])

    unsqueeze = [((13, 17), [0], F32), ((13, 17), [-1], F32), ((13, 17), [0, 3], F32),
                 ((13, 17), [3, 1], I64), ((), [0], F32), ((1, 13), [1, 2], BOOL)]
    for shape, axes, dt in unsqueeze:
        yield case(f"{dtype_id(dt)}-{shape_id(shape)}-axes{'_'.join(map(str, axes))}",
                   "Unsqueeze", [rand(shape, dt), ints(*axes)], const=[1])

    expand = [((13, 1), [1, 17], F32), ((3, 1), [2, 1, 4], F32), ((13, 17), [17], F32),
              ((3, 4), [1, 1], F32), ((1,), [2, 3], I64), ((1, 1, 13), [1, 4, 13, 1], BOOL),
              ((), [3, 2], F32)]
    for shape, target, dt in expand:
        yield case(f"{dtype_id(dt)}-{shape_id(shape, target)}", "Expand",
                   [rand(shape, dt), ints(*target)], const=[1])

    concat = [([(13, 5), (13, 7)], 1, F32), ([(13, 5), (13, 7)], -1, F32),
              ([(2, 3), (4, 3), (1, 3)], 0, F32), ([(5,), (3,), (1,)], 0, I64),
              ([(2, 3), (2, 1)], 1, BOOL), ([(1, 4, 5, 16), (1, 4, 1, 16)], 2, F32),
              ([(3, 4), (3, 4)], -2, I32)]
    for shapes, axis, dt in concat:
        yield case(f"{dtype_id(dt)}-{shape_id(*shapes)}-axis{axis}", "Concat",
                   [rand(s, dt) for s in shapes], {"axis": axis})


SLICES = [  # (id, x shape, starts, ends, axes, steps); None = input omitted
    ("basic", (13, 17), [1], [5], [0], None),
    ("negative-start-end", (13, 17), [-5], [-1], [1], None),
    ("int64max-end", (13, 17), [2], [INT64_MAX], [0], None),
    ("reverse", (13, 17), [-1], [INT64_MIN], [0], [-1]),
    ("step-minus2", (20,), [15], [2], [0], [-2]),
    ("out-of-range", (13, 17), [-100], [100], [1], None),
    ("no-axes-no-steps", (13, 17), [1, 2], [12, 15], None, None),
    ("steps-without-axes", (13, 17), [0, 16], [13, 0], None, [3, -4]),
    ("negative-axis", (1, 4, 13, 16), [0], [8], [-1], [1]),
    ("4d-two-axes-steps", (1, 4, 13, 16), [1, 0], [4, 13], [1, 2], [2, 3]),
    ("empty", (13, 17), [5], [2], [0], [1]),
    ("empty-negative-step", (13, 17), [2], [10], [0], [-1]),
    ("last-token", (1, 13, 64), [-1], [INT64_MAX], [1], None),
]


def _slice_split_cases():
    for id_, shape, starts, ends, axes, steps in SLICES:
        inputs = [rand(shape), ints(*starts), ints(*ends),
                  None if axes is None else ints(*axes), None if steps is None else ints(*steps)]
        while inputs[-1] is None:
            inputs.pop()
        yield case(id_, "Slice", inputs, const=range(1, len(inputs)))
    yield case("i64-data", "Slice", [rand((13, 17), I64), ints(3), ints(-3), ints(1), ints(2)],
               const=[1, 2, 3, 4])
    yield case("bool-data-opset13", "Slice", [rand((13, 17), BOOL), ints(0), ints(5)],
               const=[1, 2], opset=13)
    yield case("runtime-starts", "Slice", [rand((13, 17)), ints(2), ints(9), ints(1)])

    split = [  # (id, x shape, split sizes or None, attrs, num_outputs, opset)
        ("sizes-axis1-opset13", (4, 13), [3, 10], {"axis": 1}, 2, 13),
        ("equal-opset13", (4, 12), None, {"axis": 1}, 3, 13),
        ("equal-axis-neg-opset13", (2, 6, 2), None, {"axis": -2}, 2, 13),
        ("num-outputs-uneven-opset18", (13, 4), None, {"num_outputs": 3}, 3, 18),
        ("num-outputs-even-opset18", (4, 12), None, {"axis": -1, "num_outputs": 2}, 2, 18),
        ("sizes-opset18", (17,), [5, 5, 7], {}, 3, 18),
        ("qkv-1x13x48", (1, 13, 48), None, {"axis": -1}, 3, 13),
        ("single-output", (5, 3), None, {}, 1, 13),
    ]
    for id_, shape, sizes, attrs, nout, opset in split:
        inputs = [rand(shape)] + ([] if sizes is None else [ints(*sizes)])
        yield case(id_, "Split", inputs, attrs, const=[1], opset=opset, num_outputs=nout)
    yield case("i64-sizes-opset13", "Split", [rand((6, 2), I64), ints(2, 4)], const=[1],
               opset=13, num_outputs=2)


def _pad_cases():
    pads = [  # (id, x shape, pads, value, axes, mode, opset)
        ("constant-value", (13, 17), [1, 2, 3, 4], 0.5, None, "constant", 13),
        ("constant-default-value", (13, 17), [0, 1, 2, 0], None, None, "constant", 13),
        ("reflect", (5, 6), [2, 1, 1, 2], None, None, "reflect", 13),
        ("edge", (5, 6), [2, 3, 1, 0], None, None, "edge", 17),
        ("negative-crop", (5, 6), [-1, 2, 0, -3], 1.0, None, "constant", 17),
        ("axes-last-opset18", (13, 17), [2, 3], -1.0, [-1], "constant", 18),
        ("axes-reflect-opset18", (5, 6), [1, 3], None, [0], "reflect", 18),
        ("wrap-opset19", (5, 6), [1, 2, 3, 1], None, None, "wrap", 19),
        ("wrap-axes-opset21", (1, 4, 5), [2, 3], None, [2], "wrap", 21),
        ("4d-last-two", (1, 4, 13, 13), [0, 0, 1, 1, 0, 0, 2, 2], 0.0, None, "constant", 17),
    ]
    for id_, shape, pad, value, axes, mode, opset in pads:
        inputs = [rand(shape), ints(*pad), None if value is None else scalar(value),
                  None if axes is None else ints(*axes)]
        while inputs[-1] is None:
            inputs.pop()
        yield case(id_, "Pad", inputs, {"mode": mode}, const=range(1, len(inputs)), opset=opset)
    yield case("i64-constant", "Pad", [rand((3, 4), I64), ints(1, 0, 0, 2), scalar(7, I64)],
               const=[1, 2])


def _trilu_cases():
    trilu = [  # (id, x, k or None, upper, const k)
        ("3x7-default", rand((3, 7)), None, None, True),
        ("7x3-lower", rand((7, 3)), None, 0, True),
        ("1x1-upper-k1", rand((1, 1)), 1, 1, True),
        ("2x13x17-k-1", rand((2, 13, 17)), -1, 1, True),
        ("2x13x17-lower-k5", rand((2, 13, 17)), 5, 0, True),
        ("17x17-lower-k-5", rand((17, 17)), -5, 0, True),
        ("3x7-k-past-cols", rand((3, 7)), 100, 1, True),
        ("3x7-lower-k-past-rows", rand((3, 7)), -100, 0, True),
        ("3x7-k-int64-min", rand((3, 7)), INT64_MIN, 1, True),
        ("causal-1x1x17x17", rand((1, 1, 17, 17)), 1, 1, True),
        ("runtime-k", rand((7, 17)), 2, 0, False),
        ("f64-7x3", rand((7, 3), F64), -1, 1, True),
        ("i64-13x17", rand((13, 17), I64, -9, 9), 3, 0, True),
        ("i32-3x7", rand((3, 7), I32, -9, 9), 0, 1, True),
        ("bool-4x3x5", rand((4, 3, 5), BOOL), -1, 0, True),
    ]
    for id_, x, k, upper, const in trilu:
        attrs = {} if upper is None else {"upper": upper}
        inputs = [x] + ([] if k is None else [scalar(k, I64)])
        yield case(id_, "Trilu", inputs, attrs, const=[1] if const else [], opset=14)


def _gather_cases():
    yield case("axis0-negative", "Gather", [rand((10, 5)), ints(0, 3, -1, -10)], const=[1])
    yield case("axis1-2d-indices", "Gather", [rand((10, 5)), ints([0, 1], [-2, 4])],
               {"axis": 1}, const=[1])
    yield case("scalar-index", "Gather", [rand((10, 5)), scalar(-2, I64)], const=[1])
    yield case("axis-neg1-3d", "Gather", [rand((2, 3, 4)), ints(3, 0, -3)], {"axis": -1})
    yield case("i32-indices-i64-data", "Gather", [rand((6, 4), I64, -9, 9), ints(5, 0, dtype=I32)])
    yield case("embedding-1x13", "Gather", [rand((30, 16)), rand((1, 13), I64, 0, 29)], const=[0])
    yield case("shape-element", "Gather", [ints(1, 13, 64), scalar(1, I64)], const=[1])

    ge = [  # (id, data shape, indices, axis, data dtype)
        ("axis1-negative", (3, 4), rand((3, 4), I64, -4, 3), 1, F32),
        ("axis0-smaller-indices", (3, 4), rand((2, 4), I64, -3, 2), 0, F32),
        ("axis-neg1-3d", (2, 3, 4), rand((2, 3, 2), I64, -4, 3), -1, F32),
        ("i64-data-i32-indices", (5, 3), rand((5, 3), I32, 0, 4), 0, I64),
    ]
    for id_, shape, idx, axis, dt in ge:
        yield case(id_, "GatherElements", [rand(shape, dt), idx], {"axis": axis})

    gnd = [  # (id, data shape, indices, batch_dims, data dtype)
        ("k1", (5, 4), ints([0], [4], [2]), 0, F32),
        ("k2", (5, 4, 3), ints([0, 1], [4, 3]), 0, F32),
        ("k-full-rank", (5, 4), ints([0, 1], [4, 3], [2, 2], [1, 0], [3, 3], [0, 0]), 0, F32),
        ("negative", (5, 4), ints([-1, -4], [2, -2]), 0, F32),
        ("batch1-k1", (2, 5, 4), ints([[1], [4], [0]], [[2], [3], [-5]]), 1, F32),
        ("batch1-k2", (2, 5, 4), ints([0, 3], [4, 1]), 1, I64),
        ("batch2", (2, 3, 4, 5), rand((2, 3, 2, 1), I64, 0, 3), 2, F32),
    ]
    for id_, shape, idx, b, dt in gnd:
        yield case(id_, "GatherND", [rand(shape, dt), idx], {"batch_dims": b}, const=[1])


def _producer_cases():
    shape = [  # (id, x, attrs, opset)
        ("4d-opset13", rand((1, 4, 13, 13)), {}, 13),
        ("start1-opset15", rand((1, 4, 13, 13)), {"start": 1}, 15),
        ("end-1-opset15", rand((1, 4, 13, 13)), {"end": -1}, 15),
        ("start-past-rank", rand((2, 3)), {"start": 10}, 17),
        ("clamped-end", rand((2, 3)), {"start": -10, "end": 1}, 18),
        ("scalar-input", scalar(1.0), {}, 17),
        ("i64-input-start-2", rand((1, 4, 13), I64), {"start": -2}, 21),
    ]
    for id_, x, attrs, opset in shape:
        yield case(id_, "Shape", [x], attrs, opset=opset)

    cos = [("default-value", [2, 3], None), ("f32-value", [2, 3], np.array([1.5], F32)),
           ("i64-value", [1, 13], np.array([7], I64)), ("scalar-shape", [], np.array([4], I64)),
           ("zero-dim", [0, 3], np.array([1.0], F32)), ("bool-value", [3], np.array([True]))]
    for id_, target, value in cos:
        attrs = {} if value is None else {"value": value}
        yield case(id_, "ConstantOfShape", [np.array(target, I64)], attrs, const=[0])
    yield case("runtime-shape", "ConstantOfShape", [ints(2, 5)], {"value": np.array([0], I64)})
    # Past FOLD_MAX_ELEMENTS (65536): computed by a kernel instead of stored as a weight.
    big = [("f32-kernel-257x259", [257, 259], np.array([-2.25], F32)),
           ("i64-kernel-3x7x3121", [3, 7, 3121], np.array([-7], I64)),
           ("i32-kernel-65537", [65537], np.array([123456], I32)),
           ("bool-kernel-17x4099", [17, 4099], np.array([True])),
           ("f64-kernel-1x65539", [1, 65539], np.array([0.375], F64))]
    for id_, target, value in big:
        yield case(id_, "ConstantOfShape", [np.array(target, I64)], {"value": value}, const=[0])

    ranges = [("i64", 0, 10, 1, I64), ("i64-negative-delta", 10, 0, -3, I64),
              ("f32", 0.5, 3.2, 0.3, F32), ("f32-negative-delta", 1.0, -1.0, -0.25, F32),
              ("empty-wrong-direction", 5, 1, 2, I32), ("f64", 0.0, 1.0, 0.1, F64),
              ("f32-long-drift", -3.0, 7.0, 0.01, F32),  # ORT accumulates: float error grows
              # past FOLD_MAX_ELEMENTS: integer ranges become kernels, float ranges still fold
              ("i64-kernel-70001", 0, 70001, 1, I64), ("i64-kernel-negative-delta", 100000, -100000, -3, I64),
              ("i32-kernel-odd-delta", -7, 500000, 7, I32), ("f32-folded-70300", -3.0, 700.0, 0.01, F32)]
    for id_, start, limit, delta, dt in ranges:
        yield case(id_, "Range", [scalar(start, dt), scalar(limit, dt), scalar(delta, dt)])

    for x in (rand((13, 17)), rand((5,), I64), rand((2, 3), BOOL), scalar(2.5)):
        yield case(f"{dtype_id(x.dtype.type)}-{shape_id(x.shape)}", "Identity", [x])

    consts = [("value-f32", {"value": rand((2, 3))}), ("value-i64", {"value": ints(1, 13, -1)}),
              ("value-bool-scalar", {"value": np.array(True)}),
              ("value_float", {"value_float": 0.125}), ("value_int", {"value_int": -4}),
              ("value_floats", {"value_floats": [1.0, -2.5, 3.0]}),
              ("value_ints", {"value_ints": [0, 2, -1]}),
              ("value-f32-past-fold-limit-300x301", {"value": rand((300, 301))})]  # folds at any size
    for id_, attrs in consts:
        yield case(id_, "Constant", [], attrs)


def movement_cases():
    for gen in (_layout_cases, _slice_split_cases, _pad_cases, _trilu_cases, _gather_cases, _producer_cases):
        yield from gen()


CASES: list[OpCase] = [*elementwise_cases(), *nn_cases(), *movement_cases()]
_duplicates = {c.id for c in CASES if [d.id for d in CASES].count(c.id) > 1}
assert not _duplicates, f"duplicate case ids: {sorted(_duplicates)}"


# --- ONNX model building ---------------------------------------------------------------------

def input_name(i: int) -> str:
    return f"in{i}"


def onnx_attrs(attrs: dict) -> dict:
    """Attributes as make_node takes them: ndarray tensor attributes become TensorProtos."""
    return {k: numpy_helper.from_array(v) if isinstance(v, np.ndarray) else v
            for k, v in attrs.items()}


def make_model(case: OpCase) -> onnx.ModelProto:
    """A single-node model; output types come from ONNX shape inference."""
    names = ["" if x is None else input_name(i) for i, x in enumerate(case.inputs)]
    graph_inputs, initializers = [], []
    for i, x in enumerate(case.inputs):
        if x is None:
            continue
        if i in case.const_inputs:
            initializers.append(numpy_helper.from_array(x, input_name(i)))
        else:
            dtype = helper.np_dtype_to_tensor_dtype(x.dtype)
            graph_inputs.append(helper.make_tensor_value_info(input_name(i), dtype, x.shape))
    outputs = [f"out{j}" for j in range(case.num_outputs)]
    node = helper.make_node(case.op_type, names, outputs, **onnx_attrs(case.attrs))
    graph = helper.make_graph([node], case.id, graph_inputs,
                              [onnx.ValueInfoProto(name=o) for o in outputs], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", case.opset)],
                              ir_version=IR_VERSION)
    return onnx.shape_inference.infer_shapes(model)


def feeds(case: OpCase) -> dict[str, np.ndarray]:
    return {input_name(i): x for i, x in enumerate(case.inputs)
            if x is not None and i not in case.const_inputs}
