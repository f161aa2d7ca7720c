"""Subset manifests: the ids a selection kept, tied to the dataset they index.

A manifest is a small JSON file::

    {"format": "datadiet-subset/1", "ids": [...], "dataset": {"name", "split", "size", "fingerprint", ...},
     "selection": {"scores": ..., "keep": ..., "offset": ..., ...}, "version": "..."}

``ids`` are example ids (canonical order); training maps them back to rows after checking the
fingerprint, so a manifest can never silently select from different data.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from .version import __version__
from .errors import DataDietError
from .io import write_json_atomic

FORMAT = "datadiet-subset/1"


class ManifestError(DataDietError, ValueError):
    """A subset manifest is unreadable or does not belong to the dataset at hand."""


def save_subset(path: str | Path, ids, dataset_info: dict, selection: dict) -> Path:
    """Write the manifest atomically; ``dataset_info`` is ``ImageDataset.describe()`` of the scored data."""
    ids = np.asarray(ids, dtype=np.int64)
    write_json_atomic(path, {"format": FORMAT, "ids": ids.tolist(), "dataset": dataset_info,
                             "selection": selection, "version": __version__})
    return Path(path)


def load_subset(path: str | Path, dataset) -> torch.Tensor:
    """Row positions in ``dataset`` of the manifest's ids, after checking it was made for ``dataset``."""
    path = Path(path)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ManifestError(f"Subset file {path} does not exist. Create it with `datadiet prune`.") from None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ManifestError(f"Cannot read subset file {path}: {exc}. Recreate it with `datadiet prune`.") from exc
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise ManifestError(f"{path} is not a datadiet subset manifest (format {FORMAT!r}).")
    have, want = record.get("dataset", {}), dataset.describe()
    if have.get("fingerprint") != want["fingerprint"]:
        raise ManifestError(
            f"Subset {path} was selected from {have.get('name')} ({have.get('size')} examples, fingerprint "
            f"{have.get('fingerprint')}) but the training data is {want['name']} ({want['size']} examples, "
            f"fingerprint {want['fingerprint']}). Use the same --subset/--label-noise options as for scoring, "
            "or re-run `datadiet prune` on scores of this dataset.")
    return dataset.positions_of(record["ids"])
