"""BERT-like encoders as ONNX graphs (onnx.helper), for the cost model's calibration and
validation and for the NAS plugin's candidates.

An encoder is what transformers' BertModel exports, in the same ops: word + position + token-type
embeddings and a LayerNorm; per layer, Q/K/V projections, heads split by Reshape/Transpose,
QKᵀ / sqrt(head size) + the additive mask, Softmax, ·V, the output projection, residual and
LayerNorm, the feed-forward block with GELU (x · ½ · (1 + erf(x / √2))), residual and LayerNorm.
With ``bottleneck`` (MobileBERT-style), each layer projects its input down to ``bottleneck``
features, runs attention and the feed-forward block there, and projects back up before the
residual. Weights are random (seeded) unless given.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from ..errors import InputError

OPSET = 17
VOCAB = 1024  # the embedding table's rows: the latency does not depend on it (a Gather reads seq rows)


@dataclass(frozen=True)
class EncoderConfig:
    layers: int = 2
    hidden: int = 128
    heads: int = 2
    intermediate: int = 512
    seq: int = 128
    bottleneck: int = 0  # 0: none; else the features inside each layer (MobileBERT: 128 of 512)

    def check(self) -> "EncoderConfig":
        inner = self.bottleneck or self.hidden
        for name in ("layers", "hidden", "heads", "intermediate", "seq"):
            if getattr(self, name) < 1:
                raise InputError(f"encoder {name} must be >= 1, got {getattr(self, name)}")
        if self.bottleneck < 0 or inner % self.heads:
            raise InputError(f"encoder: {inner} features do not split into {self.heads} heads")
        return self

    @property
    def params(self) -> int:
        """Weights of the encoder layers (embeddings excluded): the default quality proxy's count."""
        d, f = self.bottleneck or self.hidden, self.intermediate
        per = 4 * (d * d + d) + 2 * (d * f) + f + d + 4 * d
        if self.bottleneck:
            per += 2 * (self.hidden * d) + d + self.hidden
        return self.layers * per

    def name(self) -> str:
        b = f"_b{self.bottleneck}" if self.bottleneck else ""
        return f"enc_l{self.layers}_h{self.hidden}_a{self.heads}_i{self.intermediate}_s{self.seq}{b}"


class _Graph:
    def __init__(self, seed: int):
        self.nodes, self.inits, self.rng, self.n = [], [], np.random.default_rng(seed), 0

    def fresh(self, base: str) -> str:
        self.n += 1
        return f"{base}_{self.n}"

    def const(self, base: str, value) -> str:
        name = self.fresh(base)
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def weight(self, base: str, shape, scale: float) -> str:
        return self.const(base, (self.rng.standard_normal(shape) * scale).astype(np.float32))

    def op(self, op_type: str, inputs: list, **attrs) -> str:
        out = self.fresh(op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out

    def linear(self, x: str, n_in: int, n_out: int) -> str:
        w = self.weight("w", (n_in, n_out), 1 / math.sqrt(n_in))
        return self.op("Add", [self.op("MatMul", [x, w]), self.weight("b", (n_out,), 0.02)])

    def layer_norm(self, x: str, n: int) -> str:
        return self.op("LayerNormalization", [x, self.const("ln_g", np.ones(n, np.float32)),
                                              self.const("ln_b", np.zeros(n, np.float32))], axis=-1, epsilon=1e-12)

    def gelu(self, x: str) -> str:
        e = self.op("Erf", [self.op("Div", [x, self.const("sqrt2", np.float32(math.sqrt(2)))])])
        one_plus = self.op("Add", [e, self.const("one", np.float32(1))])
        return self.op("Mul", [self.op("Mul", [x, one_plus]), self.const("half", np.float32(0.5))])


def _layer(g: _Graph, x: str, mask: str, c: EncoderConfig) -> str:
    d = c.bottleneck or c.hidden
    hs = d // c.heads
    inner = g.layer_norm(g.linear(x, c.hidden, d), d) if c.bottleneck else x
    heads_shape = g.const("heads_shape", np.array([1, c.seq, c.heads, hs], np.int64))

    def split(t: str, perm: list) -> str:
        return g.op("Transpose", [g.op("Reshape", [t, heads_shape])], perm=perm)

    q = split(g.linear(inner, d, d), [0, 2, 1, 3])
    k = split(g.linear(inner, d, d), [0, 2, 3, 1])
    v = split(g.linear(inner, d, d), [0, 2, 1, 3])
    scores = g.op("Add", [g.op("Div", [g.op("MatMul", [q, k]), g.const("scale", np.float32(math.sqrt(hs)))]), mask])
    ctx = g.op("MatMul", [g.op("Softmax", [scores], axis=-1), v])
    ctx = g.op("Reshape", [g.op("Transpose", [ctx], perm=[0, 2, 1, 3]),
                           g.const("ctx_shape", np.array([1, c.seq, d], np.int64))])
    attn = g.layer_norm(g.op("Add", [g.linear(ctx, d, d), inner]), d)
    ffn = g.linear(g.gelu(g.linear(attn, d, c.intermediate)), c.intermediate, d)
    out = g.layer_norm(g.op("Add", [ffn, attn]), d)
    if c.bottleneck:
        out = g.layer_norm(g.op("Add", [g.linear(out, d, c.hidden), x]), c.hidden)
    return out


def build_encoder(c: EncoderConfig, seed: int = 0):
    """The ONNX model of encoder ``c`` at batch 1: inputs input_ids and attention_mask (int64,
    [1, seq]), output last_hidden_state (float32, [1, seq, hidden])."""
    c.check()
    g = _Graph(seed)
    ids = "input_ids"
    words = g.op("Gather", [g.weight("word_embeddings", (VOCAB, c.hidden), 0.02), ids], axis=0)
    pos = g.weight("position_embeddings", (1, c.seq, c.hidden), 0.02)
    types = g.weight("token_type_embedding", (c.hidden,), 0.02)
    x = g.layer_norm(g.op("Add", [g.op("Add", [words, pos]), types]), c.hidden)
    m = g.op("Cast", [g.op("Unsqueeze", ["attention_mask", g.const("axes", np.array([1, 2], np.int64))])],
             to=TensorProto.FLOAT)
    mask = g.op("Mul", [g.op("Sub", [g.const("one", np.float32(1)), m]), g.const("neg", np.float32(-10000.0))])
    for _ in range(c.layers):
        x = _layer(g, x, mask, c)
    g.nodes.append(helper.make_node("Identity", [x], ["last_hidden_state"], name="output"))
    graph = helper.make_graph(
        g.nodes, c.name(),
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, [1, c.seq]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, [1, c.seq])],
        [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, [1, c.seq, c.hidden])], g.inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=8)


def example_feeds(c: EncoderConfig, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    mask = np.ones((1, c.seq), np.int64)
    mask[0, c.seq - c.seq // 8:] = 0  # some padding
    return {"input_ids": rng.integers(0, VOCAB, (1, c.seq), dtype=np.int64), "attention_mask": mask}


__all__ = ["EncoderConfig", "build_encoder", "example_feeds", "asdict"]
