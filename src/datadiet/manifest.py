"""Subset manifests: the ids a selection kept, tied to the dataset they index.

A manifest is a small JSON file::

    {"format": "datadiet-subset/1", "ids": [...], "ids_sha256": "...",
     "dataset": {"name", "split", "size", "fingerprint", ...},
     "selection": {"scores": ..., "rule": ..., "keep": ..., "offset": ..., "tie_seed": ..., ...},
     "class_counts": {"T-shirt/top": 2980, ...}, "files": [...],
     "score_ties": {"largest_tie_value": 0.0, "largest_tie_count": ..., "largest_tie_share": ..., "tied_share": ...},
     "tie_decided": 812, "data": {"dataset": ..., "subset": ..., ...}, "data_path": "...", "version": "..."}

``selection`` holds every parameter the selection used, defaults resolved (``selection.selection_parameters``);
``class_counts`` the kept examples per class (every class, 0 included), named by the dataset's class names;
``files`` (image folders only) each kept example's file, relative to the folder, in the order of ``ids``;
``score_ties`` how the scores tie (``selection.tie_summary``) and ``tie_decided`` how many kept examples the seeded
tie order picked rather than the score (``selection.tie_decided``; null for the random rule, which reads no score).
``data`` is the data config the scores were computed on (``config.DataConfig``; ``data_path``: the absolute path of
data brought by the user), so that ``datadiet train --subset-file`` loads that data without being told again.
Manifests written before these fields existed load all the same: training reads only the ids and the dataset.

``ids`` are example ids (canonical order); training maps them back to rows after checking the
fingerprint, so a manifest can never silently select from different data.  ``ids_sha256`` is the
SHA-256 of the ids as int64 little-endian bytes: editing the ids by hand while keeping the
fingerprint is detected.  Loading refuses anything but a list of distinct JSON integers that all
name examples of the dataset.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch

from .version import __version__
from .errors import ConfigError, DataDietError
from .io import UnreadableFileError, load_json, write_json_atomic
from .selection import class_counts

FORMAT = "datadiet-subset/1"
DIGEST_KEY = "ids_sha256"
_INT64_MAX = 2 ** 63 - 1
_SHOW = 5  # offending values named in a message
_REDO = "Re-run `datadiet prune` to write a new manifest."


class ManifestError(ConfigError):
    """A subset manifest is unreadable, malformed, edited, or does not belong to the dataset at hand."""


def ids_digest(ids) -> str:
    """SHA-256 (hex) of ``ids`` as int64 little-endian bytes, in the order given: the ``ids_sha256`` field."""
    return hashlib.sha256(np.asarray(ids, dtype="<i8").tobytes()).hexdigest()


def save_subset(path: str | Path, ids, dataset, selection: dict, *, score_ties: dict | None = None,
                tie_decided: int | None = None, data: dict | None = None) -> Path:
    """Write the manifest of ``ids``, examples of ``dataset`` (the ImageDataset scored), atomically.

    ``selection`` says how the ids were chosen (``selection.selection_parameters`` and where the scores came
    from). The manifest adds the dataset's description, the kept count of every class and, for image folders,
    the kept files. With ``score_ties`` (a ``selection.tie_summary`` of the scores), it also records them and
    ``tie_decided`` (None: not applicable, the random rule). ``data`` (``{"data": DataConfig dict, "data_path":
    absolute path of data brought by the user}``) says how to load the data again: `train --subset-file` reads it. Refuses (``ManifestError``) ids that are not a non-empty 1-D list of distinct non-negative
    integers naming examples of ``dataset``, so datadiet never writes a manifest it would refuse to read.
    """
    path = Path(path)
    if not hasattr(dataset, "describe") or not hasattr(dataset, "labels"):
        raise ManifestError(f"Refusing to write subset manifest {path}: pass the dataset the ids index (an "
                            f"ImageDataset, e.g. splits.train), not {type(dataset).__name__}; the manifest records "
                            "its description, class counts and files.")
    raw = np.asarray(ids)
    if raw.ndim != 1 or len(raw) == 0 or raw.dtype.kind not in "iu":
        raise ManifestError(
            f"Refusing to write subset manifest {path}: the ids must be a non-empty 1-D array of integers, got "
            f"{raw.dtype} of shape {raw.shape}. Pass the ids returned by `datadiet.select`.")
    if raw.dtype.kind == "u" and len(raw) and int(raw.max()) > _INT64_MAX:
        raise ManifestError(f"Refusing to write subset manifest {path}: ids above 2**63 - 1 are not example ids. "
                            "Pass the ids returned by `datadiet.select`.")
    arr = raw.astype(np.int64)
    negative = arr[arr < 0]
    if len(negative):
        raise ManifestError(
            f"Refusing to write subset manifest {path}: {len(negative)} ids are negative (first: "
            f"{_listing(negative.tolist())}); example ids are positions in the dataset, 0 or more. "
            "Pass the ids returned by `datadiet.select`.")
    repeated = _repeated(arr.tolist())
    if repeated:
        raise ManifestError(
            f"Refusing to write subset manifest {path}: ids {_listing(repeated)} appear more than once; a subset "
            "lists each example once. Pass the ids returned by `datadiet.select`.")
    try:
        positions = dataset.positions_of(arr).numpy()
    except DataDietError as exc:
        raise ManifestError(f"Refusing to write subset manifest {path}: {exc}") from None
    record = {"format": FORMAT, "ids": arr.tolist(), DIGEST_KEY: ids_digest(arr), "dataset": dataset.describe(),
              "selection": selection, "class_counts": class_count_record(dataset, positions),
              **kept_files(dataset, positions), **_tie_record(path, score_ties, tie_decided, len(arr)),
              **(data or {}), "version": __version__}
    write_json_atomic(path, record)
    return path


def _tie_record(path: Path, score_ties: dict | None, tie_decided: int | None, kept: int) -> dict:
    """``{"score_ties": ..., "tie_decided": ...}`` when the ties are given, else ``{}`` (a manifest without them)."""
    if score_ties is None:
        return {}
    if tie_decided is not None and not 0 <= int(tie_decided) <= kept:
        raise ManifestError(f"Refusing to write subset manifest {path}: {tie_decided} tie-decided examples of {kept} "
                            "kept cannot be; pass selection.tie_decided of the ids written.")
    return {"score_ties": dict(score_ties), "tie_decided": None if tie_decided is None else int(tie_decided)}


def class_names(dataset) -> list[str]:
    """The dataset's class names, or the class indices as strings where it has none (or repeats one)."""
    k = int(dataset.num_classes)
    names = [str(n) for n in (getattr(dataset, "classes", None) or ())]
    return names if len(names) == k and len(set(names)) == k else [str(c) for c in range(k)]


def class_count_record(dataset, positions) -> dict[str, int]:
    """Class name → kept count, in class order, for the rows ``positions`` of ``dataset`` (absent classes: 0)."""
    counts = class_counts(dataset.labels.numpy()[positions], int(dataset.num_classes))
    return dict(zip(class_names(dataset), counts.tolist()))


def kept_files(dataset, positions) -> dict:
    """``{"files": [...]}``: the file of each kept row, for data read from files (image folders); else ``{}``."""
    files = getattr(dataset, "files", None)  # row for row with the labels; None for built-in data and arrays
    return {} if files is None else {"files": [str(files[p]) for p in positions]}


def load_subset(path: str | Path, dataset) -> torch.Tensor:
    """Row positions in ``dataset`` of the manifest's ids, after checking it was made for ``dataset``.

    Raises ``ManifestError`` (naming the file and the offending ids) unless the file is a datadiet subset
    manifest whose ids are distinct JSON integers, match their ``ids_sha256`` digest, and all name examples
    of ``dataset``, and whose dataset fingerprint is ``dataset``'s.
    """
    path = Path(path)
    record = read_manifest(path)
    ids = _checked_ids(path, record)
    have, want = record.get("dataset"), dataset.describe()
    if not isinstance(have, dict) or not have.get("fingerprint"):
        raise ManifestError(f"Subset file {path} does not say which dataset it was selected from (its \"dataset\" "
                            f"entry is {json.dumps(have)[:80]}, not an object with a fingerprint). {_REDO}")
    if have.get("fingerprint") != want["fingerprint"]:
        raise ManifestError(
            f"Subset {path} was selected from {have.get('name')} ({have.get('size')} examples, fingerprint "
            f"{have.get('fingerprint')}) but the training data is {want['name']} ({want['size']} examples, "
            f"fingerprint {want['fingerprint']}). Train on the data it was selected from (`datadiet train "
            "--subset-file` loads the data a manifest records when --dataset and the data options are left out; "
            "older manifests need the same --dataset/--subset/--label-noise options as for scoring), or re-run "
            "`datadiet prune` on scores of this dataset.")
    known = set(dataset.ids.tolist())
    absent = [i for i in ids if i not in known]
    if absent:
        raise ManifestError(
            f"Subset file {path}: {len(absent)} ids are not examples of {want['name']}/{want['split']} "
            f"({want['size']} examples; first absent: {_listing(absent)}) although the dataset fingerprint "
            f"matches, so the ids were edited. {_REDO}")
    # Manifests written by datadiet 0.2.0 have no digest; they are accepted on the checks above alone.
    if DIGEST_KEY in record and record[DIGEST_KEY] != ids_digest(ids):
        raise ManifestError(
            f"Subset file {path}: the ids do not match their digest ({DIGEST_KEY}) stored by `datadiet prune`, so "
            f"they were edited after the file was written and are not the recorded selection. {_REDO}")
    return dataset.positions_of(ids)


def read_manifest(path: str | Path) -> dict:
    """The JSON object of subset manifest ``path``, read strictly, or a ``ManifestError`` naming the file (missing,
    not a regular file, not JSON, not a datadiet subset manifest); its ids and dataset are checked by
    :func:`load_subset`."""
    path = Path(path)
    try:  # strict JSON from a regular file of bounded size: a pipe or device is refused, never waited on
        record = load_json(path)
    except UnreadableFileError as exc:
        if exc.missing:
            raise ManifestError(f"Subset file {path} does not exist. Create it with `datadiet prune`.") from None
        if exc.why.endswith("not a regular file"):  # a directory, a pipe, a device
            raise ManifestError(f"Subset file {path} is {exc.why}; pass the .json manifest written by "
                                "`datadiet prune --out`.") from None
        raise ManifestError(f"Cannot read subset file {path}: {exc.sentence()}. It is not a JSON subset manifest; "
                            "recreate it with `datadiet prune`.") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        found = f"format {record.get('format')!r}" if isinstance(record, dict) else f"a JSON {type(record).__name__}"
        raise ManifestError(f"{path} is not a datadiet subset manifest (expected a JSON object with format "
                            f"{FORMAT!r}, found {found}). Create one with `datadiet prune`.")
    return record


def _checked_ids(path: Path, record: dict) -> list[int]:
    """The manifest's ids: a non-empty list of distinct non-negative JSON integers, or a ManifestError."""
    if "ids" not in record:
        raise ManifestError(f"Subset file {path} has no \"ids\" list; the file is incomplete. {_REDO}")
    ids = record["ids"]
    if not isinstance(ids, list):
        raise ManifestError(f"Subset file {path}: \"ids\" must be a list of example ids, found a JSON "
                            f"{_json_type(ids)} ({json.dumps(ids)[:80]}). {_REDO}")
    if not ids:
        raise ManifestError(f"Subset file {path} lists no ids; there is nothing to train on. {_REDO}")
    wrong = [(k, v) for k, v in enumerate(ids) if not isinstance(v, int) or isinstance(v, bool)]
    if wrong:
        shown = ", ".join(f"ids[{k}] = {json.dumps(v)}" for k, v in wrong[:_SHOW])
        raise ManifestError(f"Subset file {path}: example ids must be JSON integers; {len(wrong)} are not "
                            f"({shown}{', ...' if len(wrong) > _SHOW else ''}). {_REDO}")
    negative = [i for i in ids if i < 0]
    if negative:
        raise ManifestError(f"Subset file {path}: {len(negative)} ids are negative (first: {_listing(negative)}); "
                            f"example ids are positions in the dataset, 0 or more. {_REDO}")
    huge = [i for i in ids if i > _INT64_MAX]
    if huge:
        raise ManifestError(f"Subset file {path}: {len(huge)} ids are too large to be example ids (first: "
                            f"{_listing(huge)}; the largest possible is 2**63 - 1). {_REDO}")
    repeated = _repeated(ids)
    if repeated:
        raise ManifestError(f"Subset file {path}: ids {_listing(repeated)} appear more than once; each example "
                            f"would be trained on as often as it is listed. {_REDO}")
    return ids


def _repeated(ids: list[int]) -> list[int]:
    """Ids listed more than once, in order of first repetition."""
    seen, repeated = set(), {}
    for i in ids:
        if i in seen:
            repeated[i] = None
        seen.add(i)
    return list(repeated)


def _listing(values: list) -> str:
    return ", ".join(str(v) for v in values[:_SHOW]) + (", ..." if len(values) > _SHOW else "")


def _json_type(value) -> str:
    return {dict: "object", str: "string", bool: "boolean", type(None): "null"}.get(type(value), "number")
