"""Model registry: every architecture is built by name with the same signature.

``build_model(name, num_classes=..., in_channels=..., width=..., input_shape=...)``; ``width``
multiplies every channel count (ResNet18 at ``width=0.25`` is the CPU variant); ``input_shape`` (the
per-example shape) reaches only the factories that accept it (``mlp``).

``name`` is a built-in (:data:`MODELS`) or the import path of your own factory, ``package.module:factory``
(see :mod:`datadiet.models.user`).
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn

from ..errors import ConfigError, unknown_name
from .mlp import MLP, mlp
from .resnet import resnet18, resnet50
from .smallcnn import SmallCNN
from .user import ModelBuilder, ModelFactoryError, builtin_builder, is_import_path, resolve
from .vgg import vgg13

MODELS: dict[str, Callable[..., nn.Module]] = {
    "smallcnn": SmallCNN,
    "resnet18": resnet18,
    "resnet50": resnet50,
    "vgg13": vgg13,
    "mlp": mlp,
}


def model_factory(name: str) -> ModelBuilder:
    """The builder of model ``name``: a built-in, or ``package.module:factory`` (imported and resolved, never
    called).  Cheap, so commands call it to refuse a bad name before anything is written.

    Raises:
        UnknownNameError: a name without a colon that is not a built-in.
        ModelFactoryError: an import path whose module cannot be imported, whose attribute is missing or not
            callable, or whose signature cannot take ``num_classes=`` and ``in_channels=``.
    """
    if is_import_path(name):
        return resolve(name)
    key = name.lower()
    if key not in MODELS:
        error = unknown_name("model", name, tuple(MODELS))
        raise type(error)(f"{error} Or give your own as package.module:factory (importable, e.g. on PYTHONPATH).")
    return builtin_builder(key, MODELS[key])


def build_model(name: str, *, num_classes: int, in_channels: int, width: float = 1.0,
                input_shape: Sequence[int] | None = None) -> nn.Module:
    """A freshly initialised model (uses the global torch RNG: seed it first).

    ``width`` and ``input_shape`` are passed only to factories whose signature accepts them.  A user factory
    that raises, or returns something other than an ``nn.Module``, is a :class:`ModelFactoryError` naming it.
    """
    builder = model_factory(name)
    if not width > 0:
        raise ConfigError(f"Model width multiplier must be positive, got {width}.")
    if input_shape is not None and len(input_shape) == 1 and not builder.user and builder.name != "mlp":
        raise ConfigError(f"Model {name!r} takes images [C, H, W], but this data holds feature vectors of "
                          f"{input_shape[0]} values: use --model mlp, or your own model as package.module:factory.")
    return builder(num_classes=num_classes, in_channels=in_channels, width=width, input_shape=input_shape)


def check_model(name: str, *, num_classes: int, input_shape: Sequence[int], width: float = 1.0) -> None:
    """Refuse model ``name`` for data of ``num_classes`` classes and examples of ``input_shape``, before a command
    writes anything: a built-in is only looked up, a user model is built once and run on one example (see
    :func:`~datadiet.models.user.check_user_model`), on a forked RNG so that nothing later changes.

    Raises:
        UnknownNameError, ModelFactoryError, ConfigError: as :func:`build_model`.
    """
    if not model_factory(name).user:
        return
    with torch.random.fork_rng(devices=[]):
        build_model(name, num_classes=num_classes, in_channels=int(input_shape[0]), width=width,
                    input_shape=tuple(input_shape))


__all__ = ["MLP", "MODELS", "ModelBuilder", "ModelFactoryError", "SmallCNN", "build_model", "check_model", "mlp",
           "model_factory", "resnet18", "resnet50", "vgg13"]
