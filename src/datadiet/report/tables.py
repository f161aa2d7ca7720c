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
from ..stats import holm, interval_verdict, p_value_verdict, welch_interval

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
    out = []
    for (method, keep, offset), accs in _accuracies_by_point(rows).items():
        a = np.asarray(accs)
        out.append({"method": method, "keep": keep, "offset": offset, "n": len(a), "mean": float(a.mean()),
                    "p16": float(np.percentile(a, 16)), "p84": float(np.percentile(a, 84)),
                    "std": float(a.std(ddof=1)) if len(a) > 1 else float("nan")})
    return out


def compare_to_random(rows: Sequence[dict], *, baseline: str = "random", level: float = 0.95) -> list[dict]:
    """For each point: mean accuracy minus random's at the same kept fraction, a Welch-t 95 % interval, a verdict.

    The verdict is ``better`` or ``worse`` when the interval excludes 0, else ``no different``; it is uncorrected,
    one comparison at a time.  ``p_holm`` and ``verdict_holm`` correct for all the comparisons in the table at
    once (Holm–Bonferroni: the family-wise error rate stays below ``1 − level``).
    With few runs per point the interval is wide; it says so honestly rather than over-claiming.
    """
    groups = _accuracies_by_point(rows)
    out = []
    for (method, keep, offset), accs in groups.items():
        ref = groups.get((baseline, keep, None))
        if method in (baseline, "full") or not ref:
            continue
        diff, low, high, p = welch_interval(np.asarray(accs), np.asarray(ref), level)
        verdict = interval_verdict(low, high)
        out.append({"method": method, "keep": keep, "offset": offset, "n": len(accs), "n_random": len(ref), "diff": diff,
                    "ci_low": low, "ci_high": high, "p_value": p, "verdict": verdict})
    for row, p_holm in zip(out, holm([r["p_value"] for r in out])):
        row["p_holm"] = float(p_holm)
        row["verdict_holm"] = p_value_verdict(row["diff"], row["p_holm"], 1 - level)
    return out


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
