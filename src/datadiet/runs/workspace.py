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

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

from ..config import DataConfig, TrainConfig
from ..data import DatasetSplits, load_data
from .identity import identity
from .presets import Setting, standard_scores
from .plan import one_data, write_plan
from .scoring import draw_seed, score_tables
from .sweep import Execution, Task, check_recipe, run_sweep, task_for

KEPT_DATASETS = 4  # splits a workspace keeps loaded at once


@dataclass(frozen=True)
class ScoreDraws:
    """What independent score draws give a study: one item per draw that some evaluation seed selects from, either
    score tables ({label: ScoreTable}, as :meth:`Workspace.score_draws` returns them) or values derived from them
    (:meth:`map`). Evaluation seed s selects its subsets from draw s mod K (:meth:`for_seed`), so intervals across
    evaluation seeds cover the score runs' randomness too: the one place that rule is written."""

    items: tuple

    def __post_init__(self) -> None:
        if not self.items:
            raise ValueError("ScoreDraws needs at least one draw")

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self):
        return iter(self.items)

    def for_seed(self, s: int):
        """What evaluation seed number ``s`` (0, 1, ...; not the seed value) selects from: draw s mod K."""
        return self.items[s % len(self.items)]

    def map(self, fn: Callable) -> "ScoreDraws":
        """The draws with ``fn`` applied to each (e.g. one score's mean values, or one run's)."""
        return ScoreDraws(tuple(fn(item) for item in self.items))

    @classmethod
    def single(cls, item) -> "ScoreDraws":
        """One draw that every evaluation seed selects from (scores fixed: intervals cover evaluation seeds only)."""
        return cls((item,))


@dataclass
class Workspace:
    """A results folder plus where and how to run (:class:`Execution`): shared by all studies."""

    root: Path
    execution: Execution = Execution()
    log: Callable[[str], None] = print
    # study → the tasks it evaluated in this process (its plan: which runs of the shared sweep are its own)
    planned: dict[str, dict[str, Task]] = field(default_factory=dict, repr=False)
    # the data this workspace loaded, by DataConfig (its last few): loaded once, dropped by check()
    loaded: dict[DataConfig, DatasetSplits] = field(default_factory=dict, repr=False)

    def __post_init__(self):
        self.root = Path(self.root)

    def check(self, setting: Setting) -> None:
        """Fail before anything is written: the device exists, the model is known, the data loads and the model fits
        it (:func:`~datadiet.models.check_model`). The data is loaded afresh: files you brought may have changed
        since this process last read them."""
        self.loaded.clear()
        check_recipe(self.train(setting.train), self.splits(setting.data).train)

    def folder(self, name: str) -> Path:
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def data(self, data: DataConfig) -> DataConfig:
        root = self.execution.data_root
        return replace(data, data_root=root) if root else data

    def train(self, train: TrainConfig) -> TrainConfig:
        device = self.execution.device
        return replace(train, device=device) if device else train

    def splits(self, data: DataConfig) -> DatasetSplits:
        """The splits of ``data`` (where the workspace's data lies applied), loaded once and kept with the last few."""
        data = self.data(data)
        if data not in self.loaded:
            while len(self.loaded) >= KEPT_DATASETS:
                self.loaded.pop(next(iter(self.loaded)))  # the oldest: a study's sizes or noise levels come in turn
            self.loaded[data] = load_data(data)
        return self.loaded[data]

    def run_cache(self, study: str, data: DataConfig, train: TrainConfig, **extra) -> Path:
        """``<study>/cache/<identity>``: models a study trains itself (not through the sweep), keyed by what
        determines them (data and recipe, plus ``extra``)."""
        return self.folder(study) / "cache" / identity({"data": data, "train": train, **extra})

    def scores(self, setting: Setting, *, data: DataConfig | None = None, train: TrainConfig | None = None,
               runs: int | None = None, seed: int = 0, labels: Sequence[str] | None = None,
               log: Callable[[str], None] | None = None) -> dict:
        """Score tables (label → ScoreTable) of ``setting``'s score runs, with optional changes of data,
        recipe, number of runs or first seed; cached in ``scores/<identity>``."""
        folder = self.score_folder(setting, data=data, train=train, runs=runs, seed=seed, labels=labels)
        data, train = self.data(data or setting.data), self.train(train or setting.train)
        return score_tables(tuple(labels or standard_scores(setting)), runs or setting.score_runs, train, data,
                            self.splits(data), folder, seed=seed, log=log or self.log)

    def task(self, data: DataConfig, train: TrainConfig, method: str, keep: float, kept_ids, *,
             offset: float | None = None) -> Task:
        data, train = self.data(data), self.train(train)
        return task_for(data, train, method, keep, kept_ids, self.splits(data).train, offset)

    def score_draws(self, setting: Setting, *, runs: int | None = None, data: DataConfig | None = None,
                    train: TrainConfig | None = None, labels: Sequence[str] | None = None) -> "ScoreDraws":
        """The setting's independent score draws that some evaluation seed selects from (``setting.draws_used``):
        draw d trains seeds d·R … d·R+R−1 (:func:`~datadiet.runs.scoring.draw_seed`), each cached on its own in
        :meth:`score_folder`; one {label: ScoreTable} per draw."""
        runs = runs or setting.score_runs
        draws = setting.draws_used
        out = []
        for d in range(draws):
            say = self.log if draws == 1 else (lambda line, d=d: self.log(f"score draw {d + 1}/{draws}: {line}"))
            out.append(self.scores(setting, data=data, train=train, runs=runs, seed=draw_seed(d, runs),
                                   labels=labels, log=say))
        return ScoreDraws(tuple(out))

    def score_draw_folders(self, setting: Setting, *, runs: int | None = None, data: DataConfig | None = None,
                           train: TrainConfig | None = None, labels: Sequence[str] | None = None) -> list[Path]:
        """Where :meth:`score_draws` caches each draw."""
        runs = runs or setting.score_runs
        return [self.score_folder(setting, data=data, train=train, runs=runs, seed=draw_seed(d, runs), labels=labels)
                for d in range(setting.draws_used)]

    def score_folder(self, setting: Setting, *, data: DataConfig | None = None, train: TrainConfig | None = None,
                     runs: int | None = None, seed: int = 0, labels: Sequence[str] | None = None) -> Path:
        """``scores/<identity>``: where :meth:`scores` caches the score runs of these arguments."""
        data, train = self.data(data or setting.data), self.train(train or setting.train)
        methods = tuple(labels or standard_scores(setting))
        return self.root / "scores" / score_key(data, train, runs or setting.score_runs, seed, methods)

    def evaluate(self, tasks: Sequence[Task], study: str) -> list[dict]:
        """Run (or find on disk) every task; returns their result records. The tasks join ``study``'s plan
        (``<study>/plan.json``: the run ids that are its own in the shared sweep). Failed runs are logged with their
        spec and retried next time; the study reports on the runs that finished."""
        plan = self.planned.setdefault(study, {})
        plan.update((t.spec.run_id, t) for t in tasks)
        data = one_data(list(plan.values()))
        write_plan(self.folder(study), list(plan.values()), None if data is None else self.splits(data).train)
        outcome = run_sweep(tasks, self.root / "sweep", self.execution, log=self.log, load=self.splits)
        if outcome.failures:
            self.log(f"{len(outcome.failures)} runs failed (see {self.root / 'sweep' / 'failures'}); re-run the same "
                     "command to retry them.")
        return outcome.results


def score_key(data: DataConfig, train: TrainConfig, runs: int, seed: int, labels: Sequence[str]) -> str:
    """The name of the score folder of these score runs (``scores/<key>``): what determines their numbers. (The
    labels are hashed under the key ``methods``, their name before the one-pipeline change, so that existing score
    folders stay valid.)"""
    return identity({"data": data, "train": train, "runs": runs, "seed": seed, "methods": tuple(labels)})
