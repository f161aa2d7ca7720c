"""Subset selection from scores, exactly as Data Diet B.3 prescribes.

1. sort examples ascending by score (ties broken by example id, so the result is deterministic);
2. drop the lowest ``offset`` fraction;
3. keep the next ``keep`` fraction;
4. drop the rest.

``offset = 1 − keep`` (the default) keeps the highest scores; ``order="lowest"`` keeps the lowest.
Class-balanced selection applies the same rule inside every class, keeping a ``keep`` fraction of
each class (largest-remainder rounding makes the total exact for unequal class sizes).
Every selector returns example ids sorted ascending: indices in the dataset's canonical order.
"""
from __future__ import annotations

import math
from numbers import Real

import numpy as np

from .errors import ConfigError

ORDERS = ("highest", "lowest")
_EPS = 1e-9  # fractions such as 0.3 + 0.7 are compared with this slack


class SelectionError(ConfigError):
    """The scores cannot be ranked: some are NaN or infinite."""


def select(scores, *, keep: float, offset: float | None = None, order: str = "highest", ids=None,
           labels=None, class_balanced: bool = False, num_classes: int | None = None) -> np.ndarray:
    """Ids of the examples kept by the offset-window rule.

    Args:
        scores: ``[N]`` scores (higher = harder / more important), or a ``ScoreTable`` (its mean).
        keep: fraction of examples to keep, in (0, 1].
        offset: fraction of lowest-scoring examples dropped first; default ``1 − keep`` (keep the highest).
        order: ``"highest"`` (default) or ``"lowest"`` (``offset = 0``); ignored when ``offset`` is given.
        ids: ``[N]`` example ids (default ``0..N−1``, or the table's ids).
        labels: ``[N]`` class labels; needed for ``class_balanced``.
        class_balanced: apply the window inside each class.
        num_classes: with ``class_balanced``, the number of classes expected (an empty class is an error).
    Returns:
        int64 ids of the kept examples, sorted ascending.
    """
    values, ids = _scores_and_ids(scores, ids)
    offset = _resolve_offset(keep, offset, order)
    if not class_balanced:
        return np.sort(ids[_window(values, ids, keep, offset, _count(keep, len(values)))])
    if labels is None:
        raise ConfigError("Class-balanced selection needs the labels of the scored examples.")
    labels = np.asarray(labels)
    if labels.shape != values.shape:
        raise ConfigError(f"{len(labels)} labels for {len(values)} scores; they must match one to one.")
    classes = np.arange(num_classes) if num_classes is not None else np.unique(labels)
    members = [np.flatnonzero(labels == c) for c in classes]
    empty = [int(c) for c, m in zip(classes, members) if len(m) == 0]
    if empty:
        raise ConfigError(f"Class-balanced selection: classes {empty} have no examples among the scored ones; "
                          "score the full dataset or select without --class-balanced.")
    quotas = _apportion([len(m) for m in members], _count(keep, len(values)))
    kept = [m[_window(values[m], ids[m], keep, offset, q)] for m, q in zip(members, quotas)]
    return np.sort(ids[np.concatenate(kept)])


def select_random(ids, *, keep: float, seed: int, labels=None, class_balanced: bool = False) -> np.ndarray:
    """A seeded random ``keep`` fraction of ``ids`` (optionally class-balanced), sorted ascending."""
    ids = np.asarray(ids, dtype=np.int64)
    scores = np.random.default_rng(seed).permutation(len(ids)).astype(np.float64)
    return select(scores, keep=keep, ids=ids, labels=labels, class_balanced=class_balanced)


def rank_order(values, ids=None) -> np.ndarray:
    """Positions that sort ``values`` ascending, ties broken by ascending id (default: position).

    The one ranking of datadiet: selection, top-k counts, example grids and binned tables all use it, so two
    examples with equal scores are always ordered the same way.
    """
    values = np.asarray(values, dtype=np.float64)
    ids = np.arange(len(values)) if ids is None else np.asarray(ids)
    return np.lexsort((ids, values))


def offset_windows(keep: float, offsets) -> list[float]:
    """The offsets whose B.3 window [offset, offset + keep) lies inside the ranking, in the order given."""
    return [float(o) for o in offsets if 0 <= o and o + keep <= 1 + _EPS]


def is_top_window(keep: float, offset: float) -> bool:
    """True when the window [offset, offset + keep) is the keep-highest window (offset = 1 − keep)."""
    return abs(offset - (1 - keep)) <= _EPS


def _window(values: np.ndarray, ids: np.ndarray, keep: float, offset: float, n_keep: int) -> np.ndarray:
    """Positions of the examples in the window [offset, offset + keep) of the ascending order."""
    n = len(values)
    order = rank_order(values, ids)
    start = min(int(math.floor(offset * n + _EPS)), n - n_keep)
    if offset + keep >= 1 - _EPS:  # "keep the highest": anchor the window at the top, whatever the rounding
        start = n - n_keep
    return order[start:start + n_keep]


def _count(keep: float, n: int) -> int:
    count = int(round(keep * n))
    if count < 1:
        raise ConfigError(f"--keep: keeping {keep} of {n} examples keeps none; raise --keep to at least "
                          f"{1 / n:.3g}.")
    return count


def _apportion(sizes: list[int], total: int) -> list[int]:
    """Split ``total`` over groups proportionally to ``sizes`` (largest remainder, ties by group index)."""
    exact = [total * s / sum(sizes) for s in sizes]
    quotas = [int(math.floor(e)) for e in exact]
    by_remainder = sorted(range(len(sizes)), key=lambda i: (-(exact[i] - quotas[i]), i))
    for i in by_remainder[:total - sum(quotas)]:
        quotas[i] += 1
    return [min(q, s) for q, s in zip(quotas, sizes)]


def _resolve_offset(keep: float, offset: float | None, order: str) -> float:
    if isinstance(keep, bool) or not (isinstance(keep, Real) and 0 < keep <= 1):
        raise ConfigError(f"--keep: keep must be a fraction in (0, 1], got {keep}; e.g. --keep 0.5 keeps half "
                          "of the examples.")
    if offset is None:
        if order not in ORDERS:
            raise ConfigError(f"--order: order must be one of {ORDERS}, got {order!r}.")
        return 1.0 - keep if order == "highest" else 0.0
    if isinstance(offset, bool) or not (isinstance(offset, Real) and 0 <= offset < 1):
        raise ConfigError(f"--offset: offset must be a fraction in [0, 1), got {offset}; it is the fraction of "
                          "lowest-scoring examples dropped before the kept window.")
    if offset + keep > 1 + _EPS:
        raise ConfigError(f"offset {offset} + keep {keep} = {offset + keep:g} > 1: the window runs past the "
                          f"highest score. Lower --offset (at most {1 - keep:g} with --keep {keep}) or --keep.")
    return offset


def _scores_and_ids(scores, ids) -> tuple[np.ndarray, np.ndarray]:
    if hasattr(scores, "runs") and hasattr(scores, "ids"):  # a ScoreTable
        ids = scores.ids if ids is None else ids
        scores = scores.mean
    values = np.asarray(scores, dtype=np.float64)
    if values.ndim != 1 or len(values) == 0:
        raise ConfigError(f"Scores must be a non-empty 1-D array, got shape {values.shape}.")
    ids = np.arange(len(values), dtype=np.int64) if ids is None else np.asarray(ids, dtype=np.int64)
    if ids.shape != values.shape:
        raise ConfigError(f"{len(ids)} ids for {len(values)} scores; they must match one to one.")
    bad = ~np.isfinite(values)
    if bad.any():
        kinds = [name for name, hit in (("NaN", np.isnan(values)), ("+inf", values == np.inf),
                                        ("-inf", values == -np.inf)) if hit.any()]
        first = ids[bad][:5].tolist()
        raise SelectionError(
            f"{int(bad.sum())} of {len(values)} scores are not finite ({', '.join(kinds)}; first ids: "
            f"{', '.join(map(str, first))}{', ...' if bad.sum() > 5 else ''}). A non-finite score has no place in "
            "the ranking; the scoring run diverged. Recompute the scores (lower the learning rate if training "
            "diverged) before selecting.")
    return values, ids
