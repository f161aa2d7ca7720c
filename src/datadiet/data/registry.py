"""Where each dataset lives on disk, how to recognise it, and how to load it.

Search order for the folder of a dataset: an explicit ``data_root`` (or
``--data-root``), then ``$DATADIET_DATA``, then the dataset's system
locations (for Fashion-MNIST, the Debian package's folder).  In each place we
accept the files directly in the folder or in a sub-folder named after the
dataset, so one ``$DATADIET_DATA`` can hold all of them.

A ``--data-root`` or ``$DATADIET_DATA`` that does not exist is an error (a typo
must not go unnoticed).  When ``$DATADIET_DATA`` exists but lacks the dataset,
the system copy is used with a :class:`DataLocationWarning` saying so; a folder
that holds only part of a dataset is named, with the files it lacks.

Data brought by the user is named by a source prefix instead of a registered name:
``folder:PATH`` (an image folder, :mod:`datadiet.data.folder`) or ``arrays:FILE.npz`` /
``arrays:DIR`` (arrays, :mod:`datadiet.data.arrays`).  The path is in the name, so
``data_root`` and ``$DATADIET_DATA`` play no part; a relative path is resolved against
the current folder, and the name is kept exactly as given (it is part of a run's identity).
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import ConfigError, DatasetNotFoundError, unknown_name
from . import idx
from .arrays import load_arrays
from .dataset import DatasetSplits
from .folder import load_folder

ENV_VAR = "DATADIET_DATA"

FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
MNIST_CLASSES = tuple(str(d) for d in range(10))


@dataclass(frozen=True)
class DatasetSpec:
    """How to find and read one dataset."""

    name: str
    subdirs: tuple[str, ...]           # folder names tried below a root
    system_dirs: tuple[str, ...]       # fixed locations tried last
    is_present: Callable[[Path], bool]
    load: Callable[[Path], DatasetSplits]
    how_to_get: str
    parts: Callable[[Path], dict[str, bool]]  # each file or folder the dataset needs -> present in the folder?


class DataLocationWarning(UserWarning):
    """$DATADIET_DATA lacks a dataset, so another copy of it (the system's) is used."""


def _idx_spec(name: str, classes: tuple[str, ...], system_dirs: tuple[str, ...], how_to_get: str) -> DatasetSpec:
    return DatasetSpec(
        name=name,
        subdirs=(name, name.replace("-", "_"), name.replace("-", "")),
        system_dirs=system_dirs,
        is_present=idx.has_idx_files,
        load=lambda root: idx.load_idx_splits(root, name=name, classes=classes),
        how_to_get=how_to_get,
        parts=idx.idx_parts,
    )


def _lazy(module: str, attr: str) -> Callable:
    """Defer importing a loader module until it is used (keeps import fast)."""
    def call(*args, **kwargs):
        import importlib

        return getattr(importlib.import_module(f"datadiet.data.{module}"), attr)(*args, **kwargs)
    return call


DATASETS: dict[str, DatasetSpec] = {
    "fashion-mnist": _idx_spec(
        "fashion-mnist", FASHION_CLASSES, ("/usr/share/datasets/fashion-mnist",),
        "On Debian/Ubuntu: `sudo apt-get install dataset-fashion-mnist` (installs it in "
        "/usr/share/datasets/fashion-mnist). Elsewhere: `datadiet download fashion-mnist --data-root DIR`.",
    ),
    "mnist": _idx_spec(
        "mnist", MNIST_CLASSES, ("/usr/share/datasets/mnist",),
        "Run `datadiet download mnist --data-root DIR`, or copy the four IDX files there.",
    ),
    "cifar10": DatasetSpec(
        name="cifar10",
        subdirs=("cifar-10-batches-py", "cifar10/cifar-10-batches-py", "cifar10"),
        system_dirs=(),
        is_present=_lazy("cifar", "has_cifar10"),
        parts=_lazy("cifar", "cifar10_parts"),
        load=_lazy("cifar", "load_cifar10"),
        how_to_get="Run `datadiet download cifar10 --data-root DIR` (163 MB), or unpack the official "
                   "cifar-10-python.tar.gz there.",
    ),
    "cifar100": DatasetSpec(
        name="cifar100",
        subdirs=("cifar-100-python", "cifar100/cifar-100-python", "cifar100"),
        system_dirs=(),
        is_present=_lazy("cifar", "has_cifar100"),
        parts=_lazy("cifar", "cifar100_parts"),
        load=_lazy("cifar", "load_cifar100"),
        how_to_get="Run `datadiet download cifar100 --data-root DIR` (161 MB), or unpack the official "
                   "cifar-100-python.tar.gz there.",
    ),
    "cinic10": DatasetSpec(
        name="cinic10",
        subdirs=("cinic10", "CINIC-10", "cinic-10"),
        system_dirs=(),
        is_present=_lazy("cinic", "has_cinic10"),
        parts=_lazy("cinic", "cinic10_parts"),
        load=_lazy("cinic", "load_cinic10"),
        how_to_get="Run `datadiet download cinic10 --data-root DIR` (688 MB), or unpack the official "
                   "CINIC-10.tar.gz there (folders train/, valid/, test/).",
    ),
}


SOURCE_PREFIXES = ("folder", "arrays")


def parse_source(name: str) -> tuple[str, str] | None:
    """``("folder", PATH)`` for ``folder:PATH``, ``("arrays", PATH)`` for ``arrays:PATH`` (prefix in any case),
    ``None`` for a registered dataset name. An empty path is a ConfigError."""
    prefix, sep, path = name.partition(":")
    if not sep or prefix.lower() not in SOURCE_PREFIXES:
        return None
    kind = prefix.lower()
    if not path.strip():
        example = "folder:./my-images" if kind == "folder" else "arrays:./my-data.npz"
        raise ConfigError(f"--dataset {name!r} names no path; give one after the colon, e.g. {example}.")
    return kind, path


def dataset_spec(name: str) -> DatasetSpec:
    key = name.lower()
    if key not in DATASETS:
        raise unknown_name("dataset", name, tuple(DATASETS))
    return DATASETS[key]


def _user_root(data_root: str | os.PathLike | None) -> tuple[Path | None, str]:
    """The folder the user named (``data_root``, else ``$DATADIET_DATA``) and how they named it."""
    if data_root is not None:
        return Path(data_root).expanduser(), "--data-root"
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser(), f"${ENV_VAR}"
    return None, ""


def candidate_dirs(spec: DatasetSpec, data_root: str | os.PathLike | None) -> list[Path]:
    """Folders searched for ``spec``, most specific first."""
    root, _ = _user_root(data_root)
    dirs = [] if root is None else [root, *(root / s for s in spec.subdirs)]
    if data_root is None:
        dirs += [Path(d) for d in spec.system_dirs]
    return list(dict.fromkeys(dirs))  # once each (mnist's three subdir spellings coincide), in order


def locate(name: str, data_root: str | os.PathLike | None = None) -> Path:
    """The folder holding dataset ``name``, or a clear error saying how to get it.

    A ``data_root`` (``--data-root``) or ``$DATADIET_DATA`` that is not a folder is a DatasetNotFoundError;
    so is a search that finds only part of the dataset (the error names the files missing).  When
    ``$DATADIET_DATA`` lacks the dataset and the system copy is used instead, a DataLocationWarning says so.
    """
    source_kind = parse_source(name)
    if source_kind is not None:
        return _locate_source(name, *source_kind)
    spec = dataset_spec(name)
    root, source = _user_root(data_root)
    if root is not None and not root.is_dir():
        what = "does not exist" if not root.exists() else "is not a folder"
        where = (f"--data-root {root}" if source == "--data-root" else
                 f"${ENV_VAR} is set to {root}, which")
        fix = ("Check the path (a typo?)" if source == "--data-root" else
               f"Fix the path, or unset {ENV_VAR} to search only the system folders")
        raise DatasetNotFoundError(
            f"{where} {what}. {fix}. To get {name}: {spec.how_to_get}"
        )
    tried = candidate_dirs(spec, data_root)
    user_dirs = set(candidate_dirs(spec, root)) if root is not None else set()
    incomplete: list[tuple[Path, list[str]]] = []
    for folder in tried:
        if not folder.is_dir():
            continue
        parts = spec.parts(folder)
        if parts and all(parts.values()):
            if root is not None and folder not in user_dirs:
                _warn_fallback(name, source, root, folder, [d for d in tried if d in user_dirs], incomplete)
            return folder
        if any(parts.values()):
            incomplete.append((folder, [part for part, present in parts.items() if not present]))
    if incomplete:
        folder, missing = incomplete[0]
        raise DatasetNotFoundError(
            f"Dataset {name!r} is incomplete in {folder}: it lacks {_listing(missing)}. The files were "
            f"probably deleted or not fully unpacked. Get the dataset again: {spec.how_to_get}"
        )
    looked = ", ".join(str(d) for d in tried) or "(nowhere: give --data-root or set $DATADIET_DATA)"
    raise DatasetNotFoundError(
        f"Dataset {name!r} was not found. Looked in: {looked}. {spec.how_to_get} "
        f"Then pass --data-root DIR or set ${ENV_VAR}=DIR."
    )


def _warn_fallback(name: str, source: str, root: Path, used: Path, looked: list[Path],
                   incomplete: list[tuple[Path, list[str]]]) -> None:
    if incomplete:
        folder, missing = incomplete[0]
        why = f"{source}={root} holds an incomplete {name} ({folder} lacks {_listing(missing)})"
    else:
        why = f"{source}={root} holds no {name} (looked in {', '.join(str(d) for d in looked)})"
    warnings.warn(
        f"{why}; using the copy in {used} instead. Put the complete dataset under {root}, or unset "
        f"{ENV_VAR} to use {used} without this warning.",
        DataLocationWarning, stacklevel=3,
    )


def _listing(names: list[str], limit: int = 6) -> str:
    """``a, b, c`` (at most ``limit`` names, then how many more)."""
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown} and {len(names) - limit} more"


def _locate_source(name: str, kind: str, path_text: str) -> Path:
    path = Path(path_text).expanduser()
    where = "" if path.is_absolute() else f" (relative to the current folder, {Path.cwd()})"
    if not path.exists():
        what = ("an image folder (PATH/<class>/*.png, or PATH/train/<class>/... and PATH/test/<class>/...)"
                if kind == "folder" else "a .npz file with x_train, y_train, x_test, y_test, or a folder of "
                "those .npy files")
        raise DatasetNotFoundError(f"--dataset {name}: {path} does not exist{where}. It should be {what}; "
                                   "check the path (a typo?).")
    if kind == "folder" and not path.is_dir():
        raise DatasetNotFoundError(f"--dataset {name}: {path} is a file, not a folder. folder: takes a folder of "
                                   "class folders; for a .npz file use arrays:PATH.")
    return path


def load_splits(name: str, data_root: str | os.PathLike | None = None, *, resize: tuple[int, int] | None = None,
                channels: int | None = None, test_fraction: float = 0.2, split_seed: int = 0) -> DatasetSplits:
    """Load the train and test splits of ``name`` in their official (canonical) order.

    ``resize``, ``channels``, ``test_fraction`` and ``split_seed`` apply to ``folder:`` sources only (see
    :func:`datadiet.data.folder.load_folder`); for any other dataset they must keep their defaults.
    """
    source = parse_source(name)
    if source is not None and source[0] == "folder":
        return load_folder(locate(name, data_root), name=name, resize=resize, channels=channels,
                           test_fraction=test_fraction, seed=split_seed)
    given = [flag for flag, used in (("resize", resize is not None), ("channels", channels is not None),
                                     ("test_fraction", test_fraction != 0.2), ("split_seed", split_seed != 0)) if used]
    if given:
        raise ConfigError(f"{', '.join(given)} {'apply' if len(given) > 1 else 'applies'} only to image folders "
                          f"(folder:PATH), not to {name!r}.")
    if source is not None:
        return load_arrays(locate(name, data_root), name=name)
    spec = dataset_spec(name)
    return spec.load(locate(name, data_root))
