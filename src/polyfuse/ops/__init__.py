"""Per-op knowledge: the numpy reference interpreter (``polyfuse.ops.reference``)."""
