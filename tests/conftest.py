"""Shared fixtures: tiny synthetic datasets and fake files in the official formats."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from datadiet.data.dataset import ImageDataset, make_splits
from fakes import write_fake_mnist, write_idx  # noqa: F401  (re-exported for the tests)

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


def tiny_dataset(n: int = 64, *, classes: int = 4, channels: int = 1, size: int = 8, seed: int = 0,
                 split: str = "train") -> ImageDataset:
    gen = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, channels, size, size), generator=gen, dtype=torch.uint8)
    labels = torch.arange(n) % classes
    return ImageDataset(name="tiny", split=split, images=images, labels=labels, ids=torch.arange(n),
                        classes=tuple(f"c{i}" for i in range(classes)))


def learnable_splits(n_train: int = 256, n_test: int = 128, *, size: int = 12, classes: int = 4, seed: int = 0):
    """A tiny dataset a model can actually learn: the class sets which quadrant is bright."""
    def make(n: int, split: str, offset: int) -> ImageDataset:
        gen = torch.Generator().manual_seed(seed + offset)
        labels = torch.randint(0, classes, (n,), generator=gen)
        images = torch.randint(0, 60, (n, 1, size, size), generator=gen).to(torch.uint8)
        half = size // 2
        for c in range(classes):
            r, col = divmod(c, 2)
            sel = labels == c
            images[sel, :, r * half:(r + 1) * half, col * half:(col + 1) * half] += 150
        return ImageDataset(name="quadrants", split=split, images=images, labels=labels, ids=torch.arange(n),
                            classes=tuple(f"q{i}" for i in range(classes)))
    return make_splits(make(n_train, "train", 0), make(n_test, "test", 1))


@pytest.fixture
def fake_mnist_root(tmp_path: Path) -> Path:
    return write_fake_mnist(tmp_path / "fake-mnist")


requires_fashion = pytest.mark.skipif(not FASHION_DIR.is_dir(), reason="Fashion-MNIST (dataset-fashion-mnist) not installed")
