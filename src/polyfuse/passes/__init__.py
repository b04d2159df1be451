"""Graph -> Graph passes, one per file, each runnable and testable alone."""
from .bind_shapes import bind_shapes  # noqa: F401
from .fold_constants import fold_constants  # noqa: F401
from .eliminate_dead_code import eliminate_dead_code  # noqa: F401
from .remove_identity import remove_identity  # noqa: F401
from .remove_nan_guards import remove_nan_guards  # noqa: F401
from .fuse_parallel_matmuls import fuse_parallel_matmuls  # noqa: F401
from .expand_einsum import expand_einsum  # noqa: F401
