"""Deterministic subsets that keep example ids: the first n, or a seeded class-balanced n."""
from __future__ import annotations

import torch

from ..errors import ConfigError
from .dataset import ImageDataset

SUBSET_MODES = ("first", "balanced")


def first_n(dataset: ImageDataset, n: int) -> ImageDataset:
    """The first ``n`` examples in the dataset's order."""
    _check_size(dataset, n)
    return dataset.take(torch.arange(n))


def balanced_n(dataset: ImageDataset, n: int, *, seed: int) -> ImageDataset:
    """``n`` examples drawn without replacement, as equal per class as the classes allow.

    Each class gets ``n // C`` examples; the remainder goes one each to the
    classes with the most examples left, ties broken by class index.  A class
    with too few examples gives all it has and its shortfall is spread over
    the others.  The result keeps the dataset's order (sorted by position).
    """
    _check_size(dataset, n)
    gen = torch.Generator().manual_seed(seed)
    by_class = [torch.nonzero(dataset.labels == c).flatten() for c in range(dataset.num_classes)]
    quotas = _balanced_quotas([len(ix) for ix in by_class], n)
    picked = [ix[torch.randperm(len(ix), generator=gen)[:q]] for ix, q in zip(by_class, quotas)]
    return dataset.take(torch.sort(torch.cat(picked)).values)


def make_subset(dataset: ImageDataset, n: int | None, *, mode: str = "first", seed: int = 0) -> ImageDataset:
    if n is None or n == len(dataset):
        return dataset
    if mode == "first":
        return first_n(dataset, n)
    if mode == "balanced":
        return balanced_n(dataset, n, seed=seed)
    raise ConfigError(f"Unknown subset mode {mode!r}; use one of {SUBSET_MODES}.")


def _balanced_quotas(sizes: list[int], n: int) -> list[int]:
    quotas = [0] * len(sizes)
    remaining = n
    while remaining > 0:
        open_classes = [c for c, s in enumerate(sizes) if quotas[c] < s]
        share, extra = divmod(remaining, len(open_classes))
        # Hand out the remainder to the classes with the most room left (stable by index).
        by_room = sorted(open_classes, key=lambda c: -(sizes[c] - quotas[c]))
        for rank, c in enumerate(by_room):
            give = min(share + (1 if rank < extra else 0), sizes[c] - quotas[c])
            quotas[c] += give
            remaining -= give
    return quotas


def _check_size(dataset: ImageDataset, n: int) -> None:
    if not 0 < n <= len(dataset):
        raise ConfigError(
            f"Subset size {n} is out of range for {dataset.name}/{dataset.split}, which has "
            f"{len(dataset)} examples; choose 1..{len(dataset)}."
        )
