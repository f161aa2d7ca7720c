"""Correctness of the GPU-only paths, runnable without pytest (the GPU machine has none).

    PYTHONPATH=src python3 benchmarks/check_gpu.py

Each check prints PASS or FAIL with its numbers; ``tests/test_gpu.py`` runs the same checks under pytest
wherever CUDA is available.
"""
from __future__ import annotations

import copy
import sys
import traceback

import torch

from datadiet.config import Plan, TrainConfig
from datadiet.models import build_model
from datadiet.scores.functions import el2n, grand
from datadiet.training.step import EagerStep, GraphedStep
from datadiet.training.stream import BatchStream


def graphed_step_equals_eager(device="cuda", steps=6) -> str:
    """Five steps from one state, the learning rate changing after three (a second graph): parameters, BatchNorm
    statistics and momentum agree with the eager step's to float32 rounding."""
    torch.manual_seed(0)
    model = build_model("resnet18", num_classes=10, in_channels=3, width=0.25).to(device).train()
    twin = copy.deepcopy(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    opt_twin = torch.optim.SGD(twin.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    eager = EagerStep(model, opt, torch.autocast("cuda", enabled=False))
    graphed = GraphedStep(twin, opt_twin, None)
    worst = 0.0
    for k in range(steps):
        x = torch.randn(32, 3, 32, 32, device=device)
        y = torch.randint(0, 10, (32,), device=device)
        lr = 0.1 if k < 3 else 0.02
        _, loss_e = eager(x, y, lr)
        _, loss_g = graphed(x, y, lr)
        state_e = [*model.parameters(), *model.buffers()] + [s["momentum_buffer"] for s in opt.state.values()]
        state_g = [*twin.parameters(), *twin.buffers()] + [s["momentum_buffer"] for s in opt_twin.state.values()]
        worst = max(worst, abs(float(loss_e) - float(loss_g)),
                    *(float((a.float() - b.float()).abs().max()) for a, b in zip(state_e, state_g)))
    assert graphed.eager is None, "the graphed step fell back to eager"
    assert len(graphed.graphs) == 2, f"expected one graph per learning rate, got {len(graphed.graphs)}"
    assert worst < 1e-3, f"graphed and eager steps differ by {worst:g}"
    return f"max |graphed − eager| over {steps} steps = {worst:.2e}"


def device_augmentation_is_seeded(device="cuda") -> str:
    images = torch.randint(0, 256, (256, 1, 28, 28), dtype=torch.uint8, device=device)
    plan = Plan(batch=64, per_epoch=4, total=8)

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


CHECKS = [graphed_step_equals_eager, device_augmentation_is_seeded, scores_match_the_cpu]


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
