"""Configuration as frozen dataclasses, with their defaults in one place.

The command line is generated from these classes (:func:`add_arguments` /
:func:`from_arguments`), and :func:`to_dict` gives the resolved config that is
saved next to every result.  Defaults follow Data Diet App. B.2.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import functools
import inspect
import math
import numbers
import re
import sys
import types
import typing
from dataclasses import dataclass, field, fields
from typing import Any, Literal, Optional

from .dynamic import PRUNERS, parameter_values, pruner_name
from .errors import ConfigError


@dataclass(frozen=True)
class DataConfig:
    """Which data to load and how to cut it."""

    dataset: str = "fashion-mnist"    # a registered name, folder:PATH (image folders) or arrays:FILE.npz|DIR
    data_root: Optional[str] = None   # None: $DATADIET_DATA, then the dataset's system folder
    subset: Optional[int] = None      # train on n examples of the training split
    subset_mode: Optional[str] = None  # "first" n, or seeded class-"balanced" n; None: balanced for a --subset of folder:/arrays: data (sorted by class), else first
    subset_seed: int = 0
    test_subset: Optional[int] = None  # evaluate on the first n test examples (balanced n: own data sorted by class)
    label_noise: float = 0.0          # fraction of training labels permuted among themselves
    noise_seed: int = 0
    resize: Optional[tuple[int, int]] = None  # folder: only: resize all images to H W (bilinear); None: sizes agree
    channels: Optional[int] = None    # folder: only: 1 (grayscale) or 3 (RGB); None: keep, if all images agree
    test_fraction: float = 0.2        # folder: without train/ and test/ only: fraction of each class held out for test
    split_seed: int = 0               # folder: without train/ and test/ only: seed of the held-out draw
    long_tail: Optional[float] = None  # training split made long-tailed: largest/smallest class ratio (geometric); None: off
    holdout: Optional[float] = None   # a seeded, stratified fraction of the training split held out as the test split (validation); None: off

    def __post_init__(self) -> None:
        _check(isinstance(self.dataset, str) and self.dataset.strip() != "",
               f"--dataset must be a dataset name, folder:PATH or arrays:PATH, got {self.dataset!r}")
        if self.subset_mode is None:  # decided here, so that every saved config and identity holds the mode used
            mode = "balanced" if self.subset is not None and is_user_data(self.dataset) else "first"
            object.__setattr__(self, "subset_mode", mode)
        _check(self.subset is None or self.subset > 0, f"--subset must be positive, got {self.subset}")
        _check(self.test_subset is None or self.test_subset > 0,
               f"--test-subset must be positive, got {self.test_subset}")
        _check(self.subset_mode in ("first", "balanced"),
               f"--subset-mode must be 'first' or 'balanced', got {self.subset_mode!r}")
        _check(0.0 <= self.label_noise <= 1.0, f"--label-noise must lie in [0, 1], got {self.label_noise}")
        _check(self.long_tail is None or (_is_real(self.long_tail) and self.long_tail > 1),
               f"--long-tail is the ratio of the largest to the smallest class and must be above 1 (leave it out for "
               f"the data as it is), got {self.long_tail!r}")
        _check(self.holdout is None or (_is_real(self.holdout) and 0 < self.holdout < 1),
               f"--holdout is the fraction of the training split held out for validation and must lie strictly "
               f"between 0 and 1, got {self.holdout!r}")
        _check(self.holdout is None or self.test_subset is None,
               "--holdout replaces the test split by held-out training examples, so --test-subset has nothing to cut; "
               "drop one of them")
        if isinstance(self.resize, list):  # from Python or JSON: a tuple, so that the config stays hashable
            object.__setattr__(self, "resize", tuple(self.resize))
        _check(self.resize is None or (isinstance(self.resize, tuple) and len(self.resize) == 2
                                       and all(_is_int(v) and v > 0 for v in self.resize)),
               f"--resize takes two positive whole numbers, the height and width (e.g. --resize 32 32), got "
               f"{_show(self.resize)}")
        _check(self.channels in (None, 1, 3) and not isinstance(self.channels, bool),
               f"--channels must be 1 (grayscale) or 3 (RGB), got {self.channels!r}")
        _check(_is_real(self.test_fraction) and 0.0 < self.test_fraction < 1.0,
               f"--test-fraction must lie strictly between 0 and 1, got {self.test_fraction!r}")
        _check(_is_int(self.split_seed) and self.split_seed >= 0,
               f"--split-seed must be a whole number >= 0, got {self.split_seed!r}")
        if not self.dataset.lower().startswith("folder:"):
            given = [flag for flag, used in (("--resize", self.resize is not None),
                                              ("--channels", self.channels is not None),
                                              ("--test-fraction", self.test_fraction != 0.2),
                                              ("--split-seed", self.split_seed != 0)) if used]
            _check(not given, f"{' and '.join(given)} {'apply' if len(given) > 1 else 'applies'} only to image "
                              f"folders (--dataset folder:PATH), not to {self.dataset!r}; drop "
                              f"{'them' if len(given) > 1 else 'it'}")


@dataclass(frozen=True)
class TrainConfig:
    """The training recipe.  The default budget is matched steps (Data Diet B.2).

    ``dynamic`` holds the pruner and its parameters: ``None`` (no dynamic pruning), or a registered pruner's
    parameters (``InfoBatchParameters(prune_ratio=0.3)``); its name (``"infobatch"``: its defaults) and the dict form
    ``{"name": "rs2", "fraction": 0.5}`` are read as those.
    """

    model: str = "smallcnn"
    width: float = 1.0
    epochs: float = 200.0             # budget in epochs of the FULL training set (see `budget`)
    steps: Optional[int] = None       # explicit number of SGD steps; overrides `epochs`
    budget: str = "matched"           # "matched": same steps for any subset; "epochs": epochs of the subset
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    milestones: tuple[float, ...] = (0.3, 0.6, 0.8)  # fractions of the steps (= epochs 60/120/160 of 200)
    lr_decay: float = 0.2
    augment: bool = True
    pad: Optional[int] = None         # None: 4 px for 32×32 images, 2 px for 28×28
    flip: Optional[bool] = None       # random horizontal flips; None: on for built-in datasets (the papers), off for folder:/arrays: data (a mirror changes digits, text, scans)
    seed: int = 0
    device: str = "auto"              # "auto": CUDA when present, else CPU
    amp: bool = True                  # bfloat16 autocast, on CUDA only
    channels_last: bool = True        # NHWC memory format (faster on CPU and recent GPUs)
    cuda_graph: bool = True           # replay each SGD step from a CUDA graph, on CUDA only (same numbers, faster)
    eval_batch_size: int = 1024
    # dynamic pruning, drawn again each epoch: a pruner of datadiet.dynamic.PRUNERS (infobatch: Qin et al. 2024; rs2: Okanovic et al. 2024), each of its parameters a flag of its own; the run trains --epochs whole epochs over its rows
    dynamic: Optional[Any] = field(default=None, metadata={"pruner": True})
    precision: str = "fp32"           # the CPU's arithmetic: "fp32", or "bf16" (bfloat16 autocast of forward and loss, fastest on CPUs with avx512_bf16/AMX); on CUDA --amp decides instead
    # loss weight of each class: "none" (the plain mean cross-entropy), or "balanced": w_c = n / (K n_c) over the run's training rows (scikit-learn's convention: K classes present, n_c rows of class c), the batch's mean of weighted losses
    class_weights: Literal["none", "balanced"] = "none"

    def __post_init__(self) -> None:
        check_device(self.device)
        _check_real("width", self.width, low=0.0)
        _check_real("epochs", self.epochs, low=0.0)
        _check(self.steps is None or _is_int(self.steps), f"--steps must be a whole number, got {self.steps!r}")
        _check(self.steps is None or self.steps >= 0, f"--steps must be >= 0, got {self.steps}")
        _check(self.budget in ("matched", "epochs"), f"--budget must be 'matched' or 'epochs', got {self.budget!r}")
        _check_int("batch_size", self.batch_size, low=1)
        _check_int("eval_batch_size", self.eval_batch_size, low=1)
        # The optimizer computes in float32: an lr or weight decay beyond its largest value (about 3.4e38)
        # cannot even be applied (torch fails with "value cannot be converted to type float without
        # overflow").  Anything below that is legal input, however likely to diverge: a diverged run is
        # reported by the training loop as a NonFiniteLossError.
        _check_real("lr", self.lr, low=0.0, high=FLOAT32_MAX)
        _check_real("momentum", self.momentum, low=0.0, high=1.0, high_open=True, low_open=False)
        _check(not (self.nesterov and self.momentum == 0),
               "--momentum 0 cannot be used with Nesterov momentum (the default); pass --no-nesterov for plain "
               "SGD, or a momentum in (0, 1)")
        _check_real("weight_decay", self.weight_decay, low=0.0, low_open=False, high=FLOAT32_MAX)
        _check_real("lr_decay", self.lr_decay, low=0.0, low_open=False)
        # Milestones are fractions of the run's total steps (engine.lr_at decays the lr by lr_decay at step
        # round(m * total) for each m), so the budget is 1 whatever --epochs/--steps say: a milestone beyond
        # 1 would never be reached.  The schedule does not depend on their order, but a list that is not
        # strictly increasing is almost always a typo (or epochs given instead of fractions), and a
        # repeated milestone silently decays twice at once: refuse both.
        _check(isinstance(self.milestones, (tuple, list)), f"--milestones must be a list of fractions, got {self.milestones!r}")
        _check(all(_is_real(m) and 0.0 <= m <= 1.0 for m in self.milestones),
               f"--milestones are fractions of training in [0, 1] (0.3 = 30% of the steps), got "
               f"{_show(self.milestones)}")
        _check(all(a < b for a, b in zip(self.milestones, self.milestones[1:])),
               f"--milestones must be strictly increasing, got {_show(self.milestones)}; list each fraction of "
               "training once, in order (e.g. --milestones 0.3 0.6 0.8)")
        peak = self.lr * max(1.0, self.lr_decay) ** len(self.milestones)  # the largest lr of the schedule
        _check(peak <= FLOAT32_MAX, f"--lr {self.lr:g} with --lr-decay {self.lr_decay:g} grows past the largest "
                                    f"float32 ({FLOAT32_MAX:.3g}) at the last milestone; lower either")
        _check(self.pad is None or _is_int(self.pad), f"--pad must be a whole number of pixels, got {self.pad!r}")
        _check(self.pad is None or self.pad >= 0, f"--pad must be >= 0, got {self.pad}")
        _check(self.flip is None or isinstance(self.flip, bool), f"--flip must be true or false, got {self.flip!r}")
        _check_int("seed", self.seed, low=0)
        _check(self.precision in ("fp32", "bf16"), f"--precision must be 'fp32' or 'bf16', got {self.precision!r}")
        _check(self.class_weights in ("none", "balanced"),
               f"--class-weights must be 'none' or 'balanced', got {self.class_weights!r}")
        self._check_dynamic()

    def _check_dynamic(self) -> None:
        """The pruner resolved to its parameters (checked as they are built), and the budget whole epochs (the
        pruners decide per epoch, so a step budget or part of an epoch has no meaning for them)."""
        object.__setattr__(self, "dynamic", pruner_parameters(self.dynamic))
        if self.dynamic is not None:
            name = self.pruner_name
            _check(self.steps is None, f"--steps cannot be used with --dynamic {name}: its steps follow from "
                                       "the rows it keeps each epoch; give --epochs instead")
            _check(float(self.epochs).is_integer() and self.epochs >= 1,
                   f"--dynamic {name} trains whole epochs: --epochs must be a whole number >= 1, got "
                   f"{self.epochs:g}")

    @property
    def pruner_name(self) -> str:
        """The pruner's name, as ``--dynamic`` takes it: ``"none"`` without dynamic pruning."""
        return NO_PRUNING if self.dynamic is None else pruner_name(self.dynamic)

    @staticmethod
    def _upgraded(values: dict) -> dict:
        """A dict of an earlier version in today's form: the flat ``dynamic`` (a name), ``prune_ratio``, ``delta``
        and ``keep`` (RS2's fraction) of the records written before pruners had their own parameters."""
        flat = {key for key in values if key in _old_parameter_names()}
        name = values.get("dynamic")
        if not (isinstance(name, str) or flat and name is None):  # today's form (or no dynamic pruning at all)
            return values
        name = name or NO_PRUNING
        own = set() if name not in PRUNERS else {f.metadata.get("old_name", f.name)
                                                 for f in fields(PRUNERS[name].parameters)}
        # Records held every flat field; another pruner's were at their defaults (None for RS2's keep). Any other
        # value is kept, under its parameter's name, for the check to refuse naming its flag.
        renamed = _old_parameter_names()
        moved = {renamed[key]: values[key] for key in flat
                 if values[key] is not None and (key in own or values[key] != _old_default(key))}
        rest = {key: value for key, value in values.items() if key not in flat and key != "dynamic"}
        return {**rest, "dynamic": {"name": name, **moved}}

    def total_steps(self, *, train_size: int, full_size: int) -> int:
        """SGD steps for a run on ``train_size`` examples out of a training set of ``full_size``."""
        if self.steps is not None:
            return self.steps
        reference = full_size if self.budget == "matched" else train_size
        return max(1, round(self.epochs * steps_per_epoch(reference, self.batch_size)))

    def schedule(self, *, train_size: int, full_size: int | None = None) -> "Schedule":
        """The step arithmetic of a run on ``train_size`` examples (of ``full_size``, default the same)."""
        batch = min(self.batch_size, train_size)
        return Schedule(batch=batch, per_epoch=steps_per_epoch(train_size, batch),
                    total=self.total_steps(train_size=train_size, full_size=full_size or train_size))


@dataclass(frozen=True)
class Schedule:
    """Step arithmetic of one run: the batch actually used (capped at the data size), full batches per pass
    over the run's own data, and the run's total SGD steps."""

    batch: int
    per_epoch: int
    total: int

    def step_at(self, epoch: float) -> int:
        """The step reached after ``epoch`` passes over the run's data (epoch 0 = the initialization)."""
        return round(epoch * self.per_epoch)


def steps_per_epoch(n: int, batch_size: int) -> int:
    """Full batches per pass over ``n`` examples (the last partial batch is dropped, as in the paper:
    200 epochs of CIFAR-10 at batch 128 are 78,000 steps)."""
    return max(1, n // batch_size)


# ----------------------------------------------------------------------------- data brought by the user

USER_SOURCES = ("folder:", "arrays:")


def is_user_data(dataset: str) -> bool:
    """Whether ``dataset`` names data the user brought (``folder:PATH``, ``arrays:PATH``)."""
    return isinstance(dataset, str) and dataset.strip().lower().startswith(USER_SOURCES)


def resolve_flip(train: TrainConfig, *, user_data: bool) -> TrainConfig:
    """``train`` with ``flip`` decided: ``None`` means on for built-in datasets (the papers' recipe, and every
    earlier result's) and off for data the user brings, whose images (digits, text, scans) a mirror changes."""
    return train if train.flip is not None else dataclasses.replace(train, flip=not user_data)


# ----------------------------------------------------------------------------- dict round trip

def to_dict(config: Any) -> dict:
    """Plain, JSON-ready dict of a (nested) config dataclass (as ``dataclasses.asdict``); a pruner's parameters are
    ``{"name": pruner, parameter: value, ...}``."""
    return {f.name: _plain(getattr(config, f.name)) for f in fields(config)}


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        if any(type(value) is pruner.parameters for pruner in PRUNERS.values()):
            return {"name": pruner_name(value), **parameter_values(value)}
        return to_dict(value)
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # a named tuple, rebuilt field by field as asdict does
        return type(value)(*(_plain(v) for v in value))
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return copy.deepcopy(value)


def from_dict(cls: type, values: dict) -> Any:
    """Rebuild ``cls`` from :func:`to_dict` output (or an earlier version's, which ``cls._upgraded`` converts);
    unknown keys are an error."""
    values = getattr(cls, "_upgraded", lambda v: v)(values)
    known = {f.name: f for f in fields(cls)}
    unknown = set(values) - set(known)
    if unknown:
        raise ConfigError(f"Unknown {cls.__name__} fields: {sorted(unknown)}.")
    kwargs = {}
    for name, value in values.items():
        kind = _field_type(cls, name)
        if dataclasses.is_dataclass(kind):
            value = from_dict(kind, value)
        elif _is_tuple(kind) and value is not None:
            value = tuple(value)
        kwargs[name] = value
    return cls(**kwargs)


# ----------------------------------------------------------------------------- dynamic pruning: the pruner and its parameters

def pruner_parameters(value: Any) -> Any:
    """``TrainConfig.dynamic`` resolved: None for no pruning, else the chosen pruner's parameters dataclass (checked
    as it is built). ``value``: such parameters, a pruner's name (its defaults), or ``{"name": NAME, parameter:
    value, ...}`` (the dict form, and the flags given); a parameter of another pruner is refused, naming its flag."""
    if value is None or isinstance(value, str):
        value = {"name": value or NO_PRUNING}
    if not isinstance(value, dict):
        pruner_name(value)  # a dataclass that is no registered pruner's parameters is refused here
        _check_parameter_names(type(value))
        return value
    values = dict(value)
    name = values.pop("name", None) or NO_PRUNING
    names = (NO_PRUNING, *PRUNERS)
    _check(isinstance(name, str) and name in names, f"--dynamic must be one of {', '.join(names)}, got {name!r}")
    own = () if name == NO_PRUNING else tuple(f.name for f in fields(PRUNERS[name].parameters))
    _refuse_other_parameters(name, [key for key in values if key not in own])
    if name == NO_PRUNING:
        return None
    parameters = PRUNERS[name].parameters
    _check_parameter_names(parameters)
    missing = [f for f in fields(parameters) if f.name not in values and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if missing:
        comments = field_comments(parameters)
        needs = "; ".join(f"{_flag(f.name)}: {comments.get(f.name, 'required')}" for f in missing)
        _check(False, f"--dynamic {name} needs {needs}")
    return parameters(**values)


def _refuse_other_parameters(name: str, others: list[str]) -> None:
    """Parameters given that are not ``name``'s: each belongs to another pruner (or to none: unknown)."""
    if not others:
        return
    owners = _parameter_owners()
    unknown = [key for key in others if key not in owners]
    _check(not unknown, f"--dynamic {name} has no parameter {', '.join(map(repr, unknown))}; its parameters: "
                        f"{', '.join(_flag(f.name) for f in fields(PRUNERS[name].parameters)) if name in PRUNERS else 'none'}")
    by_owner: dict[str, list[str]] = {}
    for key in others:
        by_owner.setdefault(" or ".join(f"--dynamic {n}" for n in owners[key]), []).append(_flag(key))
    parts = [f"{' and '.join(flags)} {'apply' if len(flags) > 1 else 'applies'} only to {owner}"
             for owner, flags in by_owner.items()]
    _check(False, f"{'; '.join(parts)}, not to --dynamic {name}; drop {'them' if len(others) > 1 else 'it'}")


def _parameter_owners() -> dict[str, list[str]]:
    """Each pruner parameter's name → the pruners that have it (one flag serves them all)."""
    owners: dict[str, list[str]] = {}
    for name, pruner in PRUNERS.items():
        for f in fields(pruner.parameters):
            owners.setdefault(f.name, []).append(name)
    return owners


def _check_parameter_names(parameters: type) -> None:
    """A parameter shares its flag, and its key in run identities, with no field of the recipe."""
    clash = sorted({f.name for f in fields(parameters)} & ({f.name for f in fields(TrainConfig)} | {"name"}))
    if clash:
        raise ConfigError(f"{parameters.__name__} has a parameter named {', '.join(clash)}, a TrainConfig field (or "
                          "'name'): its flag would be the recipe's. Rename the parameter.")


def _old_parameter_names() -> dict[str, str]:
    """The flat keys that pruner parameters had in the recipe's dict before they were the pruner's own → the
    parameter's name now (``keep`` → ``fraction``)."""
    return {f.metadata.get("old_name", f.name): f.name for pruner in PRUNERS.values() for f in fields(pruner.parameters)}


def _old_default(key: str) -> Any:
    """The value an old flat key held when its pruner was not chosen: its parameter's default (None if required)."""
    for pruner in PRUNERS.values():
        for f in fields(pruner.parameters):
            if f.metadata.get("old_name", f.name) == key:
                return None if f.default is dataclasses.MISSING else f.default
    return None


# ----------------------------------------------------------------------------- command line

def add_arguments(parser: argparse.ArgumentParser, cls: type, *, skip: Any = (), title: str | None = None,
                  preset: tuple[str, Any] | None = None, choices: dict[str, Any] | None = None) -> tuple[str, ...]:
    """Add one ``--flag`` per field of ``cls``; defaults stay in the dataclass (argparse default is None).

    The flag is the field name with dashes; a tuple field is a space-separated list (``--keeps 0.3 0.5``), a
    tuple of pairs takes ``a:b`` items (``--architectures smallcnn:0.5``), a bool has ``--no-`` form, a
    ``Literal`` field (or one named in ``choices``) takes one of its values.  The help is the field's comment
    and its default; ``preset`` (name, instance of ``cls``) shows that instance's values instead, for flags
    that change a preset.  Returns the fields given a flag, so a caller knows which flags it has added.
    """
    group = parser.add_argument_group(title or cls.__name__)
    comments = field_comments(cls)
    added = []
    for f in fields(cls):
        if f.name in skip:
            continue
        if f.metadata.get("pruner"):  # the pruner's name and each of its parameters: flags of their own
            _add_pruner_arguments(group, f, comments.get(f.name), preset, skip)
            added.append(f.name)
            continue
        help_text = _help(f, comments.get(f.name), preset)
        group.add_argument(_flag(f.name), dest=f.name, default=None, help=help_text,
                           **_argparse_options(_field_type(cls, f.name), (choices or {}).get(f.name)))
        added.append(f.name)
    return tuple(added)


def _add_pruner_arguments(group, f: dataclasses.Field, comment: str | None, preset: tuple[str, Any] | None,
                          skip: Any) -> None:
    """``--dynamic NAME`` and one flag per parameter of the registered pruners (one flag for a name that several
    share), each with its parameter's comment as help; an old flat spelling (``old_name``: RS2's ``--keep``) still
    works, with a deprecation line."""
    names = ", ".join((NO_PRUNING, *PRUNERS))
    shown = f"the {preset[0]} preset's: {getattr(preset[1], 'pruner_name', NO_PRUNING)}" if preset else NO_PRUNING
    group.add_argument(_flag(f.name), dest=f.name, default=None, metavar="NAME",
                       help=f"{comment}; NAME one of {names} (default: {shown})".replace("%", "%%"))
    owners = _parameter_owners()
    for parameter, pruners in owners.items():
        if parameter in skip:
            continue
        first = next(p for p in fields(PRUNERS[pruners[0]].parameters) if p.name == parameter)
        kinds = {_field_type(PRUNERS[n].parameters, parameter) for n in pruners}
        if len(kinds) > 1:
            raise TypeError(f"--{parameter} of {' and '.join(pruners)} has types {kinds}: one flag needs one type")
        default = "required" if first.default is dataclasses.MISSING else f"default: {_shown(first.default)}"
        text = field_comments(PRUNERS[pruners[0]].parameters).get(parameter, "")
        where = " or ".join(f"--dynamic {n}" for n in pruners)
        options = _argparse_options(kinds.pop())
        group.add_argument(_flag(parameter), dest=parameter, default=None,
                           help=f"{where} only: {text} ({default})".replace("%", "%%"), **options)
        old = first.metadata.get("old_name")
        if old and old != parameter and old not in skip:
            group.add_argument(_flag(old), dest=parameter, default=None, action=_OldParameterFlag,
                               new_flag=_flag(parameter), where=where, why=first.metadata.get("why"),
                               help=argparse.SUPPRESS, **options)


class _OldParameterFlag(argparse.Action):
    """A parameter's old flat flag (``--keep`` for RS2's ``--fraction``): stores into the parameter and says, on one
    line, which flag to use."""

    def __init__(self, option_strings, dest, new_flag: str, where: str, why: str | None, **kwargs):
        self.new_flag, self.where, self.why = new_flag, where, why
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        why = f" ({self.why})" if self.why else ""
        print(f"datadiet: {option_string} is deprecated for {self.where} and goes away in 0.3; use "
              f"{self.new_flag}{why}.", file=sys.stderr)
        setattr(namespace, self.dest, values)


def _argparse_options(kind: Any, choices: Any = None) -> dict:
    """How argparse reads a field of type ``kind``: its type, list form, bool form or choices."""
    if kind is bool:
        return {"action": argparse.BooleanOptionalAction}
    if _is_tuple(kind):
        item = typing.get_args(kind)[0]
        if hasattr(item, "parse"):  # a typed value (a Method): the config parses its text once, in __post_init__
            item = str
        # "*": a list flag given with no value empties the list (where a field says "empty = none", that is how
        # to ask for none); a field that needs items refuses the empty list in its own check
        return {"type": _pair_parser(item) if _is_tuple(item) else item, "nargs": "*"}
    if typing.get_origin(kind) is typing.Literal:
        choices = typing.get_args(kind)
        return {"type": type(choices[0]), "choices": choices}
    return {"type": kind, **({"choices": tuple(choices)} if choices is not None else {})}


def _help(f: dataclasses.Field, comment: str | None, preset: tuple[str, Any] | None) -> str:
    """The help of a field's flag: its comment and its default, or the preset's value it changes."""
    if preset is not None:
        name, values = preset
        default = f"the {name} preset's: {_shown(getattr(values, f.name))}"
    elif f.default is None and comment:  # the comment says what leaving the flag out does
        return comment.replace("%", "%%")
    elif f.default is dataclasses.MISSING:  # a required flag has no default to show
        return (f"{comment} (required)" if comment else "required").replace("%", "%%")
    else:
        default = _shown(f.default)
    text = f"{comment} (default: {default})" if comment else f"default: {default}"
    return text.replace("%", "%%")  # argparse formats help with %


def _shown(value: Any) -> str:
    """A value as it would be typed on the command line: ``0.3 0.5``, ``smallcnn:0.5``; an empty list: ``empty``."""
    if isinstance(value, tuple) and not value:
        return "empty"
    if isinstance(value, tuple):
        return " ".join(":".join(map(str, v)) if isinstance(v, tuple) else str(v) for v in value)
    return str(value)


@functools.lru_cache(maxsize=None)  # reading a class's source is most of the cost of building a parser
def field_comments(cls: type) -> dict[str, str]:
    """The comment of each field of a dataclass's source: the one after it (``lr: float = 0.1  # ...``) or, if it has
    none, the comment lines right above it.  That is the help of its flag, so the one place that documents a field
    documents its flag too."""
    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):
        return {}
    names, found, above = {f.name for f in fields(cls)}, {}, []
    for line in source.splitlines():
        comment = re.match(r"\s*#\s*(.*)$", line)
        if comment:
            above.append(comment.group(1).strip())
            continue
        field = re.match(r"\s+(\w+)\s*:[^#]*(?:#\s*(.+))?$", line)
        if field and field.group(1) in names:
            text = field.group(2).strip() if field.group(2) else " ".join(above)
            if text:
                found[field.group(1)] = text
        above = []
    return found


def given_arguments(cls: type, namespace: argparse.Namespace, *, skip: Any = (), only: Any = None) -> dict:
    """The fields of ``cls`` the user gave on the command line (lists as tuples), of those in ``only`` if given; the
    pruner as ``{"name": NAME, parameter: value, ...}`` (what :func:`pruner_parameters` reads)."""
    given = {f.name: _pruner_given(namespace) if f.metadata.get("pruner") else getattr(namespace, f.name, None)
             for f in fields(cls) if f.name not in skip and (only is None or f.name in only)}
    return {k: tuple(v) if isinstance(v, list) else v for k, v in given.items() if v is not None}


def _pruner_given(namespace: argparse.Namespace) -> dict | None:
    """``--dynamic`` and the pruner parameters given, or None if none was."""
    parameters = {key: getattr(namespace, key) for key in _parameter_owners()
                  if getattr(namespace, key, None) is not None}
    name = getattr(namespace, "dynamic", None)
    if name is None and not parameters:
        return None
    return {"name": name or NO_PRUNING, **parameters}


def _pair_parser(kind: Any):
    """argparse type for one ``a:b`` item of a tuple-of-tuples field, e.g. ``resnet18:0.25``."""
    parts = typing.get_args(kind)

    def parse(text: str) -> tuple:
        values = text.split(":")
        if len(values) != len(parts):
            raise argparse.ArgumentTypeError(f"expected {len(parts)} values joined by ':', got {text!r}")
        return tuple(t(v) for t, v in zip(parts, values))

    parse.__name__ = ":".join(t.__name__ for t in parts)
    return parse


def from_arguments(cls: type, namespace: argparse.Namespace, **overrides: Any) -> Any:
    """Build ``cls`` from parsed arguments: flags the user gave override the dataclass defaults."""
    return cls(**{**given_arguments(cls, namespace), **overrides})


def _field_type(cls: type, name: str) -> Any:
    hints = typing.get_type_hints(cls)
    kind = hints[name]
    args = [a for a in typing.get_args(kind) if a is not type(None)]
    if typing.get_origin(kind) in (typing.Union, types.UnionType) and len(args) == 1:
        return args[0]
    return kind


def _is_tuple(kind: Any) -> bool:
    return typing.get_origin(kind) is tuple


FLOAT32_MAX = 3.4028234663852886e38  # largest finite float32 (torch.finfo(torch.float32).max)

NO_PRUNING = "none"  # --dynamic's value for no dynamic pruning (TrainConfig.dynamic = None)

DEVICE_PATTERN = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


def check_device(name: Any) -> None:
    """Refuse a device string we do not know, without touching CUDA (availability is checked when the
    device is resolved, by :func:`datadiet.training.placement.resolve_device`)."""
    if not (isinstance(name, str) and DEVICE_PATTERN.fullmatch(name)):
        raise ConfigError(f"Unknown device {name!r} (--device); use cpu, cuda, cuda:N (N = 0, 1, ...), mps or auto.")


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _show(values: Any) -> str:
    return " ".join(str(v) for v in values) if isinstance(values, (tuple, list)) else repr(values)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _check_real(name: str, value: Any, *, low: float | None = None, high: float | None = None,
                low_open: bool = True, high_open: bool = False) -> None:
    """``value`` is a finite number in the interval given (open at ``low`` by default: "positive")."""
    flag = _flag(name)
    _check(_is_real(value), f"{flag} must be a number, got {value!r}")
    _check(math.isfinite(value), f"{flag} must be a finite number, got {value}")
    if low is not None:
        _check(value > low if low_open else value >= low,
               f"{flag} must be {'>' if low_open else '>='} {low:g}, got {value:g}")
    if high is not None:
        _check(value < high if high_open else value <= high,
               f"{flag} must be {'<' if high_open else '<='} {high:.3g}, got {value:g}"
               + (" (larger values overflow the float32 arithmetic of the optimizer)" if high == FLOAT32_MAX else ""))


def _check_int(name: str, value: Any, *, low: int) -> None:
    flag = _flag(name)
    _check(_is_int(value), f"{flag} must be a whole number, got {value!r}")
    _check(value >= low, f"{flag} must be >= {low}, got {value}")


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message[0].upper() + message[1:] + ".")


# ----------------------------------------------------------------------------- one check per input, for every study

KEPT_FRACTIONS = "(0, 1)"  # a study's subset sizes: 1 would be the full data, which every study trains as "full"
OFFSET_FRACTIONS = "[0, 1)"  # B.3 windows: the lowest fraction dropped before the kept one
_FULL_DATA = ("a kept fraction of 1 is the full data, which the study trains anyway as its \"full\" baseline, and "
              "every rule would keep the same examples")


def check_fractions(flag: str, values: Any, interval: str, *, empty: bool = False, why: str = "") -> None:
    """Every value of ``values`` a number in ``interval`` (``"(0, 1]"``, ``"[0, 1)"``, ``"(0, inf)"``: a bracket
    includes its end) and, unless ``empty``, at least one value; else one ConfigError naming ``flag``."""
    low_closed, low, high, high_closed = _interval(interval)
    inside = [_is_real(v) and (low <= v if low_closed else low < v) and (v <= high if high_closed else v < high)
              for v in values]
    if not all(inside) or not (inside or empty):
        bad = [v for v, ok in zip(values, inside) if not ok]
        because = f" {why[0].upper()}{why[1:]}." if why and any(v == high for v in bad) else ""
        raise ConfigError(f"{flag} takes fractions in {interval}; got {list(values)}.{because}")


def check_keeps(values: Any, *, flag: str = "--keeps", empty: bool = False) -> None:
    """A study's kept fractions: in :data:`KEPT_FRACTIONS` (``datadiet prune --keep`` alone may keep everything)."""
    check_fractions(flag, values, KEPT_FRACTIONS, empty=empty, why=_FULL_DATA)


def check_offsets(values: Any, *, flag: str = "--offsets") -> None:
    """Offsets of B.3 windows, in :data:`OFFSET_FRACTIONS` (none given: keep the highest scores only)."""
    check_fractions(flag, values, OFFSET_FRACTIONS, empty=True)


def check_counts(config: Any, names: Any) -> None:
    """The fields ``names`` of ``config`` that are set (None: the setting's) are whole numbers >= 1: counts of
    seeds, runs or draws."""
    for name in names:
        value = getattr(config, name)
        if value is not None and not (_is_int(value) and value >= 1):
            raise ConfigError(f"{_flag(name)} must be at least 1; got {value}.")


def _interval(text: str) -> tuple[bool, float, float, bool]:
    """``"(0, 1]"`` → (low included?, low, high, high included?)."""
    low, high = (float(part) for part in text[1:-1].split(","))
    return text[0] == "[", low, high, text[-1] == "]"
