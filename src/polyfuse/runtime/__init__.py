"""Load compiled artifacts and run them from Python."""
from .model import CompiledModel, load  # noqa: F401
