"""In-memory image datasets with stable example ids and a content fingerprint.

An :class:`ImageDataset` holds one split as uint8 images ``[N, C, H, W]`` (or,
for data brought as feature vectors, float32 features ``[N, D]``: see
:attr:`ImageDataset.is_features`), int64 labels ``[N]`` and int64 ids ``[N]``.  Ids are indices into the
dataset's *official* order (the order of the files as published), so a
subset, a shuffled copy or a noisy-label copy still names every example by the
same number.  The fingerprint hashes pixels, labels and ids: two datasets with
the same fingerprint hold the same examples in the same order.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np
import torch

from ..errors import CorruptDataError


@dataclass(frozen=True, eq=False)
class ImageDataset:
    """One split of an image classification dataset, held in memory.

    Attributes:
        name: registry name, e.g. ``"fashion-mnist"``.
        split: ``"train"`` or ``"test"``.
        images: uint8 tensor ``[N, C, H, W]``, or float32 features ``[N, D]`` (finite values; never augmented,
            normalized per dimension).
        labels: int64 tensor ``[N]`` with values in ``[0, num_classes)``.
        ids: int64 tensor ``[N]``: position of each example in the official order (or, for arrays brought with
            their own ``ids_train``, the user's unique ids).
        classes: class names; ``len(classes)`` is the number of classes.
        notes: provenance that does not identify the data (label noise, where a folder's cache lies, ...).
        files: for an image folder, each example's file, relative to the folder (POSIX), row for row:
            ``files[i]`` is the file of ``ids[i]``; ``None`` for every other source.
    """

    name: str
    split: str
    images: torch.Tensor
    labels: torch.Tensor
    ids: torch.Tensor
    classes: tuple[str, ...]
    notes: dict = field(default_factory=dict, compare=False)
    files: tuple[str, ...] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        _check_arrays(self.images, self.labels, self.ids, len(self.classes), self.name)
        if self.files is not None and len(self.files) != len(self.labels):
            raise CorruptDataError(f"{self.name}: {len(self.files)} file names for {len(self.labels)} examples.")

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def shape(self) -> tuple[int, ...]:
        """Per-example shape: ``(C, H, W)`` for images, ``(D,)`` for features."""
        return tuple(self.images.shape[1:])

    @property
    def is_features(self) -> bool:
        """True when the examples are float feature vectors ``[N, D]`` rather than uint8 images."""
        return self.images.ndim == 2

    @property
    def kind(self) -> str:
        """``"images"`` or ``"features"``."""
        return "features" if self.is_features else "images"

    @cached_property
    def fingerprint(self) -> str:
        """SHA-256 (hex, first 16 bytes) of shape, pixels (or feature bytes), labels and ids."""
        h = hashlib.sha256()
        h.update(repr(tuple(self.images.shape)).encode())
        h.update(_contiguous_bytes(self.images))
        h.update(_contiguous_bytes(self.labels))
        h.update(_contiguous_bytes(self.ids))
        return h.hexdigest()[:32]

    def take(self, positions: torch.Tensor | np.ndarray | list[int]) -> "ImageDataset":
        """The examples at ``positions`` (row positions, not ids), ids preserved."""
        pos = torch.as_tensor(positions, dtype=torch.long)
        files = None if self.files is None else tuple(self.files[i] for i in pos.tolist())
        return replace(self, images=self.images[pos], labels=self.labels[pos], ids=self.ids[pos], files=files)

    def with_labels(self, labels: torch.Tensor, **notes) -> "ImageDataset":
        """A copy with new labels (e.g. after label noise); ``notes`` are kept for provenance."""
        return replace(self, labels=labels.to(torch.long), notes={**self.notes, **notes})

    def positions_of(self, ids: torch.Tensor | np.ndarray | list[int]) -> torch.Tensor:
        """Row positions of the given example ids; raises if an id is absent."""
        want = torch.as_tensor(ids, dtype=torch.long)
        order = torch.argsort(self.ids)
        sorted_ids = self.ids[order]
        where = torch.searchsorted(sorted_ids, want).clamp(max=len(self) - 1)
        found = sorted_ids[where] == want
        if not bool(found.all()):
            missing = want[~found][:5].tolist()
            raise CorruptDataError(
                f"{len(want) - int(found.sum())} example ids are not in {self.name}/{self.split} "
                f"(first: {missing}). The ids were made for a different dataset or subset; "
                "recompute them against this dataset."
            )
        return order[where]

    def describe(self) -> dict:
        """Provenance record stored with every result."""
        return {
            "name": self.name,
            "split": self.split,
            "size": len(self),
            "shape": list(self.shape),
            "num_classes": self.num_classes,
            "fingerprint": self.fingerprint,
        }


@dataclass(frozen=True, eq=False)
class DatasetSplits:
    """Train and test splits plus the normalization statistics of the train split.

    For images ``mean``/``std`` hold one value per channel, of pixels scaled to [0, 1]; for features one value
    per dimension, in the features' own units (see :func:`feature_stats`).
    """

    train: ImageDataset
    test: ImageDataset
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def name(self) -> str:
        return self.train.name

    @property
    def user_data(self) -> bool:
        """Whether the user brought this data (folder:, arrays:, tensors) rather than a registered dataset: its
        images may be digits, text or scans, which a mirror image changes, so it is not flipped by default."""
        return "source" in self.train.notes


def channel_stats(images: torch.Tensor, chunk: int = 8192) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and standard deviation of uint8 images scaled to [0, 1].

    Computed in float64 over chunks so that memory stays bounded and the result
    does not depend on the chunk size beyond rounding.
    """
    n, c = images.shape[:2]
    total = torch.zeros(c, dtype=torch.float64)
    total_sq = torch.zeros(c, dtype=torch.float64)
    for start in range(0, n, chunk):
        x = images[start:start + chunk].to(torch.float64) / 255.0
        total += x.sum(dim=(0, 2, 3))
        total_sq += (x * x).sum(dim=(0, 2, 3))
    count = n * images.shape[2] * images.shape[3]
    mean = total / count
    std = (total_sq / count - mean * mean).clamp_min(1e-12).sqrt()
    return tuple(mean.tolist()), tuple(std.tolist())


def feature_stats(features: torch.Tensor, chunk: int = 8192) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-dimension mean and standard deviation of float features ``[N, D]``, in float64 over chunks.

    Two passes (mean, then squared deviations), so a constant dimension has a standard deviation of exactly
    0; such a dimension gets std 1 (it is only centred, never divided by zero).
    """
    n, d = features.shape
    total = torch.zeros(d, dtype=torch.float64)
    for start in range(0, n, chunk):
        total += features[start:start + chunk].to(torch.float64).sum(0)
    mean = total / max(n, 1)
    sq = torch.zeros(d, dtype=torch.float64)
    for start in range(0, n, chunk):
        sq += (features[start:start + chunk].to(torch.float64) - mean).pow(2).sum(0)
    std = (sq / max(n, 1)).sqrt()
    std = torch.where(std > 0, std, torch.ones_like(std))
    return tuple(mean.tolist()), tuple(std.tolist())


def make_splits(train: ImageDataset, test: ImageDataset) -> DatasetSplits:
    """Bundle splits with normalization statistics computed on ``train`` only (per channel for images, per
    dimension for features)."""
    if train.shape != test.shape or train.classes != test.classes:
        raise CorruptDataError(
            f"{train.name}: train {train.kind} {train.shape} / {len(train.classes)} classes do not match "
            f"test {test.kind} {test.shape} / {len(test.classes)} classes. The files come from different datasets."
        )
    mean, std = feature_stats(train.images) if train.is_features else channel_stats(train.images)
    return DatasetSplits(train=train, test=test, mean=mean, std=std)


def _contiguous_bytes(t: torch.Tensor) -> bytes:
    return t.detach().cpu().contiguous().numpy().tobytes()


def _check_arrays(images: torch.Tensor, labels: torch.Tensor, ids: torch.Tensor, num_classes: int, name: str) -> None:
    if not ((images.dtype == torch.uint8 and images.ndim == 4) or (images.dtype == torch.float32 and images.ndim == 2)):
        raise CorruptDataError(f"{name}: images must be uint8 [N, C, H, W] (or features float32 [N, D]), got "
                               f"{images.dtype} {tuple(images.shape)}.")
    n = images.shape[0]
    if labels.shape != (n,) or ids.shape != (n,):
        raise CorruptDataError(
            f"{name}: {n} images but {tuple(labels.shape)} labels and {tuple(ids.shape)} ids; "
            "the image and label files do not belong together."
        )
    if labels.dtype != torch.long or ids.dtype != torch.long:
        raise CorruptDataError(f"{name}: labels and ids must be int64, got {labels.dtype} and {ids.dtype}.")
    if n and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise CorruptDataError(
            f"{name}: labels must lie in [0, {num_classes}), found [{int(labels.min())}, {int(labels.max())}]. "
            "The label file is corrupt or belongs to another dataset."
        )
