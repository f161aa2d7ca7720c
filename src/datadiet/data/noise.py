"""Label noise as in Data Diet (App. F): permute the labels of a random fraction among themselves.

Permuting (rather than redrawing) keeps the overall label histogram fixed.
Some chosen examples keep their label by chance (the permutation can map an
example to one of the same class), so we record both the chosen ids and the
ids whose label actually changed.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import ConfigError
from .dataset import ImageDataset


@dataclass(frozen=True)
class LabelNoise:
    """What :func:`permute_labels` did.

    Attributes:
        chosen_ids: ids of the examples whose labels were permuted, sorted.
        changed_ids: the subset of ``chosen_ids`` whose label differs from the original.
        original_labels: labels of ``chosen_ids`` before the permutation.
    """

    chosen_ids: torch.Tensor
    changed_ids: torch.Tensor
    original_labels: torch.Tensor

    def as_dict(self) -> dict:
        return {"chosen_ids": self.chosen_ids.tolist(), "changed_ids": self.changed_ids.tolist(),
                "original_labels": self.original_labels.tolist()}


def permute_labels(dataset: ImageDataset, fraction: float, *, seed: int) -> tuple[ImageDataset, LabelNoise]:
    """Return a copy of ``dataset`` with the labels of ``round(fraction·N)`` random examples permuted."""
    if not 0.0 <= fraction <= 1.0:
        raise ConfigError(f"Label-noise fraction must lie in [0, 1], got {fraction}.")
    gen = torch.Generator().manual_seed(seed)
    n_chosen = round(fraction * len(dataset))
    positions = torch.sort(torch.randperm(len(dataset), generator=gen)[:n_chosen]).values
    shuffled = positions[torch.randperm(n_chosen, generator=gen)]
    labels = dataset.labels.clone()
    labels[positions] = dataset.labels[shuffled]
    changed = positions[labels[positions] != dataset.labels[positions]]
    record = LabelNoise(chosen_ids=dataset.ids[positions], changed_ids=dataset.ids[changed],
                        original_labels=dataset.labels[positions])
    noisy = dataset.with_labels(labels, label_noise={"fraction": fraction, "seed": seed,
                                                     "n_chosen": n_chosen, "n_changed": len(changed)})
    return noisy, record
