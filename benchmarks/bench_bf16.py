"""bf16 autocast against fp32 for a bare CPU training step (issue 20: cheaper training).

One process, batch 128, channels_last, forward + backward + SGD, two models:

* ``smallcnn ×0.5`` on 1×28×28 (Fashion-MNIST shaped);
* ``resnet18 ×0.25`` on 3×32×32 (CIFAR shaped).

fp32 and ``torch.autocast("cpu", dtype=torch.bfloat16)`` are timed alternately ``--repeats`` times; we
report median images/s and the median of per-repeat speed ratios.  bf16 pays only on CPUs with native bf16
(the ``avx512_bf16`` or ``amx_bf16`` flags, printed first).

    .venv/bin/python benchmarks/bench_bf16.py [--repeats 3] [--steps 8]
"""
from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from datadiet.models import build_model

BATCH = 128
CASES = [("smallcnn x0.5, 1x28x28", "smallcnn", 0.5, (1, 28, 28)),
         ("resnet18 x0.25, 3x32x32", "resnet18", 0.25, (3, 32, 32))]


def cpu_description() -> str:
    """The CPU model and its bf16 support, from /proc/cpuinfo."""
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")), "?")
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    found = {flag: flag in flags for flag in ("avx512_bf16", "amx_bf16", "amx_tile")}
    return f"{model}; " + ", ".join(f"{flag}: {'yes' if on else 'no'}" for flag, on in found.items())


def step_runner(name: str, width: float, shape, bf16: bool):
    """A function that runs ``steps`` training steps, and the model it trains."""
    torch.manual_seed(0)
    model = build_model(name, num_classes=10, in_channels=shape[0], width=width).to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    x = torch.randn(BATCH, *shape).to(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (BATCH,))
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()

    def run(steps: int) -> None:
        for _ in range(steps):
            with autocast:
                logits = model(x)
            loss = F.cross_entropy(logits.float(), y)  # the loss in fp32, as the engine's step does
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    return run


def images_per_second(run, steps: int) -> float:
    start = time.perf_counter()
    run(steps)
    return steps * BATCH / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=8, help="steps timed per repeat and precision")
    args = parser.parse_args()
    print(f"CPU: {cpu_description()}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {BATCH}, channels_last")
    print(f"{'model':26s} {'fp32 img/s':>11s} {'bf16 img/s':>11s} {'bf16/fp32':>10s}")
    for label, name, width, shape in CASES:
        fp32, bf16 = step_runner(name, width, shape, False), step_runner(name, width, shape, True)
        fp32(2), bf16(2)  # warm-up: one-time kernel selection and allocation
        speeds = {"fp32": [], "bf16": []}
        for _ in range(args.repeats):
            speeds["fp32"].append(images_per_second(fp32, args.steps))
            speeds["bf16"].append(images_per_second(bf16, args.steps))
        ratio = statistics.median(b / f for f, b in zip(speeds["fp32"], speeds["bf16"]))
        print(f"{label:26s} {statistics.median(speeds['fp32']):11.0f} {statistics.median(speeds['bf16']):11.0f} "
              f"{ratio:9.2f}x")


if __name__ == "__main__":
    main()
