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
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import torch
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
        except SystemExit as stop:  # not an Exception: it would end the command with its code and no message
            raise ModelFactoryError(_exited(f"model factory {self.name}", stop, "building the model")) from None
        except KeyboardInterrupt:  # perhaps a real Ctrl-C, perhaps the factory's own: either way, say where
            raise _interrupted(f"model factory {self.name} was building the model") from None
        except Exception as error:
            raise ModelFactoryError(f"model factory {self.name} raised {type(error).__name__}: {error}") from error
        if not isinstance(model, nn.Module):
            raise ModelFactoryError(f"model factory {self.name} returned {_kind(model)}, not a torch.nn.Module; "
                                    "it must return the model (an nn.Module mapping a batch to logits).")
        check_user_model(model, self.name, num_classes, input_shape)
        return model


def check_user_model(model: nn.Module, name: str, num_classes: int, input_shape: Sequence[int] | None) -> None:
    """Refuse a user model that cannot train on this data, once, before any training or scoring.

    Checked: its tensors hold values (not the meta device), it has trainable parameters and, with a batch of
    :data:`PROBE` examples of the data's shape (zeros), in eval mode and then in train mode, it returns a tensor of
    logits ``[PROBE, num_classes]``. A model with more outputs than classes would otherwise train and score with exit
    status 0 and wrong numbers; one with fewer, a tuple or no parameters would fail deep inside training with an
    error that names nothing of the user's. Two examples, not one, and both modes, because a model can be right for
    one example in eval mode only (an output ``[N, C, 1]`` in train mode, a sum over the batch dimension where a
    feature dimension was meant). The check changes nothing: see :func:`_untouched`.
    """
    if any(t.is_meta for t in (*model.parameters(), *model.buffers())):
        raise ModelFactoryError(
            f"model factory {name} returned a model on the meta device: its parameters hold no values (it was "
            "built under torch.device('meta') or an empty-weights context). Return a materialised model, e.g. "
            "model.to_empty(device='cpu') followed by its initialisation.")
    if not any(p.requires_grad for p in model.parameters()):
        raise ModelFactoryError(f"model factory {name} returned a model without trainable parameters, so there is "
                                "nothing to train; give it at least one layer with weights (requires_grad=True).")
    if input_shape is None:
        return
    shape = tuple(int(d) for d in input_shape)
    for training in (False, True):
        with _untouched(model):
            output = _probe(model, name, shape, training)
        if output is None:  # out of memory in train mode: training reports it, with the batch size to change
            continue
        problem = _output_problem(output, num_classes, "train" if training else "eval")
        if problem:
            raise ModelFactoryError(f"model {name} {problem}.")


PROBE = 2  # examples the fit check runs: more than one, so that an output that loses the batch dimension shows


@contextmanager
def _untouched(model: nn.Module) -> Iterator[None]:
    """Run the fit check on ``model`` and put back everything it may change: each module's mode, every parameter
    and buffer (the same tensor objects, with their values: BatchNorm's running statistics and counters, and any
    buffer a forward pass updates in place or replaces), and the random streams of the CPU and of the model's GPUs
    (dropout in train mode draws from them).

    Saving and restoring the tensors, rather than checking a deep copy: for ResNet18 (11M parameters, on one CPU
    core) cloning and copying back every tensor took 29 ms against 45 ms for ``copy.deepcopy`` (and 35 ms through
    ``state_dict`` / ``load_state_dict``, which also misses non-persistent buffers); a deep copy would also fail for
    a model holding something that cannot be copied (a lock, an open file)."""
    modes = {module: module.training for module in model.modules()}
    slots = [slot for module in model.modules() for slot in (module._parameters, module._buffers)]
    saved = [(slot, dict(slot), {key: t.detach().clone() for key, t in slot.items() if t is not None})
             for slot in slots]
    gpus = sorted({t.device.index for _, tensors, _ in saved for t in tensors.values()
                   if t is not None and t.device.type == "cuda"})
    try:
        with torch.random.fork_rng(devices=gpus):
            yield
    finally:
        with torch.no_grad():
            for slot, tensors, values in saved:
                slot.clear()
                slot.update(tensors)  # a forward pass that assigned a new tensor (or a new buffer) is undone
                for key, value in values.items():
                    tensors[key].copy_(value)  # in place: optimisers and hooks holding the tensors still see them
        for module, training in modes.items():  # parents first, so each child's own mode is set last
            module.train(training)


def _probe(model: nn.Module, name: str, shape: tuple[int, ...], training: bool):
    """The model's output for :data:`PROBE` all-zero examples of ``shape`` (float32, as training feeds them) in
    train or eval mode; ``None`` when it runs out of memory in train mode (training then says so, with the batch
    size to lower). Call it inside :func:`_untouched`."""
    mode = "train" if training else "eval"
    x = torch.zeros(PROBE, *shape, device=next(model.parameters()).device)
    model.train(training)
    try:
        with torch.no_grad():
            return model(x)
    except SystemExit as stop:
        raise ModelFactoryError(_exited(f"model {name}", stop, f"running on {PROBE} examples in {mode} mode")) \
            from None
    except KeyboardInterrupt:
        raise _interrupted(f"model {name} was running on {PROBE} examples to check that it fits the data") from None
    except (MemoryError, torch.cuda.OutOfMemoryError):
        if training:
            return None
        raise
    except Exception as error:
        dims = ", ".join(map(str, shape))
        raise ModelFactoryError(
            f"model {name} cannot run on a batch of {PROBE} examples of this data in {mode} mode (shape [{PROBE}, "
            f"{dims}]): {type(error).__name__}: {error}. Build it for inputs [batch, {dims}]; the factory is called "
            "with in_channels= (and input_shape= when it accepts it).") from error


def _output_problem(output, num_classes: int, mode: str) -> str | None:
    expected = f"[N, {num_classes}] ([N, num_classes])"
    if not isinstance(output, torch.Tensor):
        return (f"returns {_kind(output)} from its forward pass, not a tensor of logits (seen in {mode} mode); "
                f"return only the logits {expected} (e.g. `return logits`, not `return logits, features`)")
    if output.dim() != 2 or output.shape[0] != PROBE:
        return (f"maps a batch of {PROBE} examples to an output of shape {list(output.shape)} in {mode} mode, not "
                f"[{PROBE}, {num_classes}]: it must return {expected} in both train and eval mode, one row of "
                f"{num_classes} logits per example")
    if output.shape[1] != num_classes:
        return (f"gives {output.shape[1]} outputs per example, but this data has {num_classes} classes (seen in "
                f"{mode} mode: shape {list(output.shape)}, not [{PROBE}, {num_classes}]); build its last layer with "
                f"num_classes outputs (the factory is called with num_classes={num_classes})")
    if not output.is_floating_point():
        return f"returns {output.dtype} outputs in {mode} mode, not floating-point logits"
    return None


def _interrupted(doing: str) -> KeyboardInterrupt:
    """A KeyboardInterrupt that says where it struck (the command line prints it and exits with status 130)."""
    return KeyboardInterrupt(f"while {doing}")


def _exited(what: str, stop: SystemExit, doing: str) -> str:
    return (f"{what} called sys.exit({stop.code!r}) while {doing}, which would end datadiet with no result and no "
            "message; it must return (a model, or logits) instead, or raise an exception that says what is wrong.")


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
    except SystemExit as stop:  # a script's `sys.exit()` at module level, run by the import
        raise ModelFactoryError(_exited(f"Model {path!r}: module {module_name!r}", stop, "being imported")) from None
    except KeyboardInterrupt:
        raise _interrupted(f"importing module {module_name!r} of model {path}") from None
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
