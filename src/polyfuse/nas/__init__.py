"""The compiler-aware NAS plugin (thin): BERT-like encoder candidates, priced by the cost model."""
from .builder import EncoderConfig, build_encoder, example_feeds  # noqa: F401
