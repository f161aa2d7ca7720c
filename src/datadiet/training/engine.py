"""The training engine: a fixed step budget, the papers' schedule, checkpoints, hooks.

One call to :func:`train` trains one model on (a subset of) a training split.
The budget is a number of SGD steps that, by default, does not depend on the
subset size (Data Diet B.2: "we keep the number of iterations and schedule
fixed for different pruning levels").  Data stays on the compute device as
uint8; every batch is gathered, augmented and normalized there.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..config import TrainConfig, steps_per_epoch, to_dict
from ..data.dataset import DatasetSplits, ImageDataset
from ..data.transforms import Normalizer, augment, default_pad
from ..errors import ConfigError, NonFiniteLossError
from ..models import build_model
from .checkpoints import available_steps, load_checkpoint, save_checkpoint
from .correctness import CorrectnessLog

Hook = Callable[[nn.Module, int], None]


@dataclass
class TrainResult:
    """What one training run produced.  ``test_accuracy`` is at the FINAL step, never the best."""

    model: nn.Module
    steps: int
    epochs_seen: float
    test_accuracy: float | None
    test_loss: float | None
    train_loss: list[tuple[int, float]]       # (step, mean loss over the last logging window)
    wall_seconds: float
    correctness: CorrectnessLog | None
    config: dict = field(default_factory=dict)

    def summary(self) -> dict:
        return {"steps": self.steps, "epochs_seen": self.epochs_seen, "test_accuracy": self.test_accuracy,
                "test_loss": self.test_loss, "final_train_loss": self.train_loss[-1][1] if self.train_loss else None,
                "wall_seconds": round(self.wall_seconds, 3)}


@dataclass(frozen=True)
class StartFrom:
    """A saved training state to continue from: parameters and buffers, optimizer state (momentum), and
    the number of SGD steps already taken.  Used to spawn children from a parent run (Data Diet § 5.2,
    linear mode connectivity)."""

    model: Mapping[str, torch.Tensor]
    optimizer: Mapping | None
    step: int

    @classmethod
    def from_checkpoint(cls, directory: str | Path, step: int) -> "StartFrom":
        """The state saved by ``train(..., checkpoint_dir=directory, checkpoint_steps=[step])``."""
        state = load_checkpoint(directory, step)
        return cls(state["model"], state.get("optimizer"), int(state["step"]))


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"Device {name!r} was requested but CUDA is not available here; use --device cpu or auto.")
    return device


def seed_streams(seed: int) -> tuple[int, int, int]:
    """Three independent seeds (model init, data order, augmentation) derived from one run seed."""
    init, order, aug = np.random.SeedSequence(seed).generate_state(3, dtype=np.uint64)
    return int(init >> 1), int(order >> 1), int(aug >> 1)


def init_model(config: TrainConfig, dataset: ImageDataset) -> nn.Module:
    """The model of ``config`` initialised from the run seed (same seed, same weights)."""
    init_seed, _, _ = seed_streams(config.seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(init_seed)
        return build_model(config.model, num_classes=dataset.num_classes, in_channels=dataset.shape[0],
                           width=config.width)


def place_model(model: nn.Module, config: TrainConfig, device: torch.device) -> nn.Module:
    """Move ``model`` to ``device`` in the memory format the config asks for.

    channels_last is on by default on every device: on 2 CPU cores it trains the small CNN about
    1.5× faster than NCHW (measured in benchmarks/bench_train_pipeline.py), and it is the fast path
    for convolutions on recent GPUs.
    """
    model = model.to(device)
    return model.to(memory_format=torch.channels_last) if config.channels_last else model


def to_layout(x: torch.Tensor, config: TrainConfig) -> torch.Tensor:
    """Input batch in the model's memory format."""
    return x.contiguous(memory_format=torch.channels_last) if config.channels_last and x.dim() == 4 else x


def lr_at(step: int, total: int, config: TrainConfig) -> float:
    """Piecewise-constant schedule: ×``lr_decay`` at each milestone fraction of ``total``."""
    passed = sum(step >= round(m * total) for m in config.milestones)
    return config.lr * config.lr_decay**passed


def train(
    config: TrainConfig,
    splits: DatasetSplits,
    *,
    positions: torch.Tensor | Sequence[int] | None = None,
    checkpoint_dir: str | Path | None = None,
    checkpoint_steps: Sequence[int] = (),
    hooks: Mapping[int, Hook] | None = None,
    record_correctness: bool = False,
    stop_after: int | None = None,
    start_from: StartFrom | None = None,
    evaluate_test: bool = True,
    progress: bool | None = None,
    log: Callable[[str], None] | None = None,
) -> TrainResult:
    """Train one model on ``splits.train`` (rows ``positions`` only, if given).

    Args:
        config: the recipe; ``config.total_steps`` sets the budget.
        splits: data with normalization statistics of the full training split.
        positions: row positions of the training subset (``None`` = all rows).
        checkpoint_dir / checkpoint_steps: save parameters, buffers and optimizer
            state after these many steps (0 = the initialization).
        hooks: ``{step: fn(model, step)}`` called after that many steps with the
            model in eval mode (step 0 = before any update); used to score
            several scores at several epochs from the same run.
        record_correctness: log per-presentation correctness for forgetting scores.
        stop_after: stop after this many steps while keeping the full run's LR schedule (scoring at
            epoch t of a longer run needs the model of that run, not of a shorter one).
        start_from: continue from a saved state at step k instead of the initialization: parameters,
            buffers and optimizer state are loaded, training runs steps k..end under the full run's LR
            schedule, and the data order and augmentation are those ``config.seed`` gives from step k on
            (its generators are replayed through the first k steps).  So resuming a run's own checkpoint
            with its own seed reproduces the uninterrupted run, and a different seed gives a child with
            different SGD noise.  Hooks and checkpoints may only name steps k..end; the correctness log
            and loss history cover the resumed steps only.
        progress: tqdm bar (default: only when stderr is a terminal).
    """
    started = time.perf_counter()
    device = resolve_device(config.device)
    on_cuda = device.type == "cuda"
    full = splits.train
    rows = torch.arange(len(full)) if positions is None else torch.as_tensor(positions, dtype=torch.long)
    if rows.numel() == 0:
        raise ConfigError("Cannot train on an empty subset; keep at least one example.")
    total = config.total_steps(train_size=len(rows), full_size=len(full))
    end = total if stop_after is None else min(stop_after, total)
    batch = min(config.batch_size, len(rows))
    per_epoch = steps_per_epoch(len(rows), batch)
    start = _start_step(start_from, end)
    _check_steps(checkpoint_steps, hooks, end, start)

    model = place_model(init_model(config, full), config, device)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                                nesterov=config.nesterov, weight_decay=config.weight_decay)
    if start_from is not None:
        _load_state(model, optimizer, start_from)
    images = full.images[rows].to(device)
    labels = full.labels[rows].to(device)
    ids = full.ids[rows].to(device)
    normalize = Normalizer(splits.mean, splits.std, device)
    pad = config.pad if config.pad is not None else default_pad(full.shape[-1])
    _, order_seed, aug_seed = seed_streams(config.seed)
    order_gen = torch.Generator().manual_seed(order_seed)
    aug_gen = torch.Generator().manual_seed(aug_seed)
    correctness = CorrectnessLog() if record_correctness else None
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=on_cuda and config.amp)
    checkpoint_steps = set(checkpoint_steps)
    hooks = dict(hooks or {})
    log = log or _stderr
    bar = _progress_bar(end - start, progress)

    def at_step(step: int) -> None:
        if checkpoint_dir is not None and step in checkpoint_steps:
            save_checkpoint(checkpoint_dir, step, model, optimizer, extra={"config": to_dict(config)})
        if step in hooks:
            model.eval()
            with torch.random.fork_rng(devices=[device] if on_cuda else []):
                hooks[step](model, step)
            model.train()

    def draw_augmentation(idx: torch.Tensor) -> torch.Tensor:
        return augment(images[idx], pad=pad, flip=config.flip, generator=aug_gen)

    # A resumed run replays its generators through the steps already taken (same draws, no training).
    skip = _replay_data_stream(start, per_epoch, batch, len(rows), order_gen,
                               draw_augmentation if config.augment else None)
    model.train()
    at_step(start)
    step, window, losses = start, [], []
    pending_bad = torch.zeros((), dtype=torch.bool, device=device)
    while step < end:
        order = torch.randperm(len(rows), generator=order_gen).to(device)
        first, skip = skip, 0  # batches of this epoch taken before the resume (only in its first epoch)
        _replay_augmentation(order, first, batch, draw_augmentation if config.augment else None)
        for b in range(first, min(per_epoch, first + end - step)):
            idx = order[b * batch:(b + 1) * batch]
            x = draw_augmentation(idx) if config.augment else images[idx]
            x = to_layout(normalize(x), config)
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step, total, config)
            with autocast:
                logits = model(x)
                loss = F.cross_entropy(logits.float(), labels[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            pending_bad |= ~torch.isfinite(loss.detach())
            window.append(loss.detach())
            if correctness is not None:
                correctness.record(ids[idx], logits.detach().argmax(1) == labels[idx])
            # On CPU checking every step is free; on GPU it would stall the queue, so check every 50.
            if not on_cuda or step % 50 == 0 or step == end:
                _raise_if_diverged(pending_bad, step, config)
            at_step(step)
            bar.update(1)
        epoch_loss = float(torch.stack(window).mean())
        losses.append((step, epoch_loss))
        window = []
        if not bar.active:
            log(f"step {step}/{end} (epoch {step / per_epoch:.2f}) lr {lr_at(step - 1, total, config):.4g} "
                f"train loss {epoch_loss:.4f}")
    bar.close()
    _raise_if_diverged(pending_bad, step, config)

    test_acc = test_loss = None
    if evaluate_test:
        test_acc, test_loss = evaluate(model, splits.test, normalize, batch_size=config.eval_batch_size)
    return TrainResult(model=model, steps=step, epochs_seen=step / per_epoch, test_accuracy=test_acc,
                       test_loss=test_loss, train_loss=losses, wall_seconds=time.perf_counter() - started,
                       correctness=correctness, config=to_dict(config))


@torch.no_grad()
def evaluate(model: nn.Module, dataset: ImageDataset, normalize: Normalizer, *, batch_size: int = 1024
             ) -> tuple[float, float]:
    """Accuracy and mean cross-entropy on un-augmented ``dataset`` (eval mode)."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    correct, loss_sum = 0, 0.0
    for start in range(0, len(dataset), batch_size):
        x = normalize(dataset.images[start:start + batch_size].to(device))
        y = dataset.labels[start:start + batch_size].to(device)
        logits = model(x).float()
        loss_sum += float(F.cross_entropy(logits, y, reduction="sum"))
        correct += int((logits.argmax(1) == y).sum())
    model.train(was_training)
    n = max(len(dataset), 1)
    return correct / n, loss_sum / n


def ensure_checkpoints(config: TrainConfig, splits: DatasetSplits, directory: str | Path, steps: Sequence[int], *,
                       hooks: Mapping[int, Hook] | None = None, log: Callable[[str], None] | None = None) -> list[int]:
    """Make sure run ``config`` has a checkpoint (parameters, buffers, momentum) in ``directory`` at every one of
    ``steps``, and call ``hooks`` at theirs; returns the steps that had to be saved.

    Training continues from the latest checkpoint at or before the earliest step needed rather than from the
    initialization, so the checkpoints of one directory come from one run even where training is not
    bit-reproducible (GPUs), and nothing already trained is trained again.
    """
    hooks = dict(hooks or {})
    saved = available_steps(directory)
    missing = sorted(set(steps) - set(saved))
    needed = missing + list(hooks)
    if not needed:
        return []
    first, last = min(needed), max(needed)
    start = next((StartFrom.from_checkpoint(directory, s) for s in reversed(saved) if s <= first), None)
    if start is not None and start.optimizer is None:
        start = None  # a checkpoint without momentum cannot continue the same run; start over
    (log or _stderr)(f"training seed {config.seed} from step {0 if start is None else start.step} to {last}, "
                     f"saving {len(missing)} checkpoint(s)")
    train(config, splits, checkpoint_dir=directory, checkpoint_steps=missing, hooks=hooks, stop_after=last,
          start_from=start, evaluate_test=False, progress=False, log=lambda _: None)
    return missing


def _raise_if_diverged(flag: torch.Tensor, step: int, config: TrainConfig) -> None:
    if bool(flag):
        raise NonFiniteLossError(
            f"The training loss became NaN or infinite by step {step} (lr {config.lr}, model {config.model}). "
            "Training diverged: lower the learning rate (--lr), check the inputs for NaN/inf, or try another "
            "seed. Nothing was written for this run."
        )


def _check_steps(checkpoint_steps: Sequence[int], hooks: Mapping[int, Hook] | None, total: int,
                 start: int = 0) -> None:
    bad = sorted(s for s in [*checkpoint_steps, *(hooks or {})] if not start <= s <= total)
    if bad:
        raise ConfigError(f"Checkpoint/hook steps {bad} lie outside this run's {start}..{total} steps.")


def _start_step(start_from: StartFrom | None, end: int) -> int:
    if start_from is None:
        return 0
    if not 0 <= start_from.step <= end:
        raise ConfigError(f"Cannot resume at step {start_from.step}: this run takes steps 0..{end}. Resume from "
                          "a checkpoint of a run with the same budget, at or before its last step.")
    return int(start_from.step)


def _load_state(model: nn.Module, optimizer: torch.optim.Optimizer, start_from: StartFrom) -> None:
    try:
        model.load_state_dict(start_from.model)
    except RuntimeError as exc:
        raise ConfigError(f"The saved state does not fit this model ({exc}). Resume with the model, width and "
                          "dataset of the run that saved it.") from exc
    if start_from.optimizer is not None:
        optimizer.load_state_dict(start_from.optimizer)


def _replay_data_stream(start: int, per_epoch: int, batch: int, n: int, order_gen: torch.Generator,
                        draw_augmentation: Callable[[torch.Tensor], torch.Tensor] | None) -> int:
    """Advance the data-order and augmentation generators through the epochs completed in the first
    ``start`` steps exactly as training draws them (one permutation per epoch, one augmentation per
    batch); returns how many batches of the unfinished epoch were taken (the training loop draws that
    epoch's permutation and replays those batches' augmentations itself)."""
    epochs, taken = divmod(start, per_epoch)
    for _ in range(epochs):
        order = torch.randperm(n, generator=order_gen)
        _replay_augmentation(order, per_epoch, batch, draw_augmentation)
    return taken


def _replay_augmentation(order: torch.Tensor, batches: int, batch: int,
                         draw_augmentation: Callable[[torch.Tensor], torch.Tensor] | None) -> None:
    if draw_augmentation is not None:
        for b in range(batches):
            draw_augmentation(order[b * batch:(b + 1) * batch])


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class _NoBar:
    active = False

    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress_bar(total: int, progress: bool | None):
    if progress is None:
        progress = sys.stderr.isatty()
    if not progress:
        return _NoBar()
    from tqdm.auto import tqdm

    bar = tqdm(total=total, unit="step", dynamic_ncols=True, leave=False)
    bar.active = True
    return bar
