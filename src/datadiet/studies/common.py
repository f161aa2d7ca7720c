"""What the studies share beyond the runs layer: the evaluation tasks of a pruning comparison."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..config import DataConfig, TrainConfig
from ..errors import ConfigError
from ..report.tables import flatten_results
from ..runs.presets import Setting
from ..runs.sweep import Task
from ..runs.workspace import Workspace
from ..scores.registry import ScoreLabel
from ..selection import select, select_random


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


# A method is a score label plus, optionally, how its subset is chosen: ``el2n@epoch2`` keeps the highest scores
# (Data Diet's window), ``el2n@epoch2+easiest`` the lowest, ``+ccs`` samples by coverage (Zheng et al., 2023) and
# ``+moderate`` keeps the scores nearest the median (Xia et al., 2023).
METHOD_RULES = ("hardest", "easiest", "ccs", "moderate")


def split_method(method: str) -> tuple[str, str]:
    """``"el2n@epoch2+ccs"`` → ``("el2n@epoch2", "ccs")``; no suffix means ``"hardest"``."""
    label, sep, rule = method.partition("+")
    if sep and rule == "hardest":
        raise ConfigError(f"Write {label!r}, not {method!r}: keeping the hardest is what a bare score label does "
                          "(the two would train the same subset twice under two names).")
    rule = rule or "hardest"
    if rule not in METHOD_RULES:
        raise ConfigError(f"Unknown selection rule {rule!r} in method {method!r}; write SCORE[+RULE] with RULE one "
                          f"of {', '.join(METHOD_RULES)} (e.g. el2n@epoch2+ccs).")
    ScoreLabel.parse(label)
    return label, rule


def method_name(label: str, rule: str) -> str:
    return label if rule == "hardest" else f"{label}+{rule}"


def select_by_rule(values, rule: str, *, keep: float, ids, seed: int) -> np.ndarray:
    """The ids ``rule`` keeps from ``values`` (a ScoreTable or scores). Only CCS draws at random (with ``seed``)."""
    if rule == "hardest":
        return select(values, keep=keep, ids=ids)
    if rule == "easiest":
        return select(values, keep=keep, ids=ids, order="lowest")
    if rule == "ccs":
        return select(values, keep=keep, ids=ids, rule="ccs", seed=seed)
    return select(values, keep=keep, ids=ids, rule="moderate")
