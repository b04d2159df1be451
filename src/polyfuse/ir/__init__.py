"""polyfuse's graph IR: typed values, nodes, a verifier and a text printer."""
from .graph import Graph, Node, Value, dims_str  # noqa: F401
