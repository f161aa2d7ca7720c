"""A study's plan: the run ids of the shared sweep that are its own, and the one accounting of a sweep's runs.

Every study of a workspace evaluates through :meth:`~datadiet.runs.workspace.Workspace.evaluate`, which records
the tasks in ``<study>/plan.json``: ``{"version", "runs": {run_id: {method, keep, offset, seed, subset_digest}},
"classes"}``.  A report aggregates exactly its plan's runs; :func:`account_runs` sorts everything else in the sweep
(missing, other seeds of the same experiment, other studies', foreign, damaged) so the report can say it.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from ..errors import DataDietError
from ..io import UnreadableFileError, load_json, write_json_atomic
from ..methods import Method
from ..selection import class_counts
from ..version import __version__
from .identity import canonical
from .sweep import Task

PLAN = "plan.json"


def write_plan(folder: Path, tasks: Sequence[Task], train_set=None) -> None:
    """``folder/plan.json``: the run ids of ``tasks``, and (given the training split they all select from) each
    subset's kept count per class, which the report shows."""
    runs = {t.spec.run_id: {"method": t.spec.method, "keep": t.spec.keep, "offset": t.spec.offset,
                            "seed": t.spec.train.seed, "subset_digest": t.spec.subset_digest} for t in tasks}
    classes = {} if train_set is None else {"classes": plan_class_counts(tasks, train_set)}
    write_json_atomic(folder / PLAN, {"version": __version__, "runs": runs, **classes})


def one_data(tasks: Sequence[Task]):
    """The data config every task trains on, or None when they differ (a plan then records no class counts)."""
    data = {json.dumps(canonical(t.spec.data), sort_keys=True): t.spec.data for t in tasks}
    return next(iter(data.values())) if len(data) == 1 else None


def plan_class_counts(tasks: Sequence[Task], train_set) -> dict:
    """What a plan records of the classes: names, sizes, and each subset run's kept count per class.

    Runs on the full data (no positions) are left out: they keep every class whole.
    """
    labels = train_set.labels.numpy()
    num_classes = train_set.num_classes
    names = list(getattr(train_set, "classes", None) or [str(c) for c in range(num_classes)])
    counts = {t.spec.run_id: class_counts(labels[t.positions], num_classes).tolist()
              for t in tasks if t.positions is not None}
    return {"names": names, "sizes": class_counts(labels, num_classes).tolist(), "counts": counts}


def read_plan(path: Path) -> dict:
    """A ``plan.json``, checked to be one."""
    try:
        record = load_json(path)
    except UnreadableFileError as exc:
        raise DataDietError(f"{exc.sentence(f'The plan {path}')}. Re-run the study with the same --out and "
                            "options: it trains nothing already finished and writes the plan again.") from None
    if not isinstance(record, dict) or not isinstance(record.get("runs"), dict):
        raise DataDietError(f"{path} is not a datadiet plan. Re-run the study with the same --out and options to "
                            "write it again.")
    return record


def plan_classes(plan_record: dict) -> dict | None:
    """The plan's per-class counts with each run's method, fraction and offset; None for plans without them."""
    classes = plan_record.get("classes")
    if not isinstance(classes, dict) or not isinstance(classes.get("counts"), dict):
        return None  # written by datadiet 0.2 or earlier: the report shows no class counts
    return {**classes, "runs": plan_record["runs"]}


def other_plans(root: Path, study: str) -> set[str]:
    """The run ids in the plans of every other study of the workspace ``root``."""
    ids: set[str] = set()
    for path in sorted(root.glob(f"*/{PLAN}")):
        if path.parent.name != study:
            try:
                ids |= set(read_plan(path)["runs"])
            except DataDietError:
                continue  # a damaged plan of another study says nothing about this one's runs
    return ids


def account_runs(plan: dict, files, config: dict, others: set[str] = frozenset()) -> dict[str, list]:
    """Sort the sweep's run files: the plan's finished runs (``chosen``), planned runs not on disk
    (``missing``), runs of the same experiment with other evaluation seeds (``extra``), runs other studies planned
    (``other_studies``), runs of anything else (``foreign``) and files that are no finished run (``damaged``)."""
    chosen = [rid for rid in plan if rid in files.records]
    points = {_point_key(p) for p in plan.values()}
    seeds = {p.get("seed") for p in plan.values()}
    fingerprints = {files.records[rid].get("dataset_fingerprint") for rid in chosen}
    extra, other, foreign = [], [], []
    for rid, record in files.records.items():
        if rid in plan:
            continue
        if rid in others:  # another study's run: never this one's, even where it looks like one of its points
            other.append(rid)
            continue
        # An evaluation seed beyond the plan's, at one of its points. A planned seed with another subset is not
        # this experiment's: with score draws, which subset a seed trains on is part of the experiment.
        same = (canonical(record["data"]) == canonical(config.get("data"))
                and _recipe(record["train"]) == _recipe(config.get("train", {}))
                and record["train"].get("seed") not in seeds
                and record.get("dataset_fingerprint") in (fingerprints or {record.get("dataset_fingerprint")})
                and _point_key(record) in points)
        (extra if same else foreign).append(rid)
    return {"chosen": chosen, "missing": [rid for rid in plan if rid not in files.records], "extra": extra,
            "other_studies": other, "foreign": foreign,
            "damaged": [f"{p.name} ({why})" for p, why in files.invalid.items()],
            "unchecked": [rid for rid in files.unchecked if rid in plan or rid in extra]}


def _point_key(run: dict) -> str:
    """A point of the curve: method, kept fraction, offset and, where the subset does not depend on the evaluation
    seed, the exact subset (random subsets and CCS samples are drawn afresh for every seed)."""
    return json.dumps(canonical([run["method"], float(run["keep"]), run.get("offset"),
                                 None if _seeded(run["method"]) else run.get("subset_digest")]))


def _seeded(method: str) -> bool:
    """Whether ``method`` draws its subset afresh per seed; a method no parse reads (a foreign run's) does not."""
    if method in ("random", "full"):
        return method == "random"
    try:
        return Method.parse(method).seeded
    except DataDietError:
        return False


def _recipe(train: dict) -> dict:
    return canonical({k: v for k, v in train.items() if k != "seed"})
