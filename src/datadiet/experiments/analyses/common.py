"""What every analysis shares: settings (smoke / quick / paper), a workspace with cached score runs and one
resumable sweep folder, and a writer for the analysis' report section.

A workspace is one folder (default ``results/analyses``)::

    scores/<digest>/     score runs of one (data, recipe, runs) setting: every standard score, all runs
    sweep/runs/          every evaluation run of every analysis, by content hash (run once, reused)
    <analysis>/          the analysis' tables (CSV), figures (PNG), section.md and summary.json
    report.md / .html    all sections gathered

Analyses never retrain what is on disk: score runs are cached by what determines them, and an evaluation
run that two analyses share (the full-data baseline, say) has one run id and trains once.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ...config import DataConfig, TrainConfig, to_dict
from ...errors import unknown_name
from ...io import write_json_atomic, write_text_atomic
from ..reproduce import make_task, score_tables
from ..sweep import Task, run_sweep


@dataclass(frozen=True)
class Setting:
    """Data, recipe and scoring protocol shared by the runs of an analysis."""

    name: str
    data: DataConfig
    train: TrainConfig
    score_runs: int            # R independent scoring runs averaged
    score_epoch: float         # "early in training" (Data Diet: epoch 20 of 200 on CIFAR-10)
    eval_seeds: int            # evaluation runs per point
    eval_seed_base: int = 1000  # evaluation seeds never overlap scoring seeds 0..R-1

    def early(self, score: str) -> str:
        return f"{score}@epoch{self.score_epoch:g}"

    def eval_configs(self, train: TrainConfig | None = None) -> list[TrainConfig]:
        train = train or self.train
        return [replace(train, seed=self.eval_seed_base + s) for s in range(self.eval_seeds)]


SETTINGS: dict[str, Setting] = {s.name: s for s in (
    Setting("smoke", DataConfig(dataset="fashion-mnist", subset=384, subset_mode="balanced", test_subset=200),
            TrainConfig(model="smallcnn", width=0.25, epochs=2, batch_size=32), score_runs=2, score_epoch=1,
            eval_seeds=2),
    # the same miniature as `reproduce quick`: without augmentation the small CNN fits 4,000 examples in
    # 20 epochs, so which examples it gets matters (README, "What reproduce quick showed")
    Setting("quick", DataConfig(dataset="fashion-mnist", subset=4000, subset_mode="balanced"),
            TrainConfig(model="smallcnn", width=0.5, epochs=20, augment=False), score_runs=4, score_epoch=2,
            eval_seeds=3),
    Setting("paper", DataConfig(dataset="cifar10"), TrainConfig(model="resnet18", epochs=200), score_runs=10,
            score_epoch=20, eval_seeds=4),
)}


def get_setting(name: str) -> Setting:
    if name not in SETTINGS:
        raise unknown_name("preset", name, tuple(SETTINGS))
    return SETTINGS[name]


MODEL_SCORES = ("grand", "el2n", "score1", "score2", "score3")


def standard_scores(setting: Setting) -> tuple[str, ...]:
    """Every score of both papers, each model score at init and early in training: one set of score runs
    serves every analysis (asking for a subset would be a different cache key and retrain)."""
    timed = [f"{s}@{when}" for s in MODEL_SCORES for when in ("init", f"epoch{setting.score_epoch:g}")]
    return ("input_norm", "random", *timed, "forgetting@end")


@dataclass
class Workspace:
    """A results folder plus where and how to run: shared by all analyses."""

    root: Path
    data_root: str | None = None
    device: str | None = None
    executor: str = "local"
    address: str | None = None
    cpus: float = 1
    gpus: float = 0
    log: Callable[[str], None] = print

    def __post_init__(self):
        self.root = Path(self.root)

    def folder(self, name: str) -> Path:
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def data(self, data: DataConfig) -> DataConfig:
        return replace(data, data_root=self.data_root) if self.data_root else data

    def train(self, train: TrainConfig) -> TrainConfig:
        return replace(train, device=self.device) if self.device else train

    def splits(self, data: DataConfig):
        from ..sweep import load_cached

        return load_cached(self.data(data))

    def run_cache(self, analysis: str, data: DataConfig, train: TrainConfig) -> Path:
        """``<analysis>/cache/<digest>``: models an analysis trains itself (not through the sweep), keyed by
        what determines them: the data (not its location) and the recipe (not the device)."""
        return self.folder(analysis) / "cache" / _digest({"data": _identity(data), "train": _identity(train)})

    def scores(self, setting: Setting, *, data: DataConfig | None = None, train: TrainConfig | None = None,
               runs: int | None = None, seed: int = 0, methods: Sequence[str] | None = None) -> dict:
        """Score tables (label → ScoreTable) of ``setting``'s score runs, with optional changes of data,
        recipe, number of runs or first seed; cached in ``scores/<digest>``."""
        data, train = self.data(data or setting.data), self.train(train or setting.train)
        runs = runs or setting.score_runs
        methods = tuple(methods or standard_scores(setting))
        digest = _digest({"data": _identity(data), "train": to_dict(train), "runs": runs, "seed": seed,
                          "methods": methods})
        return score_tables(methods, runs, train, data, self.splits(data), self.root / "scores" / digest,
                            seed=seed, log=self.log)

    def task(self, data: DataConfig, train: TrainConfig, method: str, keep: float, kept_ids, *,
             offset: float | None = None) -> Task:
        data, train = self.data(data), self.train(train)
        return make_task(data, train, method, keep, kept_ids, self.splits(data).train, offset)

    def evaluate(self, tasks: Sequence[Task]) -> list[dict]:
        """Run (or find on disk) every task; returns their result records. Failed runs are logged with their
        spec and retried next time; the analysis reports on the runs that finished."""
        outcome = run_sweep(tasks, self.root / "sweep", executor=self.executor, address=self.address,
                            cpus=self.cpus, gpus=self.gpus, log=self.log)
        if outcome.failures:
            self.log(f"{len(outcome.failures)} runs failed (see {self.root / 'sweep' / 'failures'}); re-run the same "
                     "command to retry them.")
        return outcome.results


def _identity(config) -> dict:
    """A config's fields that determine results: not where the data lies nor which device computes."""
    return {k: v for k, v in to_dict(config).items() if k not in ("data_root", "device")}


def _digest(key: dict) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:12]


def baseline_tasks(ws: Workspace, setting: Setting, keeps: Sequence[float], *, data: DataConfig | None = None,
                   train: TrainConfig | None = None) -> list[Task]:
    """Full-data and random-subset runs (a fresh random subset per evaluation seed) for every fraction."""
    from ...selection import select_random

    data = data or setting.data
    ids = ws.splits(data).train.ids.numpy()
    tasks = []
    for cfg in setting.eval_configs(train):
        tasks.append(ws.task(data, cfg, "full", 1.0, ids))
        tasks += [ws.task(data, cfg, "random", k, select_random(ids, keep=k, seed=cfg.seed)) for k in keeps]
    return tasks


def pruning_tasks(ws: Workspace, setting: Setting, method: str, values: np.ndarray, keeps: Sequence[float], *,
                  train: TrainConfig | None = None) -> list[Task]:
    """Evaluation runs of ``method``: per kept fraction, the subset of the highest ``values`` (selected once), trained
    with each of the setting's evaluation seeds (and ``train``'s recipe, if given)."""
    from ...selection import select

    ids = ws.splits(setting.data).train.ids.numpy()
    subsets = {keep: select(values, keep=keep, ids=ids) for keep in keeps}
    return [ws.task(setting.data, cfg, method, keep, subsets[keep])
            for cfg in setting.eval_configs(train) for keep in keeps]


def accuracy_rows(records: Sequence[dict], **extra) -> list[dict]:
    """Flat rows (method, keep, offset, seed, test accuracy, ...) of result records, plus constant columns."""
    from ...analysis.tables import flatten_results

    return [{**row, **extra} for row in flatten_results(records)]


@dataclass(frozen=True)
class Section:
    """What an analysis reports: a title, its findings in words with numbers, tables and figures."""

    name: str
    title: str
    source: str                         # which figure/section of which paper it reproduces
    findings: list[str]
    tables: dict[str, list[dict]]       # file name (CSV) → rows
    figures: dict[str, str]             # file name (PNG, already written) → caption
    config: dict
    summary: dict


def write_section(folder: Path, section: Section) -> dict:
    """Write the analysis' tables, ``section.md`` and ``summary.json``; returns the summary."""
    from ...analysis.tables import write_csv

    for file, rows in section.tables.items():
        write_csv(folder / file, rows)
    lines = [f"## {section.title}", "", f"*Reproduces {section.source}.*", "", "**Findings.**", ""]
    lines += [f"- {f}" for f in section.findings] + [""]
    for file, caption in section.figures.items():
        lines += [f"![{caption}]({section.name}/{file})", "", f"*{caption}*", ""]
    for file, rows in section.tables.items():
        lines += [f"Table `{section.name}/{file}`:", ""] + markdown_table(rows) + [""]
    lines += ["<details><summary>configuration</summary>", "", "```json",
              json.dumps(section.config, indent=2, sort_keys=True, default=str), "```", "</details>", ""]
    write_text_atomic(folder / "section.md", "\n".join(lines))
    summary = {"analysis": section.name, "findings": section.findings, **section.summary}
    write_json_atomic(folder / "summary.json", summary)
    return summary


def markdown_table(rows: Sequence[dict], limit: int = 40) -> list[str]:
    """A Markdown table of the first ``limit`` rows (the CSV holds them all)."""
    if not rows:
        return ["(no rows)"]
    cols = list(rows[0])
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    out += ["| " + " | ".join(_cell(r.get(c)) for c in cols) + " |" for r in rows[:limit]]
    if len(rows) > limit:
        out.append(f"| … {len(rows) - limit} more rows in the CSV |" + " |" * (len(cols) - 1))
    return out


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation; NaN when either side is constant (it ranks nothing)."""
    from scipy import stats

    if np.ptp(np.asarray(a)) == 0 or np.ptp(np.asarray(b)) == 0:
        return float("nan")
    return float(stats.spearmanr(a, b).statistic)
