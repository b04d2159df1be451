"""Errors a user can read. Every failure polyfuse expects is one of these.

The CLI prints ``str(error)`` as one line on stderr and exits non-zero; the Python API raises
them. Anything else escaping polyfuse is a bug and is reported as an internal error.
"""


class PolyfuseError(Exception):
    """Base class: a message meant for the user, naming the file, input or node at fault."""


class ModelError(PolyfuseError):
    """The model file is missing, malformed, truncated, or references missing external data."""


class UnsupportedError(PolyfuseError):
    """The model uses operators or features polyfuse does not compile."""


class InputError(PolyfuseError):
    """A run-time input has the wrong name, shape or dtype, or a --shape/--input argument is bad."""


class BuildError(PolyfuseError):
    """The native compiler failed on generated code (a polyfuse bug) or is missing."""


class ArtifactError(PolyfuseError):
    """An artifact directory is missing, incomplete, or was built for another target/ABI."""
