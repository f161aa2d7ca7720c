"""Statistics shared by every study: the Welch interval and its verdict, the comparison of two groups of runs as a
report states it (and its words), Holm's correction for many comparisons, Spearman rank correlation, AUROC.

Pure functions on arrays; nothing here knows about runs, files or figures.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Optional, Sequence

import numpy as np
from scipy import stats as _scipy

from .errors import ConfigError

# Verdicts of a comparison, strongest first. "not resolved": fewer than MIN_SEEDS runs on a side, so no interval is
# claimed; "not measured": a side has no runs at all; "not judged": a report's own verdict (compare_groups never
# gives it) where the full-data runs did not learn the task (:func:`learned`), so no comparison means anything.
VERDICTS = ("better", "no different", "worse", "not resolved", "not measured", "not judged")

# Runs per arm below which a Welch interval is not informative: with two runs a side the t quantile has one to two
# degrees of freedom (12.7 at one) and the spread is estimated from a single difference, so the interval swings from
# a few points to hundreds with the luck of two numbers.  Below this, a report shows the mean difference and the
# per-run values, and no verdict stronger than "not resolved".
MIN_SEEDS = 3


def welch_interval(a: np.ndarray, b: np.ndarray, level: float = 0.95) -> tuple[float, float, float, float]:
    """Difference of means ``a − b`` with a Welch t interval and two-sided p-value.

    Fewer than two runs on a side, or no variance on either, estimate no spread: the interval is then
    (−inf, inf) or NaN and the p-value NaN (a "not measured" verdict, never a confident one)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    diff = float(a.mean() - b.mean())
    if len(a) < 2 or len(b) < 2:
        return diff, -math.inf, math.inf, float("nan")
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return diff, float("nan"), float("nan"), float("nan")
    df = (va + vb) ** 2 / ((va**2) / (len(a) - 1) + (vb**2) / (len(b) - 1))
    half = _scipy.t.ppf(0.5 + level / 2, df) * se
    p = 2 * _scipy.t.sf(abs(diff) / se, df)
    return diff, diff - half, diff + half, float(p)


def interval_verdict(low: float, high: float) -> str:
    """"better" / "worse" when the interval of a difference excludes 0, "no different" when it holds 0, and
    "not measured" when there is no interval (too few runs, no variance)."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return "not measured"
    return "better" if low > 0 else "worse" if high < 0 else "no different"


def p_value_verdict(diff: float, p: float, alpha: float = 0.05) -> str:
    """"better" / "worse" (by the sign of ``diff``) when ``p < alpha``, "no different" otherwise, and "not measured"
    when there is no p-value (NaN: too few runs, no variance).

    For an uncorrected Welch p-value and ``alpha = 1 − level`` this is :func:`interval_verdict` of the interval at
    that level (the interval excludes 0 exactly when p < alpha); for a corrected p-value (:func:`holm`) it is the
    corrected verdict."""
    if not math.isfinite(p):
        return "not measured"
    if p >= alpha or diff == 0:
        return "no different"
    return "better" if diff > 0 else "worse"


@dataclass(frozen=True)
class Comparison:
    """Two groups of runs compared as a report may state it (:func:`compare_groups`): ``diff`` = mean(a) − mean(b),
    its interval ``[ci_low, ci_high]`` and two-sided ``p_value`` (NaN where not informative), the ``verdict`` (one
    of :data:`VERDICTS`), the ``note`` that qualifies it ("" for a plain Welch interval) and ``seeds_needed`` (runs
    per arm that would resolve a difference of this size, :func:`seeds_to_resolve`; None: nothing to resolve)."""

    diff: float
    ci_low: float
    ci_high: float
    p_value: float
    verdict: str
    note: str
    seeds_needed: Optional[float]

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"unknown verdict {self.verdict!r}")

    def row(self) -> dict:
        """The comparison as table columns (``diff``, ``ci_low``, ``ci_high``, ``p_value``, ``verdict``, ``note``,
        ``seeds_needed``)."""
        return asdict(self)


def compare_groups(a, b, level: float = 0.95) -> Comparison:
    """The difference ``mean(a) − mean(b)`` of two groups of runs as a report may state it.

    Returns a :class:`Comparison` (its :meth:`~Comparison.row` is the columns a table carries):

    * a side without runs: nothing is known; "not measured", note "no runs", all numbers NaN;
    * fewer than :data:`MIN_SEEDS` runs on a side: the mean difference only; the Welch interval and p-value are left
      out (NaN), since with one or two runs a side they are not informative; "not resolved", note
      "2 seeds: not informative";
    * no spread on either side (every run of a side scored the same): the difference is exact, the interval the point
      ``[diff, diff]``; "better"/"worse" with note "exact: no spread" (p-value 0), or "no different" with note
      "identical" when the constants agree (p-value 1);
    * otherwise the Welch interval of :func:`welch_interval`, read by :func:`interval_verdict`.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if not len(a) or not len(b):
        return Comparison(math.nan, math.nan, math.nan, math.nan, "not measured", "no runs", None)
    diff = float(a.mean() - b.mean())
    needed = seeds_to_resolve(diff, pooled_spread(a, b), level)
    fewest = min(len(a), len(b))
    if fewest < MIN_SEEDS:
        note = f"{fewest} seed{'s' if fewest > 1 else ''}: not informative"
        return Comparison(diff, math.nan, math.nan, math.nan, "not resolved", note, needed)
    if np.ptp(a) == 0 and np.ptp(b) == 0:  # checked exactly: a variance of equal floats can round to 1e-33
        if diff == 0:
            return Comparison(0.0, 0.0, 0.0, 1.0, "no different", "identical", None)
        return Comparison(diff, diff, diff, 0.0, "better" if diff > 0 else "worse", "exact: no spread", None)
    diff, low, high, p = welch_interval(a, b, level)
    verdict = interval_verdict(low, high)
    if verdict == "no different" and needed is not None and needed <= fewest:
        # The planning figure pools the spreads (2n − 2 degrees of freedom); Welch's interval, with unequal spreads,
        # has fewer and is wider, so it can fail where the plan says n would do. Never print "n seeds resolve it"
        # beside an n-seed interval that does not.
        needed = fewest + 1
    return Comparison(diff, low, high, p, verdict, "", needed)


def pooled_spread(a, b) -> float:
    """The pooled standard deviation of two groups, ``sqrt(Σ (n_i − 1) s_i² / Σ (n_i − 1))`` over the groups with at
    least two runs (a single run says nothing about spread); NaN when neither has two."""
    groups = [np.asarray(g, dtype=np.float64) for g in (a, b)]
    groups = [g for g in groups if len(g) >= 2]
    if not groups:
        return math.nan
    dof = sum(len(g) - 1 for g in groups)
    return math.sqrt(sum((len(g) - 1) * g.var(ddof=1) for g in groups) / dof)


def learned(full_accuracies, majority_rate: float | None, level: float = 0.95, *,
            against: str = "the majority-class rate", what: str = "accuracy") -> tuple[bool | None, str]:
    """The "did it learn?" gate a report passes before any verdict: whether the full-data runs beat the accuracy of
    always predicting the most common test class, and why, in a sentence for the report.

    ``full_accuracies``: the full-data runs' test accuracies (``None`` or NaN entries, unknown, are left out);
    ``majority_rate``: the test split's majority-class rate, the level to beat (for balanced accuracy pass the
    chance level 1/K instead, and name it in ``against``).

    * no known accuracy, or no ``majority_rate`` (records written before runs measured it): ``None``, unknown;
    * fewer than :data:`MIN_SEEDS` runs: decided on the mean alone (mean above the rate), and the reason says so,
      since one or two runs give no informative interval;
    * every run equal: exact, the mean against the rate;
    * otherwise True only when the one-sample t interval of the mean at ``level`` lies wholly above the rate.
    """
    values = np.asarray([float(a) for a in full_accuracies if a is not None and math.isfinite(float(a))])
    if majority_rate is None or not math.isfinite(float(majority_rate)):
        return None, f"unknown: the runs do not record {against} (written before runs measured it)"
    if not len(values):
        return None, "unknown: no full-data run to judge"
    rate, mean, n = float(majority_rate), float(values.mean()), len(values)
    runs = f"{n} full-data run{'s' if n > 1 else ''}"
    if n < MIN_SEEDS or np.ptp(values) == 0:
        how = f"decided on the mean alone ({runs}: no interval)" if n < MIN_SEEDS else f"exact ({runs}, no spread)"
        beat = mean > rate
        return beat, f"mean {what} {mean:.4f} {'above' if beat else 'not above'} {against} {rate:.4f}, {how}"
    half = float(_scipy.t.ppf(0.5 + level / 2, n - 1)) * float(values.std(ddof=1)) / math.sqrt(n)
    low, high = mean - half, mean + half
    where = "above" if low > rate else "below" if high < rate else "holding"
    return low > rate, (f"mean {what} {mean:.4f} of {runs}, {level * 100:g} % CI [{low:.4f}, {high:.4f}], "
                        f"{where} {against} {rate:.4f}")


SEEDS_LIMIT = 100_000  # seeds_to_resolve looks no further: beyond it, "more than 100000"


def seeds_to_resolve(diff: float, spread: float, level: float = 0.95) -> int | float | None:
    """Runs per arm at which a difference of ``diff`` would be resolved, if the spread stayed ``spread``.

    The smallest n ≥ :data:`MIN_SEEDS` (below it this module states no interval at all) whose t interval half-width with n runs on each side, ``t(0.5 + level/2; 2n − 2) ·
    spread · sqrt(2 / n)`` (Welch's with equal spreads and equal arms), is below ``|diff|``: then an interval
    centred on the observed difference would exclude zero.  A planning figure, not a power calculation: a true
    difference of this size is resolved at such n about half the time.  ``None`` when there is nothing to resolve
    or no spread to plan with (``diff`` 0, ``spread`` 0 or not finite); ``math.inf`` beyond :data:`SEEDS_LIMIT`.
    """
    if not (math.isfinite(diff) and math.isfinite(spread)) or diff == 0 or spread == 0:
        return None
    n = np.arange(MIN_SEEDS, SEEDS_LIMIT + 1)
    half = _scipy.t.ppf(0.5 + level / 2, 2 * n - 2) * spread * np.sqrt(2 / n)
    below = np.flatnonzero(half < abs(diff))
    return int(n[below[0]]) if len(below) else math.inf


def summarize(values) -> dict:
    """``n``, ``mean``, 16th and 84th percentiles (``p16``/``p84``, Data Diet B.3's band) and standard deviation
    (``std``) of repeated runs; NaN for what the runs cannot give (everything for none, ``std`` for one)."""
    v = np.asarray(values, dtype=np.float64)
    if not len(v):
        return {"n": 0, "mean": math.nan, "p16": math.nan, "p84": math.nan, "std": math.nan}
    return {"n": len(v), "mean": float(v.mean()), "p16": float(np.percentile(v, 16)),
            "p84": float(np.percentile(v, 84)), "std": float(v.std(ddof=1)) if len(v) > 1 else math.nan}


# ---------------------------------------------------------------- the words of a comparison

RELATIONS = {"better": "better than", "no different": "no different from", "worse": "worse than",
             "not resolved": "not resolved against", "not measured": "not compared with",
             "not judged": "not judged against"}


def verdict_phrase(verdict: str, other: str, note: str = "") -> str:
    """``better than random``; with the note of :func:`compare_groups` in brackets where it qualifies the verdict:
    ``better than random (exact: no spread)``, ``not resolved against random (2 seeds: not informative)``."""
    phrase = f"{RELATIONS[verdict]} {other}".rstrip()
    return f"{phrase} ({note})" if note else phrase


def interval_cell(low: float, high: float, note: str = "", *, scale: float = 100) -> str:
    """The interval of a difference as a table shows it: ``[+0.40, +2.00]`` (× ``scale``), or what stands in its
    place: ``n/a (2 seeds: not informative)``, ``exact: no spread``, ``identical``, ``n/a (no runs)``."""
    if note in ("exact: no spread", "identical"):
        return note
    if math.isfinite(low) and math.isfinite(high):
        return f"[{low * scale:+.2f}, {high * scale:+.2f}]"
    return f"n/a ({note or 'no interval'})"


def interval_text(diff: float, low: float, high: float, note: str = "", *, level: float = 0.95,
                  scale: float = 100, unit: str = "points") -> str:
    """``+1.20 points, 95 % CI [+0.40, +2.00]``; ``+1.20 points (exact: no spread)``;
    ``+1.20 points, 95 % CI n/a (2 seeds: not informative)``; ``not measured (no runs)``."""
    if not math.isfinite(diff):
        return f"not measured ({note or 'no runs'})"
    cell = interval_cell(low, high, note, scale=scale)
    if note in ("exact: no spread", "identical"):
        return f"{diff * scale:+.2f} {unit} ({cell})"
    return f"{diff * scale:+.2f} {unit}, {level * 100:g} % CI {cell}"


def seeds_text(needed: int | float | None) -> str:
    """:func:`seeds_to_resolve` for a reader: ``12``, ``—`` (nothing to resolve or no spread), ``> 100000``."""
    if needed is None:
        return "—"
    return f"> {SEEDS_LIMIT}" if math.isinf(needed) else str(int(needed))


def holm(p_values) -> np.ndarray:
    """Holm–Bonferroni adjusted p-values, in the order given.

    With the m finite p-values sorted ascending, p_(1) ≤ … ≤ p_(m), the i-th adjusted value is
    ``max over j ≤ i of min(1, (m − j + 1) · p_(j))``: never below the raw value, never above 1, and in the same
    order as the raw values.  Rejecting where the adjusted value is below alpha controls the family-wise error
    rate at alpha over all m comparisons.  NaN p-values (comparisons that were not measured) stay NaN and are not
    counted in m."""
    p = np.asarray(p_values, dtype=np.float64).reshape(-1)
    out = np.full(p.shape, np.nan)
    finite = np.flatnonzero(np.isfinite(p))
    m = len(finite)
    if m == 0:
        return out
    order = finite[np.argsort(p[finite], kind="stable")]
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])   # (m − j + 1) · p_(j) for j = 1 … m
    out[order] = np.maximum.accumulate(scaled)
    return out


def holm_correct(rows: Sequence[dict], level: float = 0.95) -> list[dict]:
    """``rows`` (each with ``diff``, ``p_value`` and ``verdict``: a :meth:`Comparison.row`) with Holm's correction
    over every row that has a p-value: ``p_holm`` and ``verdict_holm`` added (rows without a p-value keep their
    verdict). The one family-wise correction every table of comparisons uses."""
    out = [dict(r) for r in rows]
    for row, p in zip(out, holm([r["p_value"] for r in out])):
        row["p_holm"] = float(p)
        tested = np.isfinite(row["p_value"])
        row["verdict_holm"] = p_value_verdict(row["diff"], row["p_holm"], 1 - level) if tested else row["verdict"]
    return out


def spearman(a, b) -> float:
    """Spearman's rank correlation of two vectors (average ranks for ties); NaN when either side is constant,
    since a constant ranks nothing."""
    return _spearman_test(a, b)[0]


def correlations(a, b) -> dict:
    """Spearman and Pearson correlation of two vectors with two-sided p-values (all NaN for a constant side)."""
    rho, rho_p = _spearman_test(a, b)
    if not np.isfinite(rho):
        return {"spearman": rho, "spearman_p": rho_p, "pearson": float("nan"), "pearson_p": float("nan")}
    r = _scipy.pearsonr(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))
    return {"spearman": rho, "spearman_p": rho_p, "pearson": float(r.statistic), "pearson_p": float(r.pvalue)}


def _spearman_test(a, b) -> tuple[float, float]:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ConfigError(f"Spearman needs two vectors of one length, got shapes {a.shape} and {b.shape}.")
    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan"), float("nan")
    result = _scipy.spearmanr(a, b)
    return float(result.statistic), float(result.pvalue)


def spearman_matrix(scores: dict[str, np.ndarray]) -> tuple[list[str], np.ndarray]:
    """Spearman rank correlation between every pair of score vectors (all over the same examples)."""
    names = list(scores)
    rho = np.ones((len(names), len(names)))
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            rho[i, j] = rho[j, i] = spearman(scores[names[i]], scores[names[j]])
    return names, rho


def auroc(scores, positive) -> float:
    """Probability that a random positive scores above a random negative, ties counted half.

    Mann–Whitney U from average ranks: ``U = Σ rank(positives) − n_pos (n_pos + 1) / 2``, AUROC = U / (n_pos n_neg).
    """
    scores, positive = np.asarray(scores, dtype=np.float64), np.asarray(positive, dtype=bool)
    if scores.ndim != 1 or scores.shape != positive.shape:
        raise ConfigError(f"AUROC needs one flag per score: {scores.shape} scores, {positive.shape} flags.")
    n_pos = int(positive.sum())
    n_neg = len(scores) - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ConfigError(f"AUROC needs both positive and negative examples; got {n_pos} positive of {len(scores)}.")
    ranks = _scipy.rankdata(scores)  # average ranks: a positive tied with a negative gains half a pair
    u = ranks[positive].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))
