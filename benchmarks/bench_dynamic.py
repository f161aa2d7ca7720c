"""What dynamic pruning's bookkeeping costs next to the training step it steers (issue 20).

One process, one simulated epoch of Fashion-MNIST (60,000 rows, batch 128, 468 steps), two things timed
alternately ``--repeats`` times:

* ``step``: a training step of the small CNN (width 1, 1×28×28, channels_last, SGD) on random data, with
  the per-example loss weighted as a pruned loop does it;
* ``bookkeeping``: InfoBatch's share of the same step: ``epoch_rows`` once per epoch (spread over its
  steps), and per batch ``weights`` → tensor and ``update`` from the detached loss tensor.

We report the median of per-repeat ratios bookkeeping / step.  Target: ≤ 3 %.

    .venv/bin/python benchmarks/bench_dynamic.py [--repeats 5] [--steps 20]
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F

from datadiet.dynamic import InfoBatch, batches
from datadiet.models import build_model

N, BATCH, EPOCHS = 60_000, 128, 10


def training_step(steps: int):
    """``steps`` weighted SGD steps of the small CNN at batch 128; returns seconds per step."""
    torch.manual_seed(0)
    model = build_model("smallcnn", num_classes=10, in_channels=1).to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    x = torch.randn(BATCH, 1, 28, 28).to(memory_format=torch.channels_last)
    y, weight = torch.randint(0, 10, (BATCH,)), torch.ones(BATCH)

    def run():
        for _ in range(steps):
            loss = F.cross_entropy(model(x), y, reduction="none")
            optimizer.zero_grad(set_to_none=True)
            (loss * weight).mean().backward()
            optimizer.step()

    run()  # warm-up
    start = time.perf_counter()
    run()
    return (time.perf_counter() - start) / steps


def pruner_in_its_second_epoch() -> InfoBatch:
    """An InfoBatch whose loss table is full, so epoch 1 draws a real pruning (the expensive case)."""
    pruner = InfoBatch(N, EPOCHS, seed=0)
    rows = pruner.epoch_rows(0)
    pruner.update(rows, np.random.default_rng(1).exponential(size=N).astype(np.float32))
    return pruner


def bookkeeping() -> float:
    """Seconds per step of InfoBatch's work over one epoch (epoch_rows, then weights and update per batch)."""
    pruner = pruner_in_its_second_epoch()
    losses = torch.rand(BATCH)  # what a step's detached per-example loss looks like
    start = time.perf_counter()
    steps = 0
    for rows in batches(pruner.epoch_rows(1), BATCH):
        torch.from_numpy(pruner.weights(rows))
        pruner.update(rows, losses)
        steps += 1
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20, help="training steps timed per repeat")
    args = parser.parse_args()
    ratios, steps, books = [], [], []
    for _ in range(args.repeats):
        step, book = training_step(args.steps), bookkeeping()
        steps.append(step), books.append(book), ratios.append(book / step)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, n={N}, batch={BATCH}")
    print(f"training step (smallcnn w=1, channels_last): {statistics.median(steps) * 1e3:8.2f} ms")
    print(f"InfoBatch bookkeeping per step:              {statistics.median(books) * 1e3:8.3f} ms")
    print(f"bookkeeping / step: {statistics.median(ratios):.2%} (median of {args.repeats}; target <= 3%)")


if __name__ == "__main__":
    main()
