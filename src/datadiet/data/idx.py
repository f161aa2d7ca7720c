"""Reader for the IDX format of MNIST and Fashion-MNIST (optionally gzipped).

IDX layout: two zero bytes, a type byte (0x08 = uint8), a byte with the
number of dimensions, then one big-endian uint32 per dimension, then the data.
We only accept what (Fashion-)MNIST actually ships: uint8 images ``[N, H, W]``
(magic 0x00000803) and uint8 labels ``[N]`` (magic 0x00000801).
"""
from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

from ..errors import CorruptDataError, DataDietError, DatasetNotFoundError
from ..io import UnreadableFileError, check_memory, open_regular
from .dataset import DatasetSplits, ImageDataset, make_splits

IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801

# Official file stems; each may be stored as ``stem`` or ``stem.gz``.
SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def read_idx(path: str | Path, *, expected_magic: int) -> np.ndarray:
    """Read one IDX file into a uint8 array, validating magic number and size.

    The header says how many bytes of data follow (the product of the dimensions, one byte each), so exactly
    that many are read, in chunks, into one preallocated array, and one byte more only to see that nothing
    follows: a gzipped file that inflates to far more than its header promises (a gzip bomb) costs no more
    memory than the header's size, and a header that promises more than the memory available is refused
    before anything is allocated.
    """
    path = Path(path)
    try:
        with open_regular(path) as raw:  # a pipe or device in place of a data file would block or never end
            compressed = raw.read(2) == b"\x1f\x8b"
            raw.seek(0)
            if not compressed:
                return _read_stream(raw, path, expected_magic, size=os.fstat(raw.fileno()).st_size)
            with gzip.GzipFile(fileobj=raw, mode="rb") as fh:
                return _read_stream(fh, path, expected_magic, size=None)
    except UnreadableFileError as exc:  # missing, a pipe, a device: the data is not where we looked
        raise DatasetNotFoundError(f"Cannot read {path}: it {exc.why if exc.missing else 'is ' + exc.why}.") from None
    except DataDietError:  # already one paragraph (some error types are also OSError or ValueError)
        raise
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise CorruptDataError(
            f"{path} is a damaged gzip file ({exc}). It was probably cut short while downloading; "
            "delete it and download it again (`datadiet download <dataset>`), or reinstall the "
            "Debian package dataset-fashion-mnist."
        ) from exc
    except OSError as exc:
        raise DatasetNotFoundError(f"Cannot read {path}: {exc.strerror or exc}.") from exc


_READ_CHUNK = 1 << 20  # bytes per read: the decompressor never holds more than this beyond the array


def _read_stream(fh: BinaryIO, path: Path, expected_magic: int, *, size: int | None) -> np.ndarray:
    """The array of an IDX stream: its header, then exactly the bytes the header promises (``size``: the
    plain file's size, checked before reading any data; ``None`` for a gzip stream, whose length is unknown)."""
    dims = _read_header(fh, path, expected_magic)
    expected = math.prod(dims)
    if size is not None and size - fh.tell() != expected:
        raise _size_mismatch(path, expected, dims, size - fh.tell())
    check_memory(expected, str(path))
    data = np.empty(expected, dtype=np.uint8)
    got = _read_into(fh, data)
    if got < expected:
        raise _size_mismatch(path, expected, dims, got)
    if fh.read(1):  # the header promised less than the file holds: stop here rather than inflate the rest
        raise _size_mismatch(path, expected, dims, f"more than {expected}")
    return data.reshape(dims)


def _read_header(fh: BinaryIO, path: Path, expected_magic: int) -> tuple[int, ...]:
    """The dimensions an IDX header declares, after checking its magic number; ``fh`` is left at the data."""
    head = fh.read(4)
    if len(head) < 4:
        raise CorruptDataError(f"{path} is too short to be an IDX file ({len(head)} bytes). Re-download it.")
    (magic,) = struct.unpack(">I", head)
    if magic != expected_magic:
        raise CorruptDataError(
            f"{path} has IDX magic number 0x{magic:08x}, expected 0x{expected_magic:08x}. "
            "It is not a (Fashion-)MNIST "
            + ("image" if expected_magic == IMAGES_MAGIC else "label")
            + " file, or it is damaged; re-download it or point --data-root at the right folder."
        )
    ndim = magic & 0xFF
    raw_dims = fh.read(4 * ndim)
    if len(raw_dims) < 4 * ndim:
        raise CorruptDataError(f"{path}: IDX header is truncated. Re-download the file.")
    return struct.unpack(f">{ndim}I", raw_dims)


def _read_into(fh: BinaryIO, data: np.ndarray) -> int:
    """Fill ``data`` from ``fh`` in chunks; how many bytes there were (fewer than ``data`` holds: truncated)."""
    view = memoryview(data).cast("B")
    got = 0
    while got < len(view):
        n = fh.readinto(view[got:got + _READ_CHUNK])
        if not n:
            break
        got += n
    return got


def _size_mismatch(path: Path, expected: int, dims: tuple[int, ...], found: int | str) -> CorruptDataError:
    return CorruptDataError(
        f"{path}: header promises {expected} bytes of data for shape {dims}, "
        f"found {found}. The file is truncated or padded; re-download it."
    )


def find_idx_file(root: Path, stem: str) -> Path | None:
    for candidate in (root / f"{stem}.gz", root / stem):
        if candidate.is_file():
            return candidate
    return None


def idx_parts(root: Path) -> dict[str, bool]:
    """Each of the four files a (Fashion-)MNIST folder needs (``stem(.gz)``), and whether ``root`` has it."""
    root = Path(root)
    return {f"{stem}(.gz)": find_idx_file(root, stem) is not None for pair in SPLIT_FILES.values() for stem in pair}


def has_idx_files(root: Path) -> bool:
    return all(idx_parts(root).values())


def load_idx_splits(root: str | Path, *, name: str, classes: tuple[str, ...]) -> DatasetSplits:
    """Load train and test splits of an MNIST-format dataset from ``root``."""
    root = Path(root)
    missing = [part for part, present in idx_parts(root).items() if not present]
    if missing:
        package = " or reinstall the Debian package dataset-fashion-mnist" if name == "fashion-mnist" else ""
        raise DatasetNotFoundError(
            f"{name}: {root} lacks {', '.join(missing)} ({4 - len(missing)} of the 4 IDX files are there). "
            f"Download the dataset again (`datadiet download {name} --data-root DIR`){package}."
        )
    splits = {split: _load_split(root, split, name, classes) for split in SPLIT_FILES}
    return make_splits(splits["train"], splits["test"])


def _load_split(root: Path, split: str, name: str, classes: tuple[str, ...]) -> ImageDataset:
    image_stem, label_stem = SPLIT_FILES[split]
    image_path, label_path = find_idx_file(root, image_stem), find_idx_file(root, label_stem)
    if image_path is None or label_path is None:
        missing = image_stem if image_path is None else label_stem
        raise DatasetNotFoundError(f"{name}: {missing}(.gz) is missing from {root}.")
    images = read_idx(image_path, expected_magic=IMAGES_MAGIC)
    labels = read_idx(label_path, expected_magic=LABELS_MAGIC)
    if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
        raise CorruptDataError(
            f"{name}/{split}: {image_path.name} has shape {images.shape} but {label_path.name} has "
            f"shape {labels.shape}; they must hold the same number of examples. Re-download both files."
        )
    n = labels.shape[0]
    if n and (int(labels.max()) >= len(classes)):
        raise CorruptDataError(f"{name}/{split}: {label_path} holds labels up to {int(labels.max())}, but {name} has "
                               f"{len(classes)} classes (0..{len(classes) - 1}). The label file is corrupt or "
                               "belongs to another dataset: download it again.")
    return ImageDataset(
        name=name,
        split=split,
        images=torch.from_numpy(images).unsqueeze(1),  # read_idx's own array: writable, unshared
        labels=torch.from_numpy(labels.astype(np.int64)),
        ids=torch.arange(n, dtype=torch.long),
        classes=classes,
    )
