"""Statistics shared by every study: the Welch interval and its verdict, Holm's correction for many comparisons,
Spearman rank correlation, AUROC.

Pure functions on arrays; nothing here knows about runs, files or figures.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import stats as _scipy

from .errors import ConfigError

VERDICTS = ("better", "no different", "worse", "not measured")


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
