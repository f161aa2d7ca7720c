"""Correctness of the GPU-only paths, runnable without pytest (the GPU machine has none).

    PYTHONPATH=src python3 benchmarks/check_gpu.py

Each check prints PASS or FAIL with its numbers; ``tests/test_gpu.py`` runs the same checks under pytest
wherever CUDA is available.
"""
from __future__ import annotations

import sys
import traceback
from dataclasses import replace

import torch

from datadiet.config import Schedule, TrainConfig
from datadiet.data.dataset import ImageDataset, make_splits
from datadiet.models import build_model
from datadiet.scores.functions import el2n, grand
from datadiet.training import train
from datadiet.training.stream import BatchStream


def graphed_training_equals_eager(device="cuda") -> str:
    """Two epochs of the real training loop (bf16, channels_last: the engine's defaults) with and without CUDA
    graphs, from one seed, through four learning rates (four graphs).  Measured on an H200 on Fashion-MNIST
    (README): identical per-epoch losses, test accuracy and test loss.  Here on random data, to rounding."""
    splits = _random_splits((1, 28, 28), 2048)
    cfg = TrainConfig(model="resnet18", width=0.25, epochs=2, batch_size=128, device=device)
    eager = train(replace(cfg, cuda_graph=False), splits, progress=False, log=lambda _: None)
    graphed = train(cfg, splits, progress=False, log=lambda _: None)
    losses = [abs(a - b) / abs(a) for (_, a), (_, b) in zip(eager.train_loss, graphed.train_loss)]
    worst = max(losses + [abs(eager.test_loss - graphed.test_loss) / eager.test_loss])
    assert worst < 1e-3, f"graphed and eager training differ by {worst:g} (relative)"
    return (f"eager: test accuracy {eager.test_accuracy:.4f}, loss {eager.test_loss:.4f}; graphed: "
            f"{graphed.test_accuracy:.4f}, {graphed.test_loss:.4f}; largest relative loss difference {worst:.1e}")


def _random_splits(shape, n):
    gen = torch.Generator().manual_seed(0)

    def split(name):
        return ImageDataset("check", name, torch.randint(0, 256, (n, *shape), generator=gen, dtype=torch.uint8),
                            torch.randint(0, 10, (n,), generator=gen), torch.arange(n), tuple("0123456789"))
    return make_splits(split("train"), split("test"))


def device_augmentation_is_seeded(device="cuda") -> str:
    images = torch.randint(0, 256, (256, 1, 28, 28), dtype=torch.uint8, device=device)
    plan = Schedule(batch=64, per_epoch=4, total=8)

    def draws(seed):
        stream = BatchStream(images, plan, TrainConfig(seed=seed))
        return [x.clone() for _, x in stream.batches(0, 8)]

    a, b, c = draws(1), draws(1), draws(2)
    assert all(torch.equal(p, q) for p, q in zip(a, b)), "the same seed drew different augmentations"
    assert not all(torch.equal(p, q) for p, q in zip(a, c)), "two seeds drew the same augmentations"
    resumed = [x for _, x in BatchStream(images, plan, TrainConfig(seed=1)).batches(5, 8)]
    assert all(torch.equal(p, q) for p, q in zip(a[5:], resumed)), "a resumed stream differs from the whole one"
    return "same seed → same batches, resumed stream = uninterrupted, other seed differs"


def scores_match_the_cpu(device="cuda") -> str:
    torch.manual_seed(0)
    model = build_model("resnet18", num_classes=10, in_channels=1, width=0.5).eval()
    x, y = torch.randn(96, 1, 28, 28), torch.randint(0, 10, (96,))
    cpu_grand, cpu_el2n = grand(model, x, y, method="fast", batch_size=96), el2n(model, x, y)
    gpu = model.to(device)
    gpu_grand = grand(gpu, x.to(device), y.to(device), method="fast", batch_size=96)
    gpu_el2n = el2n(gpu, x.to(device), y.to(device))
    rel = float(((gpu_grand - cpu_grand).abs() / cpu_grand).max())
    diff = float((gpu_el2n - cpu_el2n).abs().max())
    assert rel < 1e-3, f"GraNd on the GPU differs from the CPU by {rel:g} (relative)"
    assert diff < 1e-4, f"EL2N on the GPU differs from the CPU by {diff:g}"
    return f"GraNd max relative difference {rel:.1e}; EL2N max difference {diff:.1e}"


CHECKS = [graphed_training_equals_eager, device_augmentation_is_seeded, scores_match_the_cpu]


def main() -> int:
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to check")
        return 0
    failed = 0
    for check in CHECKS:
        try:
            print(f"PASS {check.__name__}: {check()}", flush=True)
        except Exception:  # noqa: BLE001 - report every check
            failed += 1
            print(f"FAIL {check.__name__}:\n{traceback.format_exc()}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
