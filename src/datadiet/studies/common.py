"""What the studies share beyond the runs layer: the evaluation tasks of a pruning comparison."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..config import DataConfig, TrainConfig, check_counts
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
