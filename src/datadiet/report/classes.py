"""Per-class kept counts of a pruning experiment's subsets, and warnings where a class all but vanished.

A score can rank one class far above the others (EL2N ranks ambiguous classes hard, forgetting ties at zero on
easy ones), so "keep the hardest 30 %" may keep almost nothing of some class. The accuracy curves alone do not
show why a method lost; the counts do. The input is what ``plan.json`` records under ``classes`` (see
``runs.plan.plan_class_counts``) with the plan's runs: nothing is recomputed from the data.
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np

from ..methods import EQUAL
from ..selection import short_classes
from .tables import point_label

# What a class warning offers: both class quotas, and what each does to an imbalanced dataset.
CLASS_REMEDIES = ("a +balanced method keeps every class's proportional share, so an imbalanced dataset stays as "
                  "imbalanced; a +equal method keeps the same count from every class")
WIDE_LIMIT = 20  # classes shown one column each; beyond, the table shows the fewest kept and the CSV has all


def class_count_rows(classes: dict | None) -> list[dict]:
    """One row per subset (method, kept fraction, offset) and class: size, proportional share, and the kept count
    (mean, min and max over the subsets of that point: one per evaluation seed for random and CCS).

    ``classes`` is ``{"names", "sizes", "counts": {run id: [kept per class]}, "runs": plan runs}``; ``None``
    (a plan written before class counts) gives no rows. Runs on the full data are not among the counts.
    """
    if not classes:
        return []
    points = defaultdict(list)
    for run_id, counts in classes["counts"].items():
        run = classes["runs"].get(run_id)
        if run is not None:
            points[(run["method"], float(run["keep"]), run.get("offset"))].append(counts)
    rows = []
    for (method, keep, offset), subsets in sorted(points.items(), key=_point_order):
        kept = np.asarray(subsets, dtype=np.int64)
        for c, (name, size) in enumerate(zip(classes["names"], classes["sizes"])):
            rows.append({"method": method, "keep": keep, "offset": offset, "class": name, "size": int(size),
                         "share": keep * size, "kept_mean": float(kept[:, c].mean()), "kept_min": int(kept[:, c].min()),
                         "kept_max": int(kept[:, c].max()), "subsets": len(kept)})
    return rows


def class_warnings(rows: list[dict]) -> list[str]:
    """One sentence per (method, fraction, class) whose smallest kept count is under half the proportional share
    (not for a ``+equal`` method, which gives up proportional shares on purpose)."""
    lines = []
    for point in _by_point(rows):
        if EQUAL in str(point[0]["method"]).partition("/")[0].split("+")[1:]:
            continue
        counts = [r["kept_min"] for r in point]
        for c in short_classes(counts, [r["size"] for r in point], point[0]["keep"]):
            r = point[c]
            fewest = "" if r["subsets"] == 1 else f"as few as {r['kept_min']} (the fewest in its {r['subsets']} subsets)"
            lines.append(f"{r['method']} at {point_label(r)} keeps {fewest or r['kept_min']} of the {r['size']} "
                         f"examples of class {r['class']!r}, under half of its proportional share "
                         f"({r['share']:.4g}); {CLASS_REMEDIES}")
    return lines


def class_count_markdown(rows: list[dict], warnings: list[str]) -> list[str]:
    """The report's section: the warnings, then kept examples per class for each method and fraction."""
    if not rows:
        return []
    out = ["### Kept examples per class", ""]
    out += [f"- **Warning**: {w}." for w in warnings] + ([""] if warnings else [])
    points = _by_point(rows)
    if len(points[0]) <= WIDE_LIMIT:
        out += _wide_table(points)
    else:
        out += _narrow_table(points)
    out += ["", "Counts are means over the subsets of a point (one per evaluation seed where the subsets differ "
            "between seeds, as random and CCS subsets do); a warning names the smallest count. *share*: the kept "
            "fraction times the class size. Every count, with its minimum and maximum, is in `class_counts.csv`."]
    return out


def _wide_table(points: list[list[dict]]) -> list[str]:
    """One column per class: the share row of each fraction, then each method's kept count."""
    names = [_cell(r["class"]) for r in points[0]]
    out = ["| method | subset | " + " | ".join(names) + " |", "|---" * (len(names) + 2) + "|"]
    shown_shares = set()
    for point in points:
        head = point[0]
        if head["keep"] not in shown_shares:
            shown_shares.add(head["keep"])
            out.append(f"| *share* | keep {head['keep']:g} | " + " | ".join(f"*{r['share']:.4g}*" for r in point)
                       + " |")
        out.append(f"| {_cell(head['method'])} | {point_label(head)} | "
                   + " | ".join(_count(r) for r in point) + " |")
    return out


def _narrow_table(points: list[list[dict]]) -> list[str]:
    """Too many classes for columns: per method and fraction, the class kept least relative to its share."""
    out = ["| method | subset | fewest kept (relative to share) | classes under half their share |",
           "|---|---|---|---|"]
    for point in points:
        worst = min(point, key=lambda r: r["kept_min"] / r["share"] if r["share"] else np.inf)
        under = len(short_classes([r["kept_min"] for r in point], [r["size"] for r in point], point[0]["keep"]))
        out.append(f"| {_cell(worst['method'])} | {point_label(worst)} | {_cell(worst['class'])}: {_count(worst)} "
                   f"of share {worst['share']:.4g} | {under} |")
    return out


def _by_point(rows: list[dict]) -> list[list[dict]]:
    """Rows grouped by (method, keep, offset), classes in order, points in the order of the rows."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["method"], r["keep"], r["offset"]), []).append(r)
    return list(groups.values())


def _point_order(item) -> tuple:
    (method, keep, offset), _ = item
    return (keep, method != "random", method, -1.0 if offset is None else float(offset))


def _count(row: dict) -> str:
    mean = row["kept_mean"]
    return f"{mean:g}" if mean == int(mean) else f"{mean:.1f}"


def _cell(text) -> str:
    return str(text).replace("|", "\\|")
