"""datadiet: score-based data pruning, as in *Deep Learning on a Data Diet* and its reproduction.

The layers mirror the pipeline, each importing only from the ones before it::

    config, errors, io → data → models → training → scores → selection → stats
        → runs (identity, score runs, sweeps, workspace, presets) → report → studies → cli

The public verbs match the command line: ``train``, ``score`` (``run_scores``), ``prune`` (``select``),
``reproduce``, ``analyze`` (``run_analysis``) and ``build_report`` (`datadiet report`).  See ARCHITECTURE.md.

The names below are imported on first use (module ``__getattr__``), not with the package: ``import datadiet``
and ``datadiet --version`` then cost milliseconds instead of the second or two that torch, scipy and the
studies take to import.  ``from datadiet import train`` works as always.
"""
from __future__ import annotations

import importlib
from typing import Any

from .version import __version__

# Public name → (module, attribute in it).  One table, so __all__, dir() and the lazy lookup agree.
_PUBLIC: dict[str, tuple[str, str]] = {
    "DataConfig": ("config", "DataConfig"), "TrainConfig": ("config", "TrainConfig"),
    "DataDietError": ("errors", "DataDietError"),
    "Dataset": ("data", "Dataset"), "DatasetSplits": ("data", "DatasetSplits"),
    "ImageDataset": ("data", "ImageDataset"), "load_data": ("data", "load_data"),
    "save_arrays": ("data", "save_arrays"), "prepare_inputs": ("data", "prepare_inputs"),
    "build_model": ("models", "build_model"),
    "ScoreConfig": ("runs", "ScoreConfig"), "Setting": ("runs", "Setting"), "run_scores": ("runs", "run_scores"),
    "PRESETS": ("runs.presets", "PRESETS"),
    **{name: ("scores", name) for name in (
        "SCORES", "ScoreLabel", "ScoreTable", "el2n", "forgetting", "grand", "input_norm", "load_scores",
        "random_score", "save_scores", "score1", "score2", "score3", "self_confidence")},
    "select": ("selection", "select"), "select_random": ("selection", "select_random"),
    "run_analysis": ("studies", "run_analysis"),
    "build_report": ("studies", "build_workspace_report"), "reproduce": ("studies.reproduce", "reproduce"),
    "TrainResult": ("training", "TrainResult"), "train": ("training", "train"),
    # The verbs of the command line under their command names.
    "score": ("runs", "run_scores"),         # `datadiet score`
    "prune": ("selection", "select"),        # `datadiet prune` (the manifest file is the CLI's; the ids are this)
    "analyze": ("studies", "run_analysis"),  # `datadiet analyze NAME`
}

__all__ = sorted(["__version__", *_PUBLIC])


def __getattr__(name: str) -> Any:
    """Import a public name's module on first use and keep the name here (later lookups skip this)."""
    if name not in _PUBLIC:
        raise AttributeError(f"module 'datadiet' has no attribute {name!r}")
    module, attribute = _PUBLIC[name]
    value = getattr(importlib.import_module(f".{module}", __name__), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))
