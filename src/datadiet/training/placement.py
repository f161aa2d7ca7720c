"""Where a run computes: the device, and the memory layout of the model and its inputs."""
from __future__ import annotations

import torch
from torch import nn

from ..config import TrainConfig
from ..errors import ConfigError


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"Device {name!r} was requested but CUDA is not available here; use --device cpu or auto.")
    if device.type == "cuda":
        _make_cuda_current(device)
    return device


def _make_cuda_current(device: torch.device) -> None:
    """Make the device current and create its cuBLAS handle on this thread, before autograd's worker thread
    needs one (otherwise every process warns "no current CUDA context" at its first backward)."""
    torch.cuda.set_device(device.index if device.index is not None else torch.cuda.current_device())
    torch.cuda.current_blas_handle()


def place_model(model: nn.Module, config: TrainConfig, device: torch.device) -> nn.Module:
    """Move ``model`` to ``device`` in the memory format the config asks for.

    channels_last is on by default on every device: on 2 CPU cores it trains the small CNN about
    1.5× faster than NCHW (measured in benchmarks/bench_train_pipeline.py), and it is the fast path
    for convolutions on recent GPUs.
    """
    model = model.to(device)
    return model.to(memory_format=torch.channels_last) if config.channels_last else model


def to_layout(x: torch.Tensor, config: TrainConfig) -> torch.Tensor:
    """Input batch in the model's memory format."""
    return x.contiguous(memory_format=torch.channels_last) if config.channels_last and x.dim() == 4 else x
