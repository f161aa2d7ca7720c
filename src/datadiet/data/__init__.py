"""Datasets: loading in official order, subsets, label noise, augmentation; data brought by the user
(``folder:PATH``, ``arrays:PATH``, :class:`Dataset`)."""
from __future__ import annotations

from dataclasses import replace

from ..config import DataConfig
from ..errors import ConfigError
from .dataset import DatasetSplits, ImageDataset, channel_stats, feature_stats, make_splits
from .noise import LabelNoise, permute_labels
from .registry import DATASETS, load_splits, locate, parse_source
from .sources import Dataset, list_folder, prepare_inputs, save_arrays
from .subset import balanced_n, first_n, hold_out, long_tail_n, long_tail_quotas, make_subset


def load_data(config: DataConfig) -> DatasetSplits:
    """Load ``config.dataset`` and apply the subset, long-tailed profile, label noise and held-out part it asks for
    (in that order; the test split is never made long-tailed, so every class is measured alike; with ``holdout`` the
    held-out training examples replace it, for choices that must not see the test split).

    Normalization statistics always come from the full, clean training split,
    so a subset or noisy copy is preprocessed exactly like the full data.

    Data brought by the user (``folder:``, ``arrays:``) that is sorted by class (an image folder's canonical
    order always is) has its first n examples in the first classes only, so there ``--subset-mode first`` is
    refused and ``--test-subset`` takes a class-balanced n (seed 0) instead of the first n.  Registered datasets
    keep the first n whatever their order, as their earlier results did.
    """
    splits = load_splits(config.dataset, config.data_root, resize=config.resize, channels=config.channels,
                         test_fraction=config.test_fraction, split_seed=config.split_seed)
    own = parse_source(config.dataset) is not None
    if own and config.subset is not None and config.subset_mode == "first" and config.subset != len(splits.train) \
            and sorted_by_class(splits.train):
        raise ConfigError(
            f"--subset {config.subset} with --subset-mode first would keep the first {config.subset} examples of "
            f"{config.dataset}, whose training split is sorted by class: only its first classes. Use "
            "--subset-mode balanced (a seeded, class-balanced subset; subset_mode='balanced' in Python).")
    train = make_subset(splits.train, config.subset, mode=config.subset_mode, seed=config.subset_seed)
    if config.long_tail is not None:  # after the subset, before the noise: noise then falls on the long-tailed copy
        train = long_tail_n(train, config.long_tail, seed=config.subset_seed)
    test_mode = "balanced" if own and sorted_by_class(splits.test) else "first"
    test = make_subset(splits.test, config.test_subset, mode=test_mode, seed=0)
    if config.label_noise > 0:
        train, _ = permute_labels(train, config.label_noise, seed=config.noise_seed)
    if config.holdout is not None:  # last: the held-out part is measured on the labels it was given, noisy ones too
        train, test = hold_out(train, config.holdout, seed=config.subset_seed)
    return replace(splits, train=train, test=test)


def sorted_by_class(dataset: ImageDataset) -> bool:
    """Whether the labels never decrease along the dataset's order and it holds more than one class."""
    labels = dataset.labels
    return len(labels) > 1 and bool((labels[1:] >= labels[:-1]).all()) and bool((labels != labels[0]).any())


__all__ = [
    "DATASETS", "Dataset", "DatasetSplits", "ImageDataset", "LabelNoise", "balanced_n", "channel_stats",
    "feature_stats", "first_n", "hold_out", "list_folder", "load_data", "load_splits", "locate", "long_tail_n",
    "long_tail_quotas", "make_splits", "make_subset", "parse_source", "permute_labels", "prepare_inputs",
    "save_arrays", "sorted_by_class",
]
