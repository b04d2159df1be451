"""Export BERT-family Hugging Face models to ONNX the way users do.

Used by tests, benchmarks and ``examples/make_tiny_bert.py``.  Models are
always built from a config with random weights (``torch.manual_seed(seed)``);
nothing is downloaded.

Supported architectures (``ARCHS``) and sizes (``SIZES``):

* ``bert``       -- ``BertModel``        (inputs: input_ids, attention_mask, token_type_ids;
                    outputs: last_hidden_state, pooler_output)
* ``distilbert`` -- ``DistilBertModel``  (inputs: input_ids, attention_mask;
                    outputs: last_hidden_state)
* ``mobilebert`` -- ``MobileBertModel``  (inputs/outputs as ``bert``)
* ``tiny-bert``  -- ``BertModel`` with the google/bert_uncased_L-2_H-128_A-2
                    shape (2 layers, hidden 128, 2 heads, intermediate 512),
                    whatever the size.

``"default"`` is transformers' default config (``BertConfig()`` ...),
``"small"`` is a CI-sized config of the same architecture.

Two exporters are supported: ``"torchscript"`` (``torch.onnx.export(...,
dynamo=False)``, the legacy tracer) and ``"dynamo"`` (``dynamo=True``, the
``torch.export``-based exporter, which is the default in torch >= 2.9).  The
result is always a single self-contained ``.onnx`` file for models < 2 GB.

torch / transformers / onnx are imported lazily so that importing this module
is cheap and does not require torch.
"""

from __future__ import annotations

import contextlib
import copy
import io
import os
import pathlib
import warnings

import numpy as np

ARCHS = ("bert", "distilbert", "mobilebert", "tiny-bert")
SIZES = ("default", "small")
EXPORTERS = ("torchscript", "dynamo")

_INPUT_NAMES = {
    "bert": ("input_ids", "attention_mask", "token_type_ids"),
    "distilbert": ("input_ids", "attention_mask"),
    "mobilebert": ("input_ids", "attention_mask", "token_type_ids"),
    "tiny-bert": ("input_ids", "attention_mask", "token_type_ids"),
}
_OUTPUT_NAMES = {
    "bert": ("last_hidden_state", "pooler_output"),
    "distilbert": ("last_hidden_state",),
    "mobilebert": ("last_hidden_state", "pooler_output"),
    "tiny-bert": ("last_hidden_state", "pooler_output"),
}

# Names of the symbolic dims of the exported graphs when dynamic=True.
BATCH_DIM = "batch"
SEQ_DIM = "sequence"

# Protobuf hard limit; above it the weights must go to an external data file.
_PROTOBUF_LIMIT = 2 * 1024**3 - 64 * 1024**2


def _check(arch: str, size: str) -> None:
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; expected one of {ARCHS}")
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; expected one of {SIZES}")


def input_names(arch: str) -> tuple[str, ...]:
    """ONNX graph input names for ``arch`` (in positional order)."""
    _check(arch, "small")
    return _INPUT_NAMES[arch]


def output_names(arch: str) -> tuple[str, ...]:
    """ONNX graph output names for ``arch``."""
    _check(arch, "small")
    return _OUTPUT_NAMES[arch]


# --------------------------------------------------------------------------
# configs / models
# --------------------------------------------------------------------------


def make_config(arch: str, size: str):
    """Return the transformers config object for ``(arch, size)``."""
    _check(arch, size)
    import transformers as tf

    if arch == "tiny-bert":
        # Same shape as google/bert_uncased_L-2_H-128_A-2 (vocab 30522, 512 positions).
        return tf.BertConfig(
            num_hidden_layers=2,
            hidden_size=128,
            num_attention_heads=2,
            intermediate_size=512,
        )
    if size == "default":
        return {
            "bert": tf.BertConfig,
            "distilbert": tf.DistilBertConfig,
            "mobilebert": tf.MobileBertConfig,
        }[arch]()
    # size == "small"
    if arch == "bert":
        return tf.BertConfig(
            vocab_size=1000,
            hidden_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=128,
            max_position_embeddings=512,
        )
    if arch == "distilbert":
        return tf.DistilBertConfig(
            vocab_size=1000,
            dim=64,
            n_layers=2,
            n_heads=4,
            hidden_dim=128,
            max_position_embeddings=512,
        )
    # mobilebert: keep the MobileBERT-specific structure (trigram input,
    # embedding_size != hidden_size, bottlenecks with shared key/query
    # bottleneck, NoNorm, several stacked FFNs) but shrink every dimension.
    return tf.MobileBertConfig(
        vocab_size=1000,
        embedding_size=32,  # trigram input -> 3*32 = 96 -> Linear -> hidden 64
        hidden_size=64,  # inter-block size
        intra_bottleneck_size=32,  # = true_hidden_size inside the block
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=128,
        num_feedforward_networks=2,
        trigram_input=True,
        use_bottleneck=True,
        use_bottleneck_attention=False,
        key_query_shared_bottleneck=True,
        normalization_type="no_norm",
        hidden_act="relu",
        max_position_embeddings=512,
    )


_MODEL_CLASSES = {
    "bert": "BertModel",
    "distilbert": "DistilBertModel",
    "mobilebert": "MobileBertModel",
    "tiny-bert": "BertModel",
}


def build_model(
    arch: str,
    size: str,
    seed: int = 0,
    *,
    attn_implementation: str | None = None,
    perturb_constant_params: bool = True,
    config=None,
):
    """Build the model with random weights (``torch.manual_seed(seed)``), in eval mode.

    ``attn_implementation=None`` keeps transformers' default (``"sdpa"`` in
    transformers 5 for all three classes); pass ``"eager"`` to get the plain
    MatMul/Softmax attention in the Python code.

    ``perturb_constant_params``: transformers' init leaves every bias at 0 and
    every LayerNorm/NoNorm weight at 1.  That makes tests blind to dropped
    bias adds / norm scales, and makes the TorchScript exporter deduplicate
    those identical tensors into ``Identity`` nodes that a trained checkpoint
    would not have.  When True (default), every parameter whose elements are
    all equal gets ``N(0, initializer_range)`` noise added (same seeded RNG),
    so the weights look like a real checkpoint's.

    ``config`` overrides :func:`make_config`.
    """
    import torch
    import transformers as tf

    cfg = make_config(arch, size) if config is None else copy.deepcopy(config)
    if attn_implementation is not None:
        cfg._attn_implementation = attn_implementation
    torch.manual_seed(seed)
    model = getattr(tf, _MODEL_CLASSES[arch])(cfg)
    model.eval()
    if perturb_constant_params:
        std = float(getattr(cfg, "initializer_range", 0.02))
        gen = torch.Generator().manual_seed(seed + 1)
        with torch.no_grad():
            for _, param in sorted(model.named_parameters()):
                flat = param.detach().reshape(-1)
                if flat.numel() > 1 and bool((flat == flat[0]).all()):
                    noise = torch.randn(param.shape, generator=gen, dtype=param.dtype) * std
                    param.add_(noise)
    return model


def _make_wrapper(model, arch: str):
    """nn.Module with positional inputs and a tuple of plain tensor outputs.

    Needed because (a) transformers 5's ``merge_with_config_defaults``
    decorator breaks ``torch.jit.trace`` with positional args ("got multiple
    values for argument 'use_cache'"), and (b) it gives both exporters the
    same, stable input/output signature.
    """
    import torch

    names = _OUTPUT_NAMES[arch]

    class _ExportWrapper(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.model = inner

        if len(_INPUT_NAMES[arch]) == 3:

            def forward(self, input_ids, attention_mask, token_type_ids):
                out = self.model(
                    input_ids=input_ids,
                    attention_mask=attention_mask,
                    token_type_ids=token_type_ids,
                    return_dict=True,
                )
                return tuple(getattr(out, n) for n in names)

        else:

            def forward(self, input_ids, attention_mask):
                out = self.model(
                    input_ids=input_ids, attention_mask=attention_mask, return_dict=True
                )
                return tuple(getattr(out, n) for n in names)

    # NB: the wrapper must be in eval mode too: torch.onnx.export restores the
    # *top-level* module's training flag afterwards, which recurses into the
    # children and would silently switch dropout back on.
    return _ExportWrapper(model).eval()


# --------------------------------------------------------------------------
# inputs / reference
# --------------------------------------------------------------------------


def valid_lengths(batch: int, seq: int) -> list[int]:
    """Number of non-padding tokens per row used by :func:`example_inputs`.

    Row 0 has ~1/4 of padding at the end; the following rows have
    progressively more; every row keeps at least one real token.
    """
    pad0 = max(1, seq // 4) if seq > 1 else 0
    out = []
    for b in range(batch):
        pad = pad0 + b * max(1, seq // 8)
        out.append(max(1, seq - pad))
    return out


def example_inputs(
    arch: str,
    size: str,
    batch: int = 1,
    seq: int = 128,
    seed: int = 0,
    *,
    config=None,
) -> dict[str, np.ndarray]:
    """Deterministic int64 inputs keyed by ONNX graph input name.

    ``input_ids`` are uniform in ``[1, vocab)`` (0 is the pad id) and set to 0
    on padded positions; ``attention_mask`` is 1 then 0 at the end of each row
    (see :func:`valid_lengths`); ``token_type_ids`` (BERT/MobileBERT) mark a
    two-segment input: 0 for the first half of the real tokens, 1 afterwards,
    0 on padding.  ``config`` overrides :func:`make_config` (vocab size).
    """
    _check(arch, size)
    cfg = make_config(arch, size) if config is None else config
    vocab = cfg.vocab_size
    rng = np.random.RandomState(seed)
    input_ids = rng.randint(1, vocab, size=(batch, seq)).astype(np.int64)
    attention_mask = np.zeros((batch, seq), dtype=np.int64)
    token_type_ids = np.zeros((batch, seq), dtype=np.int64)
    for b, n in enumerate(valid_lengths(batch, seq)):
        attention_mask[b, :n] = 1
        input_ids[b, n:] = 0
        if getattr(cfg, "type_vocab_size", 2) > 1:
            token_type_ids[b, n // 2 : n] = 1
    out = {"input_ids": input_ids, "attention_mask": attention_mask}
    if "token_type_ids" in _INPUT_NAMES[arch]:
        out["token_type_ids"] = token_type_ids
    return out


def reference_outputs(
    arch: str,
    size: str,
    inputs: dict[str, np.ndarray],
    seed: int = 0,
    *,
    attn_implementation: str | None = None,
    perturb_constant_params: bool = True,
    config=None,
    model=None,
) -> dict[str, np.ndarray]:
    """Torch eager outputs (float32 numpy) keyed by ONNX graph output name.

    Pass the same ``seed`` / ``attn_implementation`` /
    ``perturb_constant_params`` / ``config`` as to :func:`export_onnx` (or a
    prebuilt ``model``).
    """
    import torch

    if model is None:
        model = build_model(
            arch,
            size,
            seed,
            attn_implementation=attn_implementation,
            perturb_constant_params=perturb_constant_params,
            config=config,
        )
    kwargs = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in inputs.items()}
    with torch.no_grad():
        out = model(**kwargs, return_dict=True)
    return {n: getattr(out, n).detach().cpu().numpy() for n in _OUTPUT_NAMES[arch]}


# --------------------------------------------------------------------------
# export
# --------------------------------------------------------------------------


@contextlib.contextmanager
def _quiet(verbose: bool):
    """Silence the exporters' chatter (warnings + dynamo's progress prints)."""
    if verbose:
        yield
        return
    import logging

    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, lv in zip(loggers, levels):
            lg.setLevel(lv)


def export_onnx(
    arch: str,
    size: str,
    path: str | os.PathLike,
    *,
    exporter: str = "torchscript",
    opset: int = 17,
    batch: int = 1,
    seq: int = 128,
    dynamic: bool = True,
    seed: int = 0,
    attn_implementation: str | None = None,
    optimize: bool = True,
    enforce_opset: bool = True,
    perturb_constant_params: bool = True,
    config=None,
    verbose: bool = False,
) -> pathlib.Path:
    """Export ``(arch, size)`` to ``path`` and return it as a ``Path``.

    * ``exporter="torchscript"``: ``torch.onnx.export(..., dynamo=False)`` with
      ``dynamic_axes`` {0: "batch", 1: "sequence"} on every input/output.
    * ``exporter="dynamo"``: ``torch.onnx.export(..., dynamo=True)`` with
      ``dynamic_shapes`` using ``torch.export.Dim("batch")`` /
      ``Dim("sequence")``; ``optimize`` is passed through (default True, as
      in torch).
    * ``dynamic=False`` gives static ``[batch, seq]`` shapes.
    * ``enforce_opset``: see :func:`_enforce_opset` (the dynamo exporter can
      return opset 18 when 17 was asked for).
    * ``attn_implementation`` / ``perturb_constant_params`` / ``config``: see
      :func:`build_model` (``config`` replaces :func:`make_config`'s).

    The file is self-contained (weights inside the .onnx) unless the weights
    exceed the 2 GB protobuf limit, in which case ``<path>.data`` is written
    next to it (never the case for the configs here).
    """
    _check(arch, size)
    if exporter not in EXPORTERS:
        raise ValueError(f"unknown exporter {exporter!r}; expected one of {EXPORTERS}")
    import torch

    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = build_model(
        arch,
        size,
        seed,
        attn_implementation=attn_implementation,
        perturb_constant_params=perturb_constant_params,
        config=config,
    )
    wrapper = _make_wrapper(model, arch)
    in_names = list(_INPUT_NAMES[arch])
    out_names = list(_OUTPUT_NAMES[arch])
    feeds = example_inputs(arch, size, batch=batch, seq=seq, seed=seed, config=model.config)
    args = tuple(torch.from_numpy(feeds[n]) for n in in_names)
    nbytes = sum(p.numel() * p.element_size() for p in model.parameters())
    external = nbytes > _PROTOBUF_LIMIT
    # Remove stale outputs so a previous external-data file is never picked up.
    for p in (path, path.with_name(path.name + ".data")):
        if p.exists():
            p.unlink()

    with _quiet(verbose), torch.no_grad():
        if exporter == "torchscript":
            dynamic_axes = None
            if dynamic:
                dynamic_axes = {n: {0: BATCH_DIM, 1: SEQ_DIM} for n in in_names}
                dynamic_axes["last_hidden_state"] = {0: BATCH_DIM, 1: SEQ_DIM}
                if "pooler_output" in out_names:
                    dynamic_axes["pooler_output"] = {0: BATCH_DIM}
            torch.onnx.export(
                wrapper,
                args,
                str(path),
                dynamo=False,
                opset_version=opset,
                input_names=in_names,
                output_names=out_names,
                dynamic_axes=dynamic_axes,
                do_constant_folding=True,
            )
        else:
            dynamic_shapes = None
            if dynamic:
                b = torch.export.Dim(BATCH_DIM)
                s = torch.export.Dim(SEQ_DIM)
                dynamic_shapes = tuple({0: b, 1: s} for _ in in_names)
            program = torch.onnx.export(
                wrapper,
                args,
                dynamo=True,
                opset_version=opset,
                input_names=in_names,
                output_names=out_names,
                dynamic_shapes=dynamic_shapes,
                optimize=optimize,
                external_data=external,
            )
            program.save(str(path), external_data=external)

    # The TorchScript exporter writes external data by itself only above 2 GB.
    if enforce_opset and not external:
        _enforce_opset(path, opset)
    return path


def _enforce_opset(path: pathlib.Path, opset: int) -> None:
    """Make the default-domain opset of ``path`` equal to ``opset`` if it is not.

    The dynamo exporter (onnxscript torchlib) builds graphs at opset 18 and
    down-converts with ``onnx.version_converter``; that fails for ``Pad``
    ("No Adapter To Version $17 for Pad"), and torch then *silently* keeps
    opset 18 (seen with MobileBERT, whose trigram embedding uses F.pad).
    Here we relabel the model if every node has the same semantics at both
    versions (same schema ``since_version``, or a ``Pad`` without the
    opset-18 ``axes`` input); otherwise a warning is emitted and the file is
    left as exported.
    """
    import onnx
    import onnx.defs

    model = onnx.load(str(path))
    cur = {o.domain: o for o in model.opset_import}
    entry = cur.get("") or cur.get("ai.onnx")
    if entry is None or entry.version == opset:
        return
    bad = []
    for node in model.graph.node:
        if node.domain not in ("", "ai.onnx"):
            continue
        try:
            a = onnx.defs.get_schema(node.op_type, opset).since_version
            b = onnx.defs.get_schema(node.op_type, entry.version).since_version
        except onnx.defs.SchemaError:
            bad.append(node.op_type)
            continue
        if a == b:
            continue
        if node.op_type == "Pad" and len(node.input) <= 3:
            continue  # Pad-13 == Pad-18 without `axes`
        bad.append(node.op_type)
    if bad or model.functions:
        warnings.warn(
            f"{path}: exporter produced opset {entry.version} instead of {opset}; "
            f"ops {sorted(set(bad))} differ between the two versions, left as is",
            stacklevel=3,
        )
        return
    entry.version = opset
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
