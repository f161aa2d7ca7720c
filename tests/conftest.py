"""Shared fixtures: tiny synthetic datasets and fake files in the official formats."""
from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from datadiet.data.dataset import ImageDataset, make_splits

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


def write_idx(path: Path, array: np.ndarray, *, magic: int | None = None, compress: bool = True) -> Path:
    """Write ``array`` (uint8) as an IDX file exactly like the official ones."""
    array = np.asarray(array, dtype=np.uint8)
    magic = magic if magic is not None else (0x0800 | array.ndim)
    raw = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()
    path.write_bytes(gzip.compress(raw) if compress else raw)
    return path


def write_fake_mnist(root: Path, *, n_train: int = 40, n_test: int = 20, size: int = 28, seed: int = 0) -> Path:
    """Four IDX .gz files with random pixels and labels cycling through 0..9."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(root / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, size, size), dtype=np.uint8))
        write_idx(root / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % 10)
    return root


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
