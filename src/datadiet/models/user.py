"""Models named by import path: ``--model package.module:factory``.

A user model is any importable callable (a function or an ``nn.Module`` class) that returns an ``nn.Module``
mapping a batch ``[B, *input_shape]`` to logits ``[B, num_classes]``.  It is called with keyword arguments:

* ``num_classes`` and ``in_channels``, always (``in_channels`` is ``input_shape[0]``: the channel count for
  images, the feature count for feature arrays);
* ``width``, only if its signature accepts it (or takes ``**kwargs``);
* ``input_shape``, the per-example shape tuple (``(1, 28, 28)``, ``(D,)``), only if accepted likewise.

The path is the ``model`` field of :class:`~datadiet.config.TrainConfig`, so it is part of every result's
config and identity, and worker processes rebuild the model by importing the same path (the module must be
importable there too: on ``PYTHONPATH`` or installed).  Resolving a path imports the module and looks up the
attribute but never calls the factory, so it is cheap enough to validate a command before anything is written.
"""
from __future__ import annotations

import importlib
import inspect
import re
from dataclasses import dataclass
from typing import Callable, Sequence

from torch import nn

from ..errors import ConfigError

_DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
REQUIRED = ("num_classes", "in_channels")
OPTIONAL = ("width", "input_shape")
_HOW = "The module must be importable: put its folder on PYTHONPATH (e.g. PYTHONPATH=. datadiet ...) or install it."


class ModelFactoryError(ConfigError):
    """A ``package.module:factory`` model path that cannot be imported, resolved or called, or whose factory does
    not return an ``nn.Module``.  The message names the path."""


def is_import_path(name: str) -> bool:
    """Whether ``name`` names a user model (``module:attr``) rather than a built-in one."""
    return ":" in name


@dataclass(frozen=True)
class ModelBuilder:
    """Builds the model named ``name`` from ``factory``, passing each keyword argument the factory accepts."""

    name: str
    factory: Callable[..., nn.Module]
    accepts: frozenset[str]  # which of width / input_shape the factory takes
    user: bool = False

    def __call__(self, *, num_classes: int, in_channels: int, width: float = 1.0,
                 input_shape: Sequence[int] | None = None) -> nn.Module:
        kwargs: dict = {"num_classes": num_classes, "in_channels": in_channels}
        if "width" in self.accepts:
            kwargs["width"] = width
        if "input_shape" in self.accepts and input_shape is not None:
            kwargs["input_shape"] = tuple(int(d) for d in input_shape)
        if not self.user:
            return self.factory(**kwargs)
        try:
            model = self.factory(**kwargs)
        except Exception as error:
            raise ModelFactoryError(f"model factory {self.name} raised {type(error).__name__}: {error}") from error
        if not isinstance(model, nn.Module):
            raise ModelFactoryError(f"model factory {self.name} returned {_kind(model)}, not a torch.nn.Module; "
                                    "it must return the model (an nn.Module mapping a batch to logits).")
        return model


def builtin_builder(name: str, factory: Callable[..., nn.Module]) -> ModelBuilder:
    return ModelBuilder(name, factory, _accepted(factory, name))


def resolve(path: str) -> ModelBuilder:
    """The builder of user model ``path`` (``package.module:attr`` or ``package.module:Class.attr``): imports the
    module and resolves the attribute, without calling it."""
    module_name, _, attr_path = path.partition(":")
    module_name, attr_path = module_name.strip(), attr_path.strip()
    if not _DOTTED.match(module_name) or not _DOTTED.match(attr_path):
        raise ModelFactoryError(
            f"Model {path!r} is not a built-in name nor of the form package.module:factory (a dotted module "
            "path, one colon, then the name of a function or class in it, e.g. mypkg.models:build or "
            "mypkg.models:Net).")
    target = _import(module_name, path)
    where = module_name
    for part in attr_path.split("."):
        if not hasattr(target, part):
            raise ModelFactoryError(f"Model {path!r}: {where!r} has no attribute {part!r}.")
        target, where = getattr(target, part), f"{where}.{part}"
    if not callable(target):
        raise ModelFactoryError(f"Model {path!r} is {_kind(target)}, which is not callable; give a function or "
                                "class that takes num_classes= and in_channels= and returns an nn.Module.")
    return ModelBuilder(path, target, _accepted(target, path), user=True)


def _import(module_name: str, path: str):
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        missing = error.name or ""
        if module_name == missing or module_name.startswith(missing + "."):
            raise ModelFactoryError(f"Model {path!r}: cannot import module {module_name!r} ({error}). "
                                    f"{_HOW}") from error
        raise ModelFactoryError(f"Model {path!r}: module {module_name!r} was found but importing it failed: it "
                                f"imports {missing!r}, which is not installed ({error}).") from error
    except Exception as error:
        raise ModelFactoryError(f"Model {path!r}: importing module {module_name!r} raised "
                                f"{type(error).__name__}: {error}") from error


def _accepted(factory: Callable, name: str) -> frozenset[str]:
    """Which optional keywords ``factory`` accepts; a signature that cannot take the required ones is refused."""
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):  # no introspectable signature (some builtins): pass only the required ones
        return frozenset()
    params = signature.parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return frozenset(OPTIONAL)
    by_keyword = {p.name for p in params
                  if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)}
    missing = [k for k in REQUIRED if k not in by_keyword]
    if missing:
        raise ModelFactoryError(
            f"model factory {name} takes {signature} but must accept the keyword arguments num_classes and "
            f"in_channels (missing: {', '.join(missing)}); width and input_shape are passed when accepted.")
    return frozenset(k for k in OPTIONAL if k in by_keyword)


def _kind(value) -> str:
    if value is None:
        return "None"
    article = "an" if type(value).__name__[:1].lower() in "aeiou" else "a"
    return f"{article} {type(value).__name__}"
