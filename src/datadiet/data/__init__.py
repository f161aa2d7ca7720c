"""Datasets: loading in official order, subsets, label noise, augmentation."""
from __future__ import annotations

from dataclasses import replace

from ..config import DataConfig
from .dataset import DatasetSplits, ImageDataset, channel_stats, make_splits
from .noise import LabelNoise, permute_labels
from .registry import DATASETS, load_splits, locate
from .subset import balanced_n, first_n, make_subset


def load_data(config: DataConfig) -> DatasetSplits:
    """Load ``config.dataset`` and apply the subset and label noise it asks for.

    Normalization statistics always come from the full, clean training split,
    so a subset or noisy copy is preprocessed exactly like the full data.
    """
    splits = load_splits(config.dataset, config.data_root)
    train = make_subset(splits.train, config.subset, mode=config.subset_mode, seed=config.subset_seed)
    test = make_subset(splits.test, config.test_subset, mode="first")
    if config.label_noise > 0:
        train, _ = permute_labels(train, config.label_noise, seed=config.noise_seed)
    return replace(splits, train=train, test=test)


__all__ = [
    "DATASETS", "DatasetSplits", "ImageDataset", "LabelNoise", "balanced_n", "channel_stats", "first_n",
    "load_data", "load_splits", "locate", "make_splits", "make_subset", "permute_labels",
]
