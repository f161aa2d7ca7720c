"""datadiet: score-based data pruning, as in *Deep Learning on a Data Diet* and its reproduction.

The pipeline mirrors the package layout: ``data`` → ``models`` → ``train`` →
scores → selection → experiments → report.
"""
from __future__ import annotations

__version__ = "0.1.0"

from .config import DataConfig, TrainConfig
from .data import DatasetSplits, ImageDataset, load_data
from .errors import DataDietError
from .models import build_model
from .train import TrainResult, train

__all__ = ["DataConfig", "DataDietError", "DatasetSplits", "ImageDataset", "TrainConfig", "TrainResult",
           "__version__", "build_model", "load_data", "train"]
