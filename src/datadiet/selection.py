"""Subset selection from scores, exactly as Data Diet B.3 prescribes.

1. sort examples ascending by score (ties broken by example id, so the result is deterministic);
2. drop the lowest ``offset`` fraction;
3. keep the next ``keep`` fraction;
4. drop the rest.

``offset = 1 − keep`` (the default) keeps the highest scores; ``order="lowest"`` keeps the lowest.
Class-balanced selection applies the same rule inside every class, keeping a ``keep`` fraction of
each class (largest-remainder rounding makes the total exact for unequal class sizes).
Every selector returns example ids sorted ascending: indices in the dataset's canonical order.

Two other rules share the same inputs and the same class balance (``select(..., rule=...)``):

- ``"ccs"``: coverage-centric stratified sampling (Zheng et al., ICLR 2023). Drop the hardest ``beta``
  fraction, split the remaining score range into ``bins`` equal-width bins, share the budget out starting
  with the smallest bins (none gets more than an equal share of what is left), and sample each bin uniformly
  at random (seeded).
- ``"moderate"``: keep the examples whose score is closest to the median score (Xia et al., ICLR 2023).
"""
from __future__ import annotations

import math
from numbers import Integral, Real

import numpy as np

from .errors import ConfigError

ORDERS = ("highest", "lowest")
RULES = ("window", "ccs", "moderate")
_DEFAULT_BINS = 50  # CCS's number of strata
_EPS = 1e-9  # fractions such as 0.3 + 0.7 are compared with this slack


class SelectionError(ConfigError):
    """The scores cannot be ranked: some are NaN or infinite."""


def select(scores, *, keep: float, offset: float | None = None, order: str = "highest", ids=None,
           labels=None, class_balanced: bool = False, num_classes: int | None = None, rule: str = "window",
           beta: float | None = None, bins: int = _DEFAULT_BINS, seed: int = 0) -> np.ndarray:
    """Ids of the examples kept by ``rule`` (default: the offset-window rule).

    Args:
        scores: ``[N]`` scores (higher = harder / more important), or a ``ScoreTable`` (its mean).
        keep: fraction of examples to keep, in (0, 1].
        offset: window rule only: fraction of lowest-scoring examples dropped first; default ``1 − keep``.
        order: window rule only: ``"highest"`` (default) or ``"lowest"`` (``offset = 0``); ignored when
            ``offset`` is given.
        ids: ``[N]`` example ids (default ``0..N−1``, or the table's ids).
        labels: ``[N]`` class labels; needed for ``class_balanced``.
        class_balanced: apply the rule inside each class, keeping each class's share of the budget.
        num_classes: with ``class_balanced``, the number of classes expected (an empty class is an error).
        rule: one of ``RULES``: ``"window"`` (Data Diet B.3), ``"ccs"`` or ``"moderate"``.
        beta: ccs only: fraction of the hardest examples dropped before sampling, in [0, 1);
            default ``default_ccs_beta(keep)``.
        bins: ccs only: number of equal-width score bins (strata), at least 1.
        seed: ccs only: seed of the sampling inside the bins (a non-negative integer).
    Returns:
        int64 ids of the kept examples, sorted ascending.
    """
    values, ids = _scores_and_ids(scores, ids)
    pick = _rule_positions(rule, keep, offset, order, beta, bins, seed)
    if not class_balanced:
        return np.sort(ids[pick(values, ids, _count(keep, len(values)), None)])
    members = _class_members(values, labels, num_classes)
    quotas = _apportion([len(m) for m in members], _count(keep, len(values)))
    kept = [m[pick(values[m], ids[m], q, i)] for i, (m, q) in enumerate(zip(members, quotas))]
    return np.sort(ids[np.concatenate(kept)])


def default_ccs_beta(keep: float) -> float:
    """The hard-cutoff fraction CCS drops when none is given: 0 for keep >= 0.5, 0.1 down to keep 0.2, else 0.3.

    Why these values: CCS tunes beta per pruning rate and finds that the hardest examples only hurt at high
    pruning rates (they are often mislabeled or atypical, and a small coreset cannot afford them). Its official
    code runs CIFAR-10 at 90% pruning (keep 0.1) with a cutoff of 0.3; at low pruning rates its cutoff is 0.
    The middle step (0.1 for keep in [0.2, 0.5)) interpolates between the two. It is a starting point to sweep,
    not a tuned value. Capped at ``1 − keep`` so that the budget always fits in what the cut leaves.
    """
    if keep >= 0.5 - _EPS:
        beta = 0.0
    elif keep >= 0.2 - _EPS:
        beta = 0.1
    else:
        beta = 0.3
    return min(beta, 1.0 - keep)


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


def _rule_positions(rule, keep, offset, order, beta, bins, seed):
    """Check the rule's options; return ``pick(values, ids, n_keep, group) -> positions`` for one group.

    ``group`` is ``None`` for the whole dataset, else the class index (it picks the class's random stream).
    """
    if rule not in RULES:
        raise ConfigError(f"--rule: rule must be one of {RULES}, got {rule!r}.")
    if rule == "window":
        _refuse_unused(rule, beta=(beta, None), bins=(bins, _DEFAULT_BINS), seed=(seed, 0))
        offset = _resolve_offset(keep, offset, order)
        return lambda values, ids, n_keep, group: _window(values, ids, keep, offset, n_keep)
    _check_keep(keep)
    _refuse_unused(rule, offset=(offset, None), order=(order, "highest"))
    if rule == "moderate":
        _refuse_unused(rule, beta=(beta, None), bins=(bins, _DEFAULT_BINS), seed=(seed, 0))
        return lambda values, ids, n_keep, group: _moderate_positions(values, ids, n_keep)
    beta = _check_ccs_options(keep, beta, bins, seed)

    def pick(values, ids, n_keep, group):
        rng = np.random.default_rng(seed if group is None else [seed, group])
        where = "" if group is None else f" of class index {group} (class-balanced)"
        return _ccs_positions(values, ids, n_keep, keep=keep, beta=beta, bins=bins, rng=rng, where=where)
    return pick


def _refuse_unused(rule: str, **options) -> None:
    """Refuse an option given a non-default value for a rule that has no use for it: it would be silently lost."""
    for name, (value, default) in options.items():
        if value is not default and value != default:
            raise ConfigError(f"--{name} {value} means nothing with --rule {rule}; drop it (it applies to the "
                              f"{'window' if name in ('offset', 'order') else 'ccs'} rule only).")


def _check_ccs_options(keep: float, beta, bins, seed) -> float:
    """Validate ``beta``, ``bins`` and ``seed`` for CCS; return beta (the default one when ``None``)."""
    if isinstance(bins, bool) or not isinstance(bins, Integral) or bins < 1:
        raise ConfigError(f"--bins: bins must be an integer >= 1, got {bins}; CCS uses {_DEFAULT_BINS}.")
    if isinstance(seed, bool) or not isinstance(seed, Integral) or seed < 0:
        raise ConfigError(f"--seed: seed must be a non-negative integer, got {seed}.")
    if beta is None:
        return default_ccs_beta(keep)
    if isinstance(beta, bool) or not (isinstance(beta, Real) and 0 <= beta < 1):
        raise ConfigError(f"--beta: beta must be a fraction in [0, 1), got {beta}; it is the fraction of "
                          "hardest (highest-scoring) examples dropped before sampling.")
    return float(beta)


def _ccs_positions(values, ids, n_keep: int, *, keep: float, beta: float, bins: int, rng,
                   where: str = "") -> np.ndarray:
    """Positions kept by CCS: drop the hardest ``beta`` fraction, then sample the score bins evenly."""
    n_cut = math.floor(beta * len(values) + _EPS)  # rounded down: never drop more than asked
    pool = rank_order(values, ids)[:len(values) - n_cut]  # the hardest are last, ties ranked by id
    if n_keep > len(pool):
        raise ConfigError(f"--keep {keep} with beta {beta:g}: {n_keep} of the {len(values)} examples{where} are "
                          f"to be kept but only {len(pool)} remain after dropping the hardest {n_cut}. Lower --beta "
                          f"(at most {1 - keep:g} with --keep {keep}) or --keep.")
    bin_of = _score_bins(values[pool], bins)
    budgets = _bin_budgets(np.bincount(bin_of, minlength=bins), n_keep)
    # Bins are drawn in bin order from one stream, members in id order: the result depends on (scores, ids,
    # seed) only, not on the order the examples come in.
    picked = [_sample(pool[bin_of == b], ids, int(budgets[b]), rng) for b in np.flatnonzero(budgets)]
    return np.concatenate(picked) if picked else np.empty(0, dtype=np.int64)


def _score_bins(values: np.ndarray, bins: int) -> np.ndarray:
    """Bin index of each value: ``bins`` equal-width bins ``[e_k, e_k+1)`` over [min, max], the max in the last."""
    low, high = values.min(), values.max()
    if high == low:  # one score for all: one bin holds them
        return np.zeros(len(values), dtype=np.int64)
    edges = np.linspace(low, high, bins + 1)
    return np.minimum(np.searchsorted(edges, values, side="right") - 1, bins - 1)


def _bin_budgets(sizes, budget: int) -> np.ndarray:
    """How many examples each bin gives: smallest bins first, each at most an equal share of what is left.

    Non-empty bins are visited by ascending size (ties by bin index); each gives ``min(size, left // bins_left)``.
    Bins smaller than their share are taken whole and their unused share passes on to the bigger bins. The
    remainder of the floor division rolls forward too, so the last bins visited (the biggest) get the extra
    examples and the total is exactly ``budget`` whenever the bins hold that many (the caller checks).
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    counts = np.zeros(len(sizes), dtype=np.int64)
    visit = sorted(np.flatnonzero(sizes).tolist(), key=lambda b: (sizes[b], b))
    left = budget
    for done, b in enumerate(visit):
        counts[b] = min(sizes[b], left // (len(visit) - done))
        left -= counts[b]
    return counts


def _sample(positions: np.ndarray, ids: np.ndarray, count: int, rng) -> np.ndarray:
    """``count`` of ``positions`` uniformly at random, without replacement (members taken in id order)."""
    positions = positions[np.argsort(ids[positions], kind="stable")]
    return rng.choice(positions, size=count, replace=False)


def _moderate_positions(values: np.ndarray, ids: np.ndarray, n_keep: int) -> np.ndarray:
    """Positions of the ``n_keep`` scores closest to the median (equal distances: lower id first)."""
    return rank_order(np.abs(values - np.median(values)), ids)[:n_keep]


def _class_members(values: np.ndarray, labels, num_classes: int | None) -> list[np.ndarray]:
    """Positions of each class's examples, in class order; every class must have some."""
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
    return members


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


def _check_keep(keep: float) -> None:
    if isinstance(keep, bool) or not (isinstance(keep, Real) and 0 < keep <= 1):
        raise ConfigError(f"--keep: keep must be a fraction in (0, 1], got {keep}; e.g. --keep 0.5 keeps half "
                          "of the examples.")


def _resolve_offset(keep: float, offset: float | None, order: str) -> float:
    _check_keep(keep)
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
    source = getattr(scores, "source", None)  # the file a ScoreTable was loaded from, for the messages
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
            (f"Score file {source}: " if source else "") + f"{int(bad.sum())} of {len(values)} scores are not finite ({', '.join(kinds)}; first ids: "
            f"{', '.join(map(str, first))}{', ...' if bad.sum() > 5 else ''}). A non-finite score has no place in "
            "the ranking; the scoring run diverged. Recompute the scores (lower the learning rate if training "
            "diverged) before selecting.")
    return values, ids
