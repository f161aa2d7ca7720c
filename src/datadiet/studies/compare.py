"""Comparisons of evaluation runs shared by the studies: accuracies of one (method, fraction), the difference
of two groups with its Welch 95 % interval, and the verdict and wording of such a difference.

The comparison itself and its words are :mod:`datadiet.stats`' (:func:`~datadiet.stats.compare_groups`,
:func:`~datadiet.stats.verdict_phrase`, :func:`~datadiet.stats.interval_text`), the same as the pruning report's;
this module stores one in a table row under a name (``vs_random``, ``vs_random_low`` ...) and reads it back.
"""
from __future__ import annotations

import numpy as np

from ..errors import DataDietError
from ..stats import RELATIONS, compare_groups, interval_text as _interval_text, summarize


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
    """``name``: mean(a) − mean(b), with its Welch 95 % interval (``name_low``/``name_high``, NaN when fewer than 3
    runs a side make it uninformative), verdict (``name_verdict``) and its qualifier (``name_note``), as
    :func:`datadiet.stats.compare_groups` decides them."""
    c = compare_groups(a, b)
    return {name: c.diff, f"{name}_low": c.ci_low, f"{name}_high": c.ci_high,
            f"{name}_verdict": c.verdict, f"{name}_note": c.note}


def verdict(row: dict, name: str) -> str:
    """The verdict of the contrast ``name`` of a table row (see :func:`datadiet.stats.compare_groups`)."""
    return row[f"{name}_verdict"]


def interval_text(row: dict, name: str) -> str:
    """``+1.20 points, 95 % CI [+0.40, +2.00]`` for the contrast ``name`` of a table row (or the mean difference
    with what stands in for the interval: ``95 % CI n/a (2 seeds: not informative)``, ``(exact: no spread)``)."""
    return _interval_text(row[name], row[f"{name}_low"], row[f"{name}_high"], _note(row, name))


def relation(row: dict, name: str) -> str:
    """The verdict as a phrase before the comparison: "better than", "worse than", "no different from", "not
    resolved against", "not compared with"; a qualifying note is left to :func:`interval_text`."""
    return RELATIONS[verdict(row, name)]


def _note(row: dict, name: str) -> str:
    note = row.get(f"{name}_note")
    return note if isinstance(note, str) else ""  # a CSV round trip reads an empty note as None


def mean_or_nan(a: np.ndarray) -> float:
    return summarize(a)["mean"]
