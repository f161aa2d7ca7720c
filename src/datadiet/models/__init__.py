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
    writes anything. The model is built once, on a forked RNG so that nothing later changes: a user model is run on
    two examples in eval and in train mode as it is built (:func:`~datadiet.models.user.check_user_model`); a
    built-in one is run on one all-zero image, which catches images smaller than its pooling allows (2x2 through the
    small CNN's two max-pools).

    Raises:
        UnknownNameError, ModelFactoryError, ConfigError: as :func:`build_model`, or images too small.
    """
    shape = tuple(int(d) for d in input_shape)
    with torch.random.fork_rng(devices=[]):
        model = build_model(name, num_classes=num_classes, in_channels=shape[0], width=width, input_shape=shape)
    if model_factory(name).user or len(shape) == 1 or _runs_on(model, shape):
        return
    c, h, w = shape
    side = next((s for s in range(max(h, w) + 1, 513) if _runs_on(model, (c, s, s))), None)
    need = f"images of at least {side}x{side} pixels" if side else "larger images"
    raise ConfigError(f"Model {name!r} needs {need}, but this data holds {h}x{w} images: its pooling shrinks them "
                      f"to nothing. Give --resize {side or 32} {side or 32} (image folders), larger images, or a "
                      "model that takes them (--model mlp, or your own package.module:factory).")


def _runs_on(model: nn.Module, shape: Sequence[int]) -> bool:
    """Whether ``model`` (in eval mode) maps one all-zero example of ``shape`` to outputs."""
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, *shape))
    except RuntimeError:
        return False
    return True


__all__ = ["MLP", "MODELS", "ModelBuilder", "ModelFactoryError", "SmallCNN", "build_model", "check_model", "mlp",
           "model_factory", "resnet18", "resnet50", "vgg13"]
