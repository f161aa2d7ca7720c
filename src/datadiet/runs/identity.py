"""The one identity of a result: what determines it, hashed.

A score run, an evaluation run, a cached model or a folder of score runs is identified by the configs and
choices that determine its numbers.  Two things never do, so they are dropped before hashing:

* ``data_root``: where the dataset files lie (the dataset fingerprint, which is part of the data, is what
  matters);
* ``device`` and ``cuda_graph``: which processor computes and how its kernels are launched (CPU and GPU
  numbers differ in rounding, not in meaning, and a sweep started on one machine may finish on another).

The package version is not part of identity either: a bug fix must not orphan finished runs.

For the same reason a config field added after results were stored is left out while it holds the value
that adds nothing (:data:`ADDED_DEFAULTS`, the options of image folders): identities computed before it
existed stay the same, and any other value is part of the identity as usual.

Dynamic pruning is hashed as the records written before pruners had their own parameters spelled it: flat in the
recipe (``dynamic``: the pruner's name, each parameter beside it under its old name: RS2's ``fraction`` as
``keep``), so that a run keeps its identity whichever form its record holds.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

import numpy as np

from ..config import is_user_data, to_dict
from ..dynamic import PRUNERS

IGNORED_KEYS = frozenset({"data_root", "device", "cuda_graph", "version"})
# DataConfig fields added in 0.2 for data brought by the user (folder: sources) → the default they are left
# out at.  Keys only: a key of that name anywhere in the value is treated alike.
ADDED_DEFAULTS = {"resize": None, "channels": None, "test_fraction": 0.2, "split_seed": 0,
                  "data_fingerprint": "",  # RunSpec: the data's content, recorded for user-supplied data only
                  # TrainConfig fields added after 0.2.0: dynamic pruning (InfoBatch, RS2) and the CPU's precision
                  "dynamic": "none", "prune_ratio": 0.5, "delta": 0.875, "keep": None, "precision": "fp32",
                  "class_weights": "none",  # TrainConfig's loss weights per class: only "balanced" is hashed
                  "long_tail": None, "holdout": None}  # DataConfig's long-tailed profile and validation part
DIGEST_LENGTH = 20  # hex characters: 80 bits, no collision in any sweep of realistic size


def canonical(value: Any) -> Any:
    """``value`` as plain JSON data with every ignored key removed, at any depth (dataclasses become dicts,
    tuples become lists)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = to_dict(value)
    if isinstance(value, dict):
        return {str(k): canonical(v) for k, v in _flat_dynamic(value).items()
                if k not in IGNORED_KEYS and not _added_default(k, v)}
    if isinstance(value, (list, tuple)):
        return [canonical(v) for v in value]
    return json.loads(json.dumps(value, default=str))


def _flat_dynamic(value: dict) -> dict:
    """A recipe's pruner (``"dynamic": None`` or ``{"name": ..., parameter: value}``) spelled flat, as before pruners
    had their own parameters; a recipe already flat (a stored record) is left as it is."""
    pruning = value.get("dynamic", "none")
    if pruning is not None and not (isinstance(pruning, dict) and "name" in pruning):
        return value
    rest = {k: v for k, v in value.items() if k != "dynamic"}
    if pruning is None:
        return {**rest, "dynamic": "none"}
    name = pruning["name"]
    old = {} if name not in PRUNERS else {f.name: f.metadata.get("old_name", f.name)
                                          for f in dataclasses.fields(PRUNERS[name].parameters)}
    return {**rest, "dynamic": name, **{old.get(k, k): v for k, v in pruning.items() if k != "name"}}


def _added_default(key: Any, value: Any) -> bool:
    if key not in ADDED_DEFAULTS:
        return False
    default = ADDED_DEFAULTS[key]
    if default is None or isinstance(default, str):
        return value == default
    return type(value) in (int, float) and value == default


def identity(value: Any) -> str:
    """The hex digest that identifies ``value`` (a dict, dataclass or list of them): equal for equal content
    whatever the key order, the data location or the device."""
    payload = json.dumps(_flip_decided(canonical(value)), sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:DIGEST_LENGTH]


def _flip_decided(value: Any) -> Any:
    """``flip: None`` (the data's default) hashed as the flip it means: on for built-in datasets, so that their
    identities are those of the runs made when flipping was always on; off for folder:/arrays: data."""
    train, data = (value.get("train"), value.get("data")) if isinstance(value, dict) else (None, None)
    if isinstance(train, dict) and train.get("flip", False) is None and isinstance(data, dict):
        return {**value, "train": {**train, "flip": not is_user_data(data.get("dataset", ""))}}
    return value


def digest_ids(ids) -> str:
    """Digest of an exact list of example ids (order included): ties a run to the subset it trained on."""
    return hashlib.sha256(np.asarray(ids, dtype=np.int64).tobytes()).hexdigest()[:DIGEST_LENGTH]
