"""Memorization estimates (Feldman & Zhang, 2020) to serve as external per-example values.

Paul et al. (App. G) correlate EL2N with Feldman & Zhang's memorization estimates of CIFAR-100 examples.  Those
estimates exist for CIFAR-100 only, so for any other setting this module computes the same subsampled
estimator, on a smaller scale:

    mem(i) = P[model predicts y_i on x_i | i in its training subset] − P[... | i not in it],

both probabilities estimated over ``models`` runs, each trained on its own random subset of ``fraction`` of the
training examples (Feldman & Zhang: 2,000–4,000 ResNets on 70 % subsets).  Each run takes the setting's recipe
and the full data's step budget (matched budgets, as every run in datadiet), with its own seed; after training
it records whether it classifies every training example correctly.

Each run's membership and correctness are cached (atomically) in ``<workspace>/memorization/cache/<digest>/``,
so an interrupted estimate resumes where it stopped.  The estimate is written as ``memorization.csv`` (columns
id, memorization, n_in, n_out), a values file like any user's, which the external analysis then reads.
Examples that no run left out (or none kept in) have no estimate and are left out of the file.
"""
from __future__ import annotations

import csv
import io
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..data.transforms import Normalizer
from ..errors import ConfigError, DataDietError
from ..io import atomic_path, read_npz, write_text_atomic
from ..training import correct_per_example, train
from .presets import Setting
from .workspace import Workspace

SEED_BASE = 5000  # memorization runs never share a seed with score runs (0..R-1) or evaluations (1000+)


def memorization_estimate(member: np.ndarray, correct: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Feldman & Zhang's subsampled estimator from K runs over n examples.

    Args:
        member: bool ``[K, n]``, example i was in run k's training subset.
        correct: bool ``[K, n]``, run k classifies example i correctly.
    Returns:
        ``(mem [n], n_in [n], n_out [n])``: mean correctness over the runs that trained on i minus the mean over
        those that did not; NaN where either count is 0.
    """
    member, correct = np.asarray(member, dtype=bool), np.asarray(correct, dtype=bool)
    if member.shape != correct.shape or member.ndim != 2:
        raise ValueError(f"member {member.shape} and correct {correct.shape} must both be [runs, examples]")
    n_in, n_out = member.sum(0), (~member).sum(0)
    hits_in, hits_out = (correct & member).sum(0), (correct & ~member).sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mem = np.where((n_in > 0) & (n_out > 0), hits_in / n_in - hits_out / n_out, np.nan)
    return mem, n_in, n_out


def subset_mask(n: int, fraction: float, seed: int) -> np.ndarray:
    """A random subset of round(fraction·n) of n examples, as a boolean mask."""
    mask = np.zeros(n, dtype=bool)
    mask[np.random.default_rng(seed).choice(n, size=round(fraction * n), replace=False)] = True
    return mask


def estimate(ws: Workspace, setting: Setting, models: int, *, fraction: float = 0.5) -> Path:
    """Train (or find on disk) ``models`` subset runs of ``setting`` and write ``memorization.csv``."""
    if models < 2:
        raise ConfigError(f"A memorization estimate needs at least 2 subset runs, got {models}.")
    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"The subset fraction of a memorization run must lie strictly between 0 and 1, got "
                          f"{fraction}: every example has to be both in some runs and out of others.")
    splits = ws.splits(setting.data)
    recipe = ws.train(setting.train)
    folder = ws.run_cache("memorization", ws.data(setting.data), recipe) / f"fraction{fraction:g}"
    n = len(splits.train)
    member, correct = np.zeros((models, n), dtype=bool), np.zeros((models, n), dtype=bool)
    for k in range(models):
        member[k], correct[k] = _subset_run(ws, splits, replace(recipe, seed=SEED_BASE + k), fraction,
                                            folder / f"run{k:04d}.npz", f"{k + 1}/{models}")
    mem, n_in, n_out = memorization_estimate(member, correct)
    return _write_table(folder / "memorization.csv", splits.train.ids.numpy(), mem, n_in, n_out)


def _subset_run(ws: Workspace, splits, config, fraction: float, path: Path, progress: str
                ) -> tuple[np.ndarray, np.ndarray]:
    if path.is_file():
        saved = read_npz(path, what="a cached memorization run", required=("member", "correct"), optional=(),
                         error=DataDietError, fix="Delete it and run the same command again: that run is retrained.")
        return saved["member"], saved["correct"]
    mask = subset_mask(len(splits.train), fraction, config.seed)
    ws.log(f"memorization: run {progress} (seed {config.seed}) on {int(mask.sum())} of {len(mask)} examples")
    result = train(config, splits, positions=np.flatnonzero(mask), evaluate_test=False, progress=False,
                   log=lambda _: None)
    normalize = Normalizer(splits.mean, splits.std, next(result.model.parameters()).device)
    correct = correct_per_example(result.model, splits.train.images, splits.train.labels, normalize, config)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, member=mask, correct=correct)
    return mask, correct


def _write_table(path: Path, ids: np.ndarray, mem: np.ndarray, n_in: np.ndarray, n_out: np.ndarray) -> Path:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["id", "memorization", "n_in", "n_out"])
    for i in np.flatnonzero(np.isfinite(mem)):
        writer.writerow([int(ids[i]), repr(float(mem[i])), int(n_in[i]), int(n_out[i])])
    write_text_atomic(path, text.getvalue())
    return path
