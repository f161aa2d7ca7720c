"""Subset selection from scores, exactly as Data Diet B.3 prescribes.

1. sort examples ascending by score (ties broken by a seeded pseudo-random order of the ids: see
   :func:`rank_order`);
2. drop the lowest ``offset`` fraction;
3. keep the next ``keep`` fraction;
4. drop the rest.

``offset = 1 − keep`` (the default) keeps the highest scores; ``order="lowest"`` keeps the lowest.
A class quota applies the same rule inside every class, the budget ``round(keep × N)`` shared out by
:func:`class_quotas`: ``"proportional"`` (``class_balanced=True``, a method's ``+balanced``) keeps a ``keep``
fraction of each class (largest-remainder rounding makes the total exact for unequal class sizes), so an
imbalanced dataset stays as imbalanced; ``"equal"`` (a method's ``+equal``) keeps the same count of every class,
a class smaller than that count whole, evening the classes out.
Every selector returns example ids sorted ascending: indices in the dataset's canonical order.

Why ties are not broken by id: datasets are often stored sorted by class (an image folder, MNIST's test set), so
"lower id first" means "earlier class first". Many scores tie massively (forgetting counts are 0 for most
examples), and an id tie-break then keeps or drops whole classes. A seeded hash of the id orders ties instead:
deterministic, independent of the input order, and unrelated to the class.

Two other rules share the same inputs and the same class balance (``select(..., rule=...)``):

- ``"ccs"``: coverage-centric stratified sampling (Zheng et al., ICLR 2023). Drop the hardest ``beta``
  fraction, split the remaining score range into ``bins`` equal-width bins, share the budget out starting
  with the smallest bins (none gets more than an equal share of what is left), and sample each bin uniformly
  at random (seeded).
- ``"moderate"``: keep the examples whose score is closest to the median score (Xia et al., ICLR 2023).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Callable

import numpy as np

from .errors import ConfigError

ORDERS = ("highest", "lowest")
CLASS_QUOTAS = ("proportional", "equal")  # how a class quota shares the budget out (see class_quotas)
_DEFAULT_BINS = 50  # CCS's number of strata
_EPS = 1e-9  # fractions such as 0.3 + 0.7 are compared with this slack
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)  # splitmix64's increment: 2**64 / golden ratio, odd
_UINT64_LIMIT = 2 ** 64


class SelectionError(ConfigError):
    """The scores cannot be ranked: some are NaN or infinite."""


def select(scores, *, keep: float, rule: str = "window", ids=None, labels=None, class_balanced: bool = False,
           class_quota: str | None = None, num_classes: int | None = None, seed: int = 0, tie_seed: int = 0,
           **options) -> np.ndarray:
    """Ids of the examples kept by ``rule`` (a name of :data:`RULES`; default the offset-window rule).

    Args:
        scores: ``[N]`` scores (higher = harder / more important), or a ``ScoreTable`` (its mean).
        keep: fraction of examples to keep, in (0, 1].
        rule: one of :data:`RULES`: ``"window"`` (Data Diet B.3), ``"hardest"``, ``"easiest"``, ``"ccs"``,
            ``"moderate"`` or ``"random"``.
        ids: ``[N]`` distinct integer example ids (default ``0..N−1``; a ScoreTable carries its own, and other
            ids given beside it are refused).
        labels: ``[N]`` class indices (integers, or floats with integer values); needed for a class quota.
        class_balanced: the older spelling of ``class_quota="proportional"`` (True means exactly that).
        class_quota: None (the rule applied to all examples at once), or apply the rule inside each class with
            the budget shared by :func:`class_quotas`: ``"proportional"`` (each class its share) or ``"equal"``
            (the same count from every class, capped by its size).
        num_classes: with a class quota, the number of classes expected (an empty class is an error).
        seed: rules that draw (ccs, random): the seed of the draw (a non-negative integer); each class of a
            class-balanced selection draws from its own stream.
        tie_seed: every rule: seed of the order among equal scores (see ``rank_order``); a non-negative integer.
        options: the rule's own options (an option another rule takes is refused, not ignored):
            window: ``offset`` (fraction of lowest scores dropped first; default ``1 − keep``) or ``order``
            (``"highest"``, default, or ``"lowest"``); ccs: ``beta`` (fraction of the hardest dropped before
            sampling, in [0, 1); default ``default_ccs_beta(keep)``) and ``bins`` (equal-width strata, 1 to the
            number of scores or 50; default 50).
    Returns:
        int64 ids of the kept examples, sorted ascending.
    """
    values, ids = _scores_and_ids(scores, ids)
    params = selection_parameters(keep=keep, rule=rule, seed=seed, tie_seed=tie_seed, class_balanced=class_balanced,
                                  class_quota=class_quota, **options)
    _check_bins_fit(params, len(values))
    chosen = RULES[rule]
    own = {name: params[name] for name in chosen.options if name in params}

    def pick(values, ids, n_keep, group):
        rng = np.random.default_rng(seed if group is None else [seed, group]) if chosen.seeded else None
        return chosen.positions(values, ids, n_keep, rng, keep=keep, tie_seed=tie_seed, group=group, **own)

    if "class_quota" not in params:
        return np.sort(ids[pick(values, ids, _count(keep, len(values)), None)])
    members = _class_members(values, labels, num_classes)
    quotas = class_quotas([len(m) for m in members], _count(keep, len(values)), params["class_quota"])
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


def select_random(ids, *, keep: float, seed: int, labels=None, class_balanced: bool = False,
                  class_quota: str | None = None) -> np.ndarray:
    """A seeded random ``keep`` fraction of ``ids`` (optionally with a class quota), sorted ascending: the random
    rule."""
    ids = np.asarray(ids, dtype=np.int64)
    return select(np.zeros(len(ids)), keep=keep, rule="random", ids=ids, seed=seed, labels=labels,
                  class_balanced=class_balanced, class_quota=class_quota)


def selection_parameters(*, keep: float, rule: str = "window", seed: int = 0, tie_seed: int = 0,
                         class_balanced: bool = False, class_quota: str | None = None, **options) -> dict:
    """Every parameter ``select`` uses with these options, defaults resolved: what a subset manifest records.

    Checks the options as ``select`` does (a ConfigError naming the flag): the rule's own options are resolved by
    the rule (the window its ``offset``, and the ``order`` when the order chose it; CCS its ``beta`` and ``bins``),
    a rule that draws records its ``seed``, every rule ``tie_seed`` and ``class_balanced`` (True: the proportional
    quota, as it always meant), and a selection made inside each class its ``class_quota`` ("proportional" or
    "equal"; absent when the rule ran on all examples at once, so such records read as before).
    """
    if rule not in RULES:
        raise ConfigError(f"--rule: rule must be one of {tuple(RULES)}, got {rule!r}.")
    _check_keep(keep)
    _check_seed("tie-seed", tie_seed)
    chosen = RULES[rule]
    given = {name: value for name, value in options.items() if value is not None}
    for name, value in given.items():
        _refuse_unused(rule, chosen, name, value)
    quota = resolve_class_quota(class_balanced, class_quota)
    common = {"rule": rule, "keep": float(keep), "tie_seed": int(tie_seed), "class_balanced": quota == "proportional",
              **({"class_quota": quota} if quota is not None else {})}
    if chosen.seeded:
        _check_seed("sample-seed", seed)  # named as `datadiet prune` names it
        common["seed"] = int(seed)
    elif seed != 0:
        raise ConfigError(f"--sample-seed {seed} means nothing with --rule {rule}; drop it (it applies to the "
                          f"{_rules_with(None)} rules only).")
    return {**common, **(chosen.resolve(keep, given) if chosen.resolve else {})}


def resolve_class_quota(class_balanced: bool = False, class_quota: str | None = None) -> str | None:
    """The one class quota meant: ``class_quota`` (None, "proportional" or "equal"), or "proportional" for the older
    ``class_balanced=True``; the two together must agree (``--class-balanced`` is ``--class-quota proportional``)."""
    if class_quota is not None and class_quota not in CLASS_QUOTAS:
        raise ConfigError(f"--class-quota: class_quota must be one of {', '.join(CLASS_QUOTAS)}, got {class_quota!r} "
                          "(proportional: every class keeps its share; equal: the same count from every class).")
    if class_balanced and class_quota == "equal":
        raise ConfigError("--class-balanced means --class-quota proportional (every class keeps its share, so the "
                          "imbalance); it cannot be given with --class-quota equal. Drop --class-balanced to keep the "
                          "same count from every class.")
    return "proportional" if class_balanced else class_quota


def class_quotas(sizes, total: int, quota: str) -> list[int]:
    """How many of ``total`` kept examples each class gives, for classes of ``sizes`` (``total <= sum(sizes)``).

    ``"proportional"``: ``total × size / sum(sizes)`` each, rounded by largest remainder (ties by class index), so
    every class keeps its share and the classes stay as imbalanced as they were. ``"equal"``: water-filling, the
    same count from every class. The level ``L`` is the largest whole number with ``Σ min(size, L) <= total``;
    every class gives ``min(size, L)`` (a class smaller than the level whole), and the ``r = total − Σ min(size,
    L)`` left over (fewer than the classes larger than ``L``, since ``L`` is the largest) go one each to the first
    ``r`` classes larger than ``L``, in class-index order (the same tie rule as the proportional quota). So the
    kept counts differ by at most one between any two classes that are not kept whole.
    """
    sizes = [int(s) for s in sizes]
    if quota == "proportional":
        return _apportion(sizes, total)
    if quota != "equal":
        raise ConfigError(f"class quota must be one of {', '.join(CLASS_QUOTAS)}, got {quota!r}.")
    level = _fill_level(sizes, total)
    quotas = [min(s, level) for s in sizes]
    larger = [c for c, s in enumerate(sizes) if s > level]
    for c in larger[:total - sum(quotas)]:
        quotas[c] += 1
    return quotas


def _fill_level(sizes: list[int], total: int) -> int:
    """The largest ``L`` with ``Σ min(size, L) <= total``: classes taken whole from the smallest up while each fits in
    an equal share of what is left; the share at the first that does not is ``L`` (every class whole: the largest).
    The shares never shrink as small classes are taken, so every class taken whole is at most ``L``."""
    left, ordered = total, sorted(sizes)
    for taken, size in enumerate(ordered):
        share = left // (len(ordered) - taken)
        if size > share:
            return share
        left -= size
    return ordered[-1] if ordered else 0


def rank_order(values, ids=None, tie_seed: int = 0) -> np.ndarray:
    """Positions that sort ``values`` ascending, ties in the seeded pseudo-random order of ``tie_keys``.

    The one ranking of datadiet: selection, top-k counts, example grids and binned tables all use it, so two
    examples with equal scores are always ordered the same way. ``ids`` default to the positions. The order
    depends only on the (value, id) pairs and ``tie_seed``, not on the order they come in (ids are distinct).
    """
    values = np.asarray(values, dtype=np.float64)
    ids = np.arange(len(values)) if ids is None else np.asarray(ids)
    return np.lexsort((tie_keys(ids, tie_seed), values))


def tie_keys(ids, tie_seed: int = 0) -> np.ndarray:
    """The key that orders equal scores: for id ``i``, output number ``i + 1`` of splitmix64 seeded with ``tie_seed``.

    splitmix64 (Steele, Lea and Flood, 2014) outputs a bijective mix of ``seed + k * 0x9E3779B97F4A7C15``; its
    consecutive outputs pass strong tests of randomness, so the keys of consecutive ids (a class stored as
    one run of ids) are as good as shuffled, and distinct ids never share a key.
    """
    _check_seed("tie-seed", tie_seed)
    ids = np.asarray(ids, dtype=np.int64).view(np.uint64)  # two's complement: a bijection, even for negative ids
    with np.errstate(over="ignore"):  # every product and sum here is meant modulo 2**64
        return _mix64(np.uint64(tie_seed) + (ids + np.uint64(1)) * _GOLDEN)


def _mix64(z: np.ndarray) -> np.ndarray:
    """splitmix64's output function, on uint64 arrays (a bijection of 64-bit words)."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


TIE_WARNING_SHARE = 0.1  # above this share, a tie (of the scores, or of a subset's picks) is worth a warning


def tie_summary(values) -> dict:
    """How much of ``values`` (``[N]`` scores) ties: the largest group of equal scores and the tied share.

    Returns ``{"largest_tie_value": float | None, "largest_tie_count": int, "largest_tie_share": float,
    "tied_share": float}``: the value shared by the most examples (the lowest such value when several groups are
    equally large) and how many share it, that count over N, and the share of the N examples whose value at
    least one other example shares. Equality is exact (``==`` on float64), as :func:`rank_order` sees ties. Without
    any tie: value None, count 0, both shares 0.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1:
        raise ConfigError(f"Scores must be a 1-D array, got shape {values.shape}.")
    unique, counts = np.unique(values, return_counts=True)
    n = len(values)
    if n == 0 or counts.max() < 2:
        return {"largest_tie_value": None, "largest_tie_count": 0, "largest_tie_share": 0.0, "tied_share": 0.0}
    largest = int(np.argmax(counts))  # the first of the largest groups: the lowest of their values
    return {"largest_tie_value": float(unique[largest]), "largest_tie_count": int(counts[largest]),
            "largest_tie_share": float(counts[largest] / n), "tied_share": float(counts[counts > 1].sum() / n)}


def tie_phrase(summary: dict) -> str:
    """A :func:`tie_summary` in words: ``89 % of the scores (8,900 of 10,000) tie at 0``."""
    count = summary["largest_tie_count"]
    if not count:
        return "no two scores are equal"
    total = round(count / summary["largest_tie_share"])
    return (f"{percent(summary['largest_tie_share'])} of the scores ({count:,} of {total:,}) tie at "
            f"{summary['largest_tie_value']:g}")


def percent(share: float) -> str:
    """``0.891`` → ``89 %``; shares under 1 % keep two significant digits (``0.0012`` → ``0.12 %``)."""
    value = 100 * share
    return f"{value:.0f} %" if value >= 1 or value == 0 else f"{value:.2g} %"


def tie_decided(values, ids, kept_ids, *, rule: str = "window", labels=None, class_balanced=False,
                class_quota: str | None = None, keep: float | None = None, beta: float | None = None,
                **_) -> int | None:
    """How many of the kept examples the seeded tie order picked, not the score.

    A kept example is tie-decided when an example left out ties with it in the rule's ranking (inside its class,
    for a selection made inside each class, whatever its quota): its tie group straddles the selection boundary,
    so swapping the two gives a selection the same rule keeps under another tie order (``--tie-seed``). Per rule:

    - window, hardest, easiest: equal scores; a group crossing either edge of the kept window counts;
    - moderate: equal distances to the median (the class's median, inside each class), the ranking it sorts;
    - ccs: only the cut of the hardest ``beta`` fraction is a ranking boundary (the rest is a seeded draw, which the
      sample seed decides by design): kept examples tied with a cut one;
    - random: not applicable (it reads no score): None.

    Args:
        values: ``[N]`` scores (a ScoreTable's mean).
        ids: ``[N]`` distinct example ids.
        kept_ids: ``[K]`` the ids the selection kept, all among ``ids``.
        rule, class_balanced, class_quota, keep, beta: as given to ``select`` (``selection_parameters`` holds them
            all; other keys are ignored). ``keep`` is needed only by ccs without ``beta``.
        labels: ``[N]`` class indices; needed with ``class_balanced`` or a ``class_quota``.
    Returns:
        the count, in ``[0, K]``, summed over the classes when selected inside each; None for the random rule.
    """
    if rule not in RULES:
        raise ConfigError(f"--rule: rule must be one of {tuple(RULES)}, got {rule!r}.")
    if rule == "random":
        return None
    values, ids = np.asarray(values, dtype=np.float64), np.asarray(ids, dtype=np.int64)
    kept = np.isin(ids, np.asarray(kept_ids, dtype=np.int64))
    if kept.sum() != len(np.unique(np.asarray(kept_ids))):
        raise ConfigError("tie_decided: some kept ids are not among the scored ids; pass the ids select() returned "
                          "for these scores.")
    per_class = class_balanced or class_quota is not None  # any class quota ranks inside each class
    groups = _class_members(values, labels, None) if per_class else [np.arange(len(values))]
    if rule == "ccs":
        beta = default_ccs_beta(keep) if beta is None else beta
        return sum(_tied_with_cut(values[m], kept[m], beta) for m in groups)
    key = _moderate_key if rule == "moderate" else (lambda v: v)
    return sum(_tied_with_left_out(key(values[m]), kept[m]) for m in groups)


def _tied_with_left_out(keys: np.ndarray, kept: np.ndarray) -> int:
    """Kept entries whose ranking key some left-out entry shares."""
    return int(np.isin(keys[kept], keys[~kept]).sum())


def _tied_with_cut(values: np.ndarray, kept: np.ndarray, beta: float) -> int:
    """CCS: kept entries that tie with one of the hardest ``beta`` fraction cut before sampling.

    The cut takes the top ``floor(beta · n)`` of the ascending ranking; it splits a tie group exactly when the
    lowest cut value equals the highest value left in the pool, and the kept members of that group are the count.
    """
    n_cut = math.floor(beta * len(values) + _EPS)  # as _ccs_positions cuts
    if n_cut == 0 or n_cut >= len(values):
        return 0
    ranked = np.sort(values)
    boundary = ranked[len(values) - n_cut]
    if ranked[len(values) - n_cut - 1] != boundary:
        return 0
    return int((values[kept] == boundary).sum())


def _moderate_key(values: np.ndarray) -> np.ndarray:
    """What the moderate rule ranks: the distance to the median (shared, so ties are judged on the same floats)."""
    return np.abs(values - np.median(values))


def class_counts(kept_labels, num_classes: int) -> np.ndarray:
    """How many kept examples each class has (``[num_classes]`` int64; absent classes count 0)."""
    return np.bincount(np.asarray(kept_labels, dtype=np.int64), minlength=num_classes)[:num_classes]


def short_classes(counts, sizes, keep: float) -> list[int]:
    """Classes that keep fewer than half of their proportional share ``keep × class size``, in class order.

    Half is the threshold of a warning, not of an error: a score may rightly prefer some classes, but a class
    kept at less than half its share has mostly gone from the subset, which a user must know.
    """
    return [c for c, (kept, size) in enumerate(zip(counts, sizes)) if kept < 0.5 * keep * size]


def offset_windows(keep: float, offsets) -> list[float]:
    """The offsets whose B.3 window [offset, offset + keep) lies inside the ranking, in the order given."""
    return [float(o) for o in offsets if 0 <= o and o + keep <= 1 + _EPS]


def is_top_window(keep: float, offset: float) -> bool:
    """True when the window [offset, offset + keep) is the keep-highest window (offset = 1 − keep)."""
    return abs(offset - (1 - keep)) <= _EPS


def _refuse_unused(rule: str, chosen: "Rule", name: str, value) -> None:
    """Refuse an option the rule has no use for: it would be silently lost."""
    if name not in chosen.options:
        known = _rules_with(name)
        where = f"it applies to the {known} rule{'s' if ',' in known else ''} only" if known else "no rule takes it"
        raise ConfigError(f"--{name.replace('_', '-')} {value} means nothing with --rule {rule}; drop it ({where}).")


def _rules_with(option: str | None) -> str:
    """The rules that take ``option`` (None: the rules that draw), as words."""
    names = [n for n, r in RULES.items() if (r.seeded if option is None else option in r.options)]
    return ", ".join(names)


def _resolve_window(keep: float, given: dict) -> dict:
    order = given.get("order", "highest")
    offset = float(_resolve_offset(keep, given.get("offset"), order))
    return {"offset": offset, **({"order": order} if "offset" not in given else {})}


def _resolve_ccs(keep: float, given: dict) -> dict:
    """Validate CCS's ``beta`` and ``bins``; the default beta when none is given."""
    bins, beta = given.get("bins", _DEFAULT_BINS), given.get("beta")
    if isinstance(bins, bool) or not isinstance(bins, Integral) or bins < 1:
        raise ConfigError(f"--bins: bins must be an integer >= 1, got {bins}; CCS uses {_DEFAULT_BINS}.")
    if beta is None:
        beta = default_ccs_beta(keep)
    elif isinstance(beta, bool) or not (isinstance(beta, Real) and 0 <= beta < 1):
        raise ConfigError(f"--beta: beta must be a fraction in [0, 1), got {beta}; it is the fraction of "
                          "hardest (highest-scoring) examples dropped before sampling.")
    return {"beta": float(beta), "bins": int(bins)}


def _check_seed(flag: str, seed) -> None:
    if isinstance(seed, bool) or not isinstance(seed, Integral) or not 0 <= seed < _UINT64_LIMIT:
        raise ConfigError(f"--{flag}: {flag.replace('-', '_')} must be a non-negative integer below 2**64, got "
                          f"{seed!r}.")


def _check_bins_fit(params: dict, n_scores: int) -> None:
    """Refuse more CCS bins than scored examples (or the default 50): each bin costs memory, 10**9 of them all of it.

    More bins than examples sort nothing finer, since at most one bin per example is non-empty.
    """
    limit = max(n_scores, _DEFAULT_BINS)
    if params.get("bins", 0) > limit:
        raise ConfigError(f"--bins: {params['bins']} bins for {n_scores} scored examples; use at most {limit} (more "
                          f"bins than examples split nothing finer). CCS uses {_DEFAULT_BINS}.")


def _ccs_positions(values, ids, n_keep: int, rng, *, keep: float, beta: float, bins: int, tie_seed: int,
                   group: int | None = None, **_) -> np.ndarray:
    """Positions kept by CCS: drop the hardest ``beta`` fraction, then sample the score bins evenly."""
    where = "" if group is None else f" of class index {group} (class-balanced)"
    n_cut = math.floor(beta * len(values) + _EPS)  # rounded down: never drop more than asked
    pool = rank_order(values, ids, tie_seed)[:len(values) - n_cut]  # the hardest are last
    if n_keep > len(pool):
        raise ConfigError(f"--keep {keep} with beta {beta:g}: {n_keep} of the {len(values)} examples{where} are "
                          f"to be kept but only {len(pool)} remain after dropping the hardest {n_cut}. Lower --beta "
                          f"(at most {1 - keep:g} with --keep {keep}) or --keep.")
    bin_of = _score_bins(values[pool], bins)
    budgets = _bin_budgets(np.bincount(bin_of, minlength=bins), n_keep)
    # Bins are drawn in bin order from one stream, members in tie-key order: the result depends on (scores, ids,
    # seed, tie_seed) only, not on the order the examples come in.
    picked = [_sample(pool[bin_of == b], ids, int(budgets[b]), rng, tie_seed) for b in np.flatnonzero(budgets)]
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


def _sample(positions: np.ndarray, ids: np.ndarray, count: int, rng, tie_seed: int) -> np.ndarray:
    """``count`` of ``positions`` uniformly at random, without replacement (members taken in tie-key order)."""
    positions = positions[np.argsort(tie_keys(ids[positions], tie_seed), kind="stable")]
    return rng.choice(positions, size=count, replace=False)


def _moderate_positions(values: np.ndarray, ids: np.ndarray, n_keep: int, rng, *, tie_seed: int, **_) -> np.ndarray:
    """Positions of the ``n_keep`` scores closest to the median (equal distances: in tie-key order)."""
    return rank_order(_moderate_key(values), ids, tie_seed)[:n_keep]


def _class_members(values: np.ndarray, labels, num_classes: int | None) -> list[np.ndarray]:
    """Positions of each class's examples, in class order; every class must have some."""
    if labels is None:
        raise ConfigError("Class-balanced selection needs the labels of the scored examples.")
    labels = _class_indices(labels, num_classes)
    if labels.shape != values.shape:
        raise ConfigError(f"{len(labels)} labels for {len(values)} scores; they must match one to one.")
    classes = np.arange(num_classes) if num_classes is not None else np.unique(labels)
    members = [np.flatnonzero(labels == c) for c in classes]
    empty = [int(c) for c, m in zip(classes, members) if len(m) == 0]
    if empty:
        raise ConfigError(f"Class-balanced selection: classes {empty} have no examples among the scored ones; "
                          "score the full dataset or select without --class-balanced.")
    return members


def _class_indices(labels, num_classes: int | None) -> np.ndarray:
    """``labels`` as int64 class indices in ``[0, num_classes)``, or a ConfigError naming the first bad one."""
    raw = np.asarray(labels)
    if raw.ndim != 1 or raw.dtype.kind not in "iuf":
        raise ConfigError(f"Class-balanced selection: labels must be a 1-D array of class indices (integers), got "
                          f"{raw.dtype} of shape {raw.shape}.")
    if raw.dtype.kind == "f":  # 3.0 names class 3; 2.5 or NaN names no class
        bad = np.flatnonzero(~np.isfinite(raw) | (raw != np.round(raw)))
        if len(bad):
            raise ConfigError(f"Class-balanced selection: labels must be class indices (integers); {len(bad)} are "
                              f"not (first at position {bad[0]}: {raw[bad[0]]!r}). Pass the dataset's int64 labels.")
    if num_classes is not None and (isinstance(num_classes, bool) or not isinstance(num_classes, Integral)
                                    or num_classes < 1):
        raise ConfigError(f"Class-balanced selection: num_classes must be an integer >= 1, got {num_classes!r}.")
    top = num_classes if num_classes is not None else np.inf
    outside = np.flatnonzero((raw < 0) | (raw >= top))
    if len(outside):
        limit = f"[0, {num_classes})" if num_classes is not None else "0 or more"
        raise ConfigError(f"Class-balanced selection: labels must lie in {limit}; {len(outside)} do not (first at "
                          f"position {outside[0]}: {raw[outside[0]]!r}).")
    return raw.astype(np.int64)


def _window_positions(values: np.ndarray, ids: np.ndarray, n_keep: int, rng, *, keep: float, offset: float,
                      tie_seed: int, **_) -> np.ndarray:
    """Positions of the examples in the window [offset, offset + keep) of the ascending order."""
    n = len(values)
    order = rank_order(values, ids, tie_seed)
    start = min(int(math.floor(offset * n + _EPS)), n - n_keep)
    if offset + keep >= 1 - _EPS:  # "keep the highest": anchor the window at the top, whatever the rounding
        start = n - n_keep
    return order[start:start + n_keep]


def _hardest_positions(values: np.ndarray, ids: np.ndarray, n_keep: int, rng, *, tie_seed: int, **_) -> np.ndarray:
    """Positions of the ``n_keep`` highest scores (the window at the top)."""
    return rank_order(values, ids, tie_seed)[len(values) - n_keep:]


def _easiest_positions(values: np.ndarray, ids: np.ndarray, n_keep: int, rng, *, tie_seed: int, **_) -> np.ndarray:
    """Positions of the ``n_keep`` lowest scores (the window at the bottom)."""
    return rank_order(values, ids, tie_seed)[:n_keep]


def _random_positions(values: np.ndarray, ids: np.ndarray, n_keep: int, rng, *, tie_seed: int, **_) -> np.ndarray:
    """``n_keep`` positions drawn uniformly at random (the scores are not read): the top of a random permutation."""
    return rank_order(rng.permutation(len(values)).astype(np.float64), ids, tie_seed)[len(values) - n_keep:]


@dataclass(frozen=True)
class Rule:
    """A selection rule: ``positions(values, ids, n_keep, rng, *, keep, tie_seed, group, **options)`` returns the
    positions kept among ``values`` (one class's, when class-balanced), ``rng`` a seeded generator for rules that
    draw (else None)."""

    positions: Callable[..., np.ndarray]
    summary: str                                  # what it keeps, for --help and the README
    options: tuple[str, ...] = ()                 # its own options (select's keyword arguments)
    resolve: Callable[[float, dict], dict] | None = None  # checks the options given, fills in their defaults
    seeded: bool = False                          # draws from rng: its seed is recorded
    by_method: bool = True                        # usable as a method's +RULE (datadiet.methods)


# The rules. A new rule is one positions function and one entry here; `prune --rule`, methods (SCORE+RULE) and the
# studies pick it up by name.
RULES: dict[str, Rule] = {
    "window": Rule(_window_positions, "Data Diet B.3: drop the lowest offset fraction, keep the next keep fraction",
                   ("offset", "order"), _resolve_window, by_method=False),  # methods: hardest (offset: the sweep's)
    "hardest": Rule(_hardest_positions, "the highest scores"),
    "easiest": Rule(_easiest_positions, "the lowest scores"),
    "ccs": Rule(_ccs_positions, "coverage-centric stratified sampling (Zheng et al., 2023)", ("beta", "bins"),
                _resolve_ccs, seeded=True),
    "moderate": Rule(_moderate_positions, "the scores nearest the median (Xia et al., 2023)"),
    "random": Rule(_random_positions, "a uniformly random subset (the scores are not read)", seeded=True,
                   by_method=False),
}


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
        ids = _table_ids(scores, ids, source)
        scores = scores.mean
    values = _numeric_scores(scores)
    if values.ndim != 1 or len(values) == 0:
        raise ConfigError(f"Scores must be a non-empty 1-D array, got shape {values.shape}.")
    ids = np.arange(len(values), dtype=np.int64) if ids is None else _integer_ids(ids)
    if ids.shape != values.shape:
        raise ConfigError(f"{len(ids)} ids for {len(values)} scores; they must match one to one.")
    unique, counts = np.unique(ids, return_counts=True)
    if len(unique) != len(ids):  # a repeated id would be ranked, and kept, twice
        repeated = unique[counts > 1]
        raise ConfigError(f"ids: {len(repeated)} ids appear more than once (first: "
                          f"{', '.join(map(str, repeated[:5].tolist()))}); each scored example needs its own id.")
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


def _numeric_scores(scores) -> np.ndarray:
    """``scores`` as float64, refusing what is no number: numpy would turn the strings "3" and "1e2" into numbers
    silently (and fail on "a" with a raw ValueError), and object or complex arrays have no order to rank by."""
    try:
        raw = np.asarray(scores)
    except (ValueError, TypeError) as error:  # ragged nested lists, or objects numpy cannot hold
        raise ConfigError(f"Scores must be a 1-D array of numbers; the {type(scores).__name__} given cannot be "
                          f"read as one ({error}).") from None
    if raw.dtype.kind not in "biuf":
        what = {"U": "text", "S": "bytes", "O": "Python objects", "c": "complex numbers", "M": "dates",
                "m": "durations"}.get(raw.dtype.kind, "records")
        raise ConfigError(f"Scores must be numbers (a float or integer array), got an array of dtype {raw.dtype} "
                          f"({what}, shape {raw.shape}); convert them first, e.g. np.asarray(scores, dtype=float) "
                          "for numbers held as text.")
    return raw.astype(np.float64)


def _table_ids(table, ids, source) -> np.ndarray:
    """A ScoreTable's own ids; ``ids`` given beside it must be the same, or the scores would name other examples."""
    if ids is not None and not np.array_equal(np.asarray(ids), table.ids):
        where = f"score file {source}" if source else "the score table"
        raise ConfigError(f"ids: the ids given differ from those of {where}, which carries its own ids; drop ids= "
                          "(a ScoreTable's scores belong to its ids, and other ids would relabel them).")
    return np.asarray(table.ids, dtype=np.int64)


def _integer_ids(ids) -> np.ndarray:
    raw = np.asarray(ids)
    if raw.ndim != 1 or (raw.size and raw.dtype.kind not in "iu"):
        raise ConfigError(f"ids must be a 1-D array of integer example ids, got {raw.dtype} of shape {raw.shape}.")
    return raw.astype(np.int64)
