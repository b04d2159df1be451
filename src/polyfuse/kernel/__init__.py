"""Kernel IR and the lowering of graph nodes to kernels."""
from .ir import ACC, IDX, Contraction, Load, Pointwise, Reduction  # noqa: F401
from .lower import lower_graph, LoweredModel  # noqa: F401
