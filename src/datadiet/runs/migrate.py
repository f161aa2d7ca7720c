"""`datadiet migrate FOLDER`: carry the finished runs of an older results folder over to this version.

A `reproduce` folder of the old layout (``runs/``, ``scores/`` and ``config.json`` at its top) is moved into
the workspace layout every study shares: ``runs/`` → ``sweep/runs/``, the score draws → ``scores/<identity>/``,
``config.json`` and ``plan.json`` → ``reproduce/``.  Nothing is trained again; the report is rebuilt by the next
`datadiet report` or `datadiet reproduce`.

Then, for folders of datadiet 0.1:

0.2 identifies every result with :func:`datadiet.runs.identity.identity`, which leaves the device out (0.1 kept
it in) and renames two score-config fields (``score`` → ``scores``, ``epoch`` → ``score_epochs``).  Without
migration a 0.1 folder would still be valid but would train everything again.  This moves:

* evaluation runs (``runs/*.json`` of a reproduce folder, ``sweep/runs/*.json`` of a workspace): each record
  holds its whole spec, so its new id is computed from the record itself;
* cached score runs (``.runs/run-seed*-*.npz`` beside a ``score_config.json``): the 0.1 key is recomputed from
  that file, and only caches whose key matches are renamed, so nothing foreign is adopted.

Not moved: an analyses workspace's ``scores/<digest>/`` folder names and ``<analysis>/cache/`` models, whose
0.1 keys cannot be recomputed from what is on disk; they are recomputed on the next run (score runs and a few
cached models, not the evaluation sweep).  Migration is idempotent, and every rename is atomic.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..config import DataConfig, TrainConfig, from_dict
from ..errors import DataDietError
from ..io import (RESULT_MARKERS, UnreadableFileError, atomic_path, folder_lock, is_results_folder, load_json, read_npz,
                  write_json_atomic)
from ..methods import Method
from ..scores.registry import ScoreLabel
from .scoring import ScoreConfig, draw_seed, run_cache_name, scoring_schedule
from .workspace import score_key
from .sweep import CHECKSUM_KEY, RunSpec, record_checksum, seal_record

RENAMED_SCORE_FIELDS = {"score": "scores", "epoch": "score_epochs"}


@dataclass
class MigrationReport:
    runs_moved: int = 0
    runs_current: int = 0
    runs_damaged: int = 0
    score_runs_moved: int = 0
    score_runs_skipped: int = 0


def migrate(folder: str | Path, *, log: Callable[[str], None] = print) -> MigrationReport:
    """Rename the finished runs of a reproduce folder or analyses workspace to 0.2 identities."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataDietError(f"{folder} is not a folder; give the --out folder of `datadiet reproduce` or of "
                            "`datadiet analyze`.")
    if not is_results_folder(folder):  # before the lock and the walk: neither belongs in a folder not ours
        raise DataDietError(
            f"{folder} is not a datadiet results folder (it has none of {', '.join(RESULT_MARKERS)} at its top); "
            "migrate changes nothing there. Give the --out folder of `datadiet reproduce`, `datadiet analyze` or "
            "`datadiet score`.")
    report = MigrationReport()
    with folder_lock(folder, "datadiet migrate", fix=MIGRATE_FIX):
        if _is_old_reproduce_folder(folder):
            _move_into_workspace_layout(folder, log)
        if (folder / "sweep" / "runs").is_dir():
            _migrate_sweep_runs(folder / "sweep" / "runs", report)
        for config in sorted(folder.rglob("score_config.json")):
            _migrate_score_runs(config.parent, report)
    log(f"migrate: {report.runs_moved} evaluation runs renamed ({report.runs_current} already current), "
        f"{report.score_runs_moved} score runs renamed, {report.score_runs_skipped} score-run files left as they "
        "were (not from the folder's recorded score config)"
        + (f"; {report.runs_damaged} damaged run files left as they were (a re-run trains them again)"
           if report.runs_damaged else ""))
    return report


# What to do with a folder migrate cannot write (it has no --out: it renames files where they are).
MIGRATE_FIX = ("`datadiet migrate` renames the files inside it where they are: make it writable, or copy the folder "
               "somewhere you can write and migrate the copy.")
STUDY = "reproduce"  # the study whose folder an old reproduce folder becomes
# What an old reproduce folder kept at its top besides runs and scores (the report rebuilds the tables and figures)
OLD_STUDY_FILES = ("plan.json", "summary.json", "results.csv", "curve.csv", "vs_random.csv",
                   "spearman.csv", "class_counts.csv", "compute.csv", "pruning_curve.png", "offset_curve.png",
                   "spearman.png", "grand_init_vs_input_norm.png")


def _is_old_reproduce_folder(folder: Path) -> bool:
    return (folder / "config.json").is_file() and (folder / "runs").is_dir() and not (folder / "workspace.json").is_file()


def _move_into_workspace_layout(folder: Path, log: Callable[[str], None]) -> None:
    """Move an old reproduce folder's runs, score draws and study files where the workspace layout keeps them.
    Every step is a rename within the folder; a move interrupted half-way is finished by running migrate again."""
    record = _old_config(folder / "config.json")
    study = folder / STUDY
    study.mkdir(exist_ok=True)
    for kind in ("runs", "failures"):
        if (folder / kind).is_dir():
            target = folder / "sweep" / kind
            target.mkdir(parents=True, exist_ok=True)
            for path in sorted((folder / kind).glob("*.json")):
                os.replace(path, target / path.name)
            _remove_if_empty(folder / kind)
    record["score_folders"] = _move_score_draws(folder, record)
    write_json_atomic(study / "config.json", record)
    (folder / "config.json").unlink()  # its content, with the score folders added, is reproduce/config.json now
    for name in OLD_STUDY_FILES:
        if (folder / name).is_file():
            os.replace(folder / name, study / name)
    write_json_atomic(folder / "workspace.json", {"kind": "datadiet workspace", "migrated_from": "reproduce folder"})
    log(f"migrate: moved {folder}'s runs into sweep/runs, its score draws into scores/<identity> and its plan and "
        f"config into {STUDY}/ (the workspace layout of this version)")


def _old_config(path: Path) -> dict:
    """The ``config.json`` of an old reproduce folder, checked to hold what the move needs."""
    try:
        record = load_json(path)
        from_dict(DataConfig, record["data"]), from_dict(TrainConfig, record["train"]), int(record["score_runs"])
        [Method.parse(m) for m in record.get("methods", [])]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, DataDietError) as exc:
        raise DataDietError(f"{path} is damaged or not a reproduce config ({type(exc).__name__}: {exc}), so migrate "
                            f"cannot tell where its score draws belong; nothing was moved. Restore the file, or "
                            f"delete {path.parent} and run the reproduction again.") from None
    return record


def _move_score_draws(folder: Path, record: dict) -> list[str]:
    """Rename ``scores/`` (draw 0) and ``scores/draw-<d>`` to the score folders the reproduce study looks up
    (:func:`~datadiet.runs.workspace.score_key`); returns them relative to ``folder``."""
    scores = folder / "scores"
    data, train = from_dict(DataConfig, record["data"]), from_dict(TrainConfig, record["train"])
    runs = int(record["score_runs"])
    labels = tuple(dict.fromkeys(Method.parse(m).label for m in record.get("methods", [])))
    draws = min(int(record.get("score_draws") or 1), int(record.get("eval_seeds") or 1))
    keys = [score_key(data, train, runs, draw_seed(d, runs), labels) for d in range(draws)]
    if (scores / "score_config.json").is_file():  # not moved yet
        staging = folder / "scores.migrating"
        os.replace(scores, staging)
        scores.mkdir()
        for d in range(1, draws):
            if (staging / f"draw-{d}").is_dir():
                os.replace(staging / f"draw-{d}", scores / keys[d])
        os.replace(staging, scores / keys[0])
    return [f"scores/{key}" for key in keys]


def _remove_if_empty(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:
        pass  # something else lies there: left as it is


def _migrate_sweep_runs(runs: Path, report: MigrationReport) -> None:
    for path in sorted(runs.glob("*.json")):
        try:
            record = load_json(path)
            spec = RunSpec(from_dict(DataConfig, record["data"]), from_dict(TrainConfig, record["train"]),
                           record["method"], record["keep"], record.get("offset"), record.get("subset_digest", ""),
                           record.get("data_fingerprint", ""))  # user data: without it a current id looks old
        except (OSError, ValueError, KeyError, TypeError, DataDietError):
            report.runs_damaged += 1  # left as it is; the sweep trains it again
            continue
        if spec.run_id == path.stem:
            report.runs_current += 1
            continue
        sealed = CHECKSUM_KEY in record
        if sealed and record[CHECKSUM_KEY] != record_checksum(record):
            report.runs_damaged += 1  # edited: carrying it over would launder the edit under a fresh checksum
            continue
        # Only a record that had a checksum gets a new one: sealing an unchecked (0.1) record would vouch for
        # numbers nobody checked.
        moved = {**record, "run_id": spec.run_id}
        write_json_atomic(runs / f"{spec.run_id}.json", seal_record(moved) if sealed else moved)
        path.unlink()
        report.runs_moved += 1


def _migrate_score_runs(score_dir: Path, report: MigrationReport) -> None:
    old = _score_config(score_dir / "score_config.json")
    if "scores" in old.get("score", {}):
        return  # written by 0.2 already
    new = {**old, "score": {RENAMED_SCORE_FIELDS.get(k, k): v for k, v in old["score"].items()}}
    score_cfg = from_dict(ScoreConfig, new["score"])
    _, stop = scoring_schedule(score_cfg, from_dict(TrainConfig, old["train"]), int(old["dataset"]["size"]))
    for path in sorted((score_dir / ".runs").glob("run-seed*-*.npz")):
        seed = int(path.name[len("run-seed"):].partition("-")[0])
        if path.name != f"run-seed{seed}-{_legacy_key(old, seed, stop)}.npz":
            report.score_runs_skipped += 1
            continue
        arrays = _renamed_score_rows(path)
        if arrays is None:  # damaged: left as it is, like a damaged run record; scoring recomputes that run
            report.score_runs_skipped += 1
            continue
        target = path.with_name(run_cache_name(new, seed, stop))
        with atomic_path(target) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
        os.unlink(path)
        report.score_runs_moved += 1
    write_json_atomic(score_dir / "score_config.json", new)


def _score_config(path: Path) -> dict:
    """A score folder's ``score_config.json``, which says what its runs were: migrate cannot rename them without."""
    try:
        old = load_json(path)
    except UnreadableFileError as exc:
        raise DataDietError(f"{exc.sentence(str(path))}, so migrate cannot tell what the score runs beside it are; "
                            "nothing there was renamed. Restore the file, or delete its folder (its score runs are "
                            "computed again).") from None
    if not isinstance(old, dict) or not isinstance(old.get("score"), dict):
        raise DataDietError(f"{path} is not a datadiet score config, so migrate cannot tell what the score runs "
                            "beside it are. Restore the file, or delete its folder (its score runs are computed "
                            "again).")
    return old


def _renamed_score_rows(path: Path) -> dict[str, np.ndarray] | None:
    """A 0.1 score run's rows under 0.2 names ("el2n__epoch2" → "el2n-epoch2"); ``None`` if it is damaged."""
    try:
        rows = read_npz(path, what="a datadiet 0.1 score run")
        return {ScoreLabel.parse(k.replace("__", "@")).file_stem: v for k, v in rows.items()}
    except DataDietError:
        return None


def _legacy_key(provenance: dict, seed: int, stop: int) -> str:
    """The cache key datadiet 0.1 gave a score run (device included, 16 hex digits)."""
    spec = {k: v for k, v in provenance.items() if k != "version"}
    spec["data"] = {k: v for k, v in spec["data"].items() if k != "data_root"}
    spec["train"] = {**spec["train"], "seed": seed}
    spec["score"] = {k: v for k, v in spec["score"].items() if k not in ("runs", "seed", "score_batch_size")}
    spec["stop"] = stop
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:16]
