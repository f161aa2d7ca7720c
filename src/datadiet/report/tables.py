"""Tidy tables from sweep results: curves and tests against random, plus CSV reading and writing.

Everything here takes plain records (dicts) or arrays and returns lists of dicts, one row per
group, so the figures and the report only draw what these functions computed.
"""
from __future__ import annotations

import csv
import math
from collections import defaultdict
from dataclasses import asdict
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ..config import TrainConfig
from ..runs.scoring import cost_in
from ..training.accounting import Cost
from ..io import atomic_path
from ..selection import class_counts
from ..stats import compare_groups, holm_correct, summarize


# The per-class numbers a run record carries (runs.sweep.execute_run) and results.csv shows beside the accuracy.
CLASS_COLUMNS = ("test_balanced_accuracy", "test_worst_class_accuracy", "test_majority_rate", "test_class_recall")


def flatten_results(records: Iterable[dict]) -> list[dict]:
    """One flat row per run (the CSV's columns), sorted by method, keep and seed.

    The per-class columns (:data:`CLASS_COLUMNS`) are empty for a record written before runs measured them: unknown,
    never an error and never a reason to train the run again."""
    rows = []
    for r in records:
        rows.append({
            "run_id": r["run_id"], "method": r["method"], "keep": r["keep"], "offset": r.get("offset"),
            "seed": r["train"]["seed"], "test_accuracy": r["test_accuracy"], "test_loss": r["test_loss"],
            **class_cells(r), "steps": r["steps"], "n_train": r["n_train"], "wall_seconds": r["wall_seconds"],
            "model": r["train"]["model"], "width": r["train"]["width"], "dataset": r["data"]["dataset"],
            "subset": r["data"]["subset"], "epochs": r["train"]["epochs"],
            "dataset_fingerprint": r.get("dataset_fingerprint"),
        })
    return sorted(rows, key=lambda x: (x["method"], x["keep"], _offset_key(x), x["seed"]))


def class_cells(record: dict) -> dict:
    """A run record's per-class numbers as CSV cells: balanced and worst-class accuracy and the majority-class rate
    as numbers, the per-class recall as one cell in class order (``0.9100 0.0000 nan``: nan for a class absent from
    the test split); None (an empty cell) where the record predates them."""
    cells = {k: record.get(k) for k in CLASS_COLUMNS[:3]}
    recall = record.get("test_class_recall")
    cells["test_class_recall"] = None if recall is None else " ".join(
        "nan" if x is None else f"{float(x):.4f}" for x in recall)
    return cells


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


# The metrics a report may judge by (``--metric``): name → the run record's (and results.csv's) column.
METRICS = {"accuracy": "test_accuracy", "balanced": "test_balanced_accuracy",
           "worst-class": "test_worst_class_accuracy"}
METRIC_NAMES = {"accuracy": "accuracy", "balanced": "balanced accuracy", "worst-class": "worst-class accuracy"}


# A training split whose largest class has more than this many times the examples of its smallest is judged by
# balanced accuracy unless --metric says otherwise: there, accuracy rewards predicting the large classes.
IMBALANCE = 1.5


def choose_metric(metric: str, train_labels, num_classes: int) -> tuple[str, str]:
    """The metric the report judges by and why, in words for its first lines: ``metric`` as given, or for
    ``"auto"`` accuracy, or balanced accuracy where the training split's largest class (of those present) has over
    :data:`IMBALANCE` times the examples of its smallest."""
    counts = class_counts(train_labels, num_classes)
    present = counts[counts > 0]
    ratio = float(present.max() / present.min()) if len(present) else 1.0
    split = f"the training split's largest class has {ratio:.2f}× the examples of its smallest"
    if metric != "auto":
        return metric, f"chosen with --metric; {split}"
    if ratio > IMBALANCE:
        return "balanced", f"the default on imbalanced data: {split}, over {IMBALANCE:g}×"
    return "accuracy", f"the default: {split}, at most {IMBALANCE:g}×"


def metric_column(metric: str) -> str:
    """The column of ``metric`` (a key of :data:`METRICS`)."""
    if metric not in METRICS:
        raise ValueError(f"metric is one of {', '.join(METRICS)}, not {metric!r}")
    return METRICS[metric]


def metric_value(row: dict, metric: str = "accuracy") -> float | None:
    """A run's value of ``metric``; None where the record predates it (or holds no number)."""
    value = row.get(metric_column(metric))
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def lacking_metric(rows: Sequence[dict], metric: str) -> int:
    """How many runs hold no value of ``metric`` (records written before runs measured it): left out of its tables."""
    return sum(1 for r in rows if metric_value(r, metric) is None)


def _accuracies_by_point(rows: Sequence[dict], metric: str = "accuracy") -> dict[tuple, list[float]]:
    groups: dict[tuple, list[float]] = defaultdict(list)
    for r in rows:
        value = metric_value(r, metric)
        if value is not None:  # a record without the metric is left out (lacking_metric counts it)
            groups[point_of(r)].append(value)
    return dict(sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1], _offset_key({"offset": kv[0][2]}))))


def curve_table(rows: Sequence[dict], metric: str = "accuracy") -> list[dict]:
    """Mean and 16th/84th percentiles of final test accuracy (or another of :data:`METRICS`) per (method, keep,
    offset), as in Data Diet B.3."""
    return [{"method": method, "keep": keep, "offset": offset, **summarize(accs)}
            for (method, keep, offset), accs in _accuracies_by_point(rows, metric).items()]


def compare_to_random(rows: Sequence[dict], *, baseline: str = "random", level: float = 0.95,
                      metric: str = "accuracy") -> list[dict]:
    """For each point: mean accuracy (or ``metric``'s value) minus random's at the same kept fraction, its Welch
    interval and verdict
    (:func:`datadiet.stats.compare_groups`: fewer than 3 runs a side is "not resolved" with no interval, no spread
    on either side an exact difference), the per-run accuracies of both sides (``accuracies``,
    ``random_accuracies``) and the runs per arm that would resolve a difference of this size (``seeds_needed``).

    ``verdict`` is uncorrected, one comparison at a time.  ``p_holm`` and ``verdict_holm`` correct for all the
    comparisons in the table that have a p-value at once (Holm–Bonferroni: the family-wise error rate stays below
    ``1 − level``); the others keep their verdict.
    """
    groups = _accuracies_by_point(rows, metric)
    out = []
    for (method, keep, offset), accs in groups.items():
        ref = groups.get((baseline, keep, None))
        if method in (baseline, "full") or not ref:
            continue
        out.append({"method": method, "keep": keep, "offset": offset, "n": len(accs), "n_random": len(ref),
                    **compare_groups(accs, ref, level).row(), "accuracies": _values(accs), "random_accuracies": _values(ref)})
    return holm_correct(out, level)


# class_recall.csv: per point and class, the mean test recall over the point's runs and full data's, and whether
# the class fell to 0 there while full data recognised it.
CLASS_RECALL_COLUMNS = ("method", "keep", "offset", "class", "class_name", "runs", "mean_recall", "full_recall",
                        "dropped")


def class_recall_table(records: Iterable[dict], names: Sequence[str] | None = None) -> list[dict]:
    """One row per (method, keep, offset, class): the class's index and name (``names`` in class order, e.g. the
    plan's; else the index), the mean test recall of the class over the point's runs that recorded it (``runs``; a
    class absent from the test split, or records written before runs measured it, add nothing), full data's mean
    recall of the class, and ``dropped``: the point recognised none of the class (mean recall 0, so every run's was
    0) while full data recognised some (above 0)."""
    groups: dict[tuple, list[list]] = defaultdict(list)
    for r in records:
        if r.get("test_class_recall") is not None:
            groups[point_of(r)].append(r["test_class_recall"])
    full = _class_means(groups.get(("full", 1.0, None), []))
    rows = []
    for (method, keep, offset), recalls in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1],
                                                                                  _offset_key({"offset": kv[0][2]}))):
        for c, (mean, runs) in enumerate(_class_means(recalls)):
            full_mean = full[c][0] if c < len(full) else None
            name = str(names[c]) if names is not None and c < len(names) else str(c)
            rows.append({"method": method, "keep": keep, "offset": offset, "class": c, "class_name": name, "runs": runs,
                         "mean_recall": mean, "full_recall": full_mean,
                         "dropped": method != "full" and mean == 0 and full_mean is not None and full_mean > 0})
    return rows


def _class_means(recalls: Sequence[Sequence]) -> list[tuple[float | None, int]]:
    """(mean, runs) per class over runs' recall lists; None entries (the class absent) left out."""
    classes = max((len(r) for r in recalls), default=0)
    out = []
    for c in range(classes):
        known = [float(r[c]) for r in recalls if c < len(r) and r[c] is not None and math.isfinite(float(r[c]))]
        out.append((math.fsum(known) / len(known) if known else None, len(known)))
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


# ---------------------------------------------------------------- compute
#
# Costs here are plain JSON values (``sample_passes``, ``forward_passes``, ``flops``, ``wall_seconds``; see
# datadiet.training.accounting.Cost): an unknown FLOP count is None, an unknown wall time NaN, and either makes
# every sum and mean it enters unknown too.

def record_cost(record: dict, per_example: Sequence[int] | None = None) -> dict:
    """What an evaluation run's training cost, with ``recorded`` saying where it comes from: the record's own
    ``cost`` (True), or for a record written before runs recorded it, its step schedule (False): ``steps`` batches of the
    batch size (capped at the subset's size, as the engine does), FLOPs from ``per_example`` (train, inference;
    :func:`datadiet.runs.scoring.recipe_flops`) and the record's wall time (set-up and evaluation included)."""
    cost = record.get("cost")
    if isinstance(cost, dict):
        wall = cost.get("wall_seconds")
        return {"sample_passes": int(cost["sample_passes"]), "forward_passes": int(cost.get("forward_passes") or 0),
                "flops": cost.get("flops"), "wall_seconds": math.nan if wall is None else float(wall),
                "recorded": True}
    batch = int(record["train"].get("batch_size", TrainConfig.batch_size))  # a field left out holds its default
    passes = int(record["steps"]) * min(batch, int(record["n_train"]))
    return {"sample_passes": passes, "forward_passes": 0,
            "flops": None if per_example is None else passes * int(per_example[0]),
            "wall_seconds": float(record["wall_seconds"]), "recorded": False}


def cost_rows(records: Iterable[dict], per_example: Sequence[int] | None = None) -> list[dict]:
    """One row per run: its point (method, keep, offset), seed and training cost (:func:`record_cost`)."""
    return [{"run_id": r["run_id"], "method": r["method"], "keep": r["keep"], "offset": r.get("offset"),
             "seed": r["train"]["seed"], **record_cost(r, per_example)} for r in records]


def sum_costs(costs: Iterable[dict]) -> dict:
    """The sum of costs (JSON entries, other keys ignored), added as :class:`Cost` adds: FLOPs None and wall time
    NaN where any part is unknown."""
    return asdict(sum((cost_in(c) for c in costs), Cost()))


def _wall(cost: dict) -> float:
    wall = cost.get("wall_seconds")
    return math.nan if wall is None else float(wall)


def _mean_cost(costs: Sequence[dict]) -> dict:
    total = sum_costs(costs)
    n = max(len(costs), 1)
    return {"sample_passes": total["sample_passes"] / n, "forward_passes": total["forward_passes"] / n,
            "flops": None if total["flops"] is None else total["flops"] / n, "wall_seconds": total["wall_seconds"] / n}


def compute_table(rows: Sequence[dict], charges: dict[str, dict] | None = None) -> list[dict]:
    """Per point (method, keep, offset), means over its runs (:func:`cost_rows`): training sample passes, as a
    fraction of the full-data run's, FLOPs and wall seconds; and *including scoring*, where ``charges`` (method →
    a charge of :func:`datadiet.runs.scoring.charge`) holds the method's score runs: each of its points is
    charged their whole cost once, since every model it trains needed them. ``passes_with_scoring`` counts
    scoring's forward-only passes at their FLOP share (the charge's ``pass_equivalents``)."""
    charges = charges or {}
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        groups[point_of(r)].append(r)
    full = groups.get(("full", 1.0, None))
    full_passes = _mean_cost(full)["sample_passes"] if full else math.nan
    out = []
    for (method, keep, offset), runs in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1], _offset_key(
            {"offset": kv[0][2]}))):
        train = _mean_cost(runs)
        row = {"method": method, "keep": keep, "offset": offset, "runs": len(runs),
               "train_passes": train["sample_passes"], "train_of_full": train["sample_passes"] / full_passes,
               "train_flops": train["flops"], "train_seconds": train["wall_seconds"]}
        charge = charges.get(method)
        if charge is not None:
            flops = None if train["flops"] is None or charge.get("flops") is None else train["flops"] + charge["flops"]
            passes = train["sample_passes"] + float(charge["pass_equivalents"])
            row.update(score_runs=int(charge["runs"]), scoring_passes=int(charge["sample_passes"]),
                       scoring_forward=int(charge["forward_passes"]), passes_with_scoring=passes,
                       with_scoring_of_full=passes / full_passes, flops_with_scoring=flops,
                       seconds_with_scoring=train["wall_seconds"] + _wall(charge))
        out.append(row)
    return out


def compute_total(rows: Sequence[dict], score_runs: Sequence[dict]) -> dict:
    """What a whole experiment cost: every evaluation run's training (:func:`cost_rows`) and every score run
    once (``score_runs``: one cost each), however many methods and fractions share them."""
    training, scoring = sum_costs(rows), sum_costs(score_runs)
    return {"runs": len(rows), "training": training, "score_runs": len(score_runs), "scoring": scoring,
            "total": sum_costs([training, scoring]), "recomputed": sum(1 for r in rows if not r.get("recorded", True))}


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
