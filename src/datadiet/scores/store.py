"""Score files: per-run score matrices with their provenance, in plain ``.npz``.

A score file is a NumPy ``.npz`` archive (open it with ``numpy.load(path)``,
no datadiet needed) holding:

* ``ids``: int64 ``[N]``, example ids (positions in the dataset's official order);
* ``runs``: float64 ``[R, N]``, the score of every example in each of the R runs;
* ``meta``: a JSON string with ``format`` (``"datadiet-scores/1"``), ``score``,
  ``step``/``epoch`` (or ``"end"``), ``seeds``, ``model``, the full ``config``,
  ``version`` and ``dataset`` (``name``, ``split``, ``size``, ``fingerprint``).

The mean over runs is the score used for pruning; the per-run matrix is kept
so rank stability against R can be studied.  Writes are atomic; loading
refuses pickles (``allow_pickle=False``) and checks shape, NaN and, when a
dataset is given, that the file was computed on exactly that dataset.
"""
from __future__ import annotations

import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..config import DataConfig, TrainConfig
from ..errors import DataDietError
from ..io import atomic_path, parse_json, read_npz
from .registry import ScoreLabel

FORMAT = "datadiet-scores/1"
_WHAT = "a datadiet score file (.npz written by `datadiet score`)"  # what a refused file is not


class ScoreFileError(DataDietError, ValueError):
    """A score file is unreadable, malformed, or belongs to another dataset."""


@dataclass(frozen=True, eq=False)
class ScoreTable:
    """Scores of one kind at one time, for every example, in every run.

    Attributes:
        score: registry name, e.g. ``"el2n"``.
        ids: int64 ``[N]``.
        runs: float64 ``[R, N]``.
        meta: provenance (see module docstring).
    """

    score: str
    ids: np.ndarray
    runs: np.ndarray
    meta: dict = field(default_factory=dict)
    source: str | None = field(default=None, compare=False)
    """The file the table was loaded from (set by :func:`load_scores`), named in error messages."""

    def __post_init__(self) -> None:
        ids, runs = np.asarray(self.ids), np.asarray(self.runs)
        if ids.ndim != 1 or runs.ndim != 2 or runs.shape[1] != ids.shape[0]:
            raise ScoreFileError(f"Score table {self.score!r}: ids {ids.shape} and runs {runs.shape} do not match "
                                 "(expected ids [N] and runs [R, N]).")
        if np.isnan(runs).any():
            bad = int(np.isnan(runs).any(0).sum())
            raise ScoreFileError(f"Score table {self.score!r} has NaN scores for {bad} examples; the scoring run "
                                 "diverged. Recompute the scores (lower the learning rate if training diverged).")
        if len(np.unique(ids)) != len(ids):
            raise ScoreFileError(f"Score table {self.score!r} lists some example ids twice.")

    @property
    def mean(self) -> np.ndarray:
        """The score used for pruning: the mean over runs, ``[N]``."""
        return self.runs.mean(axis=0)

    @property
    def label(self) -> str:
        """Short name with the time of scoring, e.g. ``grand@init``, ``el2n@epoch2``; model-free scores
        (``input_norm``, ``random``) have no time."""
        when = self.meta.get("when")
        if when in (None, "static"):
            return self.score
        return str(ScoreLabel.parse(f"{self.score}@{when}"))

    def check_dataset(self, dataset) -> None:
        """Raise unless this table was computed on ``dataset`` (an ImageDataset), example for example.

        The message names the score file (when loaded from one) and both dataset fingerprints; where they agree
        but the ids do not cover the dataset, it says how many ids there are and which is missing.
        """
        want = dataset.describe()
        have = self.meta.get("dataset", {})
        have = have if isinstance(have, dict) else {}
        where = f"score file {self.source}" if self.source else "score table"
        if have.get("fingerprint") != want["fingerprint"]:
            raise ScoreFileError(
                f"These {self.label} scores ({where}) were computed on {have.get('name')} ({have.get('split')}, "
                f"{have.get('size')} examples, fingerprint {have.get('fingerprint')}), not on {want['name']} "
                f"({want['split']}, {want['size']} examples, fingerprint {want['fingerprint']}). A different "
                "subset, label noise or data version changes the fingerprint; recompute the scores on this "
                "dataset with `datadiet score`.")
        self._check_ids(dataset, where)

    def _check_ids(self, dataset, where: str) -> None:
        """The ids of a table whose dataset fingerprint matches: every example of ``dataset``, in its order. A
        table that holds some of them (a file cut short, or edited) is said to be that, not other data."""
        want, expected = dataset.describe(), dataset.ids.numpy()
        missing, foreign = np.setdiff1d(expected, self.ids), np.setdiff1d(self.ids, expected)
        if len(missing) or len(foreign):  # ids are distinct (ScoreTable checks), so the counts differ or these do
            found = [f"first missing id: {int(missing[0])}"] if len(missing) else []
            found += [f"{len(foreign)} ids name no example of it, the first {int(foreign[0])}"] if len(foreign) else []
            raise ScoreFileError(
                f"These {self.label} scores ({where}) hold {len(self.ids)} example ids, but {want['name']} "
                f"({want['split']}, fingerprint {want['fingerprint']}) has {len(expected)} examples, which a score "
                f"file covers one for one ({'; '.join(found)}). The dataset fingerprint matches, so the file was "
                "cut short or edited. Recompute it with `datadiet score`.")
        if not np.array_equal(self.ids, expected):
            raise ScoreFileError(f"{self.label} ({where}): example ids are not in the dataset's order although the "
                                 "fingerprint matches; the file was altered. Recompute it with `datadiet score`.")


def save_scores(path: str | Path, table: ScoreTable) -> Path:
    """Write ``table`` to ``path`` (``.npz``) atomically."""
    path = Path(path)
    meta = {**table.meta, "format": FORMAT, "score": table.score}
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, ids=np.asarray(table.ids, dtype=np.int64), runs=np.asarray(table.runs, dtype=np.float64),
                 meta=np.array(json.dumps(meta, sort_keys=True)))
    return path


def load_scores(path: str | Path, *, dataset=None) -> ScoreTable:
    """Read a score file; if ``dataset`` is given, verify it was computed on that dataset.

    Read with :func:`datadiet.io.read_npz` (never unpickles): a file that is not an ``.npz`` archive of the three
    plain arrays ``ids``, ``runs`` and ``meta`` is refused with a :class:`ScoreFileError` naming it.  Scores are
    accepted as stored (infinite values included); :func:`datadiet.selection.select` refuses non-finite ones.
    """
    path = Path(path)
    if path.is_dir():
        raise ScoreFileError(f"Score file {path} is a directory; pass one of the .npz files `datadiet score` "
                             "wrote in it (e.g. el2n-epoch2.npz).")
    if not path.exists():  # a pipe or device exists: read_npz refuses it as not a regular file
        raise ScoreFileError(f"Score file {path} does not exist. Create it with `datadiet score ... --out DIR`.")
    not_ours = f"{path} is not {_WHAT}"
    arrays = read_npz(path, what=_WHAT,
                      required=("ids", "runs", "meta"), optional=(), error=ScoreFileError,
                      fix="Recompute it with `datadiet score`.")
    ids, runs, meta_text = arrays["ids"], arrays["runs"], arrays["meta"]
    try:
        meta = parse_json(str(meta_text))
    except ValueError as exc:  # the message is a phrase: "not valid JSON (...)"
        raise ScoreFileError(f"{not_ours}: its meta array is {exc}. Recompute it with `datadiet score`.") from None
    if not isinstance(meta, dict):
        raise ScoreFileError(f"{not_ours}: its meta array is not a JSON object. Recompute it with `datadiet score`.")
    if meta.get("format") != FORMAT:
        raise ScoreFileError(f"{path} has format {meta.get('format')!r}; this datadiet reads {FORMAT!r}. Recompute "
                             "it with this version's `datadiet score`.")
    if not isinstance(meta.get("score"), str):
        raise ScoreFileError(f"{path}: its meta does not name the score. Recompute it with `datadiet score`.")
    _check_meta_types(path, meta)
    if ids.dtype.kind not in "iu" or runs.dtype.kind != "f":
        raise ScoreFileError(f"{path}: ids must be integers and runs floats, got {ids.dtype} and {runs.dtype}. "
                             "Recompute it with `datadiet score`.")
    try:
        table = ScoreTable(score=meta["score"], ids=ids.astype(np.int64), runs=runs.astype(np.float64), meta=meta,
                           source=str(path))
    except ScoreFileError as exc:
        raise ScoreFileError(f"{path}: {exc}") from None
    try:
        table.label  # the score and its time must parse: every message and manifest names them
    except DataDietError as exc:
        raise ScoreFileError(f"{path}: its meta names score {meta['score']!r} at {meta.get('when')!r}, which is not "
                             f"a score label ({exc}). Recompute it with `datadiet score`.") from None
    if dataset is not None:
        table.check_dataset(dataset)
    return table


# The type of every meta entry datadiet reads (absent entries are allowed: older files lack some).
_META_TYPES: dict[str, tuple[type, ...]] = {
    "when": (str, type(None)), "model": (str,), "version": (str,), "data_path": (str,),
    "epoch": (int, float, type(None)), "step": (int, type(None)), "seeds": (list,),
    "data": (dict,), "train": (dict,), "score": (str,), "dataset": (dict,),
}
_DATASET_TYPES: dict[str, tuple[type, ...]] = {"name": (str,), "split": (str,), "size": (int,), "fingerprint": (str,)}


def _check_meta_types(path: Path, meta: dict) -> None:
    """Refuse meta entries of the wrong JSON type (an edited or foreign file), naming the file and the entry,
    before any of them is used (a number where a name belongs would otherwise fail far from here)."""
    def refuse(key: str, value, kinds: tuple[type, ...], wanted: str = "") -> ScoreFileError:
        wanted = wanted or " or ".join(_JSON_NAMES.get(k, k.__name__) for k in kinds)
        return ScoreFileError(f"{path}: its meta entry {key!r} is {_JSON_NAMES.get(type(value), type(value).__name__)} "
                              f"{json.dumps(value)[:60]}, where {wanted} belongs; the file was edited or not written "
                              "by `datadiet score`. Recompute it with `datadiet score`.")

    for key, kinds in _META_TYPES.items():
        value = meta.get(key)
        if key in meta and (not isinstance(value, kinds) or isinstance(value, bool)):
            raise refuse(key, value, kinds)
    for key, kinds in _DATASET_TYPES.items():
        value = meta.get("dataset", {}).get(key)
        if key in meta.get("dataset", {}) and (not isinstance(value, kinds) or isinstance(value, bool)):
            raise refuse(f"dataset.{key}", value, kinds)
    if any(not isinstance(seed, int) or isinstance(seed, bool) for seed in meta.get("seeds", [])):
        raise refuse("seeds", meta["seeds"], (list,), "a list of whole numbers")
    for entry, config in (("data", DataConfig), ("train", TrainConfig)):
        hints = typing.get_type_hints(config)
        for key, value in meta.get(entry, {}).items():
            if key in hints and not _fits(value, hints[key]):
                raise refuse(f"{entry}.{key}", value, (), _kind_name(hints[key]))


def _fits(value, kind) -> bool:
    """Whether the JSON value ``value`` can be a config field of type ``kind`` (a whole number for an int, any
    number for a float, a list for a tuple); a type JSON has no form of passes (the config checks it)."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, a) for a in args)
    if origin is tuple:
        if not isinstance(value, list):
            return False
        items = [args[0]] * len(value) if len(args) == 2 and args[1] is Ellipsis else list(args)
        return len(items) == len(value) and all(_fits(v, k) for v, k in zip(value, items))
    if origin is typing.Literal:
        return value in args
    plain = {type(None): value is None, bool: isinstance(value, bool), str: isinstance(value, str),
             int: isinstance(value, int) and not isinstance(value, bool),
             float: isinstance(value, (int, float)) and not isinstance(value, bool)}
    return plain.get(kind, True)


def _kind_name(kind) -> str:
    """A config field's type in JSON's words: "a whole number or null", "a list of numbers"."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_kind_name(a) for a in args)
    if origin is tuple:
        return "a list of " + (_kind_name(args[0]).partition(" ")[2] + "s" if args else "values")
    if origin is typing.Literal:
        return "one of " + ", ".join(json.dumps(a) for a in args)
    return {int: "a whole number", float: "a number", str: "a string", bool: "a boolean", type(None): "null"}.get(
        kind, getattr(kind, "__name__", str(kind)))


_JSON_NAMES = {str: "a string", int: "a whole number", float: "a number", dict: "an object", list: "a list",
               bool: "a boolean", type(None): "null"}


__all__ = ["FORMAT", "ScoreFileError", "ScoreTable", "load_scores", "save_scores"]
