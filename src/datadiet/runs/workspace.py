"""A workspace: one folder where studies share score runs, evaluation runs and cached models.

Layout (default ``results/analyses``)::

    scores/<identity>/     score runs of one (data, recipe, runs, seed, scores) setting, all runs
    sweep/runs/            every evaluation run of every study, by run identity (run once, reused)
    <study>/cache/<id>/    models a study trains itself (not through the sweep)
    <study>/               the study's tables (CSV), figures (PNG), section.md and summary.json
    report.md / .html      all sections gathered

Nothing on disk is trained again: every cache is keyed by :func:`datadiet.runs.identity.identity`, so an
evaluation run that two studies share (the full-data baseline, say) trains once, on any device.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

from ..config import DataConfig, TrainConfig
from .identity import identity
from .presets import Setting, standard_scores
from .scoring import score_tables
from .sweep import Task, check_execution, check_recipe, load_cached, run_sweep, task_for


@dataclass(frozen=True)
class Execution:
    """Where the data lies and where runs execute: the same options for `reproduce` and every study."""

    data_root: str | None = None   # dataset folder; None: $DATADIET_DATA, then system locations
    device: str | None = None      # cpu, cuda, cuda:1 ...; None: the recipe's (auto)
    executor: str = "local"        # local (this process) or ray
    address: str | None = None     # Ray cluster address; None: start a local Ray instance
    cpus_per_run: float = 1        # Ray: CPUs requested per run
    gpus_per_run: float = 0        # Ray: GPUs requested per run (e.g. 0.25)
    workers: int | None = None     # local: runs at once in worker processes; None: 1 (see runs.sweep.default_workers)

    def where(self) -> dict:
        """Keyword arguments of :class:`Workspace` and :func:`datadiet.studies.reproduce.reproduce`."""
        return {"data_root": self.data_root, "device": self.device, "executor": self.executor,
                "address": self.address, "cpus": self.cpus_per_run, "gpus": self.gpus_per_run,
                "workers": self.workers}


@dataclass
class Workspace:
    """A results folder plus where and how to run: shared by all studies."""

    root: Path
    data_root: str | None = None
    device: str | None = None
    executor: str = "local"
    address: str | None = None
    cpus: float = 1
    gpus: float = 0
    workers: int | None = None
    log: Callable[[str], None] = print

    def __post_init__(self):
        self.root = Path(self.root)
        check_execution(self.executor, self.workers)

    def check(self, setting: Setting) -> None:
        """Fail before anything is written: the device exists, the model is known and the data loads."""
        check_recipe(self.train(setting.train))
        self.splits(setting.data)

    def folder(self, name: str) -> Path:
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def data(self, data: DataConfig) -> DataConfig:
        return replace(data, data_root=self.data_root) if self.data_root else data

    def train(self, train: TrainConfig) -> TrainConfig:
        return replace(train, device=self.device) if self.device else train

    def splits(self, data: DataConfig):
        return load_cached(self.data(data))

    def run_cache(self, study: str, data: DataConfig, train: TrainConfig, **extra) -> Path:
        """``<study>/cache/<identity>``: models a study trains itself (not through the sweep), keyed by what
        determines them (data and recipe, plus ``extra``)."""
        return self.folder(study) / "cache" / identity({"data": data, "train": train, **extra})

    def scores(self, setting: Setting, *, data: DataConfig | None = None, train: TrainConfig | None = None,
               runs: int | None = None, seed: int = 0, methods: Sequence[str] | None = None) -> dict:
        """Score tables (label → ScoreTable) of ``setting``'s score runs, with optional changes of data,
        recipe, number of runs or first seed; cached in ``scores/<identity>``."""
        data, train = self.data(data or setting.data), self.train(train or setting.train)
        runs = runs or setting.score_runs
        methods = tuple(methods or standard_scores(setting))
        key = identity({"data": data, "train": train, "runs": runs, "seed": seed, "methods": methods})
        return score_tables(methods, runs, train, data, self.splits(data), self.root / "scores" / key,
                            seed=seed, log=self.log)

    def task(self, data: DataConfig, train: TrainConfig, method: str, keep: float, kept_ids, *,
             offset: float | None = None) -> Task:
        data, train = self.data(data), self.train(train)
        return task_for(data, train, method, keep, kept_ids, self.splits(data).train, offset)

    def evaluate(self, tasks: Sequence[Task]) -> list[dict]:
        """Run (or find on disk) every task; returns their result records. Failed runs are logged with their
        spec and retried next time; the study reports on the runs that finished."""
        outcome = run_sweep(tasks, self.root / "sweep", executor=self.executor, address=self.address,
                            cpus=self.cpus, gpus=self.gpus, workers=self.workers, log=self.log)
        if outcome.failures:
            self.log(f"{len(outcome.failures)} runs failed (see {self.root / 'sweep' / 'failures'}); re-run the same "
                     "command to retry them.")
        return outcome.results
