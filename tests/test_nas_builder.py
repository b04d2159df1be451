"""nas/builder.py: BERT-like encoders as ONNX graphs, checked by onnx's checker, run by
onnxruntime and by polyfuse (within 1e-4), and fused like the exported BERT family."""
from __future__ import annotations

import numpy as np
import onnx
import pytest

import polyfuse
from helpers import run_ort
from polyfuse.errors import InputError
from polyfuse.nas import EncoderConfig, build_encoder, example_feeds


@pytest.mark.parametrize("cfg", [EncoderConfig(2, 64, 2, 256, 24), EncoderConfig(2, 96, 3, 128, 17, bottleneck=48)])
def test_an_encoder_is_valid_onnx_and_polyfuse_matches_onnxruntime(cfg):
    m = build_encoder(cfg)
    onnx.checker.check_model(m, full_check=True)
    feeds = example_feeds(cfg)
    (ref,) = run_ort(m, feeds)
    assert ref.shape == (1, cfg.seq, cfg.hidden) and np.all(np.isfinite(ref))
    (ours,) = polyfuse.compile(m, "host").run(None, feeds)
    assert float(np.max(np.abs(ours - ref))) <= 1e-4


def test_an_encoder_layer_fuses_as_bert_does():
    """Per layer: QKV projection, attention, output projection, LayerNorm, the feed-forward pair
    and LayerNorm; embeddings, the mask and the first LayerNorm once."""
    one, three = (polyfuse.estimate(build_encoder(EncoderConfig(n, 128, 2, 512, 32))) for n in (1, 3))
    per_layer = (len(three.groups) - len(one.groups)) / 2
    assert per_layer <= 6 and sum(g.kind == "attention" for g in three.groups) == 3


def test_bad_encoder_configs_are_refused():
    with pytest.raises(InputError, match="do not split into 3 heads"):
        build_encoder(EncoderConfig(hidden=128, heads=3))
    with pytest.raises(InputError, match="layers must be >= 1"):
        build_encoder(EncoderConfig(layers=0))


def test_params_counts_the_layer_weights():
    cfg = EncoderConfig(2, 64, 2, 256, 24)
    m = build_encoder(cfg)
    layer = sum(int(np.prod(t.dims)) for t in m.graph.initializer
                if not t.name.startswith(("word_", "position_", "token_type", "axes", "one", "neg", "heads_shape",
                                          "ctx_shape", "scale", "sqrt2", "half")))
    emb_ln = 2 * cfg.hidden  # the embeddings' LayerNorm
    assert cfg.params == layer - emb_ln
