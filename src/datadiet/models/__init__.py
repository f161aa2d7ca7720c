"""Model registry: every architecture is built by name with the same signature.

``build_model(name, num_classes=..., in_channels=..., width=...)``; ``width``
multiplies every channel count (ResNet18 at ``width=0.25`` is the CPU variant).
"""
from __future__ import annotations

from typing import Callable

from torch import nn

from ..errors import ConfigError, unknown_name
from .resnet import resnet18, resnet50
from .smallcnn import SmallCNN
from .vgg import vgg13

MODELS: dict[str, Callable[..., nn.Module]] = {
    "smallcnn": SmallCNN,
    "resnet18": resnet18,
    "resnet50": resnet50,
    "vgg13": vgg13,
}


def model_factory(name: str) -> Callable[..., nn.Module]:
    """The function that builds model ``name``; an unknown name is a clear error (checked before any writing)."""
    key = name.lower()
    if key not in MODELS:
        raise unknown_name("model", name, tuple(MODELS))
    return MODELS[key]


def build_model(name: str, *, num_classes: int, in_channels: int, width: float = 1.0) -> nn.Module:
    """A freshly initialised model (uses the global torch RNG: seed it first)."""
    factory = model_factory(name)
    if not width > 0:
        raise ConfigError(f"Model width multiplier must be positive, got {width}.")
    return factory(num_classes=num_classes, in_channels=in_channels, width=width)


__all__ = ["MODELS", "build_model", "model_factory", "SmallCNN", "resnet18", "resnet50", "vgg13"]
