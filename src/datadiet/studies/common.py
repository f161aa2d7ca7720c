"""The study kit: what every study shares beyond the runs layer (its seed counts checked, the evaluation tasks of a
pruning comparison, its section written with its config recorded)."""
from __future__ import annotations

from typing import Sequence

import numpy as np

import dataclasses
import sys
from pathlib import Path

from ..config import DataConfig, TrainConfig, check_counts, to_dict
from ..report.markdown import Section, write_section
from ..report.tables import flatten_results
from ..runs.presets import Setting
from ..runs.scoring import check_score_seeds
from ..runs.sweep import Task
from ..runs.workspace import Workspace
from ..selection import select, select_random


SEED_COUNTS = ("eval_seeds", "score_runs", "score_draws")  # a study's own counts; None = the setting's


def check_seed_counts(config) -> None:
    """A study config's evaluation seeds, score runs and score draws (None: the setting's): each at least 1, and the
    score runs' seeds clear of the evaluation seeds."""
    check_counts(config, SEED_COUNTS)
    s = config.setting
    check_score_seeds(config.score_draws or s.score_draws, config.score_runs or s.score_runs, s.eval_seed_base)


def baseline_tasks(ws: Workspace, setting: Setting, keeps: Sequence[float], *, data: DataConfig | None = None,
                   train: TrainConfig | None = None) -> list[Task]:
    """Full-data and random-subset runs (a fresh random subset per evaluation seed) for every fraction."""
    data = data or setting.data
    ids = ws.splits(data).train.ids.numpy()
    tasks = []
    for cfg in setting.eval_configs(train):
        tasks.append(ws.task(data, cfg, "full", 1.0, ids))
        tasks += [ws.task(data, cfg, "random", k, select_random(ids, keep=k, seed=cfg.seed)) for k in keeps]
    return tasks


def pruning_tasks(ws: Workspace, setting: Setting, method: str, values: np.ndarray, keeps: Sequence[float], *,
                  train: TrainConfig | None = None) -> list[Task]:
    """Evaluation runs of ``method``: per kept fraction, the subset of the highest ``values`` (selected once),
    trained with each of the setting's evaluation seeds (and ``train``'s recipe, if given)."""
    ids = ws.splits(setting.data).train.ids.numpy()
    subsets = {keep: select(values, keep=keep, ids=ids) for keep in keeps}
    return [ws.task(setting.data, cfg, method, keep, subsets[keep])
            for cfg in setting.eval_configs(train) for keep in keeps]


def accuracy_rows(records: Sequence[dict], **extra) -> list[dict]:
    """Flat rows (method, keep, offset, seed, test accuracy, ...) of result records, plus constant columns."""
    return [{**row, **extra} for row in flatten_results(records)]


def write_study_section(folder: Path, config, *, findings, tables: dict | None = None, figures: dict | None = None,
                        summary: dict | None = None) -> dict:
    """Write the section of the study whose ``config`` this is (its module's NAME, TITLE and SOURCE) into ``folder``,
    with the config recorded whole (:func:`config_record`); returns the summary."""
    module = sys.modules[type(config).__module__]
    section = Section(name=module.NAME, title=module.TITLE, source=module.SOURCE, findings=list(findings),
                      tables=tables or {}, figures=figures or {}, config=config_record(config), summary=summary or {})
    return write_section(folder, section)


def config_record(config) -> dict:
    """A study config as its section records it: every field, the setting by name with its data, recipe and
    protocol (so a setting changed on the command line is on record too)."""
    record = {f.name: getattr(config, f.name) for f in dataclasses.fields(config) if f.name != "setting"}
    return {"setting": to_dict(config.setting), **record}
