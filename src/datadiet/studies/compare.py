"""Comparisons of evaluation runs shared by the studies: accuracies of one (method, fraction), the difference
of two groups with its Welch 95 % interval, and the verdict and wording of such a difference."""
from __future__ import annotations

import numpy as np

from ..errors import DataDietError
from ..stats import interval_verdict, welch_interval


def check_labels(labels, known) -> None:
    unknown = [label for label in labels if label not in known]
    if unknown:
        raise DataDietError(f"Unknown score label(s) {', '.join(map(repr, unknown))}: the score runs hold "
                            f"{', '.join(known)}. Use one of these labels.")


def accuracies(rows, method: str, keep: float) -> np.ndarray:
    """Final test accuracies of every evaluation run of one (method, kept fraction)."""
    return np.array([r["test_accuracy"] for r in rows if r["method"] == method and float(r["keep"]) == float(keep)
                     and r.get("offset") is None], dtype=np.float64)


def contrast(a: np.ndarray, b: np.ndarray, name: str) -> dict:
    """``name``: mean(a) − mean(b), with its Welch 95 % interval (``name_low``/``name_high``)."""
    if not len(a) or not len(b):
        return {name: float("nan"), f"{name}_low": float("nan"), f"{name}_high": float("nan")}
    diff, low, high, _ = welch_interval(a, b)
    return {name: diff, f"{name}_low": low, f"{name}_high": high}


def verdict(row: dict, name: str) -> str:
    """The verdict of the contrast ``name`` of a table row (see :func:`interval_verdict`)."""
    return interval_verdict(row[f"{name}_low"], row[f"{name}_high"])


def interval_text(row: dict, name: str) -> str:
    """``+1.20 points, 95 % CI [+0.40, +2.00]`` for the contrast ``name`` of a table row."""
    return (f"{row[name] * 100:+.2f} points, 95 % CI [{row[f'{name}_low'] * 100:+.2f}, "
            f"{row[f'{name}_high'] * 100:+.2f}]")


def relation(row: dict, name: str) -> str:
    """The verdict as a phrase before the comparison: "better than", "worse than", "no different from"."""
    outcome = verdict(row, name)
    return {"better": "better than", "worse": "worse than", "no different": "no different from",
            "not measured": "not compared (too few runs) with"}[outcome]


def mean_or_nan(a: np.ndarray) -> float:
    return float(a.mean()) if len(a) else float("nan")
