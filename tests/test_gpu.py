"""The GPU-only paths (graphed step, device-side augmentation, scores on the GPU); skipped without CUDA.

The same checks run on the GPU machine as ``benchmarks/check_gpu.py`` (it has no pytest)."""
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import check_gpu  # noqa: E402

requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@requires_cuda
@pytest.mark.parametrize("check", check_gpu.CHECKS, ids=lambda c: c.__name__)
def test_gpu_path(check):
    check()


def test_on_the_cpu_the_step_is_eager_whatever_the_flag():
    from datadiet.training.step import EagerStep, make_step

    model = torch.nn.Linear(3, 2)
    step = make_step(model, torch.optim.SGD(model.parameters(), lr=0.1), torch.device("cpu"), amp=True,
                     cuda_graph=True)
    assert isinstance(step, EagerStep)
