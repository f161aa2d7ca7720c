"""Reader for the official "python version" of CIFAR-10 and CIFAR-100.

Layout as unpacked from the official archives:

* ``cifar-10-batches-py/``: ``data_batch_1`` .. ``data_batch_5`` (train, in
  that order), ``test_batch`` and ``batches.meta`` (``label_names``).
* ``cifar-100-python/``: ``train``, ``test`` and ``meta``
  (``fine_label_names``); we use the 100 fine labels.

Each batch is a Python-2 pickle of a dict with ``data`` (uint8 ``[n, 3072]``:
per image 1024 red, then 1024 green, then 1024 blue bytes, each plane a
row-major 32x32 image) and ``labels`` (CIFAR-10) or ``fine_labels``
(CIFAR-100), a list of ``n`` ints.

Pickle files can run arbitrary code while they load, so we never call
``pickle.load`` on them: :class:`_RestrictedUnpickler` resolves only numpy's
array reconstruction and refuses every other global.
"""
from __future__ import annotations

import pickle
import struct
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import CorruptDataError, DatasetNotFoundError
from .dataset import DatasetSplits, ImageDataset, make_splits

CIFAR10_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST_FILE = "test_batch"
CIFAR10_META_FILE = "batches.meta"
CIFAR100_TRAIN_FILE = "train"
CIFAR100_TEST_FILE = "test"
CIFAR100_META_FILE = "meta"

IMAGE_SHAPE = (3, 32, 32)
ROW_BYTES = 3 * 32 * 32

# Python 2 pickles written with numpy 1.x name ``numpy.core.multiarray``; numpy 2
# moved it to ``numpy._core``.  Map both to the function itself instead of
# importing the module by name (``numpy.core`` warns on numpy 2).
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}

# What a garbled or truncated pickle can raise while loading.
_UNPICKLE_ERRORS = (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError,
                    KeyError, AttributeError, OverflowError, struct.error, MemoryError)


CIFAR10_FILES = (*CIFAR10_TRAIN_FILES, CIFAR10_TEST_FILE, CIFAR10_META_FILE)
CIFAR100_FILES = (CIFAR100_TRAIN_FILE, CIFAR100_TEST_FILE, CIFAR100_META_FILE)


def cifar10_parts(root: Path) -> dict[str, bool]:
    """Each file of cifar-10-batches-py, and whether ``root`` has it."""
    return {f: (Path(root) / f).is_file() for f in CIFAR10_FILES}


def cifar100_parts(root: Path) -> dict[str, bool]:
    """Each file of cifar-100-python, and whether ``root`` has it."""
    return {f: (Path(root) / f).is_file() for f in CIFAR100_FILES}


def has_cifar10(root: Path) -> bool:
    """True when ``root`` holds the five train batches, the test batch and the meta file."""
    return all(cifar10_parts(root).values())


def has_cifar100(root: Path) -> bool:
    """True when ``root`` holds ``train``, ``test`` and ``meta`` of CIFAR-100."""
    return all(cifar100_parts(root).values())


def _require_files(root: Path, parts: dict[str, bool], name: str, archive: str) -> None:
    """A DatasetNotFoundError naming every file of ``name`` missing from ``root``."""
    missing = [f for f, present in parts.items() if not present]
    if missing:
        raise DatasetNotFoundError(
            f"{name}: {root} lacks {', '.join(missing)} ({len(parts) - len(missing)} of its {len(parts)} files "
            f"are there). Unpack the official {archive} there again, or run `datadiet download {name} "
            "--data-root DIR`."
        )


def load_cifar10(root: str | Path) -> DatasetSplits:
    """CIFAR-10 in official order: train = data_batch_1..5 (50000), test = test_batch (10000).

    Images are uint8 ``[N, 3, 32, 32]``, labels int64 ``[N]`` in ``[0, 10)``.
    """
    root = Path(root)
    _require_files(root, cifar10_parts(root), "cifar10", "cifar-10-python.tar.gz")
    classes = _class_names(root / CIFAR10_META_FILE, "label_names", 10)
    train = _load_split(root, CIFAR10_TRAIN_FILES, "labels", "cifar10", "train", classes)
    test = _load_split(root, (CIFAR10_TEST_FILE,), "labels", "cifar10", "test", classes)
    return make_splits(train, test)


def load_cifar100(root: str | Path) -> DatasetSplits:
    """CIFAR-100 with its 100 fine labels: train (50000) and test (10000) in file order.

    Images are uint8 ``[N, 3, 32, 32]``, labels int64 ``[N]`` in ``[0, 100)``.
    """
    root = Path(root)
    _require_files(root, cifar100_parts(root), "cifar100", "cifar-100-python.tar.gz")
    classes = _class_names(root / CIFAR100_META_FILE, "fine_label_names", 100)
    train = _load_split(root, (CIFAR100_TRAIN_FILE,), "fine_labels", "cifar100", "train", classes)
    test = _load_split(root, (CIFAR100_TEST_FILE,), "fine_labels", "cifar100", "test", classes)
    return make_splits(train, test)


def read_cifar_pickle(path: str | Path) -> dict[str, Any]:
    """Load one official CIFAR pickle safely; returns its dict with ``str`` keys.

    Byte-string keys (as Python 2 wrote them) are decoded, so callers always
    index with ``"data"``, ``"labels"`` etc.
    """
    path = Path(path)
    try:
        fh = open(path, "rb")
    except OSError as exc:
        raise DatasetNotFoundError(
            f"Cannot read {path}: {exc.strerror or exc}. Unpack the official CIFAR archive there "
            "or run `datadiet download cifar10` / `datadiet download cifar100`."
        ) from exc
    with fh:
        try:
            obj = _RestrictedUnpickler(fh, path).load()
        except CorruptDataError:
            raise
        except _UNPICKLE_ERRORS as exc:
            raise CorruptDataError(
                f"{path} is not a readable CIFAR pickle ({type(exc).__name__}: {exc}). The file is "
                "truncated or damaged, probably by an interrupted download or unpacking; delete it and "
                "unpack the official archive again (or run `datadiet download`)."
            ) from exc
    if not isinstance(obj, dict):
        raise CorruptDataError(
            f"{path} holds a {type(obj).__name__}, but an official CIFAR file holds a dict. It is not a "
            "CIFAR batch; unpack the official archive again (or run `datadiet download`)."
        )
    return {(k.decode("latin-1") if isinstance(k, bytes) else k): v for k, v in obj.items()}


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that can rebuild numpy arrays and nothing else.

    Official CIFAR files are Python 2 pickles, so strings come back as bytes
    (``encoding="bytes"``); that is also what numpy expects for the raw array
    data inside them.
    """

    def __init__(self, fh, path: Path) -> None:
        super().__init__(fh, encoding="bytes")
        self._path = path

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED_GLOBALS:
            return {"_reconstruct": _numpy_reconstruct(), "ndarray": np.ndarray, "dtype": np.dtype}[name]
        raise CorruptDataError(
            f"Refused to load {self._path}: it asks to import {module}.{name}, which an official CIFAR "
            "file never does. Loading a pickle can run arbitrary code, so only numpy's array "
            "reconstruction is allowed. The file is damaged or was replaced; delete it and unpack the "
            "official archive again (or run `datadiet download`)."
        )


def _numpy_reconstruct():
    try:
        from numpy._core.multiarray import _reconstruct  # numpy >= 2
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


def _load_split(root: Path, files: tuple[str, ...], label_key: str, name: str, split: str,
                classes: tuple[str, ...]) -> ImageDataset:
    """Concatenate the batches in ``files`` (in order) into one split."""
    rows, labels = [], []
    for file in files:
        r, lab = _read_batch(root / file, label_key, len(classes))
        rows.append(r)
        labels.append(lab)
    data = np.concatenate(rows)  # a fresh, writable array whatever the pickle gave us
    n = data.shape[0]
    return ImageDataset(
        name=name,
        split=split,
        images=torch.from_numpy(data.reshape(n, *IMAGE_SHAPE)),
        labels=torch.from_numpy(np.concatenate(labels)),
        ids=torch.arange(n, dtype=torch.long),
        classes=classes,
    )


def _read_batch(path: Path, label_key: str, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Validated ``(rows uint8 [n, 3072], labels int64 [n])`` of one batch file."""
    batch = read_cifar_pickle(path)
    _require_keys(path, batch, ("data", label_key))
    data = batch["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != ROW_BYTES:
        found = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise CorruptDataError(
            f"{path}: 'data' must be a uint8 array of shape [n, {ROW_BYTES}] (32x32 RGB images), "
            f"found {found}. The file is not an official CIFAR batch; unpack the official archive again."
        )
    labels = _as_label_array(path, batch[label_key], label_key)
    if labels.shape[0] != data.shape[0]:
        raise CorruptDataError(
            f"{path}: {data.shape[0]} images but {labels.shape[0]} entries in '{label_key}'. "
            "The file is damaged; unpack the official archive again."
        )
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise CorruptDataError(
            f"{path}: '{label_key}' must lie in [0, {num_classes}), found [{labels.min()}, {labels.max()}]. "
            "The file is damaged or belongs to another dataset; unpack the official archive again."
        )
    return data, labels


def _as_label_array(path: Path, raw: Any, key: str) -> np.ndarray:
    """Labels (a list of ints in the official files) as int64 ``[n]``."""
    arr = np.asarray(raw) if isinstance(raw, (list, tuple, np.ndarray)) else None
    if arr is not None and arr.size == 0:
        return np.zeros(0, dtype=np.int64)  # np.asarray([]) is float64
    if arr is None or arr.ndim != 1 or arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise CorruptDataError(
            f"{path}: '{key}' must be a list of integer class indices, found {type(raw).__name__}"
            f"{'' if arr is None else f' of {arr.dtype} {arr.shape}'}. "
            "The file is damaged; unpack the official archive again."
        )
    return arr.astype(np.int64)


def _class_names(path: Path, key: str, expected: int) -> tuple[str, ...]:
    meta = read_cifar_pickle(path)
    _require_keys(path, meta, (key,))
    names = meta[key]
    if (not isinstance(names, (list, tuple)) or len(names) != expected
            or not all(isinstance(n, (bytes, str)) for n in names)):
        raise CorruptDataError(
            f"{path}: '{key}' must be a list of {expected} class names, found "
            f"{type(names).__name__} of length {len(names) if hasattr(names, '__len__') else '?'}. "
            "The meta file is damaged or belongs to another dataset; unpack the official archive again."
        )
    return tuple(n.decode("utf-8", errors="replace") if isinstance(n, bytes) else n for n in names)


def _require_keys(path: Path, obj: dict, keys: tuple[str, ...]) -> None:
    missing = [k for k in keys if k not in obj]
    if missing:
        present = ", ".join(sorted(str(k) for k in obj)) or "none"
        raise CorruptDataError(
            f"{path} lacks the key(s) {', '.join(missing)} (it has: {present}). It is not an official "
            "CIFAR file of this kind (CIFAR-10 and CIFAR-100 files differ); unpack the official archive "
            "again or point --data-root at the right folder."
        )
