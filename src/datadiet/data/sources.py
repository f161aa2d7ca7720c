"""Bring your own data, from Python: :class:`Dataset`.

Every constructor returns :class:`~datadiet.data.dataset.DatasetSplits` in canonical order, with ids,
fingerprints, class names and normalization statistics of the training split, exactly like a registered
dataset, so :func:`datadiet.train`, the score functions and :func:`datadiet.select` take it as it is.

Commands, studies and ``reproduce`` take a :class:`~datadiet.config.DataConfig` instead, because worker
processes load the data again from its name.  Name your data there as ``folder:PATH`` or ``arrays:PATH``;
tensors in memory are first written with :func:`save_arrays`::

    save_arrays("mydata.npz", x_train, y_train, x_test, y_test, classes=["cat", "dog"])
    DataConfig(dataset="arrays:mydata.npz")
"""
from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np
import torch

from ..errors import ConfigError
from .arrays import load_arrays, save_arrays, splits_from_arrays
from .dataset import DatasetSplits, ImageDataset
from .folder import list_folder, load_folder
from .transforms import Normalizer


class Dataset:
    """Constructors for data brought by the user (not instantiated: every method returns ``DatasetSplits``)."""

    def __init__(self) -> None:
        raise TypeError("Dataset is a namespace of constructors: use Dataset.from_tensors, Dataset.from_folder "
                        "or Dataset.from_arrays, which return DatasetSplits.")

    @classmethod
    def from_tensors(cls, x_train: Any, y_train: Any, x_test: Any, y_test: Any, *,
                     classes: Sequence[str] | None = None, ids_train: Any = None, name: str = "tensors"
                     ) -> DatasetSplits:
        """Splits from arrays or tensors in memory (copied): uint8 images (NCHW, NHWC or ``[N, H, W]``) or
        float features ``[N, D]``, integer labels, optional class names and training ids.  The rules are those
        of :mod:`datadiet.data.arrays`."""
        return splits_from_arrays(x_train, y_train, x_test, y_test, classes=classes, ids_train=ids_train,
                                  name=name)

    @classmethod
    def from_folder(cls, path: str | os.PathLike, *, resize: tuple[int, int] | None = None,
                    channels: int | None = None, test_fraction: float = 0.2, seed: int = 0) -> DatasetSplits:
        """Splits from an image folder (``PATH/<class>/*.png`` or ``PATH/train|test/<class>/...``), named
        ``folder:PATH``; the same data as ``DataConfig(dataset="folder:PATH", resize=..., channels=...,
        test_fraction=..., split_seed=seed)``.  See :mod:`datadiet.data.folder`."""
        return load_folder(path, name=f"folder:{os.fspath(path)}", resize=resize, channels=channels,
                           test_fraction=test_fraction, seed=seed)

    @classmethod
    def from_arrays(cls, path: str | os.PathLike) -> DatasetSplits:
        """Splits from a ``.npz`` file or a folder of ``.npy`` files, named ``arrays:PATH``; the same data as
        ``DataConfig(dataset="arrays:PATH")``.  See :mod:`datadiet.data.arrays`."""
        return load_arrays(path, name=f"arrays:{os.fspath(path)}")


def prepare_inputs(splits: DatasetSplits, images: Any = None, *, device: torch.device | str = "cpu"
                   ) -> torch.Tensor:
    """Model inputs exactly as training and scoring make them: float32, normalized with the statistics of
    ``splits``'s full training split (per channel of pixels in [0, 1], or per feature dimension), never augmented.

    ``images``: ``None`` (the training split), a split (``splits.test``, a subset made with ``take``), or uint8
    images ``[N, C, H, W]`` / float features ``[N, D]`` as a tensor or numpy array.  So
    ``datadiet.grand(model, prepare_inputs(splits), splits.train.labels)`` scores what ``datadiet score``
    scores.
    """
    if not isinstance(splits, DatasetSplits):
        raise ConfigError(f"prepare_inputs takes the DatasetSplits that hold the training statistics (from "
                          f"load_data or Dataset.from_...), got {type(splits).__name__}; pass a split or images "
                          "as the second argument.")
    if images is None:
        images = splits.train.images
    elif isinstance(images, ImageDataset):
        images = images.images
    elif isinstance(images, np.ndarray):
        images = torch.from_numpy(images)
    if not isinstance(images, torch.Tensor):
        raise ConfigError(f"prepare_inputs: images must be a split, a tensor or a numpy array, got "
                          f"{type(images).__name__}.")
    features = splits.train.is_features
    right_dtype = images.is_floating_point() if features else images.dtype == torch.uint8
    if not right_dtype or tuple(images.shape[1:]) != splits.train.shape:
        raise ConfigError(f"prepare_inputs: {splits.name} holds {splits.train.kind} of shape "
                          f"{list(splits.train.shape)} ({'float' if features else 'uint8'}); got {images.dtype} "
                          f"with shape {list(images.shape)}. Pass raw examples in the dataset's own form.")
    return Normalizer(splits.mean, splits.std, device)(images.to(device))


__all__ = ["Dataset", "list_folder", "prepare_inputs", "save_arrays"]
