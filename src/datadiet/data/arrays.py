"""Arrays brought by the user: ``--dataset arrays:FILE.npz``, ``arrays:DIR``, or tensors in Python.

Files
-----
``arrays:FILE.npz``: one ``.npz`` archive with the keys ``x_train``, ``y_train``, ``x_test``, ``y_test`` and,
optionally, ``ids_train`` and ``classes``.  ``arrays:DIR``: a folder with the same names as ``.npy`` files
(``x_train.npy``, ...).  Both are read with ``allow_pickle=False`` (string arrays such as ``classes`` of
dtype ``<U...`` load fine; object arrays are refused).  Other keys or files are ignored.
:func:`save_arrays` writes such a file from arrays or tensors.

Inputs (``x_train``, ``x_test``)
--------------------------------
* images: uint8, 4-D.  Layout rule: ``[N, H, W, C]`` (NHWC) when the last dimension is 1, 3 or 4 and the
  second is not; otherwise ``[N, C, H, W]`` (NCHW).  So an ambiguous array such as ``[N, 3, 4, 3]`` is read
  as NCHW; NHWC arrays are transposed to NCHW.  A 3-D uint8 array ``[N, H, W]`` is one-channel images.
  Channels are kept as given (an alpha channel too).
* features: a 2-D float array ``[N, D]`` (float16/32/64), stored as float32; every value must be finite (also
  after the conversion to float32).  Features are normalized per dimension with the training split's mean and
  standard deviation and never augmented.

Anything else (float images, 2-D integer arrays, ...) is refused with the rule above, and so are empty
examples (features ``[N, 0]``, images with no channel or a side of 0 pixels: their statistics would be NaN).
Both splits must have the same kind and per-example shape.  Tensors given in Python must hold their values: a
meta tensor (a shape without data) or a sparse one is refused naming its argument; bfloat16 becomes float32.

Labels, classes, ids
--------------------
``y_train``/``y_test`` are 1-D integer arrays, one per example, in ``[0, K)``.  ``classes`` (optional, 1-D
strings, unique) names the K classes; without it ``K = max label + 1`` and the names are ``"0".."K-1"``.
Without ``classes`` the labels must be dense: ``K`` may exceed the number of distinct labels by at most
:data:`SPARE_CLASSES` and by at most half, so that a stray label (1,000,000 among 0..9) is refused instead
of building a million-way model; remap such labels to 0..K-1 or name the classes.  The training split needs
at least two distinct labels.  ``ids_train`` (optional, 1-D integers >= 0, unique) gives each training
example the user's own id; without it the ids are ``0..N-1``.  Test ids are always ``0..N_test-1``.  The
canonical order is the arrays' order.

Size guard
----------
Files are read by :func:`datadiet.io.read_npz` and :func:`~datadiet.io.read_npy`, which check the sizes the zip
and ``.npy`` headers declare before anything is decompressed: the arrays together must fit in the memory
available (``MemAvailable``), a member may not declare more array bytes than it holds, and a member of more
than 64 MiB may not be compressed more than 200:1 (a zip bomb; real data compresses far less, and an
uncompressed ``np.savez`` file is never refused).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ..errors import ConfigError, CorruptDataError, DatasetNotFoundError
from ..io import atomic_path, check_memory, read_npy, read_npz
from .dataset import DatasetSplits, ImageDataset, make_splits

REQUIRED_KEYS = ("x_train", "y_train", "x_test", "y_test")
OPTIONAL_KEYS = ("ids_train", "classes")
_CHANNELS = (1, 3, 4)
SPARE_CLASSES = 10         # labels without `classes`: at most this many (and half) of the K classes unused


def load_arrays(path: str | os.PathLike, *, name: str | None = None) -> DatasetSplits:
    """The splits stored at ``path``: a ``.npz`` file or a folder of ``.npy`` files (see the module docstring)."""
    path = Path(path).expanduser()
    name = name or f"arrays:{path}"
    if path.is_dir():
        arrays, where = _read_npy_folder(path)
    elif path.is_file():
        arrays, where = _read_npz(path)
    else:
        raise DatasetNotFoundError(f"{name}: {path} does not exist; give a .npz file or a folder of .npy files.")
    source = {"kind": "arrays", "path": os.path.abspath(path), "format": "npy folder" if path.is_dir() else "npz"}
    return splits_from_arrays(**arrays, name=name, where=where, source=source, copy=False)


# What a refused arrays file is not, and how to write a good one.
_WHAT = "an arrays dataset (.npz of x_train, y_train, x_test, y_test)"
_FIX = ("Write it with datadiet.data.save_arrays or numpy.savez (plain numeric arrays; class names as a string "
        "array, e.g. np.array(['cat', 'dog'])), or give a folder of .npy files.")


def _read_npz(path: Path) -> tuple[dict[str, np.ndarray], Callable[[str], str]]:
    arrays = read_npz(path, what=_WHAT, required=REQUIRED_KEYS, optional=OPTIONAL_KEYS, fix=_FIX)
    return arrays, lambda k: f"{path}: key {k!r}"


def _read_npy_folder(folder: Path) -> tuple[dict[str, np.ndarray], Callable[[str], str]]:
    found = sorted(p.stem for p in folder.glob("*.npy"))
    missing = [k for k in REQUIRED_KEYS if k not in found]
    if missing:
        raise CorruptDataError(f"{folder} holds {', '.join(f'{k}.npy' for k in found) or 'no .npy file'}; it lacks "
                               f"{', '.join(k + '.npy' for k in missing)}. Arrays need "
                               f"{', '.join(k + '.npy' for k in REQUIRED_KEYS)} (and optionally "
                               f"{', '.join(k + '.npy' for k in OPTIONAL_KEYS)}).")
    files = {k: folder / f"{k}.npy" for k in (*REQUIRED_KEYS, *OPTIONAL_KEYS) if (folder / f"{k}.npy").is_file()}
    check_memory(sum(f.stat().st_size for f in files.values()), str(folder))  # all of them, before reading any
    arrays = {k: read_npy(file, what="a plain .npy array", fix=_FIX) for k, file in files.items()}
    return arrays, lambda k: str(folder / f"{k}.npy")


# ----------------------------------------------------------------------------- arrays → splits

def splits_from_arrays(x_train: Any, y_train: Any, x_test: Any, y_test: Any, *, classes: Any = None,
                       ids_train: Any = None, name: str = "tensors", where: Callable[[str], str] | None = None,
                       source: dict | None = None, copy: bool = True) -> DatasetSplits:
    """Check and convert arrays (numpy or torch) into train and test splits with normalization statistics.

    ``where(key)`` says where an array came from, for messages (default: the key itself).  ``copy``: never
    share memory with the arrays given (a later change to them would not show in the fingerprint).
    """
    where = where or (lambda k: k)
    x_tr, x_te = _inputs(x_train, "x_train", where, copy), _inputs(x_test, "x_test", where, copy)
    kind_tr, kind_te = _kind(x_tr), _kind(x_te)
    if (kind_tr, x_tr.shape[1:]) != (kind_te, x_te.shape[1:]):
        raise CorruptDataError(f"{where('x_train')} holds {kind_tr} of shape {list(x_tr.shape[1:])} but "
                               f"{where('x_test')} holds {kind_te} of shape {list(x_te.shape[1:])}; both splits "
                               "need the same kind and shape per example.")
    y_tr = _labels(y_train, "y_train", len(x_tr), "x_train", where)
    y_te = _labels(y_test, "y_test", len(x_te), "x_test", where)
    names = _classes(classes, where)
    k = len(names) if names is not None else int(max(y_tr.max(), y_te.max())) + 1
    if names is None:
        _check_dense(y_tr, y_te, k, where)
    for key, y in (("y_train", y_tr), ("y_test", y_te)):
        bad = np.flatnonzero((y < 0) | (y >= k))
        if len(bad):
            limit = f"the {k} classes in {where('classes')}" if names is not None else "class indices >= 0"
            raise CorruptDataError(f"{where(key)}: label {int(y[bad[0]])} at row {int(bad[0])} ({len(bad)} such "
                                   f"rows) is out of range; labels must be in [0, {k}) for {limit}.")
    names = names if names is not None else tuple(str(i) for i in range(k))
    if len(np.unique(y_tr)) < 2:
        raise CorruptDataError(
            f"{where('y_train')}: every training example has label {int(y_tr[0])} ({names[int(y_tr[0])]!r}); a "
            "classifier needs at least 2 classes (with one, every model is 100% accurate and every score is 0). "
            "Add examples of the other classes.")
    ids = _ids(ids_train, len(x_tr), where)
    notes = {"source": source or {"kind": "tensors"}}
    train = ImageDataset(name=name, split="train", images=torch.from_numpy(x_tr), labels=torch.from_numpy(y_tr),
                         ids=torch.from_numpy(ids), classes=names, notes=notes)
    test = ImageDataset(name=name, split="test", images=torch.from_numpy(x_te), labels=torch.from_numpy(y_te),
                        ids=torch.arange(len(x_te), dtype=torch.long), classes=names, notes=notes)
    return make_splits(train, test)


def _numpy(value: Any, key: str, where: Callable[[str], str]) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        _check_tensor(value, key, where)
        value = value.detach().cpu()
        if value.dtype == torch.bfloat16:  # numpy has no bfloat16; float32 holds every bfloat16 exactly
            value = value.float()
        try:
            return value.numpy()
        except TypeError as exc:  # a dtype numpy lacks (float8, ...)
            raise ConfigError(f"{where(key)} is a tensor of dtype {value.dtype}, which numpy cannot hold ({exc}). "
                              "Convert it first: images to torch.uint8, features to torch.float32, labels and ids "
                              "to torch.int64.") from exc
    return np.asarray(value)


def _check_tensor(value: torch.Tensor, key: str, where: Callable[[str], str]) -> None:
    """Refuse a tensor whose values cannot be read: a meta tensor has a shape but no data (torch raises a bare
    NotImplementedError when asked for it), a sparse one has no dense array."""
    if value.is_meta:
        raise ConfigError(f"{where(key)} is a tensor on the meta device: it has a shape ({list(value.shape)}) but "
                          "no values. Pass the tensor that holds the data (on the CPU or a GPU).")
    if value.layout != torch.strided:
        raise ConfigError(f"{where(key)} is a {value.layout} tensor; datadiet reads dense tensors. Pass "
                          f"{key}.to_dense().")


def _kind(x: np.ndarray) -> str:
    return "features" if x.ndim == 2 else "images"


def _inputs(value: Any, key: str, where: Callable[[str], str], copy: bool) -> np.ndarray:
    """uint8 NCHW images or float32 features, contiguous; anything else is refused with the rule."""
    given = _numpy(value, key, where)
    x = given
    if x.dtype == np.uint8 and x.ndim == 3:
        x = x[:, None]
    if x.dtype == np.uint8 and x.ndim == 4:
        if x.shape[-1] in _CHANNELS and x.shape[1] not in _CHANNELS:
            x = x.transpose(0, 3, 1, 2)
        out = np.ascontiguousarray(x)
    elif x.ndim == 2 and x.dtype.kind == "f":
        with np.errstate(over="ignore"):  # a float64 beyond float32's range becomes inf: refused just below
            out = np.ascontiguousarray(x, dtype=np.float32)
        finite = np.isfinite(out).all(axis=1)
        if not finite.all():
            rows = np.flatnonzero(~finite)
            overflow = bool(np.isfinite(x[rows[0]]).all())
            raise CorruptDataError(
                f"{where(key)}: {len(rows)} rows hold NaN or infinite features (first: row {int(rows[0])}"
                + (", finite in float64 but too large for float32" if overflow else "") + "). Features must be "
                "finite: drop or impute those rows.")
    else:
        raise CorruptDataError(
            f"{where(key)} is {x.dtype} with shape {list(x.shape)}: expected uint8 images [N, C, H, W] or "
            "[N, H, W, C] (C = 1, 3 or 4) or [N, H, W], or float features [N, D]. Convert images to uint8 "
            "(0..255), or features to float32.")
    if len(out) == 0:
        raise CorruptDataError(f"{where(key)} holds no examples; both splits need at least one.")
    if 0 in out.shape[1:]:
        raise CorruptDataError(_empty_examples(where(key), out.shape))
    if (copy and np.may_share_memory(out, given)) or not out.flags.writeable:
        out = out.copy()
    return out


def _empty_examples(where: str, shape: tuple[int, ...]) -> str:
    """Why examples with a zero-length side are refused: each holds no value, so the training split's mean and
    standard deviation are NaN and every model sees nothing."""
    if len(shape) == 2:
        return (f"{where} holds features of shape {list(shape)}: each example has no feature at all (D = 0). "
                "Features need at least one dimension, [N, D] with D >= 1.")
    sides = ", ".join(f"{name} {n}" for name, n in zip(("channels", "height", "width"), shape[1:]) if n == 0)
    return (f"{where} holds empty images of shape {list(shape)} (as [N, C, H, W]: {sides}): they have no pixel. "
            "Every image needs at least one channel and one pixel; check how the array was built.")


def _labels(value: Any, key: str, n: int, x_key: str, where: Callable[[str], str]) -> np.ndarray:
    y = _numpy(value, key, where)
    if y.dtype.kind not in "iu":
        raise CorruptDataError(f"{where(key)} has dtype {y.dtype}: labels must be integer class indices 0..K-1 "
                               "(e.g. y.astype(np.int64) if they are whole numbers stored as floats).")
    if y.shape != (n,):
        raise CorruptDataError(f"{where(key)} has shape {list(y.shape)} but {where(x_key)} holds {n} examples: "
                               f"labels must be one integer per example, shape [{n}].")
    if y.dtype.kind == "u" and n and y.max() > np.iinfo(np.int64).max:
        raise CorruptDataError(f"{where(key)}: label {int(y.max())} is too large for a class index.")
    return y.astype(np.int64)


def _check_dense(y_tr: np.ndarray, y_te: np.ndarray, k: int, where: Callable[[str], str]) -> None:
    """Labels without class names must use most of 0..K-1: K = max + 1 classes are built, used or not."""
    if y_tr.min(initial=0) < 0 or y_te.min(initial=0) < 0:
        return  # refused just after, with the row named
    used = len(np.union1d(y_tr, y_te))
    if k - used > SPARE_CLASSES and k > 2 * used:
        largest = "y_train" if y_tr.max() >= y_te.max() else "y_test"
        raise CorruptDataError(
            f"{where(largest)}: the labels take {used} distinct values but the largest is {k - 1:,}, so the model "
            f"would have {k:,} outputs, {k - used:,} of them for classes that never occur. Remap the labels to "
            "0..K-1 (e.g. _, y = np.unique(y, return_inverse=True)), or store a 'classes' array naming each class "
            "(labels index it).")


def _classes(value: Any, where: Callable[[str], str]) -> tuple[str, ...] | None:
    if value is None:
        return None
    c = _numpy(value, "classes", where)
    if c.ndim != 1 or len(c) == 0 or c.dtype.kind not in "USiu":
        raise CorruptDataError(f"{where('classes')} must be a non-empty 1-D array of class names (strings), got "
                               f"{c.dtype} with shape {list(c.shape)}.")
    names = tuple(v.decode() if isinstance(v, bytes) else str(v) for v in c.tolist())
    seen: dict[str, int] = {}
    for i, n in enumerate(names):
        if n in seen:
            raise CorruptDataError(f"{where('classes')}: class name {n!r} appears twice (positions {seen[n]} and "
                                   f"{i}); class names must be unique.")
        seen[n] = i
    return names


def _ids(value: Any, n: int, where: Callable[[str], str]) -> np.ndarray:
    if value is None:
        return np.arange(n, dtype=np.int64)
    ids = _numpy(value, "ids_train", where)
    if ids.dtype.kind not in "iu" or ids.shape != (n,):
        raise CorruptDataError(f"{where('ids_train')} must be {n} integers, one per training example; got "
                               f"{ids.dtype} with shape {list(ids.shape)}.")
    if ids.dtype.kind == "u" and n and ids.max() > np.iinfo(np.int64).max:
        raise CorruptDataError(f"{where('ids_train')}: id {int(ids.max())} does not fit in int64.")
    ids = ids.astype(np.int64)
    if n and ids.min() < 0:
        row = int(np.argmin(ids))
        raise CorruptDataError(f"{where('ids_train')}: id {int(ids[row])} at row {row} is negative; ids must be whole "
                               "numbers >= 0 (subset manifests and score files refuse negative ids).")
    values, first, counts = np.unique(ids, return_index=True, return_counts=True)
    if (counts > 1).any():
        dups = values[counts > 1]
        rows = {int(v): np.flatnonzero(ids == v)[:3].tolist() for v in dups[:3]}
        shown = "; ".join(f"id {v} at rows {r}" for v, r in rows.items())
        raise CorruptDataError(f"{where('ids_train')} holds {len(dups)} duplicated ids ({shown}); every training "
                               "example needs its own id.")
    return ids


# ----------------------------------------------------------------------------- saving

def save_arrays(path: str | os.PathLike, x_train: Any, y_train: Any, x_test: Any, y_test: Any, *,
                ids_train: Any = None, classes: Sequence[str] | None = None) -> Path:
    """Write arrays or tensors as a ``.npz`` that ``--dataset arrays:PATH`` (and worker processes) can load.

    The arrays are checked first (the same rules as loading: nothing is written for bad input) and stored in
    canonical form: images uint8 NCHW, features float32, labels and ids int64, classes as strings.  The file is
    written atomically.  Returns the path.
    """
    path = Path(path).expanduser()
    if path.suffix != ".npz":
        raise ConfigError(f"save_arrays writes a .npz file; name it *.npz, got {path}.")
    splits = splits_from_arrays(x_train, y_train, x_test, y_test, classes=classes, ids_train=ids_train,
                                name=f"arrays:{path}")
    stored = {"x_train": splits.train.images.numpy(), "y_train": splits.train.labels.numpy(),
              "x_test": splits.test.images.numpy(), "y_test": splits.test.labels.numpy(),
              "classes": np.asarray(splits.train.classes, dtype=str)}
    if ids_train is not None:
        stored["ids_train"] = splits.train.ids.numpy()
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **stored)
    return path
