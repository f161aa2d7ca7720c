"""Batched, seeded augmentation and normalization on the compute device.

Images stay uint8 in memory; each batch is gathered, augmented as uint8 and
only then converted to float and normalized.  Padding uses zeros in pixel
space (black), like the usual "pad then random crop" recipe.  All randomness
comes from an explicit ``torch.Generator`` so a run is reproducible; it is drawn on the generator's
device, so augmentation on a GPU needs no host synchronisation.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..config import TrainConfig, resolve_flip


def random_crop(images: torch.Tensor, pad: int, generator: torch.Generator) -> torch.Tensor:
    """Zero-pad by ``pad`` on every side, then crop back to the original size at a random offset per image.

    Args:
        images: ``[B, C, H, W]`` (any dtype).
        pad: padding in pixels; 0 returns ``images`` unchanged.
        generator: draws the offsets, on its own device (a CUDA generator keeps the draw on the GPU, with
            no host round trip; a CPU generator gives the same draws on any device).
    Returns:
        ``[B, C, H, W]``, same dtype and device.
    """
    if pad <= 0:
        return images
    b, c, h, w = images.shape
    padded = F.pad(images, (pad, pad, pad, pad))
    offsets = torch.randint(0, 2 * pad + 1, (2, b), generator=generator, device=generator.device).to(images.device)
    rows = offsets[0, :, None] + torch.arange(h, device=images.device)  # [B, H]
    cols = offsets[1, :, None] + torch.arange(w, device=images.device)  # [B, W]
    # Gather rows, then columns: two cheap index_selects per batch instead of a Python loop.
    picked_rows = padded.gather(2, rows[:, None, :, None].expand(b, c, h, w + 2 * pad))
    return picked_rows.gather(3, cols[:, None, None, :].expand(b, c, h, w))


def random_flip(images: torch.Tensor, generator: torch.Generator, p: float = 0.5) -> torch.Tensor:
    """Mirror each image left-right with probability ``p``."""
    flip = (torch.rand(images.shape[0], generator=generator, device=generator.device) < p).to(images.device)
    return torch.where(flip[:, None, None, None], images.flip(3), images)


def augment(images: torch.Tensor, *, pad: int, flip: bool, generator: torch.Generator) -> torch.Tensor:
    """The papers' augmentation: pad + random crop, then a random horizontal flip."""
    out = random_crop(images, pad, generator)
    return random_flip(out, generator) if flip else out


class Normalizer:
    """Turns uint8 ``[B, C, H, W]`` into normalized float, with stats from the training set.

    Images: ``mean``/``std`` are per channel, of pixels scaled to [0, 1].  Float features ``[B, D]`` (a 2-D
    batch) are normalized per dimension instead, with ``mean``/``std`` of length D in the features' own units
    (no 1/255 scaling): see :func:`datadiet.data.dataset.feature_stats`.
    """

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...], device: torch.device | str = "cpu",
                 dtype: torch.dtype = torch.float32):
        mean_t = torch.tensor(mean, dtype=dtype, device=device)
        std_t = torch.tensor(std, dtype=dtype, device=device)
        self.mean = mean_t.view(1, -1, 1, 1) * 255.0
        self.inv_std = 1.0 / (std_t.view(1, -1, 1, 1) * 255.0)
        self.feature_mean = mean_t.view(1, -1)
        self.feature_inv_std = 1.0 / std_t.view(1, -1)
        self.dtype = dtype

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if images.dim() == 2:  # float features [B, D]
            return (images.to(self.dtype) - self.feature_mean) * self.feature_inv_std
        return (images.to(self.dtype) - self.mean) * self.inv_std


def default_pad(image_size: int) -> int:
    """4 pixels for 32×32 images (the papers), 2 for 28×28 (scaled to the smaller image)."""
    return 4 if image_size >= 32 else max(1, round(image_size / 14))


def describe_augmentation(train: TrainConfig, shape: tuple[int, ...], *, user_data: bool) -> str:
    """What a run of ``train`` on examples of ``shape`` (``(C, H, W)`` or ``(D,)``) does to each batch, in words."""
    if len(shape) == 1:
        return "none (feature vectors are never augmented)"
    if not train.augment:
        return "none (--no-augment)"
    pad = train.pad if train.pad is not None else default_pad(shape[-1])
    if resolve_flip(train, user_data=user_data).flip:
        flips = "random horizontal flips" + (" (--flip)" if train.flip else " (the built-in datasets' default)")
    else:
        flips = "no flips" + (" (--no-flip)" if train.flip is False else
                              " (the default for your own data: a mirror changes digits and text; --flip adds them)")
    return f"pad {pad} px and crop back, {flips}"
