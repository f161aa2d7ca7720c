"""Errors that reach the user as a short paragraph instead of a traceback.

Every error raised for bad input derives from :class:`DataDietError`.  The
command line prints its message and exits with status 2; Python users catch
it like any exception.  Messages say what is wrong *and* how to fix it.
"""
from __future__ import annotations

from types import TracebackType


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



# Where in datadiet memory ran out → what was happening there (innermost datadiet module wins).
_MEMORY_PHASES = (
    ("datadiet.training", "compute"), ("datadiet.scores", "compute"),
    ("datadiet.data", "loading the dataset"), ("datadiet.models", "building the model"),
)
_BATCH_ADVICE = "Use a smaller --batch-size or --score-batch-size, a smaller model (--width), or fewer --workers."


def out_of_memory_message(exc: BaseException) -> str:
    """The paragraph for running out of memory, by where it happened.

    The batch size is the cure only when training or scoring computations ran out; a dataset that decodes to more
    than the memory (a small .npz can decompress to gigabytes) or a huge model needs another fix, and blaming the
    batch size there sends the user the wrong way.
    """
    module = _innermost_datadiet_module(exc.__traceback__)
    phase = next((what for prefix, what in _MEMORY_PHASES if module.startswith(prefix)), None)
    if phase == "compute":
        return f"out of memory while training or scoring (in {module}). {_BATCH_ADVICE}"
    if phase == "loading the dataset":
        return (f"out of memory while loading the dataset (in {module}): its arrays, once read and decompressed, "
                "need more memory than is free. Check the dataset files given with --dataset (a compressed .npz or "
                "gzip can expand to many times its size on disk), use a smaller dataset, or a machine with more "
                "memory.")
    if phase == "building the model":
        return (f"out of memory while building the model (in {module}): use a smaller --width or another --model.")
    where = f" (in {module})" if module else ""
    return (f"out of memory{where}. Free memory or use a machine with more; if it happened while training or "
            f"scoring: {_BATCH_ADVICE}")


def _innermost_datadiet_module(tb: TracebackType | None) -> str:
    """The module of the innermost datadiet frame of a traceback (the command line's own frames excluded, and the
    file plumbing's: ``io.read_npz`` reads score files and datasets alike, so its caller says what was happening)."""
    found = ""
    while tb is not None:
        name = tb.tb_frame.f_globals.get("__name__", "")
        if name.startswith("datadiet.") and name not in ("datadiet.cli", "datadiet.errors", "datadiet.io"):
            found = name
        tb = tb.tb_next
    return found
