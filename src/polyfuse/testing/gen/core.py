"""The random graph builder: what the generator knows of each tensor (:class:`Info`), and how
it adds leaves (graph inputs, constants) and nodes."""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

DIMS = (1, 3, 7, 17, 33, 65)  # 65: an inner loop long enough for 16-lane vectors and their tail
DIM_WEIGHTS = (3, 4, 3, 2, 1, 1)
MAX_ELEMENTS = 1 << 13  # per tensor: small enough to compile and run fast
EXACT_LIMIT = 2.0 ** 22  # |value| * 2**bits below this: float32 holds it exactly
OPSETS = (17, 18, 21)
IR_VERSION = 10
SPECIALS = (np.nan, np.inf, -np.inf, 0.0, -0.0)
FLT_MAX = float(np.finfo(np.float32).max)


@dataclass(frozen=True)
class Info:
    """What is known of a tensor's values (see the module docstring)."""
    lo: float
    hi: float
    exact: bool
    bits: int = 0
    special: bool = False

    @property
    def mag(self) -> float:
        return max(abs(self.lo), abs(self.hi))

    def keeps_exact(self, mag: float, bits: int) -> bool:
        return self.exact and mag * 2.0 ** bits < EXACT_LIMIT


def inexact(lo, hi, special=False) -> Info:
    return Info(float(lo), float(hi), False, 0, special)


def exact_or_not(lo, hi, bits, special, *operands) -> Info:
    mag = max(abs(lo), abs(hi))
    exact = all(o.exact for o in operands) and mag * 2.0 ** bits < EXACT_LIMIT
    return Info(float(lo), float(hi), exact, bits if exact else 0, special)


@dataclass
class T:
    name: str
    dtype: np.dtype
    shape: tuple
    info: Info
    leaf: bool = False  # a graph input or constant (its zeros' signs are what the data says)

    @property
    def numel(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))


@dataclass
class Graph:
    """A generated model with its feeds; ``ops`` counts the op types used."""
    model: onnx.ModelProto
    feeds: dict
    ops: dict = field(default_factory=dict)


F32, F64, I64, BOOL = np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.int64), np.dtype(np.bool_)
_ONNX = {F32: TensorProto.FLOAT, F64: TensorProto.DOUBLE, I64: TensorProto.INT64, BOOL: TensorProto.BOOL}


class Builder:
    def __init__(self, rng: np.random.Generator, opset: int):
        self.rng, self.opset = rng, opset
        self.nodes, self.inputs, self.inits, self.feeds = [], [], [], {}
        self.pool: list[T] = []
        self.consumed: set[str] = set()
        self.ops: dict[str, int] = {}
        self.n = 0

    # --- random choices ------------------------------------------------------------------
    def coin(self, p=0.5) -> bool:
        return bool(self.rng.random() < p)

    def pick(self, seq, weights=None):
        seq = list(seq)
        p = None if weights is None else np.asarray(weights, float) / np.sum(weights)
        return seq[int(self.rng.choice(len(seq), p=p))]

    def dim(self) -> int:
        return int(self.pick(DIMS, DIM_WEIGHTS))

    def shape(self, rank=None) -> tuple:
        rank = self.pick((1, 2, 3, 4), (2, 4, 3, 1)) if rank is None else rank
        while True:
            s = tuple(self.dim() for _ in range(rank))
            if np.prod(s) <= MAX_ELEMENTS:
                return s

    def fresh(self, what: str) -> str:
        self.n += 1
        return f"{what}{self.n}"

    # --- leaves ----------------------------------------------------------------------------
    def grid(self, shape, special: bool) -> np.ndarray:
        x = np.asarray(self.rng.integers(-12, 13, size=shape) / 4, np.float32)
        if special and x.size:
            mask = self.rng.random(shape) < 0.15
            x[mask] = self.rng.choice(np.array(SPECIALS, np.float32), size=int(mask.sum()))
        return x

    def leaf(self, shape, const: bool | None = None, special: bool | None = None) -> T:
        const = self.coin(0.4) if const is None else const
        special = (not const and self.coin(0.25)) if special is None else special
        x = self.grid(shape, special)
        name = self.fresh("c" if const else "x")
        if const:
            self.inits.append(numpy_helper.from_array(x, name))
        else:
            self.inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape)))
            self.feeds[name] = x
        t = T(name, F32, tuple(shape), Info(-3.0, 3.0, True, 2, special), leaf=True)
        self.pool.append(t)
        return t

    def const(self, value, dtype=I64) -> str:
        name = self.fresh("k")
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def int_leaf(self, shape, lo: int, hi: int) -> str:
        """Integer indices in [lo, hi], as a constant or a graph input."""
        x = self.rng.integers(lo, hi + 1, size=shape).astype(np.int64)
        if self.coin(0.5):
            return self.const(x)
        name = self.fresh("x")
        self.inputs.append(helper.make_tensor_value_info(name, TensorProto.INT64, list(shape)))
        self.feeds[name] = x
        return name

    # --- nodes -----------------------------------------------------------------------------
    def node(self, op: str, inputs: list[str], outs: list[tuple], **attrs) -> list[T]:
        """Add ``op`` with outputs ``outs`` = [(dtype, shape, info)]; returns their tensors."""
        names = [self.fresh("v") for _ in outs]
        self.nodes.append(helper.make_node(op, inputs, names, name=self.fresh(op.lower() + "_"), **attrs))
        self.consumed.update(i for i in inputs if i)
        self.ops[op] = self.ops.get(op, 0) + 1
        made = [T(n, np.dtype(dt), tuple(int(d) for d in s), info) for n, (dt, s, info) in zip(names, outs)]
        self.pool.extend(made)
        return made

    def operand(self, dtype=F32, *, exact=False, where=None) -> T | None:
        """A tensor from the pool (recent ones more often, so chains grow long)."""
        cands = [t for t in self.pool if t.dtype == dtype and (not exact or t.info.exact) and (where is None or where(t))]
        if not cands:
            return None
        if self.coin(0.5):
            return cands[-1]
        return cands[int(self.rng.integers(len(cands)))]

    def broadcast_partner(self, t: T, exact=False) -> T:
        """A float tensor that broadcasts with ``t``: a pool tensor of a compatible shape or a
        new leaf whose shape drops leading dims or sets some to 1."""
        fits = lambda u: broadcasts(u.shape, t.shape) and np.prod(np.broadcast_shapes(u.shape, t.shape)) <= MAX_ELEMENTS  # noqa: E731
        if self.coin(0.5):
            u = self.operand(F32, exact=exact, where=lambda u: u is not t and fits(u))
            if u is not None:
                return u
        r = len(t.shape)
        keep = int(self.rng.integers(0, r + 1))
        shape = [1 if self.coin(0.3) else d for d in t.shape[r - keep:]]
        if self.coin(0.15) and r < 4:  # the partner broadcasts the other way
            shape = [self.pick((3, 7))] + list(t.shape) if np.prod(t.shape) * 7 <= MAX_ELEMENTS else shape
        return self.leaf(tuple(shape))


def broadcasts(*shapes) -> bool:
    try:
        np.broadcast_shapes(*shapes)
        return True
    except ValueError:
        return False


def out_shape(*ts) -> tuple:
    return tuple(np.broadcast_shapes(*[t.shape for t in ts]))
