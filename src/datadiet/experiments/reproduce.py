"""`datadiet reproduce PRESET`: Kirsch (2023) Figures 1–3 / Data Diet Fig. 1 from one command.

Pipeline: score runs (cached) → selections → evaluation sweep (resumable, local or Ray) → report.
Scoring runs use seeds ``0..R-1``; evaluation runs use seeds from ``eval_seed_base`` on, so the
models that judge a subset never include the models that chose it (Data Diet B.3).
Every kept fraction trains for the same number of steps as the full data (matched budget).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from .. import __version__
from ..config import DataConfig, ScoreConfig, TrainConfig, to_dict
from ..errors import ConfigError, DataDietError
from ..io import write_json_atomic
from .sweep import RunSpec, Task, digest_ids, run_sweep


@dataclass(frozen=True)
class Preset:
    """One reproduction: data, recipe, which scores, which fractions, how many runs."""

    name: str
    title: str
    data: DataConfig
    train: TrainConfig
    methods: tuple[str, ...]      # score labels: "input_norm", "grand@init", "el2n@epoch1", "forgetting@end", ...
    score_runs: int               # R independent scoring runs averaged
    keeps: tuple[float, ...]      # fractions of the training set kept
    eval_seeds: int               # evaluation runs per point (the papers use 4)
    eval_seed_base: int = 1000
    # Explicit B.3 windows: for each kept fraction, also drop the lowest ``offset`` fraction first and keep
    # the next ``keep`` (windows past the top, offset + keep > 1, are skipped). Empty = keep the highest only.
    offsets: tuple[float, ...] = ()


KIRSCH_METHODS = ("input_norm", "grand@init", "grand@epoch{e}", "el2n@epoch{e}", "forgetting@end")


def _methods(score_epoch: float) -> tuple[str, ...]:
    return tuple(m.format(e=f"{score_epoch:g}") for m in KIRSCH_METHODS)


PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset("smoke", "smoke test (seconds)",
           DataConfig(dataset="fashion-mnist", subset=384, subset_mode="balanced", test_subset=200),
           TrainConfig(model="smallcnn", width=0.25, epochs=2, batch_size=32),
           _methods(1), score_runs=2, keeps=(0.5,), eval_seeds=2),
    # CPU miniature.  Without augmentation the small CNN fits 4,000 examples in 20 epochs, so accuracy
    # depends on which data it gets (the papers' regime); with augmentation it stays underfit at this
    # budget and every subset scores the same (measured: 8,000 examples, 8 epochs, full ≈ random 30 %).
    Preset("quick", "Fashion-MNIST, small CNN, CPU (Kirsch Fig. 1-3 in miniature)",
           DataConfig(dataset="fashion-mnist", subset=4000, subset_mode="balanced"),
           TrainConfig(model="smallcnn", width=0.5, epochs=20, augment=False),
           _methods(2), score_runs=4, keeps=(0.3, 0.5, 0.7), eval_seeds=3),
    Preset("gpu", "Fashion-MNIST, ResNet18, one GPU",
           DataConfig(dataset="fashion-mnist"),
           TrainConfig(model="resnet18", epochs=6),
           _methods(1), score_runs=10, keeps=(0.3, 0.5, 0.7), eval_seeds=4),
    Preset("paper", "CIFAR-10, ResNet18, the full Data Diet recipe (B.2/B.3)",
           DataConfig(dataset="cifar10"),
           TrainConfig(model="resnet18", epochs=200),
           _methods(20), score_runs=10, keeps=(0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3), eval_seeds=4),
)}


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        from ..errors import unknown_name

        raise unknown_name("preset", name, tuple(PRESETS))
    return PRESETS[name]


def parse_method(label: str) -> tuple[str, float | None]:
    """``"el2n@epoch2"`` → ``("el2n", 2.0)``; ``"grand@init"`` → 0.0; ``"forgetting@end"``/``"input_norm"`` → None."""
    name, _, when = label.partition("@")
    if when in ("", "end", "static"):
        return name, None
    if when == "init":
        return name, 0.0
    if when.startswith("epoch"):
        return name, float(when[len("epoch"):])
    raise ConfigError(f"Cannot parse scoring time {when!r} in {label!r}; use init, epochN or end.")


def reproduce(preset: Preset, out: str | Path, *, data_root: str | None = None, device: str | None = None,
              executor: str = "local", address: str | None = None, cpus: float = 1, gpus: float = 0,
              log: Callable[[str], None] = print) -> dict:
    """Run (or resume) a reproduction into ``out`` and build its report; returns the report summary."""
    from ..analysis.report import build_report
    from ..data import load_data

    out = Path(out)
    data_cfg = replace(preset.data, data_root=data_root) if data_root else preset.data
    train_cfg = replace(preset.train, device=device) if device else preset.train
    config = {"preset": preset.name, "title": preset.title, "version": __version__,
              "data": to_dict(data_cfg), "train": to_dict(train_cfg), "methods": list(preset.methods),
              "score_runs": preset.score_runs, "keeps": list(preset.keeps), "offsets": list(preset.offsets),
              "eval_seeds": preset.eval_seeds, "eval_seed_base": preset.eval_seed_base}
    _claim_folder(out, config)
    write_json_atomic(out / "config.json", config)
    splits = load_data(data_cfg)
    log(f"{preset.name}: {len(splits.train)} training examples of {splits.name}, model {train_cfg.model}")
    tables = score_tables(preset.methods, preset.score_runs, train_cfg, data_cfg, splits, out / "scores", log=log)
    tasks = build_tasks(preset, data_cfg, train_cfg, splits.train, tables)
    outcome = run_sweep(tasks, out, executor=executor, address=address, cpus=cpus, gpus=gpus, log=log)
    summary = build_report(out)
    if outcome.failures:
        log(f"{len(outcome.failures)} runs failed (see {out / 'failures'}); re-run the same command to retry them. "
            "The report covers the finished runs.")
    summary["failed_runs"] = len(outcome.failures)
    return summary


def build_tasks(preset: Preset, data_cfg: DataConfig, train_cfg: TrainConfig, train_set, tables: dict) -> list[Task]:
    """Full-data, random and score-based runs for every kept fraction and evaluation seed."""
    from ..selection import select, select_random

    ids = train_set.ids.numpy()
    tasks = []
    for s in range(preset.eval_seeds):
        seed = preset.eval_seed_base + s
        cfg = replace(train_cfg, seed=seed)
        tasks.append(Task(RunSpec(data_cfg, cfg, "full", 1.0, None, digest_ids(ids))))
        for keep in preset.keeps:
            kept = select_random(ids, keep=keep, seed=seed)  # a fresh random subset for every run
            tasks.append(make_task(data_cfg, cfg, "random", keep, kept, train_set))
            for label, table in tables.items():
                tasks.append(make_task(data_cfg, cfg, label, keep, select(table, keep=keep), train_set))
                for offset in _windows(keep, preset.offsets):
                    kept = select(table, keep=keep, offset=offset)
                    tasks.append(make_task(data_cfg, cfg, label, keep, kept, train_set, offset))
    return tasks


def _windows(keep: float, offsets: tuple[float, ...]) -> list[float]:
    """Offsets whose window fits (offset + keep ≤ 1) and differs from the default keep-highest window."""
    eps = 1e-9
    return [o for o in offsets if o + keep <= 1 + eps and abs(o - (1 - keep)) > eps]


def make_task(data_cfg, cfg, method, keep, kept_ids, train_set, offset: float | None = None) -> Task:
    """A sweep task training ``cfg`` on the examples ``kept_ids`` of ``train_set``."""
    positions = train_set.positions_of(kept_ids).numpy()
    return Task(RunSpec(data_cfg, cfg, method, keep, offset, digest_ids(kept_ids)), positions)


def score_tables(methods, runs: int, train_cfg: TrainConfig, data_cfg: DataConfig, splits, score_dir,
                 *, seed: int = 0, log: Callable[[str], None] = print) -> dict:
    """Score labels (``"el2n@epoch2"``, ``"input_norm"``, ...) → ScoreTables, all from the same ``runs``
    seeded runs (seeds ``seed..seed+runs−1``), cached in ``score_dir``."""
    from ..scores import load_scores
    from ..scores.runs import run_scores

    parsed = [parse_method(m) for m in methods]
    names = tuple(dict.fromkeys(name for name, _ in parsed))
    epochs = tuple(sorted({e for _, e in parsed if e is not None})) or (0.0,)
    score_cfg = ScoreConfig(score=names, epoch=epochs, runs=runs, seed=seed)
    run_scores(score_cfg, replace(train_cfg, seed=seed), data_cfg, splits, score_dir, log=log)
    tables = {}
    for label in methods:
        name, _ = parse_method(label)
        file = f"{name}.npz" if label == name else f"{label.replace('@', '-')}.npz"
        tables[label] = load_scores(Path(score_dir) / file, dataset=splits.train)
    return tables


IDENTITY_KEYS = ("preset", "data", "train", "methods", "score_runs")  # what a point of the curve means


def _claim_folder(out: Path, config: dict) -> None:
    """Refuse to mix two different experiments in one results folder.

    More kept fractions, offsets or evaluation seeds extend an experiment; other data, another recipe,
    other scores or another number of score runs would put different subsets under the same label.
    """
    path = out / "config.json"
    if not path.is_file():
        return
    previous = json.loads(path.read_text(encoding="utf-8"))
    changed = [k for k in IDENTITY_KEYS if _comparable(previous.get(k), k) != _comparable(config.get(k), k)]
    if changed:
        raise DataDietError(f"{out} holds another experiment ({previous.get('preset')!r}; differs in "
                            f"{', '.join(changed)}). Use another --out folder, or the same settings to resume.")


def _comparable(value, key: str):
    value = json.loads(json.dumps(value))  # as stored: tuples become lists
    if key == "data" and isinstance(value, dict):
        value.pop("data_root", None)  # where the files are does not matter
    return value
