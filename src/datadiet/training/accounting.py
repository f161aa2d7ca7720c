"""What training cost: examples through forward + backward, examples through forward only, FLOPs and seconds.

Pruning is worth it only if it pays: a method's result is compared with random at the same *cost*, and the
cost of scoring counts too.  :class:`Cost` is the one record of it; costs add up (``a + b``, ``sum(costs)``)
and go to JSON and back (an unknown FLOP count is ``null``).

FLOPs are an estimate: :func:`flops_per_example` counts, with ``torch.utils.flop_counter.FlopCounterMode``,
the matrix products and convolutions of one training step (forward + backward) and of one forward pass, per
example.  Elementwise work (normalization, activations, the loss, the optimizer) is not counted, and an
input that needs no gradient gets none: the first layer's backward computes only its weight gradient.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call
from torch.utils.flop_counter import FlopCounterMode

from ..errors import ConfigError


@dataclass(frozen=True)
class Cost:
    """The compute a piece of work used.

    Attributes:
        sample_passes: examples through forward + backward (training steps).
        forward_passes: examples through a forward pass only (scoring, extra logging passes); the forward
            pass inside a training step is part of its sample pass and is not counted again.
        flops: estimated floating-point operations, or None when unknown for any part.
        wall_seconds: elapsed time.
    """

    sample_passes: int = 0
    forward_passes: int = 0
    flops: int | None = 0
    wall_seconds: float = 0.0

    def __add__(self, other: "Cost") -> "Cost":
        if isinstance(other, int) and other == 0:
            return self  # sum() of an empty generator is 0: adding it changes nothing
        if not isinstance(other, Cost):
            return NotImplemented
        flops = None if self.flops is None or other.flops is None else self.flops + other.flops
        return Cost(self.sample_passes + other.sample_passes, self.forward_passes + other.forward_passes, flops,
                    self.wall_seconds + other.wall_seconds)

    def __radd__(self, other: Any) -> "Cost":
        return self if other == 0 else NotImplemented  # sum(costs) starts from 0

    def to_dict(self) -> dict[str, Any]:
        """The one JSON form of a cost: an unknown FLOP count or wall time (None, NaN) becomes null."""
        wall = self.wall_seconds
        return {**asdict(self), "wall_seconds": None if wall is None or not math.isfinite(wall) else wall}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Cost":
        """The Cost of :meth:`to_dict`; a null wall time becomes NaN, which makes every sum it enters unknown."""
        unknown = set(data) - set(FIELDS)
        if unknown:
            raise ConfigError(f"Unknown cost fields: {sorted(unknown)}.")
        flops, wall = data.get("flops", None), data.get("wall_seconds", 0.0)
        return cls(int(data.get("sample_passes", 0)), int(data.get("forward_passes", 0)),
                   None if flops is None else int(flops), math.nan if wall is None else float(wall))


FIELDS = ("sample_passes", "forward_passes", "flops", "wall_seconds")  # a cost's keys in every JSON record


def cost(sample_passes: int, forward_passes: int = 0, wall_seconds: float = 0.0,
         per_example: tuple[int, int] | None = None) -> Cost:
    """A :class:`Cost` whose FLOPs come from the per-example counts of :func:`flops_per_example` (None: unknown)."""
    flops = None if per_example is None else sample_passes * per_example[0] + forward_passes * per_example[1]
    return Cost(sample_passes, forward_passes, flops, wall_seconds)


_CACHE: dict[tuple, tuple[int, int] | None] = {}


def flops_per_example(model: nn.Module, input_shape: Sequence[int], num_classes: int) -> tuple[int, int] | None:
    """``(train_flops, inference_flops)`` of one example: a training step's forward + backward of the
    cross-entropy, and a forward pass.  None when the model cannot be measured.

    Measured once per process for each model architecture (its class and parameter shapes, so its width) and
    input shape, on a batch of 2 divided by 2.  The count runs the model's code on copies of its tensors: on
    shapes alone (the meta device), or, for a model that cannot, on a CPU copy; the model's own parameters,
    buffers (BatchNorm statistics) and gradients are left untouched.
    """
    key = (type(model).__module__, type(model).__qualname__, tuple(input_shape), num_classes,
           tuple((name, tuple(t.shape)) for name, t in _tensors(model)))
    if key not in _CACHE:
        _CACHE[key] = _measure(model, tuple(input_shape), num_classes)
    return _CACHE[key]


def _tensors(model: nn.Module) -> list[tuple[str, torch.Tensor]]:
    return list(model.named_parameters()) + list(model.named_buffers())


def _measure(model: nn.Module, input_shape: tuple[int, ...], num_classes: int) -> tuple[int, int] | None:
    try:
        return _count(model, input_shape, num_classes, "meta")
    except Exception:  # noqa: BLE001 - a layer without a meta kernel or with data-dependent code: count for real
        pass
    try:
        return _count(model, input_shape, num_classes, "cpu")
    except Exception as exc:  # noqa: BLE001 - an estimate must never stop a run: the FLOPs become unknown
        warnings.warn(f"datadiet: cannot count the FLOPs of {type(model).__name__} ({exc}); they are reported as "
                      "unknown.", RuntimeWarning, stacklevel=3)
        return None


def _count(model: nn.Module, input_shape: tuple[int, ...], num_classes: int, device: str) -> tuple[int, int]:
    """FLOPs per example on ``device``, through copies of the model's tensors (BatchNorm statistics and
    gradients land on the copies)."""
    tensors = {name: _copy(t, device) for name, t in _tensors(model)}
    x = torch.randn(2, *input_shape, device=device)
    y = torch.arange(2, device=device) % num_classes
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(functional_call(model, tensors, (x,)), y).backward()
    train = counter.get_total_flops()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        functional_call(model, tensors, (x,))
    return train // 2, counter.get_total_flops() // 2


def _copy(tensor: torch.Tensor, device: str) -> torch.Tensor:
    copied = torch.empty_like(tensor, device="meta") if device == "meta" else tensor.detach().to(device, copy=True)
    return copied.requires_grad_(tensor.requires_grad)
