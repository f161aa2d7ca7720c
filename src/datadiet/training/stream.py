"""The data a run sees, step by step: which rows form each batch, and how they are augmented.

:class:`BatchStream` gives a static run's batches (one permutation of its rows per epoch), :class:`DynamicStream`
those of a dynamically pruned run (the rows InfoBatch or RS2 keep each epoch).  Both cut full batches only and
draw one augmentation per batch from the run's augmentation seed.
"""
from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from ..config import Schedule, TrainConfig
from ..data.transforms import augment, default_pad, describe_augmentation
from ..dynamic import build_pruner
from ..errors import ConfigError


def seed_streams(seed: int) -> tuple[int, int, int]:
    """Three independent seeds (model init, data order, augmentation) derived from one run seed."""
    init, order, aug = np.random.SeedSequence(seed).generate_state(3, dtype=np.uint64)
    return int(init >> 1), int(order >> 1), int(aug >> 1)


LARGE_IMAGE = 64  # pixels: beyond this the papers' pad-and-crop augmentation is no longer what it was made for


class AugmentationScaleWarning(UserWarning):
    """The built-in augmentation was made for small images (28–32 px)."""


def warn_if_large(config: TrainConfig, shape: tuple[int, ...], *, user_data: bool) -> None:
    """Warn when a run's built-in augmentation meets images larger than it was made for, saying what it does to
    each batch: the pad, and whether flips are on or off and why (the data's default, or the flag given)."""
    if len(shape) == 1 or not config.augment or max(shape[-2:]) <= LARGE_IMAGE:
        return
    # A flip equal to the data's default is said as that default (the CLI decides it before training starts); one
    # against it can only come from --flip / --no-flip.
    chosen = replace(config, flip=None) if config.flip in (None, not user_data) else config
    what = describe_augmentation(chosen, shape, user_data=user_data)
    warnings.warn(AugmentationScaleWarning(
        f"The built-in augmentation does this to every batch: {what}. "
        f"That is the papers' recipe for 28–32 px images; at {shape[-2]}×{shape[-1]} it is a mild jitter. Pass "
        "--no-augment, or a --pad that suits your images."), stacklevel=3)


class BatchStream:
    """The batches of one run: a fresh permutation of the rows every epoch (its last partial batch dropped)
    and, with augmentation on, one augmentation draw per batch.

    The permutations and the augmentations come from two generators seeded by the run seed alone, so the
    batch of step k does not depend on where training started.  :meth:`batches` from step k replays both
    generators through the first k steps (the same draws, nothing yielded): that is how a run resumed from
    its own checkpoint reproduces the uninterrupted run, and how a child with another seed follows that
    seed's data from step k on.
    """

    def __init__(self, images: torch.Tensor, schedule: Schedule, config: TrainConfig):
        self.images = images  # uint8 [n, C, H, W] (or float features [n, D]) on the compute device: the run's rows
        self.schedule = schedule
        _, self.order_seed, _ = seed_streams(config.seed)
        self.augmentation = Augmentation(images, config)

    def batches(self, start: int, end: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """``(row positions, uint8 inputs)`` of steps ``start..end-1``.  Every call starts from the seeds."""
        order_generator = torch.Generator().manual_seed(self.order_seed)
        augment_generator = self.augmentation.generator()
        batch, per_epoch = self.schedule.batch, self.schedule.per_epoch
        for step in range(end):
            b = step % per_epoch
            if b == 0:
                order = torch.randperm(len(self.images), generator=order_generator).to(self.images.device)
            rows = order[b * batch:(b + 1) * batch]
            if self.augmentation.on:  # drawn on replayed steps too, to keep the generator in step
                x = self.augmentation(rows, augment_generator)
            if step >= start:
                yield rows, x if self.augmentation.on else self.images[rows]


class Augmentation:
    """A run's augmentation: pad-and-crop and flips, one draw per batch from the run's augmentation seed.

    Float features ``[n, D]`` are never augmented: a crop or a flip means nothing for a feature vector, so the
    config's augment, pad and flip do not apply to them (and nothing is drawn from the augmentation seed).
    """

    def __init__(self, images: torch.Tensor, config: TrainConfig):
        self.images = images
        _, _, self.seed = seed_streams(config.seed)
        features = images.dim() == 2
        self.on = config.augment and not features
        self.pad = 0 if features else config.pad if config.pad is not None else default_pad(images.shape[-1])
        self.flip = config.flip
        if self.on and self.flip is None:  # None means "the data's default": only the engine knows the data
            raise ValueError("The stream needs the flip decided: pass config.resolve_flip(config, user_data=...).")

    def generator(self) -> torch.Generator:
        """A fresh generator of the augmentation seed.  On a GPU the augmentation is drawn there (no host round
        trip per step); on the CPU this is the CPU generator.  (The data order stays on the CPU: the same on
        every device.)"""
        return torch.Generator(device=self.images.device).manual_seed(self.seed)

    def __call__(self, rows: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The inputs of ``rows``, augmented with the next draw of ``generator`` when augmentation is on."""
        if not self.on:
            return self.images[rows]
        return augment(self.images[rows], pad=self.pad, flip=self.flip, generator=generator)


# ----------------------------------------------------------------------------- dynamic pruning


@dataclass(frozen=True)
class DynamicBatch:
    """One batch of a dynamically pruned run."""

    rows: torch.Tensor           # positions in the run's rows, on the compute device
    x: torch.Tensor              # their inputs, augmented
    weight: torch.Tensor | None  # per-example loss weights (a pruner that learns: InfoBatch), on the device; None: all 1
    epoch: int                   # 0-based
    index: int                   # the batch's place in its epoch, 0-based
    count: int                   # full batches in the epoch


def make_pruner(config: TrainConfig, n: int, seed: int) -> Any:
    """The pruner of ``config.dynamic`` (a registered pruner's parameters: ``datadiet.dynamic.PRUNERS``), over ``n``
    rows and the run's epochs, every draw seeded by ``seed``."""
    if config.dynamic is None:
        raise ValueError("make_pruner needs a dynamically pruned recipe (TrainConfig.dynamic is None)")
    return build_pruner(config.dynamic, n, int(config.epochs), seed)


def epoch_size_bounds(pruner: Any) -> tuple[int, int]:
    """The fewest and the most rows an epoch of ``pruner`` can hold (it says: ``epoch_sizes()``)."""
    fewest, most = pruner.epoch_sizes()
    if not 1 <= fewest <= most:
        raise ValueError(f"{type(pruner).__name__}.epoch_sizes() gave {fewest, most}: need 1 <= fewest <= most")
    return int(fewest), int(most)


class DynamicStream:
    """The batches of a dynamically pruned run: epoch ``e`` trains the rows the pruner gives for ``e``, in the
    pruner's (random) order, cut into full batches; the remainder is dropped, as :class:`BatchStream` drops it.

    Every batch has one size, ``min(batch_size, the fewest rows an epoch can hold)``, so a CUDA-graphed step
    replays the same graph throughout.  The pruner draws from the run's data-order seed (a dynamic run has no
    other data order): different seeds prune different rows.  One augmentation draw per batch, as in
    :class:`BatchStream`.

    The pruner is stateful (InfoBatch prunes by the losses it is given with :meth:`record`), so a stream is
    iterated once; a resumed run makes a new stream, :meth:`load_state_dict` of the saved :meth:`state_dict`,
    and iterates :meth:`batches` from the step it resumes at.
    """

    def __init__(self, images: torch.Tensor, config: TrainConfig):
        self.images = images
        _, order_seed, _ = seed_streams(config.seed)
        self.epochs = int(config.epochs)
        self.name = config.pruner_name
        self.pruner = make_pruner(config, len(images), order_seed)
        fewest, most = epoch_size_bounds(self.pruner)
        self.batch = min(config.batch_size, fewest)
        self.most_steps = self.epochs * (most // self.batch)  # exact for RS2; InfoBatch may take fewer
        # Weighs the loss and records per-example losses; a pruner that says nothing ignores losses (weights all 1)
        self.learns = bool(getattr(self.pruner, "learns", False))
        self.augmentation = Augmentation(images, config)
        self.position = (0, 0)  # (epoch, batch) of the next batch
        self._pending: list[tuple[torch.Tensor, torch.Tensor]] = []  # losses not yet given to the pruner
        self._at_once = images.device.type != "cuda"

    def batches(self, start: int = 0) -> Iterator[DynamicBatch]:
        """The batches from :attr:`position` on; ``start`` is the number of steps already taken (a resumed run),
        whose augmentation draws are replayed so that step k draws what it drew in the uninterrupted run."""
        generator = self.augmentation.generator()
        if self.augmentation.on:
            first = torch.arange(self.batch, device=self.images.device)
            for _ in range(start):  # a draw depends on the batch size alone, and every batch has the same size
                self.augmentation(first, generator)
        epoch, index = self.position
        for epoch in range(epoch, self.epochs):
            self.flush()  # the losses of the epoch just trained decide this epoch's rows
            rows = self.pruner.epoch_rows(epoch)
            count = len(rows) // self.batch
            rows = rows[:count * self.batch]
            device_rows = torch.from_numpy(rows).to(self.images.device)
            weight = torch.from_numpy(self.pruner.weights(rows)).to(self.images.device) if self.learns else None
            for b in range(index, count):
                cut = slice(b * self.batch, (b + 1) * self.batch)
                self.position = (epoch, b + 1) if b + 1 < count else (epoch + 1, 0)
                yield DynamicBatch(device_rows[cut], self.augmentation(device_rows[cut], generator),
                                   None if weight is None else weight[cut], epoch, b, count)
            index = 0
        self.flush()

    def epochs_done(self) -> float:
        """Epochs trained up to :attr:`position` (within an epoch, its rows are drawn already)."""
        epoch, index = self.position
        return float(epoch) if index == 0 else epoch + index / (len(self.pruner.epoch_rows(epoch)) // self.batch)

    def record(self, rows: torch.Tensor, losses: torch.Tensor | None) -> None:
        """The per-example losses of a batch just trained, for the pruner: given at once on the CPU; on a GPU
        kept on the device and given once per epoch (or at a checkpoint), so that training never waits for the
        host.  The pruner decides only at the next epoch, so both give it the same losses."""
        if self.learns:
            self._pending.append((rows, losses))
            if self._at_once:
                self.flush()

    def flush(self) -> None:
        if self._pending:
            rows, losses = (torch.cat(parts).cpu() for parts in zip(*self._pending))
            self._pending = []
            self.pruner.update(rows, losses)

    def state_dict(self) -> dict[str, Any]:
        """The pruner's state and where the stream stands: what a resumed run needs besides the model."""
        self.flush()
        # "method" names the pruner whatever its own state says: a resume from another pruner's state is refused
        return {"pruner": {**self.pruner.state_dict(), "method": self.name}, "epoch": self.position[0],
                "batch": self.position[1], "batch_size": self.batch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if int(state["batch_size"]) != self.batch:
            raise ConfigError(f"This state was saved by a run with batches of {int(state['batch_size'])}, not "
                              f"{self.batch}: resume with the --batch-size of the run that saved it.")
        # A checkpoint stores the pruner's arrays as tensors (what weights_only loading reads): numpy again
        self.pruner.load_state_dict({key: value.numpy() if isinstance(value, torch.Tensor) else value
                                     for key, value in state["pruner"].items()})
        self.position = (int(state["epoch"]), int(state["batch"]))
