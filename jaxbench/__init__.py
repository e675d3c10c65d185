"""jaxbench: a JAX-native benchmark suite for AI for science."""

from jaxbench.errors import ConfigError, DataFormatError, JaxbenchError, UnknownTaskError
from jaxbench.registry import make, register, registered, spec
from jaxbench.task import Task

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "DataFormatError",
    "JaxbenchError",
    "Task",
    "UnknownTaskError",
    "make",
    "register",
    "registered",
    "spec",
    "__version__",
]
