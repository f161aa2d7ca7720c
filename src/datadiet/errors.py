"""Errors that reach the user as a short paragraph instead of a traceback.

Every error raised for bad input derives from :class:`DataDietError`.  The
command line prints its message and exits with status 2; Python users catch
it like any exception.  Messages say what is wrong *and* how to fix it.
"""
from __future__ import annotations


class DataDietError(Exception):
    """Bad input or environment, explained for a human."""

    exit_code = 2


class DatasetNotFoundError(DataDietError, FileNotFoundError):
    """The dataset files are not where we looked."""


class CorruptDataError(DataDietError, ValueError):
    """A data file exists but is not in the expected format."""


class UnknownNameError(DataDietError, KeyError):
    """A registry lookup (model, dataset, score) failed."""

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return str(self.args[0]) if self.args else ""


class ConfigError(DataDietError, ValueError):
    """A configuration value is out of range or inconsistent."""


class NonFiniteLossError(DataDietError, FloatingPointError):
    """Training diverged: the loss became NaN or infinite."""


class CheckpointError(DataDietError, FileNotFoundError):
    """A requested checkpoint does not exist or cannot be read."""


def unknown_name(kind: str, name: str, known: "list[str] | tuple[str, ...]") -> UnknownNameError:
    """Build the error for a name missing from one of our registries."""
    options = ", ".join(sorted(known))
    return UnknownNameError(f"Unknown {kind} {name!r}. Choose one of: {options}.")


class FolderBusyError(DataDietError, RuntimeError):
    """Another datadiet command holds the results folder."""
