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
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DataDietError
from ..io import atomic_path
from .registry import ScoreLabel

FORMAT = "datadiet-scores/1"


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
        """Raise unless this table was computed on ``dataset`` (an ImageDataset), example for example."""
        want = dataset.describe()
        have = self.meta.get("dataset", {})
        if have.get("fingerprint") != want["fingerprint"] or len(self.ids) != len(dataset):
            raise ScoreFileError(
                f"These {self.label} scores were computed on {have.get('name')} ({have.get('split')}, "
                f"{have.get('size')} examples, fingerprint {have.get('fingerprint')}), not on {want['name']} "
                f"({want['split']}, {want['size']} examples, fingerprint {want['fingerprint']}). A different "
                "subset, label noise or data version changes the fingerprint; recompute the scores on this "
                "dataset with `datadiet score`.")
        if not np.array_equal(self.ids, dataset.ids.numpy()):
            raise ScoreFileError(f"{self.label}: example ids are not in the dataset's order; the file was altered.")


def save_scores(path: str | Path, table: ScoreTable) -> Path:
    """Write ``table`` to ``path`` (``.npz``) atomically."""
    path = Path(path)
    meta = {**table.meta, "format": FORMAT, "score": table.score}
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, ids=np.asarray(table.ids, dtype=np.int64), runs=np.asarray(table.runs, dtype=np.float64),
                 meta=np.array(json.dumps(meta, sort_keys=True)))
    return path


def load_scores(path: str | Path, *, dataset=None) -> ScoreTable:
    """Read a score file; if ``dataset`` is given, verify it was computed on that dataset."""
    path = Path(path)
    if not path.is_file():
        raise ScoreFileError(f"Score file {path} does not exist. Create it with `datadiet score ... --out DIR`.")
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = {"ids", "runs", "meta"} - set(data.files)
            if missing:
                raise ScoreFileError(f"{path} is not a datadiet score file (missing {sorted(missing)}).")
            ids, runs, meta = data["ids"], data["runs"], json.loads(str(data["meta"]))
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        if isinstance(exc, ScoreFileError):
            raise
        raise ScoreFileError(f"Cannot read score file {path}: {exc}. It is truncated or not an .npz score file; "
                             "recompute it with `datadiet score`.") from exc
    if meta.get("format") != FORMAT:
        raise ScoreFileError(f"{path} has format {meta.get('format')!r}; this datadiet reads {FORMAT!r}.")
    if ids.dtype.kind not in "iu" or runs.dtype.kind != "f":
        raise ScoreFileError(f"{path}: ids must be integers and runs floats, got {ids.dtype} and {runs.dtype}.")
    table = ScoreTable(score=meta["score"], ids=ids.astype(np.int64), runs=runs.astype(np.float64), meta=meta)
    if dataset is not None:
        table.check_dataset(dataset)
    return table


__all__ = ["FORMAT", "ScoreFileError", "ScoreTable", "load_scores", "save_scores"]
