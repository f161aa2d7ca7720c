"""Score runs: train R independently seeded models once and score every example along the way.

All requested scores at all requested epochs come from the SAME R runs: the
engine calls a hook at each scoring step, which computes every model-based
score on the un-augmented training set.  GraNd at epoch 0 therefore uses R
fresh initializations.  Forgetting needs the whole run's correctness log, so
asking for it trains to the end of the budget; otherwise training stops at the
last scoring step (keeping the full run's learning-rate schedule).

Each finished run is cached in ``OUT/.runs/`` under its identity (:mod:`datadiet.runs.identity`), so a
killed scoring job resumes where it stopped.  Beside it, ``<run>.cost.json`` records what the run cost (see
"What score runs cost" below), and every score file's meta carries ``cost``: what its label's R runs cost.

A *score draw* is one set of R score runs.  Several independent draws (:func:`draw_seed`: draw d trains seeds
d·R … d·R+R−1; ``Workspace.score_draws`` runs and caches them, ``ScoreDraws`` says which draw an evaluation
seed selects from) let the evaluation seeds of an experiment select from different scores, so its intervals cover the
randomness of the score runs, not only that of the evaluation runs.

At each scoring time a run also measures how well its network fits the training split (its mean training loss
and accuracy, un-augmented, in eval mode: ``fit`` in ``<run>.cost.json``; the pass is not charged to the score), and
each score file's meta carries its label's ``fit`` per run and ``untrained`` (:func:`untrained_reason`): a score
taken from a network that had not yet learned to fit its data says little about the examples.
"""
from __future__ import annotations

import copy
import math
import time
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch

from ..version import __version__
from ..config import DataConfig, TrainConfig, from_dict, resolve_flip, to_dict
from ..data.dataset import DatasetSplits
from ..data.transforms import Normalizer
from ..errors import ConfigError, DataDietError, NonFiniteLossError
from ..io import atomic_path, folder_lock, load_json, read_npz, write_json_atomic
from ..models import build_model
from ..scores.functions import forgetting, input_norm, random_score
from ..scores.registry import GRADIENT_SCORES, ScoreKind, ScoreLabel, score_spec
from ..scores.store import ScoreTable, load_scores, save_scores
from ..training import Cost, flops_per_example, train
from ..training.accounting import FIELDS as COST_FIELDS
from ..training.evaluate import evaluate
from .identity import identity


@dataclass(frozen=True)
class ScoreConfig:
    """What to score, when, and over how many runs."""

    scores: tuple[str, ...] = ("el2n", "grand")
    score_epochs: tuple[float, ...] = (0.0,)  # scoring times of model-based scores, in epochs (0 = init)
    runs: int = 10                       # independent runs averaged (the papers use 10)
    seed: int = 0                        # run r trains with seed + r (evaluation runs use other seeds)
    score_batch_size: int | None = None  # examples per scoring chunk; None: 256 on the CPU, 1024 on a GPU
    method: str = "auto"                 # gradient-norm engine: auto, fast, vmap, loop

    def __post_init__(self) -> None:
        for name in self.scores:
            score_spec(name)
        if self.runs < 1:
            raise ConfigError(f"--runs must be at least 1, got {self.runs}.")
        if any(not e >= 0 for e in self.score_epochs):
            raise ConfigError(f"--score-epochs must be >= 0, got {' '.join(f'{e:g}' for e in self.score_epochs)}.")
        if self.score_batch_size is not None and self.score_batch_size < 1:
            raise ConfigError(f"--score-batch-size must be at least 1, got {self.score_batch_size}.")

    def labels(self) -> list[ScoreLabel]:
        """Every (score, time) this config produces, one score file each."""
        return [ScoreLabel.at(name, epoch) for name in self.scores
                for epoch in (self.score_epochs if score_spec(name).kind is ScoreKind.MODEL else (None,))]


def run_scores(score_cfg: ScoreConfig, train_cfg: TrainConfig, data_cfg: DataConfig, splits: DatasetSplits,
               out_dir: str | Path, *, log: Callable[[str], None] = print) -> list[Path]:
    """Train ``score_cfg.runs`` models, score every training example, write one file per (score, time).

    Returns the written score files.  Finished runs are cached in ``out_dir/.runs`` and reused.
    """
    out_dir = Path(out_dir)
    if train_cfg.dynamic is not None:
        # Scores are taken at fixed epochs of a static run (hooks placed by the static step schedule); a dynamically
        # pruned run would shift those epochs and score a different model, so score runs never prune.
        raise ConfigError(f"--dynamic {train_cfg.pruner_name}: score runs train on all the data (their scoring epochs "
                          "are steps of the static schedule); drop --dynamic when scoring. To compare dynamic pruning "
                          "with static scores, use `datadiet analyze compute`.")
    with folder_lock(out_dir, "datadiet score"), _removed_on_failure(out_dir):
        return _run_scores(score_cfg, train_cfg, data_cfg, splits, out_dir, log)


@contextmanager
def _removed_on_failure(out_dir: Path) -> Iterator[None]:
    """Remove what a score command wrote into ``out_dir`` when it fails.

    Score runs write as they go (each finished run is cached, so that a killed command resumes). A command that
    fails with an error instead would fail the same way again (the model, the data, the recipe), or its fix makes
    other runs, so what it wrote is of no use, and half a score folder (cached runs, some score files, no
    ``score_config.json``) must not pass for a result. Kept: everything that was there before, and what was written
    before a failure of resources (out of memory, a full disk), after which the command line says to re-run, which
    resumes from it, as after Ctrl-C (not an Exception)."""
    before = set(out_dir.rglob("*"))
    try:
        yield
    except Exception as error:
        if not _resources_failed(error):
            _remove_new(out_dir, before)
        raise


def _resources_failed(error: Exception) -> bool:
    if isinstance(error, DataDietError):  # some are OSErrors too (a missing dataset): input, not resources
        return False
    return isinstance(error, (MemoryError, OSError)) or "out of memory" in str(error).lower()


def _remove_new(out_dir: Path, before: set[Path]) -> None:
    """Remove the files and folders under ``out_dir`` that are not in ``before``: deepest first, folders only empty."""
    for path in sorted(set(out_dir.rglob("*")) - before, key=lambda p: len(p.parts), reverse=True):
        try:
            path.rmdir() if path.is_dir() and not path.is_symlink() else path.unlink()
        except OSError:  # cleaning up must never hide the failure itself
            pass


def _run_scores(score_cfg: ScoreConfig, train_cfg: TrainConfig, data_cfg: DataConfig, splits: DatasetSplits,
                out_dir: Path, log: Callable[[str], None]) -> list[Path]:
    train_set = splits.train
    specs = [score_spec(n) for n in score_cfg.scores]
    model_scores = [s.name for s in specs if s.kind is ScoreKind.MODEL]
    wants_forgetting = any(s.kind is ScoreKind.HISTORY for s in specs)
    steps, stop = scoring_schedule(score_cfg, train_cfg, len(train_set))
    train_cfg = resolve_flip(train_cfg, user_data=splits.user_data)  # the score files say which flip was used
    provenance = {"version": __version__, "data": to_dict(data_cfg), "train": to_dict(train_cfg),
                  "score": to_dict(score_cfg), "dataset": train_set.describe()}
    source_path = train_set.notes.get("source", {}).get("path")
    if source_path:  # data brought by the user: its absolute path, so that `prune` finds it from any folder
        provenance["data_path"] = source_path
    seeds = [score_cfg.seed + r for r in range(score_cfg.runs)]

    per_run, costs = [], []
    # the cost of runs cached before costs were recorded
    planned = _Planned(score_cfg, train_cfg, len(train_set), train_set.shape, train_set.num_classes)
    for r, seed in enumerate(seeds):
        cfg = replace(train_cfg, seed=seed)
        cache = out_dir / ".runs" / run_cache_name(provenance, seed, stop)
        if cache.is_file():
            log(f"run {r + 1}/{len(seeds)} (seed {seed}): cached")
            per_run.append(_read_run(cache))
            costs.append(read_run_cost(cache) or planned())
            continue
        started = time.perf_counter()
        result, cost = _score_one_run(cfg, splits, model_scores, steps, stop, wants_forgetting, score_cfg)
        write_json_atomic(run_cost_path(cache), cost)  # before the run: a cached run without it is an old one
        _write_run(cache, result)
        per_run.append(result)
        costs.append(cost)
        log(f"run {r + 1}/{len(seeds)} (seed {seed}): {stop} steps and scoring in {time.perf_counter() - started:.1f}s")

    written = []
    for label in score_cfg.labels():
        if label.kind is ScoreKind.STATIC:
            rows = _static_rows(label.name, splits, seeds)
        else:
            rows = np.stack([run[str(label)] for run in per_run])
        step = stop if label.kind is ScoreKind.HISTORY else steps.get(label.epoch)
        epoch = 0.0 if label.kind is ScoreKind.STATIC else label.epoch
        meta = {**provenance, "when": label.when, "epoch": epoch, "step": step,
                "seeds": seeds if label.name != "input_norm" else [], "model": train_cfg.model,
                "cost": charge(costs, label)}
        if label.kind is ScoreKind.MODEL:  # how well each run's network fitted its data when it scored
            fits = label_fit(costs, step)
            meta.update(fit=fits, untrained=untrained_reason(fits, train_set.num_classes, label.epoch))
        path = out_dir / f"{label.file_stem}.npz"
        save_scores(path, ScoreTable(label.name, train_set.ids.numpy(), rows, meta))
        written.append(path)
    write_json_atomic(out_dir / "score_config.json", provenance)
    return written


def scoring_schedule(score_cfg: ScoreConfig, train_cfg: TrainConfig, n: int) -> tuple[dict[float, int], int]:
    """``({scoring epoch: step}, stop)``: the step of every scoring time, and where a score run stops training
    (the end of the budget when forgetting is asked for, else the last scoring step)."""
    schedule = train_cfg.schedule(train_size=n)
    kinds = {score_spec(name).kind for name in score_cfg.scores}
    steps = {e: schedule.step_at(e) for e in score_cfg.score_epochs} if ScoreKind.MODEL in kinds else {}
    if any(s > schedule.total for s in steps.values()):
        raise ConfigError(f"Scoring epochs {score_cfg.score_epochs} go beyond the training budget of {schedule.total} "
                          f"steps ({schedule.total / schedule.per_epoch:g} epochs); raise --epochs or score earlier.")
    stop = schedule.total if ScoreKind.HISTORY in kinds else max(steps.values(), default=0)
    return steps, stop


def run_cache_name(provenance: dict, seed: int, stop: int) -> str:
    """File name of one cached score run: ``run-seed<seed>-<identity>.npz``."""
    return f"run-seed{seed}-{_run_identity(provenance, seed, stop)}.npz"


def score_tables(labels: Sequence[str], runs: int, train_cfg: TrainConfig, data_cfg: DataConfig,
                 splits: DatasetSplits, score_dir: str | Path, *, seed: int = 0,
                 log: Callable[[str], None] = print) -> dict[str, ScoreTable]:
    """Score labels (``"el2n@epoch2"``, ``"input_norm"``, ...) → ScoreTables, all from the same ``runs``
    seeded runs (seeds ``seed..seed+runs−1``), cached in ``score_dir``."""
    parsed = [ScoreLabel.parse(label) for label in labels]
    names = tuple(dict.fromkeys(label.name for label in parsed))
    epochs = tuple(sorted({label.epoch for label in parsed if label.epoch is not None})) or (0.0,)
    score_cfg = ScoreConfig(scores=names, score_epochs=epochs, runs=runs, seed=seed)
    run_scores(score_cfg, replace(train_cfg, seed=seed), data_cfg, splits, score_dir, log=log)
    return {str(label): load_scores(Path(score_dir) / f"{label.file_stem}.npz", dataset=splits.train)
            for label in parsed}


def draw_seed(draw: int, runs: int) -> int:
    """The first seed of score draw ``draw``: draws are disjoint blocks of ``runs`` seeds, draw d trains seeds
    d·R … d·R+R−1, so draw 0 is the seeds 0..R−1 of a single draw (and its cached runs stay valid)."""
    return draw * runs


def check_score_seeds(draws: int, runs: int, eval_seed_base: int) -> None:
    """Refuse score draws whose seeds would reach the evaluation seeds (``eval_seed_base`` on): a model that judges
    a subset must never be one of those that chose it (Data Diet B.3)."""
    if draws * runs > eval_seed_base:
        most = eval_seed_base // runs
        fix = f"at most {most} draws of {runs} runs" if most else f"at most {eval_seed_base} score runs"
        raise ConfigError(f"--score-draws {draws} × --score-runs {runs} = {draws * runs} score runs would use seeds "
                          f"0..{draws * runs - 1}, reaching the evaluation seeds (from {eval_seed_base}). Use {fix}.")


def _score_one_run(cfg: TrainConfig, splits: DatasetSplits, model_scores: list[str], steps: dict[float, int],
                   stop: int, wants_forgetting: bool, score_cfg: ScoreConfig) -> tuple[dict[str, np.ndarray], dict]:
    """The run's scores by label, and what it cost (:func:`measured_run_cost`)."""
    results: dict[str, np.ndarray] = {}
    by_step: dict[int, list[float]] = {}
    for epoch, step in steps.items():
        by_step.setdefault(step, []).append(epoch)
    scored: dict[tuple[str, int], float] = {}  # (score, step) → seconds: each scored once, whatever its labels
    fits: dict[int, dict] = {}                 # step → how well the network fits the training split then
    fit_seconds = [0.0]

    def hook(model, step):
        seconds: dict[str, float] = {}
        values = score_model(model, splits, model_scores, batch_size=score_cfg.score_batch_size,
                             method=score_cfg.method, seconds=seconds)
        scored.update({(name, step): t for name, t in seconds.items()})
        started = time.perf_counter()
        fits[step] = training_fit(model, splits)
        fit_seconds[0] += time.perf_counter() - started
        for epoch in by_step[step]:
            for name, v in values.items():
                results[str(ScoreLabel(name, epoch))] = v

    started = time.perf_counter()
    outcome = train(cfg, splits, hooks={s: hook for s in by_step}, record_correctness=wants_forgetting,
                    stop_after=stop, evaluate_test=False)
    seconds = time.perf_counter() - started - fit_seconds[0]  # the fit check is neither training nor scoring
    if wants_forgetting:
        results[str(ScoreLabel("forgetting"))] = forgetting(outcome.correctness.history(splits.train.ids)).numpy().astype(np.float64)
    with torch.random.fork_rng(devices=[]):  # counting may run the model: never on the caller's random stream
        per_example = flops_per_example(outcome.model, tuple(splits.train.shape), splits.train.num_classes)
    cost = measured_run_cost(outcome.cost, steps, outcome.steps, seconds, scored, len(splits.train), per_example)
    cost["fit"] = [{"step": step, **fit} for step, fit in sorted(fits.items())]
    return results, cost


def training_fit(model: torch.nn.Module, splits: DatasetSplits) -> dict:
    """``train_loss`` (mean cross-entropy) and ``train_accuracy`` of ``model`` on the un-augmented training split,
    in eval mode (its mode restored); both None where its outputs are not finite (a diverged network)."""
    device = next(model.parameters()).device
    try:
        accuracy, loss = evaluate(model, splits.train, Normalizer(splits.mean, splits.std, device))
    except NonFiniteLossError:
        return {"train_loss": None, "train_accuracy": None}
    return {"train_loss": float(loss) if math.isfinite(loss) else None, "train_accuracy": float(accuracy)}


# A score taken from a network whose training loss is above this share of ln K (the loss of predicting every class
# alike, K classes) comes from a network that had not yet learned to fit its data: a report flags it. Scores at
# initialization (epoch 0: GraNd at init) are untrained by design and never flagged; forgetting reads the whole run.
UNTRAINED_LOSS_SHARE = 0.9


def label_fit(costs: Sequence[dict], step: int | None) -> list[dict] | None:
    """Each run's fit (``train_loss``, ``train_accuracy``) at scoring step ``step``; None where some run does not
    record it (cached before runs measured it: unknown)."""
    fits = []
    for cost in costs:
        found = [f for f in (cost or {}).get("fit") or [] if f.get("step") == step]
        if not found:
            return None
        fits.append({"train_loss": found[0].get("train_loss"), "train_accuracy": found[0].get("train_accuracy")})
    return fits


def untrained_reason(fits: list[dict] | None, num_classes: int, epoch: float | None) -> str | None:
    """Why a score's network counts as untrained, or None (trained, unknown, or scored at initialization by
    design): the runs' mean training loss above :data:`UNTRAINED_LOSS_SHARE` × ln K."""
    if not fits or not epoch or num_classes < 2:
        return None
    losses = [f["train_loss"] for f in fits if f.get("train_loss") is not None]
    if not losses:
        return None
    loss, limit = float(np.mean(losses)), UNTRAINED_LOSS_SHARE * math.log(num_classes)
    if loss <= limit:
        return None
    accuracies = [f["train_accuracy"] for f in fits if f.get("train_accuracy") is not None]
    accuracy = f", training accuracy {np.mean(accuracies):.3f} (chance {1 / num_classes:.3f})" if accuracies else ""
    return (f"its network had not learned to fit the training data when scored: mean training loss {loss:.3f} over "
            f"{len(losses)} run{'s' if len(losses) > 1 else ''}, above {UNTRAINED_LOSS_SHARE:g} × ln {num_classes} = "
            f"{limit:.3f}{accuracy}")


# Examples per scoring chunk by device type: on a GPU the per-example norms cost 1.97×, 1.47× and 1.38× a plain
# forward+backward at chunks of 128, 512 and 1024 (full ResNet18, H200: DESIGN.md § 3), so the chunk is large.
DEFAULT_SCORE_BATCH = {"cpu": 256, "cuda": 1024}


def score_model(model: torch.nn.Module, splits: DatasetSplits, names: list[str], *, batch_size: int | None = None,
                method: str = "auto", chunk: int = 8192, seconds: dict[str, float] | None = None) -> dict[str, np.ndarray]:
    """Every model-based score in ``names`` on the un-augmented, normalized training split.

    Scores a contiguous-format (NCHW) copy of the model: the gradient-norm engine is about 1.3× faster
    in NCHW than on a channels_last model (benchmarks/RESULTS.md), and the training model stays untouched.
    Given ``seconds``, adds each score's time to it (by name).
    """
    model = copy.deepcopy(model).to(memory_format=torch.contiguous_format)
    device = next(model.parameters()).device
    batch_size = batch_size or DEFAULT_SCORE_BATCH.get(device.type, 256)
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
            started = time.perf_counter()
            parts[name].append(spec.function(*args, **kwargs))
            if seconds is not None:
                if device.type == "cuda":  # kernels run asynchronously: the time is theirs only once they finished
                    torch.cuda.synchronize(device)
                seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - started
    return {n: torch.cat(v).double().numpy() for n, v in parts.items()}


def _static_rows(name: str, splits: DatasetSplits, seeds: list[int]) -> np.ndarray:
    if name == "random":
        return np.stack([random_score(len(splits.train), seed=s).double().numpy() for s in seeds])
    return dataset_input_norms(splits, splits.train)[None, :]  # model-free: one row, identical in every run


def dataset_input_norms(splits: DatasetSplits, dataset) -> np.ndarray:
    """‖x‖₂ of every normalized image of ``dataset`` (training statistics of ``splits``), float64 [N]."""
    normalize = Normalizer(splits.mean, splits.std)
    norms = [input_norm(normalize(dataset.images[s:s + 8192])) for s in range(0, len(dataset), 8192)]
    return torch.cat(norms).double().numpy() if norms else np.zeros(0)


def _run_identity(provenance: dict, seed: int, stop: int) -> str:
    """What determines one score run's numbers: data, recipe with this seed, the scores and their times, and
    where training stops (not how many runs are averaged, nor the scoring chunk size)."""
    score = {k: v for k, v in provenance["score"].items() if k not in ("runs", "seed", "score_batch_size")}
    return identity({"data": provenance["data"], "dataset": provenance["dataset"],
                     "train": {**provenance["train"], "seed": seed}, "score": score, "stop": stop})


def _write_run(path: Path, result: dict[str, np.ndarray]) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **{ScoreLabel.parse(k).file_stem: v for k, v in result.items()})


def _read_run(path: Path) -> dict[str, np.ndarray]:
    rows = read_npz(path, what="a cached score run (.npz of score rows)", error=DataDietError,
                    fix="Delete it and re-run the same command: that run is recomputed, the others are kept.")
    try:
        return {str(ScoreLabel.parse(k)): v for k, v in rows.items()}
    except DataDietError:
        raise DataDietError(f"The cached score run {path} holds rows that are no score label ({sorted(rows)}). "
                            "Delete it and re-run the same command: that run is recomputed.") from None


# ---------------------------------------------------------------- what score runs cost
#
# A score run costs its training (to its last scoring step, or to the end of the budget for forgetting) plus its
# scoring: every model score at every scoring step passes all N examples through the model once.
# * EL2N, score2 and self-confidence need the model's output: N forward passes (``forward_passes``).
# * GraNd, score1 and score3 need each example's own gradient, i.e. a forward and a backward pass of every example:
#   counted as N sample passes, at a training pass's FLOPs per example. (The exact per-example norms cost more on
#   top, 1.4-2x a plain forward+backward on a GPU, DESIGN.md 3; that part is not counted, so this is a lower bound.)
# * Forgetting reads the correctness of the training run's own forward passes (free); input_norm and random need
#   no model (free).
# The record of one run (``<run>.cost.json``) keeps its training and each (score, step) apart, so that a label is
# charged what it needs: training to its own scoring step and its own scoring, not the other scores the same runs
# computed (:func:`label_cost`); a run's whole cost (:func:`run_total`) counts everything once.

COST_FORMAT = "datadiet-score-run-cost/1"
# A forward pass costs about a third of a forward + backward; used only where a model's FLOPs cannot be counted.
FORWARD_SHARE = 1 / 3


def run_cost_path(cache: Path) -> Path:
    """``run-seed3-<id>.cost.json`` beside the cached run ``run-seed3-<id>.npz``."""
    return cache.with_name(cache.name.removesuffix(".npz") + ".cost.json")


def cost_in(entry: dict) -> Cost:
    """The Cost held by a JSON entry that may also carry other keys (a scoring pass's score and step)."""
    return Cost.from_dict({k: entry[k] for k in COST_FIELDS if k in entry})


def scoring_pass(name: str, n: int, per_example: tuple[int, int] | None, seconds: float) -> Cost:
    """What scoring ``n`` examples with model score ``name`` once costs (see the comment above)."""
    if name in GRADIENT_SCORES:
        return Cost(n, 0, None if per_example is None else n * per_example[0], seconds)
    return Cost(0, n, None if per_example is None else n * per_example[1], seconds)


def measured_run_cost(training: Cost, steps: dict[float, int], stop: int, seconds: float,
                      scored: dict[tuple[str, int], float], n: int, per_example: tuple[int, int] | None) -> dict:
    """The cost record of a score run just trained to step ``stop`` in ``seconds``, scoring at ``steps`` (epoch →
    step): ``training`` (the engine's count of its passes and FLOPs) with the run's wall time less its scoring,
    and one entry per (score, step) scored, with its seconds."""
    scoring = [{"score": name, "step": step, **scoring_pass(name, n, per_example, t).to_dict()}
               for (name, step), t in sorted(scored.items(), key=lambda kv: (kv[0][1], kv[0][0]))]
    train_wall = max(0.0, seconds - sum(scored.values()))
    return {"format": COST_FORMAT, "stop": stop, "per_example": None if per_example is None else list(per_example),
            "training": Cost(training.sample_passes, 0, training.flops, train_wall).to_dict(), "scoring": scoring,
            "steps_by_epoch": _steps_by_epoch(steps)}


def planned_run_cost(score_cfg: ScoreConfig, train_cfg: TrainConfig, n: int,
                     per_example: tuple[int, int] | None) -> dict:
    """The cost record of a score run cached before runs recorded their cost, from the step schedule: ``stop`` steps of
    the schedule's batch, and every model score once per scoring step; its wall time is unknown."""
    steps, stop = scoring_schedule(score_cfg, train_cfg, n)
    batch = train_cfg.schedule(train_size=n).batch
    training = Cost(stop * batch, 0, None if per_example is None else stop * batch * per_example[0], float("nan"))
    names = [name for name in score_cfg.scores if score_spec(name).kind is ScoreKind.MODEL]
    scoring = [{"score": name, "step": step, **scoring_pass(name, n, per_example, float("nan")).to_dict()}
               for step in sorted(set(steps.values())) for name in names]
    return {"format": COST_FORMAT, "stop": stop, "per_example": None if per_example is None else list(per_example),
            "training": training.to_dict(), "scoring": scoring, "steps_by_epoch": _steps_by_epoch(steps),
            "planned": True}


def _steps_by_epoch(steps: dict[float, int]) -> dict[str, int]:
    """{scoring epoch: step} with exact JSON keys (``repr``), to find the step of a label's epoch."""
    return {repr(float(epoch)): step for epoch, step in steps.items()}


def read_run_cost(cache: Path) -> dict | None:
    """The cost record beside cached run ``cache``, or None (cached before costs were recorded, or unreadable:
    then the step schedule says what it cost)."""
    try:
        record = load_json(run_cost_path(cache))  # strict and bounded; a pipe or device is refused
        run_total(record)  # every part readable: an edited or damaged record is no record
        stop, steps = int(record["stop"]), [int(v) for v in record.get("steps_by_epoch", {}).values()]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return record if record.get("format") == COST_FORMAT and stop >= 0 and all(s >= 0 for s in steps) else None


def label_cost(record: dict, label: ScoreLabel | str) -> Cost:
    """What score ``label`` needed of the run ``record``: training to its scoring step (to the end for forgetting;
    the training is uniform, so a prefix of s of the run's ``stop`` steps costs s/stop of it) and its own scoring;
    nothing for a score without a model (input_norm, random)."""
    label = ScoreLabel.parse(str(label))
    if label.kind is ScoreKind.STATIC:
        return Cost()
    training, stop = cost_in(record["training"]), int(record["stop"])
    if label.kind is ScoreKind.HISTORY:
        return training
    step = _step_of(record, label)
    share = _scaled(training, step / stop) if stop else Cost(0, 0, training.flops, 0.0)
    scoring = [cost_in(e) for e in record["scoring"] if e["score"] == label.name and e["step"] == step]
    return share + sum(scoring)


def _step_of(record: dict, label: ScoreLabel) -> int:
    """The step at which run ``record`` scored ``label`` (its recorded schedule)."""
    by_epoch, key = record.get("steps_by_epoch", {}), repr(float(label.epoch))
    if key not in by_epoch:
        raise DataDietError(f"The cost record of a score run does not say when {label} was scored (it scored at "
                            f"epochs {', '.join(by_epoch) or 'none'}).")
    return int(by_epoch[key])


def run_total(record: dict) -> Cost:
    """Everything score run ``record`` cost: its training and each scoring pass, each counted once."""
    return cost_in(record["training"]) + sum((cost_in(e) for e in record["scoring"]), Cost())


def charge(records: Sequence[dict], label: ScoreLabel | str | None = None) -> dict:
    """What score runs ``records`` cost as JSON (:meth:`Cost.to_dict`) with ``runs`` (how many) and
    ``pass_equivalents`` (:func:`pass_equivalents`): what ``label`` needed of them (:func:`label_cost`), or with
    no label everything they did (:func:`run_total`)."""
    costs = [run_total(r) if label is None else label_cost(r, label) for r in records]
    equivalents = sum(pass_equivalents(c, r.get("per_example")) for c, r in zip(costs, records))
    needed = label is None or ScoreLabel.parse(str(label)).kind is not ScoreKind.STATIC  # input_norm needs no score run
    return {"runs": len(records) if needed else 0, **sum(costs, Cost()).to_dict(), "pass_equivalents": equivalents}


def add_charges(charges: Sequence[dict]) -> dict:
    """The sum of :func:`charge` results (the score draws of one method, say)."""
    total = sum((cost_in(c) for c in charges), Cost())
    return {"runs": sum(int(c["runs"]) for c in charges), **total.to_dict(),
            "pass_equivalents": sum(float(c["pass_equivalents"]) for c in charges)}


def _scaled(cost: Cost, share: float) -> Cost:
    return Cost(round(cost.sample_passes * share), round(cost.forward_passes * share),
                None if cost.flops is None else round(cost.flops * share), cost.wall_seconds * share)


def pass_equivalents(cost: Cost, per_example: tuple[int, int] | None) -> float:
    """Sample passes with forward-only passes counted at their share of a forward + backward's FLOPs (the
    model's own ratio, or :data:`FORWARD_SHARE` where its FLOPs are unknown): one axis for training and scoring."""
    share = per_example[1] / per_example[0] if per_example and per_example[0] else FORWARD_SHARE
    return cost.sample_passes + cost.forward_passes * share


def recipe_flops(train_cfg: TrainConfig, shape, num_classes: int) -> tuple[int, int] | None:
    """:func:`~datadiet.training.flops_per_example` of ``train_cfg``'s model for examples of ``shape``; None
    where the model cannot be built or counted (an estimate must never stop a report)."""
    try:
        with torch.random.fork_rng(devices=[]):  # building draws initial weights: not from the caller's stream
            model = build_model(train_cfg.model, num_classes=num_classes, in_channels=shape[0], width=train_cfg.width,
                                input_shape=tuple(shape))
            return flops_per_example(model, tuple(shape), num_classes)
    except Exception:  # noqa: BLE001 - a user model that no longer imports: its FLOPs are unknown, nothing else
        return None


class _Planned:
    """The planned cost record of a score config's runs on ``n`` examples of ``shape``, made (and its FLOPs counted)
    once, and only when some run needs it."""

    def __init__(self, score_cfg: ScoreConfig, train_cfg: TrainConfig, n: int, shape, num_classes: int):
        self.args, self.record = (score_cfg, train_cfg, n, shape, num_classes), None

    def __call__(self) -> dict:
        if self.record is None:
            score_cfg, train_cfg, n, shape, num_classes = self.args
            self.record = planned_run_cost(score_cfg, train_cfg, n, recipe_flops(train_cfg, shape, num_classes))
        return self.record


def score_run_costs(score_dir: str | Path) -> list[dict]:
    """The cost record of every score run of the folder's recorded score config (``score_config.json``): the one
    each run wrote, or for runs cached before that, the step schedule's (wall time unknown). Empty without a config."""
    score_dir = Path(score_dir)
    try:
        provenance = load_json(score_dir / "score_config.json")
        score_cfg = from_dict(ScoreConfig, provenance["score"])
        train_cfg = from_dict(TrainConfig, provenance["train"])
        dataset = provenance["dataset"]
        _, stop = scoring_schedule(score_cfg, train_cfg, int(dataset["size"]))
    except (OSError, ValueError, KeyError, TypeError, DataDietError):  # no config, or one of an older format
        return []
    planned = _Planned(score_cfg, train_cfg, int(dataset["size"]), dataset["shape"], int(dataset["num_classes"]))
    seeds = [score_cfg.seed + r for r in range(score_cfg.runs)]
    return [{**(read_run_cost(score_dir / ".runs" / run_cache_name(provenance, seed, stop)) or planned()),
             "seed": seed} for seed in seeds]
