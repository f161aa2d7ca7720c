"""Training-loop throughput against the bare model step, side by side in one process.

"Bare step" = forward + backward + optimizer step on one pre-made, already
normalized batch that is reused, with the model in the same memory format as
the engine's (channels_last by default): the ceiling for any data pipeline.
"Loop" = datadiet.train's real loop (batch gather from uint8 storage, seeded
pad+crop+flip, normalization, LR schedule, NaN check), timed between two hooks
so model set-up and test evaluation are excluded.

The two are measured alternately, ``--repeats`` times, and we report the median
of the per-repeat ratios loop/bare, which cancels most machine noise.
Target (issue 2): ratio >= 0.9.

    .venv/bin/python benchmarks/bench_train_pipeline.py [--steps 40] [--repeats 5]
"""
from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch
import torch.nn.functional as F

from datadiet.config import TrainConfig
from datadiet.data.dataset import ImageDataset, make_splits
from datadiet.data.transforms import Normalizer
from datadiet.training import init_model, train
from datadiet.training.engine import place_model, to_layout

CASES = [  # (label, model, width, image shape)
    ("smallcnn, 1x28x28", "smallcnn", 1.0, (1, 28, 28)),
    ("resnet18 w=0.25, 3x32x32", "resnet18", 0.25, (3, 32, 32)),
]


def synthetic_splits(shape: tuple[int, int, int], n: int = 4096):
    gen = torch.Generator().manual_seed(0)
    def split(name):
        return ImageDataset("bench", name, torch.randint(0, 256, (n, *shape), generator=gen, dtype=torch.uint8),
                            torch.randint(0, 10, (n,), generator=gen), torch.arange(n), tuple("0123456789"))
    return make_splits(split("train"), split("test"))


def bare_step_rate(cfg: TrainConfig, splits, steps: int) -> float:
    model = place_model(init_model(cfg, splits.train), cfg, torch.device("cpu"))
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, nesterov=True,
                          weight_decay=cfg.weight_decay)
    x = to_layout(Normalizer(splits.mean, splits.std)(splits.train.images[:cfg.batch_size]), cfg)
    y = splits.train.labels[:cfg.batch_size]
    model.train()
    for i in range(steps + 3):
        if i == 3:  # warm-up done
            start = time.perf_counter()
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return steps * cfg.batch_size / (time.perf_counter() - start)


def loop_rate(cfg: TrainConfig, splits, steps: int) -> float:
    stamps = {}
    hooks = {3: lambda m, s: stamps.setdefault(s, time.perf_counter()),
             3 + steps: lambda m, s: stamps.setdefault(s, time.perf_counter())}
    train(cfg, splits, hooks=hooks, evaluate_test=False, progress=False, log=lambda _: None)
    return steps * cfg.batch_size / (stamps[3 + steps] - stamps[3])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}, "
          f"{platform.processor() or platform.platform()}")
    print("| model | bare step img/s | training loop img/s | loop / bare (median) |")
    print("|---|---|---|---|")
    for label, model, width, shape in CASES:
        splits = synthetic_splits(shape)
        cfg = TrainConfig(model=model, width=width, steps=args.steps + 3, device="cpu")
        bare, loop, ratios = [], [], []
        for _ in range(args.repeats):
            b, l = bare_step_rate(cfg, splits, args.steps), loop_rate(cfg, splits, args.steps)
            bare.append(b)
            loop.append(l)
            ratios.append(l / b)
        print(f"| {label} | {statistics.median(bare):.0f} | {statistics.median(loop):.0f} | "
              f"{statistics.median(ratios):.3f} |", flush=True)


if __name__ == "__main__":
    main()
