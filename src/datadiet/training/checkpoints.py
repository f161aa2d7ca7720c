"""Checkpoints at chosen steps, step 0 included, saved atomically and loaded safely.

Regression guard for the bug behind the original GraNd-at-init result
(Kirsch 2023, footnote 5): Flax's restore used ``if step:`` to decide whether
a step was requested, so ``step=0`` silently loaded the *latest* checkpoint.
Here "latest" is only ever chosen by ``step is None``.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import CheckpointError
from ..io import atomic_path

_NAME = re.compile(r"^step_(\d{9})\.pt$")


def checkpoint_path(directory: str | Path, step: int) -> Path:
    return Path(directory) / f"step_{step:09d}.pt"


def save_checkpoint(directory: str | Path, step: int, model: nn.Module,
                    optimizer: torch.optim.Optimizer | None = None, extra: dict | None = None,
                    dynamic: dict | None = None) -> Path:
    """Write parameters, buffers (and optimizer state, and a dynamically pruned run's pruner state) at
    ``step``; atomic."""
    state = {"step": step, "model": model.state_dict(), "extra": extra or {}}
    if optimizer is not None:
        state["optimizer"] = optimizer.state_dict()
    if dynamic is not None:
        state["dynamic"] = storable(dynamic)
    target = checkpoint_path(directory, step)
    with atomic_path(target) as tmp:
        torch.save(state, tmp)
    return target


def storable(value):
    """``value`` with numpy arrays and scalars made tensors and Python numbers: what ``weights_only`` loading
    reads back (it refuses numpy objects).  Arrays keep their dtype, so a pruner's loss table returns bit for bit."""
    if isinstance(value, dict):
        return {key: storable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [storable(item) for item in value]
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value.copy())
    return value.item() if isinstance(value, np.generic) else value


def available_steps(directory: str | Path) -> list[int]:
    directory = Path(directory)
    if not directory.is_dir():
        return []
    return sorted(int(m.group(1)) for p in directory.iterdir() if (m := _NAME.match(p.name)))


def load_checkpoint(directory: str | Path, step: int | None = None) -> dict:
    """The checkpoint saved at ``step``; the latest one only when ``step is None``.

    Loaded with ``weights_only=True``: a checkpoint file cannot run code.
    """
    steps = available_steps(directory)
    if step is None:  # NOT `if not step`: step 0 is a real request for the initialization
        if not steps:
            raise CheckpointError(f"No checkpoints in {directory}. Train with --checkpoint-steps first.")
        step = steps[-1]
    path = checkpoint_path(directory, step)
    if not path.is_file():
        raise CheckpointError(
            f"No checkpoint for step {step} in {directory} (available: {steps or 'none'}). "
            "Re-run training with this step in --checkpoint-steps."
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt or foreign file
        raise CheckpointError(f"Cannot read checkpoint {path}: {exc}. Delete it and re-run training.") from exc


def restore(model: nn.Module, directory: str | Path, step: int | None = None) -> int:
    """Load the parameters and buffers of ``step`` into ``model``; returns the step restored."""
    state = load_checkpoint(directory, step)
    model.load_state_dict(state["model"])
    return int(state["step"])
