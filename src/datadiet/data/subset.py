"""Deterministic subsets that keep example ids: the first n, a seeded class-balanced n, a seeded long-tailed copy,
or a seeded, stratified held-out part."""
from __future__ import annotations

from dataclasses import replace

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


def long_tail_quotas(sizes: list[int], ratio: float) -> list[int]:
    """Per class, how many examples a long-tailed copy keeps: a geometric profile by class index, class c keeping
    the fraction ``ratio ** (-c / (C - 1))`` of its examples (class 0 all of them, the last class ``1 / ratio``),
    rounded half to even and at least one.  On equal class sizes the largest over the smallest kept count is then
    ``ratio`` up to rounding (Cui et al. 2019's exponential profile; Cao et al. 2019 use it for CIFAR-LT)."""
    last = max(len(sizes) - 1, 1)
    return [min(s, max(1, round(s * ratio ** (-c / last)))) if s else 0 for c, s in enumerate(sizes)]


def long_tail_n(dataset: ImageDataset, ratio: float, *, seed: int) -> ImageDataset:
    """A seeded long-tailed copy of ``dataset``: class c keeps :func:`long_tail_quotas` examples, drawn without
    replacement (seed ``seed``), in the dataset's order, ids unchanged.  Class order is the class index, so the
    first class stays whole and the last is the rarest (documented, not drawn: every run agrees on it)."""
    if not ratio > 1:
        raise ConfigError(f"A long-tailed profile needs a largest/smallest class ratio above 1, got {ratio}.")
    gen = torch.Generator().manual_seed(seed)
    by_class = [torch.nonzero(dataset.labels == c).flatten() for c in range(dataset.num_classes)]
    quotas = long_tail_quotas([len(ix) for ix in by_class], ratio)
    picked = [ix[torch.randperm(len(ix), generator=gen)[:q]] for ix, q in zip(by_class, quotas)]
    return dataset.take(torch.sort(torch.cat(picked)).values)


def hold_out(dataset: ImageDataset, fraction: float, *, seed: int) -> tuple[ImageDataset, ImageDataset]:
    """Split ``dataset`` into (rest, held out): every class gives ``round(fraction · n_c)`` of its examples (at least
    one where it has two or more, so that every class is measured), drawn without replacement (seed ``seed``); both
    parts keep the dataset's order and ids."""
    if not 0 < fraction < 1:
        raise ConfigError(f"The held-out fraction must lie strictly between 0 and 1, got {fraction}.")
    gen = torch.Generator().manual_seed(seed)
    held = []
    for c in range(dataset.num_classes):
        ix = torch.nonzero(dataset.labels == c).flatten()
        q = min(len(ix) - 1, max(1, round(fraction * len(ix)))) if len(ix) > 1 else 0
        held.append(ix[torch.randperm(len(ix), generator=gen)[:q]])
    mask = torch.zeros(len(dataset), dtype=torch.bool)
    mask[torch.cat(held)] = True
    rest, out = dataset.take(torch.nonzero(~mask).flatten()), dataset.take(torch.nonzero(mask).flatten())
    return rest, replace(out, split="holdout")


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
