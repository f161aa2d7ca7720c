"""datadiet: score-based data pruning, as in *Deep Learning on a Data Diet* and its reproduction.

The layers mirror the pipeline, each importing only from the ones before it::

    config, errors, io → data → models → training → scores → selection → stats
        → runs (identity, score runs, sweeps, workspace, presets) → report → studies → cli

The public verbs match the command line: ``train``, ``score`` (``run_scores``), ``prune`` (``select``),
``reproduce``, ``analyze`` (``run_analysis``) and ``build_report`` (`datadiet report`).  See ARCHITECTURE.md.
"""
from __future__ import annotations

from .version import __version__

from .config import DataConfig, TrainConfig
from .data import Dataset, DatasetSplits, ImageDataset, load_data, save_arrays
from .errors import DataDietError
from .models import build_model
from .runs import ScoreConfig, Setting, run_scores
from .runs.presets import PRESETS
from .scores import (SCORES, ScoreLabel, ScoreTable, el2n, forgetting, grand, input_norm, load_scores, random_score,
                     save_scores, score1, score2, score3, self_confidence)
from .selection import select, select_random
from .studies import run_analysis
from .studies.reproduce import build_report, reproduce
from .training import TrainResult, train

score = run_scores      # `datadiet score`
prune = select          # `datadiet prune` (the manifest file is the CLI's; the ids are this function's)
analyze = run_analysis  # `datadiet analyze NAME`

__all__ = ["DataConfig", "DataDietError", "Dataset", "DatasetSplits", "ImageDataset", "PRESETS", "SCORES", "ScoreConfig",
           "ScoreLabel", "ScoreTable", "Setting", "TrainConfig", "TrainResult", "__version__", "analyze",
           "build_model", "build_report", "el2n", "forgetting", "grand", "input_norm", "load_data", "load_scores",
           "prune", "random_score", "reproduce", "run_analysis", "run_scores", "save_scores", "score",
           "save_arrays", "score1", "score2", "score3", "select", "select_random", "self_confidence", "train"]
