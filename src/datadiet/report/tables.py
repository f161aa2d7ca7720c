"""Tidy tables from sweep results: curves and tests against random, plus CSV reading and writing.

Everything here takes plain records (dicts) or arrays and returns lists of dicts, one row per
group, so the figures and the report only draw what these functions computed.
"""
from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ..io import atomic_path
from ..stats import compare_groups, holm, p_value_verdict, summarize


def flatten_results(records: Iterable[dict]) -> list[dict]:
    """One flat row per run (the CSV's columns), sorted by method, keep and seed."""
    rows = []
    for r in records:
        rows.append({
            "run_id": r["run_id"], "method": r["method"], "keep": r["keep"], "offset": r.get("offset"),
            "seed": r["train"]["seed"], "test_accuracy": r["test_accuracy"], "test_loss": r["test_loss"],
            "steps": r["steps"], "n_train": r["n_train"], "wall_seconds": r["wall_seconds"],
            "model": r["train"]["model"], "width": r["train"]["width"], "dataset": r["data"]["dataset"],
            "subset": r["data"]["subset"], "epochs": r["train"]["epochs"],
            "dataset_fingerprint": r.get("dataset_fingerprint"),
        })
    return sorted(rows, key=lambda x: (x["method"], x["keep"], _offset_key(x), x["seed"]))


def point_of(row: dict) -> tuple[str, float, float | None]:
    """A point of an experiment: (method, kept fraction, offset); offset ``None`` = keep the highest."""
    offset = row.get("offset")
    return row["method"], float(row["keep"]), None if offset is None else float(offset)


def point_label(row: dict) -> str:
    """``keep 0.5`` or ``keep 0.5 offset 0.1``, for prose and tables."""
    offset = row.get("offset")
    return f"keep {float(row['keep']):g}" + ("" if offset is None else f" offset {float(offset):g}")


def _offset_key(row: dict) -> float:
    return -1.0 if row.get("offset") is None else float(row["offset"])


def write_csv(path: str | Path, rows: Sequence[dict], columns: Sequence[str] | None = None) -> None:
    columns = list(columns or (rows[0].keys() if rows else []))
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def read_csv(path: str | Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return [_typed(row) for row in csv.DictReader(fh)]


def _accuracies_by_point(rows: Sequence[dict]) -> dict[tuple, list[float]]:
    groups: dict[tuple, list[float]] = defaultdict(list)
    for r in rows:
        groups[point_of(r)].append(float(r["test_accuracy"]))
    return dict(sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1], _offset_key({"offset": kv[0][2]}))))


def curve_table(rows: Sequence[dict]) -> list[dict]:
    """Mean and 16th/84th percentiles of final test accuracy per (method, keep, offset), as in Data Diet B.3."""
    return [{"method": method, "keep": keep, "offset": offset, **summarize(accs)}
            for (method, keep, offset), accs in _accuracies_by_point(rows).items()]


def compare_to_random(rows: Sequence[dict], *, baseline: str = "random", level: float = 0.95) -> list[dict]:
    """For each point: mean accuracy minus random's at the same kept fraction, its Welch interval and verdict
    (:func:`datadiet.stats.compare_groups`: fewer than 3 runs a side is "not resolved" with no interval, no spread
    on either side an exact difference), the per-run accuracies of both sides (``accuracies``,
    ``random_accuracies``) and the runs per arm that would resolve a difference of this size (``seeds_needed``).

    ``verdict`` is uncorrected, one comparison at a time.  ``p_holm`` and ``verdict_holm`` correct for all the
    comparisons in the table that have a p-value at once (Holm–Bonferroni: the family-wise error rate stays below
    ``1 − level``); the others keep their verdict.
    """
    groups = _accuracies_by_point(rows)
    out = []
    for (method, keep, offset), accs in groups.items():
        ref = groups.get((baseline, keep, None))
        if method in (baseline, "full") or not ref:
            continue
        out.append({"method": method, "keep": keep, "offset": offset, "n": len(accs), "n_random": len(ref),
                    **compare_groups(accs, ref, level), "accuracies": _values(accs), "random_accuracies": _values(ref)})
    for row, p_holm in zip(out, holm([r["p_value"] for r in out])):
        row["p_holm"] = float(p_holm)
        tested = np.isfinite(row["p_value"])
        row["verdict_holm"] = p_value_verdict(row["diff"], row["p_holm"], 1 - level) if tested else row["verdict"]
    return out


def _values(accs: Sequence[float]) -> str:
    """Per-run accuracies as one CSV cell, in run order: ``0.8125 0.7950``."""
    return " ".join(f"{a:.4f}" for a in accs)


def interval_coverage(eval_seeds: int | None, score_runs: int | None, score_draws: int | None) -> str:
    """What the intervals of :func:`compare_to_random` cover, in a sentence for a report: the evaluation seeds and,
    with K > 1 score draws (evaluation seed s selecting its subsets from draw s mod K), the score runs too."""
    draws = min(score_draws or 1, eval_seeds or 1)  # draws no seed selects from add nothing
    per_draw = f" ({score_runs} score runs each)" if score_runs else ""
    if draws > 1:
        shared = (" (seeds that share a draw share its scores, so they cover it only in part: one draw per seed "
                  "covers it fully)" if eval_seeds > draws else "")
        return (f"Intervals cover {eval_seeds} evaluation seeds × {draws} independent score draws{per_draw}: "
                f"evaluation seed s selects its subsets from draw s mod {draws}, so they include the randomness of "
                f"the score runs{shared}, and a verdict is about the method, not about one set of scores.")
    seeds = f"{eval_seeds} evaluation seeds" if eval_seeds else "the evaluation seeds"
    fixed = f"one draw of {score_runs} score runs" if score_runs else "one draw"
    return (f"Intervals cover {seeds} only; the score runs are fixed ({fixed}), so a verdict is about these scores, "
            "not about the method (`--score-draws K` covers the score runs too).")


def holm_family_size(versus: Sequence[dict]) -> int:
    """How many comparisons the Holm correction of :func:`compare_to_random` ran over (those with a p-value)."""
    return sum(1 for v in versus if v.get("p_value") is not None and np.isfinite(v["p_value"]))


def _typed(row: dict) -> dict:
    out = {}
    for k, v in row.items():
        if v in ("", "None"):
            out[k] = None
            continue
        try:
            out[k] = int(v) if v.lstrip("-").isdigit() else float(v)
        except ValueError:
            out[k] = v
    return out
