"""Errors meant for people: each names the file or field at fault and the fix."""


class JaxbenchError(Exception):
    """Base class of every error jaxbench raises on purpose."""


class UnknownTaskError(JaxbenchError, KeyError):
    """A task id that is not registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class DataFormatError(JaxbenchError, ValueError):
    """A data file or array that does not match its published format."""


class ConfigError(JaxbenchError, ValueError):
    """A configuration key or value that cannot be used."""
