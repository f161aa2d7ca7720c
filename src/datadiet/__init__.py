"""datadiet: score-based data pruning, as in *Deep Learning on a Data Diet* and its reproduction.

The pipeline mirrors the package layout: ``data`` → ``models`` → ``training`` →
``scores`` → ``selection`` → ``experiments`` → ``analysis``.
"""
from __future__ import annotations

__version__ = "0.1.0"

from .config import DataConfig, TrainConfig
from .data import DatasetSplits, ImageDataset, load_data
from .errors import DataDietError
from .models import build_model
from .scores import (ScoreTable, el2n, forgetting, grand, input_norm, load_scores, random_score, save_scores,
                     score1, score2, score3)
from .selection import select, select_random
from .training import TrainResult, train

__all__ = ["DataConfig", "DataDietError", "DatasetSplits", "ImageDataset", "ScoreTable", "TrainConfig",
           "TrainResult", "__version__", "build_model", "el2n", "forgetting", "grand", "input_norm", "load_data",
           "load_scores", "random_score", "save_scores", "score1", "score2", "score3", "select",
           "select_random", "train"]
