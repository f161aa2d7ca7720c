"""The study kit: what every study shares beyond the runs layer (its :class:`Study` record, its seed counts checked,
the evaluation tasks of a pruning comparison with score draws, its section written with its config recorded)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

from ..config import DataConfig, TrainConfig, check_counts, to_dict
from ..errors import ConfigError, unknown_name
from ..methods import RULES as METHOD_RULES, Method
from ..report.markdown import Section, write_section
from ..report.tables import flatten_results, interval_coverage
from ..runs.presets import Setting, standard_scores
from ..runs.scoring import check_score_seeds
from ..runs.sweep import Task
from ..runs.workspace import ScoreDraws, Workspace
from ..selection import is_top_window, offset_windows, select_random
from .compare import check_labels


SEED_COUNTS = ("eval_seeds", "score_runs", "score_draws")  # a study's own counts; None = the setting's


def check_seed_counts(config) -> None:
    """A study config's evaluation seeds, score runs and score draws (None: the setting's): each at least 1, and the
    score runs' seeds clear of the evaluation seeds."""
    check_counts(config, SEED_COUNTS)
    s = config.setting
    check_score_seeds(config.score_draws or s.score_draws, config.score_runs or s.score_runs, s.eval_seed_base)


def check_score_labels(config, *names: str) -> None:
    """The score-label fields ``names`` of a study config name scores the standard score runs hold (checked before
    any training)."""
    check_labels([label for name in names for label in getattr(config, name)], standard_scores(config.setting))


def check_rules(rules: Sequence[str]) -> None:
    """A study's ``--rules``: at least one, each a method without its score (``hardest``, ``ccs+balanced``,
    ``moderate+equal``), or a ConfigError naming the choices."""
    choices = f"{', '.join(METHOD_RULES)}, each optionally +balanced or +equal"
    if not rules:
        raise ConfigError(f"--rules takes some of {choices}; got none.")
    for rule in rules:
        try:
            Method.of("el2n@epoch1", rule)
        except ConfigError as exc:
            raise ConfigError(f"--rules takes some of {choices} (e.g. ccs+balanced); got {rule!r} ({exc})") from None


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


@dataclass(frozen=True)
class Study:
    """One study as the runner, the command line and the report see it; every study module ends with its ``STUDY``.

    ``run(config, ws) -> summary`` runs it. The optional parts: ``claim(config, ws)`` refuses a folder that holds
    another experiment (before anything is written); ``rebuild(root, extra_seeds=, log=) -> summary`` rebuilds its
    section from the runs on disk (`datadiet report`); ``missing_input(config) -> reason | None`` names input the
    user must bring (`analyze all` skips the study without it); ``set_per_point`` are recipe fields the study sets
    per point, so the command line offers no flag for them."""

    name: str
    title: str
    source: str
    config: type                       # its frozen Config; first field ``setting``
    presets: dict                      # preset name → Config (runs.presets.study_presets: every preset of the table)
    run: Callable
    doc: str = ""                      # what `--help` says of it (its module's docstring)
    claim: Optional[Callable] = None
    rebuild: Optional[Callable] = None
    missing_input: Optional[Callable] = None
    set_per_point: tuple[str, ...] = ()

    @property
    def settings(self) -> dict[str, str]:
        """Preset name → the setting it runs on here, where that is another preset's (each study declares its own
        through ``study_presets(..., settings=)``)."""
        return {name: c.setting.name for name, c in self.presets.items() if c.setting.name != name}

    def preset(self, name: str):
        """The config of preset ``name``."""
        if name not in self.presets:
            raise unknown_name(f"preset of {self.name}", name, tuple(self.presets))
        return self.presets[name]

    def write_section(self, folder: Path, config, *, findings, tables: dict | None = None,
                      figures: dict | None = None, summary: dict | None = None) -> dict:
        """Write this study's section into ``folder``, with ``config`` recorded whole (:func:`config_record`);
        returns the summary."""
        section = Section(name=self.name, title=self.title, source=self.source, findings=list(findings),
                          tables=tables or {}, figures=figures or {}, config=config_record(config),
                          summary=summary or {})
        return write_section(folder, section)


def config_record(config) -> dict:
    """A study config as its section records it: every field, the setting by name with its data, recipe and
    protocol (so a setting changed on the command line is on record too)."""
    record = {f.name: _plain(getattr(config, f.name)) for f in dataclasses.fields(config) if f.name != "setting"}
    return {"setting": to_dict(config.setting), **record}


def _plain(value):
    """A config value as its record holds it: typed values (a Method) by their one string form."""
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    return str(value) if isinstance(value, Method) else value
