"""The study kit: what every study shares beyond the runs layer (its seed counts checked, the evaluation tasks of a
pruning comparison, its section written with its config recorded)."""
from __future__ import annotations

from typing import Sequence

import dataclasses
import sys
from pathlib import Path

from ..config import DataConfig, TrainConfig, check_counts, to_dict
from ..report.markdown import Section, write_section
from ..report.tables import flatten_results, interval_coverage
from ..runs.presets import Setting
from ..runs.scoring import check_score_seeds
from ..runs.sweep import Task
from ..methods import Method
from ..runs.workspace import ScoreDraws, Workspace
from ..selection import is_top_window, offset_windows, select_random


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


def pruning_tasks(ws: Workspace, setting: Setting, method: Method | str, draws: ScoreDraws, keeps: Sequence[float],
                  *, train: TrainConfig | None = None, offsets: Sequence[float] = ()) -> list[Task]:
    """Evaluation runs of ``method`` at every kept fraction (and B.3 window of ``offsets``, for the hardest rule),
    once per evaluation seed of the setting (with ``train``'s recipe, if given). Evaluation seed s selects its
    subsets from draw s mod K of ``draws`` (score tables, or ``[N]`` values over the training set's ids): the one
    way every study turns scores into evaluation runs."""
    method = Method.coerce(method)
    train_set = ws.splits(setting.data).train
    ids, labels = train_set.ids.numpy(), train_set.labels.numpy()
    tasks = []
    for s, cfg in enumerate(setting.eval_configs(train)):
        scores = draws.for_seed(s)
        if isinstance(scores, dict):
            scores = scores[method.label]
        choose = dict(seed=cfg.seed, labels=labels, num_classes=train_set.num_classes, ids=ids)
        for keep in keeps:
            tasks.append(ws.task(setting.data, cfg, str(method), keep, method.select(scores, keep=keep, **choose)))
            for offset in extra_windows(keep, offsets) if method.rule == "hardest" else ():
                kept = method.select(scores, keep=keep, offset=offset, **choose)
                tasks.append(ws.task(setting.data, cfg, str(method), keep, kept, offset=offset))
    return tasks


def extra_windows(keep: float, offsets: Sequence[float]) -> list[float]:
    """Offset windows that fit, except the keep-highest one, which every sweep already holds (offset None)."""
    return [o for o in offset_windows(keep, offsets) if not is_top_window(keep, o)]


def coverage(setting: Setting) -> str:
    """What a study's intervals cover, as its report states it: its evaluation seeds and its score draws."""
    return interval_coverage(setting.eval_seeds, setting.score_runs, setting.score_draws)


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
