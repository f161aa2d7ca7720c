"""The data a run sees, step by step: which rows form each batch, and how they are augmented."""
from __future__ import annotations

import warnings
from collections.abc import Iterator

import numpy as np
import torch

from ..config import Plan, TrainConfig
from ..data.transforms import augment, default_pad


def seed_streams(seed: int) -> tuple[int, int, int]:
    """Three independent seeds (model init, data order, augmentation) derived from one run seed."""
    init, order, aug = np.random.SeedSequence(seed).generate_state(3, dtype=np.uint64)
    return int(init >> 1), int(order >> 1), int(aug >> 1)


LARGE_IMAGE = 64  # pixels: beyond this the papers' pad-and-crop augmentation is no longer what it was made for


class AugmentationScaleWarning(UserWarning):
    """The built-in augmentation was made for small images (28–32 px)."""


class BatchStream:
    """The batches of one run: a fresh permutation of the rows every epoch (its last partial batch dropped)
    and, with augmentation on, one augmentation draw per batch.

    The permutations and the augmentations come from two generators seeded by the run seed alone, so the
    batch of step k does not depend on where training started.  :meth:`batches` from step k replays both
    generators through the first k steps (the same draws, nothing yielded): that is how a run resumed from
    its own checkpoint reproduces the uninterrupted run, and how a child with another seed follows that
    seed's data from step k on.
    """

    def __init__(self, images: torch.Tensor, plan: Plan, config: TrainConfig):
        self.images = images  # uint8 [n, C, H, W] (or float features [n, D]) on the compute device: the run's rows
        self.plan = plan
        _, self.order_seed, self.augment_seed = seed_streams(config.seed)
        # Float features [n, D] are never augmented: a crop or a flip means nothing for a feature vector, so the
        # config's augment, pad and flip do not apply to them (and nothing is drawn from the augmentation seed).
        features = images.dim() == 2
        self.augment = config.augment and not features
        self.pad = 0 if features else config.pad if config.pad is not None else default_pad(images.shape[-1])
        self.flip = config.flip
        if self.augment and max(images.shape[-2:]) > LARGE_IMAGE:
            warnings.warn(AugmentationScaleWarning(
                f"The built-in augmentation pads {self.pad} px and crops back to the image's own size "
                f"({images.shape[-2]}×{images.shape[-1]}), plus random flips: the papers' recipe for 28–32 px "
                "images, a mild jitter at this size. Pass --no-augment, or a --pad that suits your images."),
                stacklevel=2)

    def batches(self, start: int, end: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """``(row positions, uint8 inputs)`` of steps ``start..end-1``.  Every call starts from the seeds."""
        order_generator = torch.Generator().manual_seed(self.order_seed)
        # On a GPU the augmentation is drawn there (no host round trip per step); on the CPU this is the CPU
        # generator, so CPU runs are unchanged.  The data order stays on the CPU: the same on every device.
        augment_generator = torch.Generator(device=self.images.device).manual_seed(self.augment_seed)
        batch, per_epoch = self.plan.batch, self.plan.per_epoch
        for step in range(end):
            b = step % per_epoch
            if b == 0:
                order = torch.randperm(len(self.images), generator=order_generator).to(self.images.device)
            rows = order[b * batch:(b + 1) * batch]
            if self.augment:  # drawn on replayed steps too, to keep the generator in step
                x = augment(self.images[rows], pad=self.pad, flip=self.flip, generator=augment_generator)
            if step >= start:
                yield rows, x if self.augment else self.images[rows]
