"""The training engine: a fixed step budget, the papers' schedule, checkpoints, hooks.

One call to :func:`train` trains one model on (a subset of) a training split.
The budget is a number of SGD steps that, by default, does not depend on the
subset size (Data Diet B.2: "we keep the number of iterations and schedule
fixed for different pruning levels").  Data stays on the compute device as
uint8; every batch is gathered, augmented and normalized there.

A dynamically pruned run (``TrainConfig.dynamic``: InfoBatch or RS2) trains ``epochs`` whole epochs over its
rows instead, each on the rows its pruner keeps (see :class:`~datadiet.training.stream.DynamicStream`): its
number of steps is the sum of its epochs' full batches, and its learning-rate schedule follows the epochs
(:func:`lr_at_progress`).  Every run reports what it cost (:class:`~datadiet.training.accounting.Cost`).
"""
from __future__ import annotations

import itertools
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Mapping, Sequence

import torch
from torch import nn

from ..config import TrainConfig, resolve_flip, to_dict
from ..data.dataset import DatasetSplits, ImageDataset
from ..data.transforms import Normalizer
from ..errors import ConfigError, NonFiniteLossError
from ..models import build_model
from .accounting import Cost, cost, flops_per_example
from .checkpoints import available_steps, load_checkpoint, save_checkpoint
from .correctness import CorrectnessLog
from .evaluate import ClassMetrics, evaluate, evaluate_split
from .placement import place_model, resolve_device, to_layout
from .step import balanced_class_weights, make_step
from .stream import BatchStream, DynamicStream, seed_streams, warn_if_large

__all__ = ["Hook", "StartFrom", "TrainResult", "ensure_checkpoints", "evaluate", "init_model", "lr_at",
           "lr_at_progress", "place_model", "resolve_device", "seed_streams", "to_layout", "train"]

Hook = Callable[[nn.Module, int], None]


@dataclass
class TrainResult:
    """What one training run produced.  ``test_accuracy`` is at the FINAL step, never the best.

    ``cost`` is the training this call did (steps ``start..end`` of a resumed run): its sample passes are the
    examples of every batch trained, its FLOPs those passes times the model's training FLOPs per example
    (None when they cannot be counted), its seconds those of the training loop.  Scoring passes are not in
    it: the score runs add their own.  ``passes_per_epoch[e]`` is the examples this call trained in epoch
    ``e`` (a pass over the run's rows; a dynamically pruned run's epoch as its pruner cut it).
    ``test_classes``: the per-class numbers of the same test pass (recall per class, balanced and worst-class
    accuracy, the test split's majority-class rate; :class:`~datadiet.training.evaluate.ClassMetrics`), None when
    the test split was not evaluated.
    """

    model: nn.Module
    steps: int
    epochs_seen: float
    test_accuracy: float | None
    test_loss: float | None
    train_loss: list[tuple[int, float]]       # (step, mean loss over the last logging window)
    wall_seconds: float
    correctness: CorrectnessLog | None
    config: dict = field(default_factory=dict)
    cost: Cost = field(default_factory=Cost)
    passes_per_epoch: list[int] = field(default_factory=list)
    test_classes: ClassMetrics | None = None

    def class_fields(self) -> dict:
        """The per-class numbers under the keys run records and ``result.json`` carry (None: not evaluated)."""
        c = self.test_classes
        return {"test_balanced_accuracy": None if c is None else c.balanced_accuracy,
                "test_worst_class_accuracy": None if c is None else c.worst_class_accuracy,
                "test_class_recall": None if c is None else list(c.recall),
                "test_majority_rate": None if c is None else c.majority_rate}

    def summary(self) -> dict:
        return {"steps": self.steps, "epochs_seen": self.epochs_seen, "test_accuracy": self.test_accuracy,
                "test_loss": self.test_loss, **self.class_fields(),
                "final_train_loss": self.train_loss[-1][1] if self.train_loss else None,
                "wall_seconds": round(self.wall_seconds, 3), "cost": self.cost.to_dict(),
                "passes_per_epoch": list(self.passes_per_epoch)}


@dataclass(frozen=True)
class StartFrom:
    """A saved training state to continue from: parameters and buffers, optimizer state (momentum), the
    number of SGD steps already taken and, for a dynamically pruned run, its pruner's state.  Used to spawn
    children from a parent run (Data Diet § 5.2, linear mode connectivity).

    ``train(config, ..., start_from=state)`` loads parameters, buffers and optimizer state and runs steps
    k..end under the full run's LR schedule, with the data order and augmentation that ``config.seed`` gives
    from step k on (see :class:`~datadiet.training.stream.BatchStream`).  So resuming a run's own checkpoint
    with its own seed reproduces the uninterrupted run, and a different seed gives a child with different
    SGD noise.  A dynamically pruned run resumes only from its own checkpoints (its pruner's draws and loss
    table are part of the state), and then bit-identically on the CPU.
    """

    model: Mapping[str, torch.Tensor]
    optimizer: Mapping | None
    step: int
    dynamic: Mapping | None = None  # DynamicStream.state_dict() of a dynamically pruned run

    @classmethod
    def from_checkpoint(cls, directory: str | Path, step: int) -> "StartFrom":
        """The state saved by ``train(..., checkpoint_dir=directory, checkpoint_steps=[step])``."""
        state = load_checkpoint(directory, step)
        return cls(state["model"], state.get("optimizer"), int(state["step"]), state.get("dynamic"))


def init_model(config: TrainConfig, dataset: ImageDataset) -> nn.Module:
    """The model of ``config`` initialised from the run seed (same seed, same weights)."""
    init_seed, _, _ = seed_streams(config.seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(init_seed)
        return build_model(config.model, num_classes=dataset.num_classes, in_channels=dataset.shape[0],
                           width=config.width, input_shape=tuple(dataset.shape))


def lr_at(step: int, total: int, config: TrainConfig) -> float:
    """Piecewise-constant schedule: ×``lr_decay`` at each milestone fraction of ``total``."""
    passed = sum(step >= round(m * total) for m in config.milestones)
    return config.lr * config.lr_decay**passed


def lr_at_progress(epoch: int, batch: int, batches: int, config: TrainConfig) -> float:
    """The schedule of a dynamically pruned run, whose number of steps is not known in advance: ×``lr_decay`` at
    each milestone fraction of its ``config.epochs`` epochs, by training progress ``(epoch + batch / batches) /
    epochs`` before batch ``batch`` of the ``batches`` in epoch ``epoch``.  A milestone of 0.5 of 10 epochs
    decays at the first batch of epoch 5, whatever each epoch's length."""
    epochs = int(config.epochs)
    # Compared in units of batches of this epoch, so that 0.3 × 10 epochs is reached at epoch 3 exactly.
    passed = sum(epoch * batches + batch >= m * epochs * batches - 1e-9 for m in config.milestones)
    return config.lr * config.lr_decay**passed


def train(config: TrainConfig, splits: DatasetSplits, *, positions: torch.Tensor | Sequence[int] | None = None,
          checkpoint_dir: str | Path | None = None, checkpoint_steps: Sequence[int] = (),
          hooks: Mapping[int, Hook] | None = None, record_correctness: bool = False, stop_after: int | None = None,
          start_from: StartFrom | None = None, evaluate_test: bool = True, progress: bool | None = None,
          log: Callable[[str], None] | None = None) -> TrainResult:
    """Train one model on ``splits.train`` (rows ``positions`` only, if given) for ``config``'s step budget.

    Args:
        checkpoint_dir / checkpoint_steps: save parameters, buffers and optimizer state after these many
            steps (0 = the initialization).
        hooks: ``{step: fn(model, step)}`` called after that many steps, model in eval mode (step 0 = before
            any update); used to score several scores at several epochs of the same run.
        record_correctness: log per-presentation correctness for forgetting scores.
        stop_after: stop after this many steps while keeping the full run's LR schedule (scoring at epoch t
            of a longer run needs the model of that run, not of a shorter one).
        start_from: continue a saved state at its step k (see :class:`StartFrom`); hooks and checkpoints may
            then only name steps k..end, and the correctness log and loss history cover steps k..end only.
        progress: tqdm bar (default: only when stderr is a terminal).

    A dynamically pruned run (InfoBatch) may take fewer steps than its most: a hook or checkpoint at a step it
    does not reach is a ConfigError once training ends.
    """
    started = time.perf_counter()
    config = _augmentation_decided(config, splits)
    device = resolve_device(config.device)
    images, labels, ids = _rows_on_device(splits.train, positions, device)
    course = _course(config, images, len(splits.train), start_from)
    start, end = _step_range(course.most_steps, start_from, stop_after)
    _check_steps(checkpoint_steps, hooks, end, start)

    model, optimizer = _model_and_optimizer(config, splits.train, device, start_from)
    normalize = Normalizer(splits.mean, splits.std, device)
    sgd_step = make_step(model, optimizer, device, amp=config.amp, cuda_graph=config.cuda_graph,
                         precision=config.precision, class_weight=_class_weight(config, labels, splits.train))

    def train_on(batch: _Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        return sgd_step(to_layout(normalize(batch.x), config), labels[batch.rows], batch.lr, batch.weight)

    at_step = _StepEvents(model, optimizer, config, device, checkpoint_dir, checkpoint_steps, hooks, course.state)
    record = _Record(config, course.of_steps(end), end, device, labels, ids, record_correctness, log or _stderr)
    model.train()
    done = _take_steps(course, start, end, train_on, at_step, record, _progress_bar(end - start, progress))
    _check_reached(checkpoint_steps, hooks, done.steps, config)

    test = evaluate_split(model, splits.test, normalize, batch_size=config.eval_batch_size) if evaluate_test else None
    return TrainResult(model=model, steps=done.steps, epochs_seen=course.epochs_seen(done.steps, done.last),
                       test_accuracy=None if test is None else test.accuracy,
                       test_loss=None if test is None else test.mean_loss, train_loss=record.losses,
                       test_classes=None if test is None else test.classes,
                       wall_seconds=time.perf_counter() - started, correctness=record.correctness,
                       config=to_dict(config), passes_per_epoch=done.passes,
                       cost=_training_cost(model, splits.train, sum(done.passes), done.seconds))


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
    if start is not None and not _can_continue(start, config):
        start = None  # a checkpoint without momentum (or pruner state) cannot continue the same run; start over
    (log or _stderr)(f"training seed {config.seed} from step {0 if start is None else start.step} to {last}, "
                     f"saving {len(missing)} checkpoint(s)")
    train(config, splits, checkpoint_dir=directory, checkpoint_steps=missing, hooks=hooks, stop_after=last,
          start_from=start, evaluate_test=False, progress=False, log=lambda _: None)
    return missing


def _can_continue(start: StartFrom, config: TrainConfig) -> bool:
    return start.optimizer is not None and (config.dynamic is None or start.dynamic is not None or start.step == 0)


def _augmentation_decided(config: TrainConfig, splits: DatasetSplits) -> TrainConfig:
    """``config`` with its flip decided for the data (flip=None: the data's default, recorded as used), and a warning
    where the built-in augmentation meets images larger than it was made for."""
    config = resolve_flip(config, user_data=splits.user_data)
    warn_if_large(config, tuple(splits.train.shape), user_data=splits.user_data)
    return config


def _rows_on_device(train_set: ImageDataset, positions: torch.Tensor | Sequence[int] | None,
                    device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The images, labels and ids of the run's rows (all of ``train_set``, or its rows ``positions``), on
    ``device``: every batch is gathered from them there."""
    rows = torch.arange(len(train_set)) if positions is None else torch.as_tensor(positions, dtype=torch.long)
    if rows.numel() == 0:
        raise ConfigError("Cannot train on an empty subset; keep at least one example.")
    return tuple(t[rows].to(device) for t in (train_set.images, train_set.labels, train_set.ids))


def _class_weight(config: TrainConfig, labels: torch.Tensor, train_set: ImageDataset) -> torch.Tensor | None:
    """Each class's loss weight for ``--class-weights balanced``, from ``labels``, those of the run's own rows (a
    subset's counts, not the full split's: the weights even out what this run trains on); None for the plain loss."""
    return balanced_class_weights(labels, train_set.num_classes) if config.class_weights == "balanced" else None


def _model_and_optimizer(config: TrainConfig, dataset: ImageDataset, device: torch.device,
                         start_from: StartFrom | None) -> tuple[nn.Module, torch.optim.Optimizer]:
    model = place_model(init_model(config, dataset), config, device)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                                nesterov=config.nesterov, weight_decay=config.weight_decay)
    if start_from is not None:
        _load_state(model, optimizer, start_from)
    return model, optimizer


def _training_cost(model: nn.Module, dataset: ImageDataset, sample_passes: int, seconds: float) -> Cost:
    # Counting may run the model on a CPU copy (a model without meta kernels): on a forked RNG, so that it
    # cannot change what the caller draws next.
    with torch.random.fork_rng(devices=[]):
        per_example = flops_per_example(model, tuple(dataset.shape), dataset.num_classes)
    return cost(sample_passes, 0, seconds, per_example)


def _add_passes(passes: list[int], epoch: int, examples: int) -> None:
    passes.extend([0] * (epoch + 1 - len(passes)))
    passes[epoch] += examples


@dataclass(frozen=True)
class _Trained:
    """What the training loop did: the steps the model stands at, the last batch trained (None: none was),
    the examples trained per epoch and the loop's seconds."""

    steps: int
    last: _Batch | None
    passes: list[int]
    seconds: float


def _take_steps(course: _StaticCourse | _DynamicCourse, start: int, end: int,
                train_on: Callable[[_Batch], tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]],
                at_step: _StepEvents, record: _Record, bar) -> _Trained:
    """Train the course's batches from step ``start`` to ``end``, with each step's events (checkpoint, hook) and
    records (loss, correctness, the pruner's losses) in the order that checkpoints and resumes rely on."""
    at_step(start)
    clock, last, passes = time.perf_counter(), None, []
    for batch in course.batches(start, end):
        logits, loss, per_example = train_on(batch)
        record.step(batch.step, loss, logits, batch.rows)  # raises NonFiniteLossError once the loss is not finite
        course.record(batch, per_example)  # before the step's checkpoint, which saves the pruner's losses
        _add_passes(passes, batch.epoch, len(batch.rows))
        at_step(batch.step)
        bar.update(1)
        record.after_first_step(batch, since=clock, quiet=bar.active)
        record.end_of_epoch(batch, quiet=bar.active)
        last = batch
    bar.close()
    # No batch trained (a run resumed at its last step, or a dynamic run whose epochs ended before ``end``): it
    # stands where it started, not at the budget's upper bound.
    steps = start if last is None else last.step
    record.raise_if_diverged(steps)
    return _Trained(steps, last, passes, time.perf_counter() - clock)


# ----------------------------------------------------------------------------- the two kinds of run


@dataclass(frozen=True)
class _Batch:
    """One SGD step's batch and everything the loop needs to train it."""

    step: int                    # steps taken once it is trained
    rows: torch.Tensor           # positions in the run's rows
    x: torch.Tensor              # inputs (uint8 images, augmented, or float features)
    lr: float
    weight: torch.Tensor | None  # per-example loss weights; None: the plain mean
    epoch: int                   # 0-based
    epoch_end: bool              # the last batch of its epoch
    epochs_done: float           # epochs trained once it is trained


def _course(config: TrainConfig, images: torch.Tensor, full_size: int, start_from: StartFrom | None):
    if config.dynamic is None:
        return _StaticCourse(config, images, full_size)
    return _DynamicCourse(config, images, full_size, start_from)


class _StaticCourse:
    """The papers' run: ``schedule.total`` steps over a fresh permutation of the rows each epoch, the learning rate
    by step."""

    def __init__(self, config: TrainConfig, images: torch.Tensor, full_size: int):
        self.config = config
        self.schedule = config.schedule(train_size=len(images), full_size=full_size)
        self.stream = BatchStream(images, self.schedule, config)
        self.most_steps = self.schedule.total

    def batches(self, start: int, end: int) -> Iterator[_Batch]:
        per_epoch = self.schedule.per_epoch
        for step, (rows, x) in enumerate(self.stream.batches(start, end), start + 1):
            yield _Batch(step, rows, x, lr_at(step - 1, self.schedule.total, self.config), None, (step - 1) // per_epoch,
                         step % per_epoch == 0, step / per_epoch)

    def record(self, batch: _Batch, per_example: torch.Tensor | None) -> None:
        pass

    def state(self) -> None:
        return None

    def of_steps(self, end: int) -> str:
        return f"/{end}"

    def epochs_seen(self, steps: int, last: _Batch | None) -> float:
        return steps / self.schedule.per_epoch


class _DynamicCourse:
    """A dynamically pruned run: ``config.epochs`` epochs, each on the rows its pruner keeps, the learning rate
    by progress through the epochs (:func:`lr_at_progress`)."""

    def __init__(self, config: TrainConfig, images: torch.Tensor, full_size: int, start_from: StartFrom | None):
        if config.budget == "matched" and len(images) < full_size:
            raise ConfigError(f"--dynamic {config.pruner_name} trains --epochs epochs over the run's own rows, so it "
                              f"cannot match the steps of the full data (--budget matched) on this {len(images)}-row "
                              "subset; pass --budget epochs.")
        self.config = config
        self.stream = DynamicStream(images, config)
        self.most_steps = self.stream.most_steps
        if start_from is not None and (start_from.step > 0 or start_from.dynamic is not None):
            self.stream.load_state_dict(_saved_dynamic_state(start_from, config))

    def batches(self, start: int, end: int) -> Iterator[_Batch]:
        # islice stops before pulling batch end + 1, which would already draw the next epoch's rows
        for step, b in enumerate(itertools.islice(self.stream.batches(start), end - start), start + 1):
            yield _Batch(step, b.rows, b.x, lr_at_progress(b.epoch, b.index, b.count, self.config), b.weight, b.epoch,
                         b.index == b.count - 1, b.epoch + (b.index + 1) / b.count)

    def record(self, batch: _Batch, per_example: torch.Tensor | None) -> None:
        self.stream.record(batch.rows, per_example)

    def state(self) -> dict:
        return self.stream.state_dict()

    def of_steps(self, end: int) -> str:
        return f" of at most {end}" if self.stream.learns else f"/{end}"

    def epochs_seen(self, steps: int, last: _Batch | None) -> float:
        return self.stream.epochs_done()


def _saved_dynamic_state(start_from: StartFrom, config: TrainConfig) -> Mapping:
    state = start_from.dynamic
    method = None if state is None else state.get("pruner", {}).get("method")
    if method != config.pruner_name:
        saved = "no pruner state" if state is None else f"the state of --dynamic {method}"
        raise ConfigError(f"Cannot resume a --dynamic {config.pruner_name} run at step {start_from.step} from a "
                          f"checkpoint with {saved}: which rows its epochs keep depends on the pruner's state. "
                          "Resume from a checkpoint of the same --dynamic run, or start from step 0.")
    return state


class _StepEvents:
    """What happens once a given number of steps is taken: its checkpoint is saved, then its hook runs (model
    in eval mode, on a forked RNG so that the hook cannot change training)."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, config: TrainConfig, device: torch.device,
                 directory: str | Path | None, checkpoint_steps: Sequence[int], hooks: Mapping[int, Hook] | None,
                 dynamic_state: Callable[[], dict | None]):
        self.model, self.optimizer, self.config, self.device = model, optimizer, config, device
        self.directory, self.checkpoint_steps, self.hooks = directory, set(checkpoint_steps), dict(hooks or {})
        self.dynamic_state = dynamic_state

    def __call__(self, step: int) -> None:
        if self.directory is not None and step in self.checkpoint_steps:
            save_checkpoint(self.directory, step, self.model, self.optimizer, extra={"config": to_dict(self.config)},
                            dynamic=self.dynamic_state())
        if step in self.hooks:
            self.model.eval()
            with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
                self.hooks[step](self.model, step)
            self.model.train()


class _Record:
    """What training leaves behind besides the model: the per-epoch train loss (logged), the correctness of
    every presentation, and whether the loss stayed finite."""

    def __init__(self, config: TrainConfig, of_steps: str, end: int, device: torch.device, labels: torch.Tensor,
                 ids: torch.Tensor, record_correctness: bool, log: Callable[[str], None]):
        self.config, self.of_steps, self.end, self.labels, self.ids, self.log = config, of_steps, end, labels, ids, log
        self.on_cuda = device.type == "cuda"
        self.correctness = CorrectnessLog() if record_correctness else None
        self.losses: list[tuple[int, float]] = []
        self.window: list[torch.Tensor] = []  # the losses of the current epoch
        self.diverged = torch.zeros((), dtype=torch.bool, device=device)
        self.first: tuple[int, float] | None = None  # the step this call trained first, and when it was done

    def step(self, step: int, loss: torch.Tensor, logits: torch.Tensor, idx: torch.Tensor) -> None:
        self.diverged |= ~torch.isfinite(loss)
        self.window.append(loss)
        if self.correctness is not None:
            self.correctness.record(self.ids[idx], logits.argmax(1) == self.labels[idx])
        # On CPU checking every step is free; on GPU it would stall the queue, so check every 50.
        if not self.on_cuda or step % 50 == 0 or step == self.end:
            self.raise_if_diverged(step)

    def after_first_step(self, batch: _Batch, since: float, quiet: bool) -> None:
        """Once this call's first step is done, say its pace and an ETA: a slow run (large images, a big model on the
        CPU) says how long it will take within a step of starting, not at the end of its first epoch."""
        if self.first is not None:
            return
        self.raise_if_diverged(batch.step)  # waits for the step (on a GPU: the queued work) before it is timed
        now = time.perf_counter()
        self.first = (batch.step, now)
        if not quiet and batch.step < self.end:  # a run of one step says its time when it is done
            self.log(f"step {batch.step}{self.of_steps}: {_pace(now - since, self.end - batch.step)} (from the first "
                     "step, start-up included)")

    def pace(self, step: int) -> str:
        """The pace since the first step (whose start-up it leaves out) and the ETA, in words; "" before it."""
        if self.first is None or step <= self.first[0]:
            return ""
        first_step, first_done = self.first
        return ", " + _pace((time.perf_counter() - first_done) / (step - first_step), self.end - step)

    def end_of_epoch(self, batch: _Batch, quiet: bool) -> None:
        """At the end of an epoch (or of the run), keep its mean train loss and, unless ``quiet``, log it."""
        if not batch.epoch_end and batch.step != self.end:
            return
        self.raise_if_diverged(batch.step)  # before a pruner is given this epoch's losses; the mean syncs anyway
        epoch_loss = float(torch.stack(self.window).mean())
        self.losses.append((batch.step, epoch_loss))
        self.window = []
        if not quiet:
            self.log(f"step {batch.step}{self.of_steps} (epoch {batch.epochs_done:.2f}) lr {batch.lr:.4g} "
                     f"train loss {epoch_loss:.4f}{self.pace(batch.step)}")

    def raise_if_diverged(self, step: int) -> None:
        if bool(self.diverged):
            raise NonFiniteLossError(
                f"The training loss became NaN or infinite by step {step} (lr {self.config.lr}, model "
                f"{self.config.model}). Training diverged: lower the learning rate (--lr), check the inputs for "
                "NaN/inf, or try another seed. No result was recorded for this run."
            )


def _check_steps(checkpoint_steps: Sequence[int], hooks: Mapping[int, Hook] | None, total: int,
                 start: int = 0) -> None:
    bad = sorted(s for s in [*checkpoint_steps, *(hooks or {})] if not start <= s <= total)
    if bad:
        raise ConfigError(f"Checkpoint/hook steps {bad} lie outside this run's {start}..{total} steps.")


def _check_reached(checkpoint_steps: Sequence[int], hooks: Mapping[int, Hook] | None, steps: int,
                   config: TrainConfig) -> None:
    """A pruned run (InfoBatch) learns its length only as it trains: refuse to return without the checkpoints
    and hook calls asked for."""
    missed = sorted(s for s in {*checkpoint_steps, *(hooks or {})} if s > steps)
    if missed:
        raise ConfigError(f"This --dynamic {config.pruner_name} run ended after {steps} steps, its pruning having left "
                          f"fewer batches than its most, so checkpoint/hook steps {missed} were never reached. Ask "
                          f"for steps up to {steps}.")


def _step_range(most_steps: int, start_from: StartFrom | None, stop_after: int | None) -> tuple[int, int]:
    """The steps this call trains, ``start..end``: from the resumed state's step (0 for a fresh run) to the run's
    most steps, or ``stop_after`` when that comes first."""
    end = most_steps if stop_after is None else min(stop_after, most_steps)
    if start_from is None:
        return 0, end
    if not 0 <= start_from.step <= end:
        raise ConfigError(f"Cannot resume at step {start_from.step}: this run takes steps 0..{end}. Resume from "
                          "a checkpoint of a run with the same budget, at or before its last step.")
    return int(start_from.step), end


def _load_state(model: nn.Module, optimizer: torch.optim.Optimizer, start_from: StartFrom) -> None:
    try:
        model.load_state_dict(start_from.model)
    except RuntimeError as exc:
        raise ConfigError(f"The saved state does not fit this model ({exc}). Resume with the model, width and "
                          "dataset of the run that saved it.") from exc
    if start_from.optimizer is not None:
        optimizer.load_state_dict(start_from.optimizer)


def _pace(seconds_per_step: float, steps_left: int) -> str:
    """"3.2 s/step, ETA 4.1 min", "41.7 steps/s, ETA 12 s" or "12,345 steps/s" (plain digits, never "1.23e+04";
    no ETA once no step is left)."""
    per_step = max(seconds_per_step, 1e-9)
    rate = f"{per_step:.3g} s/step" if per_step >= 1 else _steps_per_second(1 / per_step)
    return rate + (f", ETA {_duration(per_step * steps_left)}" if steps_left > 0 else "")


def _steps_per_second(rate: float) -> str:
    return f"{rate:.3g} steps/s" if rate < 1000 else f"{rate:,.0f} steps/s"


def _duration(seconds: float) -> str:
    """"0.4 s", "12 s", "4.1 min", "2.3 h"."""
    if seconds < 90:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 90 * 60 else f"{seconds / 3600:.1f} h"


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
