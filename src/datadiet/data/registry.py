"""Where each dataset lives on disk, how to recognise it, and how to load it.

Search order for the folder of a dataset: an explicit ``data_root`` (or
``--data-root``), then ``$DATADIET_DATA``, then the dataset's system
locations (for Fashion-MNIST, the Debian package's folder).  In each place we
accept the files directly in the folder or in a sub-folder named after the
dataset, so one ``$DATADIET_DATA`` can hold all of them.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import DatasetNotFoundError, unknown_name
from . import idx
from .dataset import DatasetSplits

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


def _idx_spec(name: str, classes: tuple[str, ...], system_dirs: tuple[str, ...], how_to_get: str) -> DatasetSpec:
    return DatasetSpec(
        name=name,
        subdirs=(name, name.replace("-", "_"), name.replace("-", "")),
        system_dirs=system_dirs,
        is_present=idx.has_idx_files,
        load=lambda root: idx.load_idx_splits(root, name=name, classes=classes),
        how_to_get=how_to_get,
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
        load=_lazy("cifar", "load_cifar10"),
        how_to_get="Run `datadiet download cifar10 --data-root DIR` (163 MB), or unpack the official "
                   "cifar-10-python.tar.gz there.",
    ),
    "cifar100": DatasetSpec(
        name="cifar100",
        subdirs=("cifar-100-python", "cifar100/cifar-100-python", "cifar100"),
        system_dirs=(),
        is_present=_lazy("cifar", "has_cifar100"),
        load=_lazy("cifar", "load_cifar100"),
        how_to_get="Run `datadiet download cifar100 --data-root DIR` (161 MB), or unpack the official "
                   "cifar-100-python.tar.gz there.",
    ),
    "cinic10": DatasetSpec(
        name="cinic10",
        subdirs=("cinic10", "CINIC-10", "cinic-10"),
        system_dirs=(),
        is_present=_lazy("cinic", "has_cinic10"),
        load=_lazy("cinic", "load_cinic10"),
        how_to_get="Run `datadiet download cinic10 --data-root DIR` (688 MB), or unpack the official "
                   "CINIC-10.tar.gz there (folders train/, valid/, test/).",
    ),
}


def dataset_spec(name: str) -> DatasetSpec:
    key = name.lower()
    if key not in DATASETS:
        raise unknown_name("dataset", name, tuple(DATASETS))
    return DATASETS[key]


def candidate_dirs(spec: DatasetSpec, data_root: str | os.PathLike | None) -> list[Path]:
    """Folders searched for ``spec``, most specific first."""
    roots: list[Path] = []
    if data_root is not None:
        roots.append(Path(data_root).expanduser())
    elif os.environ.get(ENV_VAR):
        roots.append(Path(os.environ[ENV_VAR]).expanduser())
    dirs = [d for root in roots for d in (root, *(root / s for s in spec.subdirs))]
    if data_root is None:
        dirs += [Path(d) for d in spec.system_dirs]
    return dirs


def locate(name: str, data_root: str | os.PathLike | None = None) -> Path:
    """The folder holding dataset ``name``, or a clear error saying how to get it."""
    spec = dataset_spec(name)
    tried = candidate_dirs(spec, data_root)
    for folder in tried:
        if folder.is_dir() and spec.is_present(folder):
            return folder
    looked = ", ".join(str(d) for d in tried) or "(nowhere: give --data-root or set $DATADIET_DATA)"
    raise DatasetNotFoundError(
        f"Dataset {name!r} was not found. Looked in: {looked}. {spec.how_to_get} "
        f"Then pass --data-root DIR or set ${ENV_VAR}=DIR."
    )


def load_splits(name: str, data_root: str | os.PathLike | None = None) -> DatasetSplits:
    """Load the train and test splits of ``name`` in their official order."""
    spec = dataset_spec(name)
    return spec.load(locate(name, data_root))
