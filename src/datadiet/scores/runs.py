"""Score runs: train R independently seeded models once and score every example along the way.

All requested scores at all requested epochs come from the SAME R runs: the
engine calls a hook at each scoring step, which computes every model-based
score on the un-augmented training set.  GraNd at epoch 0 therefore uses R
fresh initializations.  Forgetting needs the whole run's correctness log, so
asking for it trains to the end of the budget; otherwise training stops at the
last scoring step (keeping the full run's learning-rate schedule).

Each finished run is cached in ``OUT/.runs/`` under a hash of everything that
determines it, so a killed scoring job resumes where it stopped.
"""
from __future__ import annotations

import copy
import hashlib
import json
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .. import __version__
from ..config import DataConfig, ScoreConfig, TrainConfig, steps_per_epoch, to_dict
from ..data.dataset import DatasetSplits
from ..data.transforms import Normalizer
from ..errors import ConfigError
from ..io import atomic_path, write_json_atomic
from ..training import train
from .registry import GRADIENT_SCORES, score_spec
from .store import ScoreTable, save_scores


def when_label(epoch: float | None) -> str:
    """File-name-safe label of a scoring time: ``init``, ``epoch2``, ``epoch0.5`` or ``end``."""
    if epoch is None:
        return "end"
    return "init" if epoch == 0 else f"epoch{epoch:g}"


def run_scores(score_cfg: ScoreConfig, train_cfg: TrainConfig, data_cfg: DataConfig, splits: DatasetSplits,
               out_dir: str | Path, *, log: Callable[[str], None] = print) -> list[Path]:
    """Train ``score_cfg.runs`` models, score every training example, write one file per (score, time).

    Returns the written score files.  Finished runs are cached in ``out_dir/.runs`` and reused.
    """
    out_dir = Path(out_dir)
    train_set = splits.train
    specs = [score_spec(n) for n in score_cfg.score]
    model_scores = [s.name for s in specs if s.kind == "model"]
    wants_forgetting = any(s.kind == "history" for s in specs)
    per_epoch = steps_per_epoch(len(train_set), min(train_cfg.batch_size, len(train_set)))
    total = train_cfg.total_steps(train_size=len(train_set), full_size=len(train_set))
    steps = {e: round(e * per_epoch) for e in score_cfg.epoch} if model_scores else {}
    if any(s > total for s in steps.values()):
        raise ConfigError(f"Scoring epochs {score_cfg.epoch} go beyond the training budget of {total} steps "
                          f"({total / per_epoch:g} epochs); raise --epochs or score earlier.")
    stop = total if wants_forgetting else max(steps.values(), default=0)
    provenance = {"version": __version__, "data": to_dict(data_cfg), "train": to_dict(train_cfg),
                  "score": to_dict(score_cfg), "dataset": train_set.describe()}
    seeds = [score_cfg.seed + r for r in range(score_cfg.runs)]

    per_run = []
    for r, seed in enumerate(seeds):
        cfg = _with_seed(train_cfg, seed)
        key = _run_key(provenance, seed, stop)
        cache = out_dir / ".runs" / f"run-seed{seed}-{key}.npz"
        if cache.is_file():
            log(f"run {r + 1}/{len(seeds)} (seed {seed}): cached")
            per_run.append(_read_run(cache))
            continue
        started = time.perf_counter()
        result = _score_one_run(cfg, splits, model_scores, steps, stop, wants_forgetting, score_cfg)
        _write_run(cache, result)
        per_run.append(result)
        log(f"run {r + 1}/{len(seeds)} (seed {seed}): {stop} steps and scoring in {time.perf_counter() - started:.1f}s")

    written = []
    for spec in specs:
        times = [None] if spec.kind == "history" else ([0.0] if spec.kind == "static" else list(score_cfg.epoch))
        for epoch in times:
            label = when_label(epoch) if spec.kind != "static" else "static"
            if spec.kind == "static":
                rows = _static_rows(spec.name, splits, seeds)
            else:
                rows = np.stack([run[f"{spec.name}@{when_label(epoch)}"] for run in per_run])
            meta = {**provenance, "when": label, "epoch": epoch, "step": None if epoch is None else steps.get(epoch),
                    "seeds": seeds if spec.name != "input_norm" else [], "model": train_cfg.model}
            if spec.kind == "history":
                meta["step"] = stop
            path = out_dir / (f"{spec.name}.npz" if spec.kind == "static" else f"{spec.name}-{label}.npz")
            save_scores(path, ScoreTable(spec.name, train_set.ids.numpy(), rows, meta))
            written.append(path)
    write_json_atomic(out_dir / "score_config.json", provenance)
    return written


def _score_one_run(cfg: TrainConfig, splits: DatasetSplits, model_scores: list[str], steps: dict[float, int],
                   stop: int, wants_forgetting: bool, score_cfg: ScoreConfig) -> dict[str, np.ndarray]:
    results: dict[str, np.ndarray] = {}
    by_step: dict[int, list[float]] = {}
    for epoch, step in steps.items():
        by_step.setdefault(step, []).append(epoch)

    def hook(model, step):
        values = score_model(model, splits, model_scores, batch_size=score_cfg.score_batch_size,
                             method=score_cfg.method)
        for epoch in by_step[step]:
            for name, v in values.items():
                results[f"{name}@{when_label(epoch)}"] = v

    outcome = train(cfg, splits, hooks={s: hook for s in by_step}, record_correctness=wants_forgetting,
                    stop_after=stop, evaluate_test=False)
    if wants_forgetting:
        from .functions import forgetting

        results["forgetting@end"] = forgetting(outcome.correctness.history(splits.train.ids)).numpy().astype(np.float64)
    return results


def score_model(model: torch.nn.Module, splits: DatasetSplits, names: list[str], *, batch_size: int = 256,
                method: str = "auto", chunk: int = 8192) -> dict[str, np.ndarray]:
    """Every model-based score in ``names`` on the un-augmented, normalized training split.

    Scores a contiguous-format (NCHW) copy of the model: the gradient-norm engine is about 1.3× faster
    in NCHW than on a channels_last model (benchmarks/RESULTS.md), and the training model stays untouched.
    """
    model = copy.deepcopy(model).to(memory_format=torch.contiguous_format)
    device = next(model.parameters()).device
    normalize = Normalizer(splits.mean, splits.std, device)
    data = splits.train
    parts: dict[str, list[torch.Tensor]] = {n: [] for n in names}
    for start in range(0, len(data), chunk):  # normalize lazily: the float copy of CINIC would not fit
        x = normalize(data.images[start:start + chunk].to(device))
        y = data.labels[start:start + chunk].to(device)
        for name in names:
            spec = score_spec(name)
            kwargs = {"batch_size": batch_size}
            if name in GRADIENT_SCORES:
                kwargs["method"] = method
            args = (model, x, y) if spec.uses_labels else (model, x)
            parts[name].append(spec.function(*args, **kwargs))
    return {n: torch.cat(v).double().numpy() for n, v in parts.items()}


def _static_rows(name: str, splits: DatasetSplits, seeds: list[int]) -> np.ndarray:
    from .functions import random_score

    if name == "random":
        return np.stack([random_score(len(splits.train), seed=s).double().numpy() for s in seeds])
    return dataset_input_norms(splits, splits.train)[None, :]  # model-free: one row, identical in every run


def dataset_input_norms(splits: DatasetSplits, dataset) -> np.ndarray:
    """‖x‖₂ of every normalized image of ``dataset`` (training statistics of ``splits``), float64 [N]."""
    from .functions import input_norm

    normalize = Normalizer(splits.mean, splits.std)
    norms = [input_norm(normalize(dataset.images[s:s + 8192])) for s in range(0, len(dataset), 8192)]
    return torch.cat(norms).double().numpy() if norms else np.zeros(0)


def _with_seed(cfg: TrainConfig, seed: int) -> TrainConfig:
    from dataclasses import replace

    return replace(cfg, seed=seed)


def _run_key(provenance: dict, seed: int, stop: int) -> str:
    spec = {k: v for k, v in provenance.items() if k != "version"}
    spec["data"] = {k: v for k, v in spec["data"].items() if k != "data_root"}  # location is not identity
    spec["train"] = {**spec["train"], "seed": seed}
    spec["score"] = {k: v for k, v in spec["score"].items() if k not in ("runs", "seed", "score_batch_size")}
    spec["stop"] = stop
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _write_run(path: Path, result: dict[str, np.ndarray]) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **{k.replace("@", "__"): v for k, v in result.items()})


def _read_run(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {k.replace("__", "@"): data[k] for k in data.files}
