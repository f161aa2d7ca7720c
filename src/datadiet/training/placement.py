"""Where a run computes: the device, and the memory layout of the model and its inputs."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..config import TrainConfig, check_device
from ..errors import ConfigError


def resolve_device(name: str) -> torch.device:
    """The torch device for ``--device name``; a ConfigError when it is unknown or not available here.

    ``auto`` is CUDA when present, else the CPU.  ``cuda`` and ``cuda:N`` need that CUDA device, ``mps``
    Apple's Metal backend.
    """
    check_device(name)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConfigError(
                f"--device {name} requested but no CUDA device is available here"
                + ("" if torch.version.cuda else " (this PyTorch was built without CUDA)")
                + "; use --device cpu, or auto to take CUDA only when present."
            )
        if device.index is not None and device.index >= count:
            visible = "1 CUDA device is visible (cuda:0)" if count == 1 else \
                f"{count} CUDA devices are visible (cuda:0 to cuda:{count - 1})"
            raise ConfigError(f"--device {name} requested but only {visible}; use one of those, cuda or auto.")
        _make_cuda_current(device)
    elif device.type == "mps" and not _mps_available():
        raise ConfigError(
            f"--device {name} requested but the MPS (Apple Metal) backend is not available here; it needs "
            "Apple silicon and a macOS build of PyTorch. Use --device cpu or auto."
        )
    return device


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def _make_cuda_current(device: torch.device) -> None:
    """Make the device current and create its cuBLAS handle on this thread, before autograd's worker thread
    needs one (otherwise every process warns "no current CUDA context" at its first backward)."""
    torch.cuda.set_device(device.index if device.index is not None else torch.cuda.current_device())
    torch.cuda.current_blas_handle()


BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo flags of native bfloat16 arithmetic (AVX-512, AMX)


def cpu_bf16_support(cpuinfo: str | Path = "/proc/cpuinfo") -> bool | None:
    """Whether this CPU computes bfloat16 natively (any of :data:`BF16_FLAGS`); None when it cannot be told
    (no ``/proc/cpuinfo``: not Linux)."""
    try:
        text = Path(cpuinfo).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    flags = {flag for line in text.splitlines() if line.startswith("flags") for flag in line.split(":", 1)[-1].split()}
    return any(flag in flags for flag in BF16_FLAGS)


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
