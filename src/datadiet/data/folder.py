"""Image folders brought by the user: ``--dataset folder:PATH`` or ``Dataset.from_folder(PATH)``.

Layouts
-------
Two splits, used as they are::

    PATH/train/<class>/<image>
    PATH/test/<class>/<image>

or one split, from which a seeded, stratified fraction of every class is held out as the test split::

    PATH/<class>/<image>

A folder holding ``train/`` or ``test/`` is read as the two-split layout and must hold both (so a one-split
folder cannot have a class named ``train`` or ``test``); other entries beside them (a ``valid/``, a README)
are ignored.  Every image anywhere below a class folder belongs to that class (sub-folders are allowed).

Which files are read
--------------------
Only regular files with an image extension (:data:`IMAGE_EXTENSIONS`, any case) are read; every other entry is
ignored but listed, with the reason where it is not plain (``datadiet data`` shows them): other files
(``notes.txt``, ``Thumbs.db``), files outside a class folder, hidden folders (``.cat/``, a class folder too:
"hidden") and hidden files named like images, a FIFO or device named ``*.png`` ("not a regular file": opening
it could block forever), a broken link, and the linked folders that are not followed (below).  Other hidden
files (``.DS_Store``) are skipped without a word.  A folder that cannot be listed (no permission, a path too
long for the system) and a file with an image extension that Pillow cannot decode are errors naming them,
never skipped: either would silently drop examples.  An empty image (a side of 0 pixels) is an error too.  A
dataset needs at least two classes.

Linked files are followed.  A linked folder is followed once in the whole dataset, and only where its images
stay in its own class: to a folder outside the image folder (images kept on another disk) or within its own
class folder.  Listed instead, not read: a link to a folder already read ("a link to a folder already read": a
loop, or a second link to one folder, in any class or split), to a folder that holds the folder it is in
("above it", e.g. ``..``: it would read the folder again, and every other class with it under this label), to
a folder that holds the image folder, and to another class or split of the dataset ("out of its class
folder", or for a class folder "a link to another folder of the dataset": its images would get a second
label, or be in both splits).

Canonical order (ids are positions in it)
-----------------------------------------
1. split: train, then test;
2. class: the class folders' names sorted with plain string sort; a class's label is its position in that
   list, which must be the same in both splits;
3. file: within a class, the file's path relative to ``PATH`` as a POSIX string, sorted the same way.

Train ids are ``0..N_train-1`` in the train split's canonical order and test ids ``0..N_test-1`` in the test
split's.  In the one-split layout each split keeps the canonical order of the files it received, so held-out
test ids are positions in the sorted list of held-out files.  :func:`list_folder` returns the files, so the
example with id ``i`` of a split is ``listing.files[split][i]``.

Held-out test split (one-split layout)
--------------------------------------
A class with ``n`` files gives ``k = round(test_fraction * n)`` of them (halves round up), at most ``n - 1``,
to the test split: the ``k`` files whose SHA-256 of ``"<seed>\0<relative path>"`` is smallest.  So the same
seed always holds out the same files, on any platform and numpy version; adding or removing a class changes
nothing in the others, and adding a file to a class moves at most the files at the edge of its draw.  A
split that would leave the test set empty is an error.

Decoding
--------
Pillow decodes each image into uint8 ``[N, C, H, W]``.  Grayscale modes (``1``, ``L``, ``LA``, ``I``,
``I;16``, ``F``) count as 1 channel, every other mode (``RGB``, ``RGBA``, palette ``P``, ``CMYK``, ...) as 3.
16-bit grayscale (``I;16``, and ``I`` with values in 0..65535) is scaled to 8 bits, ``round(v * 255 / 65535)``,
never clipped; 32-bit float images (``F``) and ``I`` images outside 0..65535 are refused, naming the file.
Alpha is dropped, not composited onto a background; a palette image counts as colour; an animated GIF gives
its first frame; EXIF orientation is not applied.  With ``channels=None`` every image must have the same
count (else an error names one file of each kind); ``channels=1`` or ``3`` converts every image with
Pillow's ``convert("L")`` / ``convert("RGB")``.  Sizes must agree unless ``resize=(H, W)`` is given; then
every image of another size is resized with Pillow's bilinear filter (after the channel conversion).

Cache
-----
Decoded arrays are kept in ``$DATADIET_CACHE/folders/`` (default ``~/.cache/datadiet/folders/``, never
inside the image folder) as an uncompressed ``.npz`` read with ``allow_pickle=False``.  Its key hashes the
layout, the class list, every file's relative path, label and SHA-256 of its bytes, and the decode options
(``resize``, ``channels``, and for the one-split layout ``test_fraction`` and ``seed``).  The bytes, not the
size and modification time: a file rewritten with its old time restored (by ``rsync -t``, ``cp -p``, a
checkout) is another image.  Hashing reads every file once per load, about 7 µs per small PNG on a warm disk
against about 50 µs to decode it.  Replacing, adding or removing a file changes the key, so a cache made
from other files is never reused: the folder is decoded again and the stale cache file of the same folder
and options is deleted.  The cache is written atomically (a temporary file, flushed, then renamed); a damaged
cache file is decoded again and replaced.  A temporary is named after the machine and process writing it
(``.<cache name>.<host>.<pid>.<random>.tmp``), so the next load removes those left by a write that was killed
(their process is gone) without looking at the clock, and never one that a live process is writing; those
of another machine (a shared cache folder: its processes cannot be looked up here) and of earlier versions (no
process in the name) are removed once :data:`ORPHAN_AGE` seconds old.  A cache that cannot be used
(``$DATADIET_CACHE`` not a writable folder, or a path too long for the system) is said so, with how to fix
``$DATADIET_CACHE`` (a warning, and ``cache_status`` in the source notes), and the folder is decoded without it.
"""
from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import re
import secrets
import socket
import stat
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from ..errors import ConfigError, CorruptDataError, DataDietError, DatasetNotFoundError
from ..io import read_npz
from .dataset import DatasetSplits, ImageDataset, make_splits

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"})
SPLITS = ("train", "test")
CACHE_ENV = "DATADIET_CACHE"
DEFAULT_CACHE = "~/.cache/datadiet"
CACHE_FORMAT = 2  # bump when the cached arrays' meaning changes: every old cache is then rebuilt (2: 16-bit scaled)
GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "F", "I;16", "I;16L", "I;16B", "I;16N"})
WIDE_MODES = frozenset({"I", "I;16", "I;16L", "I;16B", "I;16N"})  # integer grayscale wider than 8 bits
ORPHAN_AGE = 600  # seconds: a cache temporary whose writer cannot be looked up (another machine's, or an
                  # earlier version's, which names none) this old is an orphan
MIN_CLASSES = 2
_INLINE = 256  # fewer files than this are decoded on the calling thread (no pool to start)
_CHUNK = 512   # files per work item of the thread pool


class CacheWarning(UserWarning):
    """The decoded-image cache could not be written; the folder is decoded again next time."""


@dataclass(frozen=True)
class FolderListing:
    """What an image folder holds, in canonical order (see the module docstring).

    Attributes:
        root: the folder.
        layout: ``"split"`` (``train/`` and ``test/``) or ``"single"`` (test split held out per class).
        classes: class names, sorted; a label is a position in this tuple.
        files: split → paths relative to ``root`` (POSIX strings), canonical order: id ``i`` is ``files[split][i]``.
        labels: split → int64 labels ``[N]``.
        stats: split → ``(size in bytes, st_mtime_ns)`` of every file, in the same order.
        ignored: paths relative to ``root`` of the entries not read (non-image files, files outside a class
            folder, folders beside ``train/`` and ``test/``, hidden folders, linked folders not followed; folders
            end with ``/``), sorted; an entry ignored for a reason other than its name carries it in parentheses
            (``"a/x.png (not a regular file)"``, ``".cat/ (hidden)"``, ``"a/up/ (a link to a folder above it)"``).
    """

    root: Path
    layout: str
    classes: tuple[str, ...]
    files: dict[str, tuple[str, ...]]
    labels: dict[str, np.ndarray]
    stats: dict[str, tuple[tuple[int, int], ...]]
    ignored: tuple[str, ...]


# ----------------------------------------------------------------------------- listing

def list_folder(path: str | os.PathLike, *, test_fraction: float = 0.2, seed: int = 0) -> FolderListing:
    """The files of an image folder in canonical order, split into train and test (no image is decoded)."""
    root = Path(path).expanduser()
    if not root.is_dir():
        raise DatasetNotFoundError(f"{root} is not a folder; folder: needs a folder of class folders.")
    scan = _Scan(root=root, real_root=os.path.realpath(root), ignored=[], seen=set())
    present = [s for s in SPLITS if (root / s).is_dir()]
    if present:
        missing = [s for s in SPLITS if s not in present]
        if missing:
            raise DatasetNotFoundError(
                f"{root} has {present[0]}/ but no {missing[0]}/. A folder with train/ or test/ must have both "
                f"(PATH/train/<class>/... and PATH/test/<class>/...); for one folder of classes with a held-out "
                f"test fraction, rename {present[0]}/ so that it is not a split folder.")
        scan.ignored += [note for e in _entries(root) if e.name not in SPLITS
                         for note in [_ignored(root, e)] if note]
        scanned = {s: _scan_classes(scan, root / s) for s in SPLITS}
        _check_same_classes(root, scanned["train"], scanned["test"])
        layout = "split"
    else:
        scanned = _hold_out(root, _scan_classes(scan, root), test_fraction, seed)
        layout = "single"
    classes = tuple(scanned["train"])
    _check_class_count(root, classes)
    files, labels, stats = {}, {}, {}
    for split in SPLITS:
        entries = [(label, entry) for label, cls in enumerate(classes) for entry in scanned[split][cls]]
        files[split] = tuple(rel for _, (rel, _, _) in entries)
        labels[split] = np.asarray([label for label, _ in entries], dtype=np.int64)
        stats[split] = tuple((size, mtime) for _, (_, size, mtime) in entries)
    return FolderListing(root=root, layout=layout, classes=classes, files=files, labels=labels, stats=stats,
                         ignored=tuple(sorted(scan.ignored)))


def _entries(folder: Path) -> list[os.DirEntry]:
    try:
        with os.scandir(folder) as it:
            return sorted(it, key=lambda e: e.name)
    except OSError as exc:
        raise _unlistable(folder, exc) from exc


def _is_image_name(name: str) -> bool:
    return Path(name).suffix.lower() in IMAGE_EXTENSIONS


def _rel(root: Path, path: str | os.PathLike) -> str:
    return Path(os.path.relpath(path, root)).as_posix()


def _ignored(root: Path, entry: os.DirEntry) -> str | None:
    """How an entry that is not read is listed: its path (``/`` after a folder), and why, when not by its name;
    ``None`` for a hidden file that is not named like an image (``.DS_Store``): not listed."""
    rel = _rel(root, entry.path)
    if entry.name.startswith("."):
        return _hidden(rel, entry.is_dir())
    if entry.is_dir():
        return rel + "/"
    why, _ = _file_stat(entry.path)
    return f"{rel} ({why})" if why else rel


def _hidden(rel: str, is_dir: bool) -> str | None:
    """A hidden folder may hold images and a hidden file may be one: both are listed, never dropped unsaid."""
    if is_dir:
        return f"{rel}/ (hidden)"
    return f"{rel} (hidden)" if _is_image_name(rel) else None


def _file_stat(path: str) -> tuple[str, os.stat_result | None]:
    """``("", stat)`` for a regular file (links followed), else why it is not read and ``None``: a FIFO, socket or
    device is never opened (reading a FIFO blocks until someone writes to it), a broken link cannot be."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return "a broken link", None
    except OSError as exc:
        raise _unlistable(Path(path), exc) from exc
    return ("", st) if stat.S_ISREG(st.st_mode) else ("not a regular file", None)


Entry = tuple[str, int, int]  # (path relative to root, size, st_mtime_ns)


@dataclass
class _Scan:
    """What one listing carries through every folder it reads.

    ``real_root`` is the dataset's real path (links resolved), to tell where a linked folder leads; ``seen`` holds
    the (device, inode) of every folder read so far, in every class and both splits, so that a folder reached
    through links is read once in the whole dataset (never under two labels, nor in both splits).
    """

    root: Path
    real_root: str
    ignored: list[str]
    seen: set[tuple[int, int]]


def _scan_classes(scan: _Scan, split_dir: Path) -> dict[str, list[Entry]]:
    """class name → its image files (sorted by relative path), for the class folders of ``split_dir``."""
    root = scan.root
    classes: dict[str, list[Entry]] = {}
    loose_images = []
    for entry in _entries(split_dir):
        if entry.name.startswith(".") or not entry.is_dir():
            note = _ignored(root, entry)
            scan.ignored += [note] if note else []
            if not entry.name.startswith(".") and _is_image_name(entry.name):
                loose_images.append(entry.name)
            continue
        if not _follow(scan, entry.path, None, scan.ignored):
            continue
        images, others = _scan_class(scan, Path(entry.path))
        scan.ignored += others
        if not images:
            what = f"only {', '.join(others[:3])}{' ...' if len(others) > 3 else ''}" if others else "nothing"
            raise CorruptDataError(
                f"Class {entry.name!r} ({entry.path}) holds no image ({what}); every class folder needs at least "
                f"one {'/'.join(sorted(e[1:] for e in IMAGE_EXTENSIONS))} file. Add images or remove the folder.")
        classes[entry.name] = images
    if not classes:
        hint = (f" It holds images directly ({', '.join(loose_images[:2])}...): put each image in a folder named "
                "after its class." if loose_images else "")
        raise DatasetNotFoundError(
            f"{split_dir} holds no class folders. An image folder is PATH/<class>/<image> (or PATH/train/<class>/"
            f"... and PATH/test/<class>/...).{hint}")
    return dict(sorted(classes.items()))


def _scan_class(scan: _Scan, class_dir: Path) -> tuple[list[Entry], list[str]]:
    """The image files below ``class_dir`` and the entries ignored there.  A linked folder is followed once,
    and only where it stays in its class: see :func:`_follow`."""
    root = scan.root
    images: list[Entry] = []
    others: list[str] = []
    inside = os.path.realpath(class_dir)

    def refuse(exc: OSError) -> None:  # os.walk would skip an unlistable folder silently
        raise _unlistable(Path(exc.filename or class_dir), exc) from exc

    for dirpath, dirnames, filenames in os.walk(class_dir, onerror=refuse, followlinks=True):
        kept = []
        for d in sorted(dirnames):
            full = os.path.join(dirpath, d)
            if d.startswith("."):
                others.append(_hidden(_rel(root, full), True))
            elif _follow(scan, full, inside, others):
                kept.append(d)
        dirnames[:] = kept
        for name in filenames:
            full = os.path.join(dirpath, name)
            rel = _rel(root, full)
            if name.startswith("."):
                others += [note for note in [_hidden(rel, False)] if note]
                continue
            if not _is_image_name(name):
                others.append(rel)
                continue
            why, st = _file_stat(full)
            if why:
                others.append(f"{rel} ({why})")
                continue
            images.append((rel, st.st_size, st.st_mtime_ns))
    images.sort(key=lambda e: e[0])
    return images, sorted(others)


def _folder_identity(path: str | os.PathLike) -> tuple[int, int]:
    try:
        st = os.stat(path)
    except OSError as exc:
        raise _unlistable(Path(path), exc) from exc
    return st.st_dev, st.st_ino


def _follow(scan: _Scan, path: str, inside: str | None, others: list[str]) -> bool:
    """Whether to read the folder ``path`` (a class folder when ``inside`` is ``None``, else a folder below the
    class folder whose real path is ``inside``); when not, it is listed in ``others`` with the reason."""
    identity = _folder_identity(path)
    why = "a link to a folder already read" if identity in scan.seen else (
        _link_refusal(scan.real_root, path, inside) if os.path.islink(path) else None)
    if why:
        others.append(f"{_rel(scan.root, path)}/ ({why})")
        return False
    scan.seen.add(identity)
    return True


def _link_refusal(real_root: str, link: str, inside: str | None) -> str | None:
    """Why the linked folder ``link`` is not followed, or ``None``.  A link may lead out of the dataset (images
    kept on another disk) or to a folder within its own class, but never to a folder that holds the one it is
    in (``..``: the walk would read the folder again, and every other class with it under this label), to a
    folder that holds the dataset, nor to another class or split of the dataset (its images would get a second
    label, or be in both splits)."""
    target = os.path.realpath(link)
    if _within(target, os.path.realpath(os.path.dirname(link))):
        return "a link to a folder above it"
    if _within(target, real_root):
        return "a link to a folder that holds the dataset"
    if _within(real_root, target) and not (inside is not None and _within(inside, target)):
        return "a link out of its class folder" if inside is not None else "a link to another folder of the dataset"
    return None


def _within(outer: str, path: str) -> bool:
    """Whether the real path ``path`` is ``outer`` or lies below it."""
    return path == outer or path.startswith(outer.rstrip(os.sep) + os.sep)


def _unlistable(path: Path, exc: OSError) -> CorruptDataError:
    reason = exc.strerror or str(exc)
    return CorruptDataError(
        f"{_shorten(str(path))} cannot be read ({reason}), so its images would be left out silently. "
        + ("Move the images to a shorter path (the system limits a path's length)."
           if exc.errno == errno.ENAMETOOLONG else
           "Make it readable (permissions), or move it out of the image folder."))


def _shorten(path: str, keep: int = 80) -> str:
    """A path for a message: whole when short, else its start and end (a path too long to open is thousands
    of characters)."""
    return path if len(path) <= 2 * keep else f"{path[:keep]}...{path[-keep:]} ({len(path)} characters)"


def _check_class_count(root: Path, classes: tuple[str, ...]) -> None:
    if len(classes) < MIN_CLASSES:
        raise CorruptDataError(
            f"{root} holds one class folder ({classes[0]!r}); a classifier needs at least {MIN_CLASSES} classes "
            "(with one, every model is 100% accurate and every score is 0). Add a folder for each other class "
            "(PATH/<class>/<image>).")


def _check_same_classes(root: Path, train: dict, test: dict) -> None:
    only_train, only_test = sorted(set(train) - set(test)), sorted(set(test) - set(train))
    if only_train or only_test:
        parts = ([f"train/ has {_names(only_train)} that test/ lacks"] if only_train else []) + \
                ([f"test/ has {_names(only_test)} that train/ lacks"] if only_test else [])
        raise CorruptDataError(f"{root}: the train and test splits have different classes: {'; '.join(parts)}. "
                               "Both splits need the same class folders.")


def _names(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return ("class " if len(names) == 1 else "classes ") + shown + (f" and {len(names) - limit} more"
                                                                   if len(names) > limit else "")


def _hold_out(root: Path, classes: dict[str, list[Entry]], test_fraction: float,
              seed: int) -> dict[str, dict[str, list[Entry]]]:
    """Split every class's files into train and test: ``round(test_fraction * n)`` (at most n - 1) held out."""
    out: dict[str, dict[str, list[Entry]]] = {"train": {}, "test": {}}
    for name, entries in classes.items():
        n = len(entries)
        k = min(math.floor(test_fraction * n + 0.5), n - 1)
        chosen = set(sorted(range(n), key=lambda i: _draw(seed, entries[i][0]))[:k])
        out["test"][name] = [e for i, e in enumerate(entries) if i in chosen]
        out["train"][name] = [e for i, e in enumerate(entries) if i not in chosen]
    if not any(out["test"].values()):
        raise ConfigError(
            f"{root}: a test fraction of {test_fraction:g} holds out no image (each class keeps at least one "
            "image for training, and round(fraction × class size) is 0 everywhere). Raise --test-fraction, add "
            "images, or give the folder train/ and test/ sub-folders.")
    return out


def _draw(seed: int, rel: str) -> bytes:
    """The held-out draw's key of one file: the files of a class with the smallest keys go to the test split."""
    return hashlib.sha256(f"{int(seed)}\0{rel}".encode("utf-8", "surrogateescape")).digest()


# ----------------------------------------------------------------------------- loading, with the cache

def load_folder(path: str | os.PathLike, *, name: str | None = None, resize: tuple[int, int] | None = None,
                channels: int | None = None, test_fraction: float = 0.2, seed: int = 0) -> DatasetSplits:
    """The image folder at ``path`` as train and test splits in canonical order (see the module docstring).

    Args:
        name: the dataset's name in messages and provenance (default ``folder:<path>``).
        resize: ``(H, W)`` to resize every image to; ``None``: all images must have one size.
        channels: 1 (grayscale) or 3 (RGB); ``None``: keep the images' own count, which must agree.
        test_fraction, seed: the held-out test split of a one-split folder (refused for train/ + test/).
    """
    root = Path(path).expanduser()
    name = name or f"folder:{path}"
    _check_options(resize, channels, test_fraction, seed)
    listing = list_folder(root, test_fraction=test_fraction, seed=seed)
    if listing.layout == "split" and (test_fraction != 0.2 or seed != 0):
        raise ConfigError(f"{name}: the folder has train/ and test/, so it is used as it is split; "
                          "--test-fraction and --split-seed apply only to a folder without them. Drop them.")
    key, options = cache_key(listing, resize=resize, channels=channels, test_fraction=test_fraction, seed=seed)
    cache = cache_file(listing.root, key, options)
    remove_cache_orphans(cache.parent)  # before reading: a write killed since the last load left its temporary
    arrays = _read_cache(cache, key, listing)
    status = "reused"
    if arrays is None:
        arrays = decode_listing(listing, resize=resize, channels=channels)
        failure = _write_cache(cache, key, arrays, listing)
        status = f"not written: {failure}" if failure else "written now"
    notes = {"source": {"kind": "folder", "path": os.path.abspath(listing.root), "layout": listing.layout,
                        "cache": str(cache), "cache_hit": status == "reused", "cache_status": status,
                        "ignored_count": len(listing.ignored), "ignored": list(listing.ignored[:5])}}
    splits = [ImageDataset(name=name, split=split, images=torch.from_numpy(arrays[f"x_{split}"]),
                           labels=torch.from_numpy(listing.labels[split].copy()),
                           ids=torch.arange(len(listing.files[split]), dtype=torch.long),
                           classes=listing.classes, notes=notes, files=listing.files[split]) for split in SPLITS]
    return make_splits(*splits)


def _check_options(resize, channels, test_fraction, seed) -> None:
    if resize is not None and not (isinstance(resize, (tuple, list)) and len(resize) == 2
                                   and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0
                                           for v in resize)):
        raise ConfigError(f"resize must be two positive whole numbers (height, width), got {resize!r}.")
    if channels not in (None, 1, 3) or isinstance(channels, bool):
        raise ConfigError(f"channels must be 1 (grayscale), 3 (RGB) or None (keep), got {channels!r}.")
    if not (isinstance(test_fraction, (int, float)) and 0.0 < test_fraction < 1.0):
        raise ConfigError(f"test_fraction must lie strictly between 0 and 1, got {test_fraction!r}.")
    if not (isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) and seed >= 0):
        raise ConfigError(f"The split seed must be a whole number >= 0, got {seed!r}.")


def cache_root() -> Path:
    """``$DATADIET_CACHE``, else ``~/.cache/datadiet``."""
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE).expanduser()


def cache_key(listing: FolderListing, *, resize, channels, test_fraction, seed) -> tuple[str, dict]:
    """``(key, options)``: the hex digest of the files (relative path, label, SHA-256 of the bytes) and the
    decode options, and those options alone (the held-out draw's fraction and seed only for the one-split
    layout).  Reads every file once."""
    single = listing.layout == "single"
    options = {"resize": list(resize) if resize is not None else None, "channels": channels,
               "test_fraction": test_fraction if single else None, "seed": int(seed) if single else None}
    h = hashlib.sha256()
    h.update(json.dumps({"format": CACHE_FORMAT, "layout": listing.layout, "classes": list(listing.classes),
                         "options": options}, sort_keys=True).encode())
    digests = content_digests(listing)
    for split in SPLITS:
        h.update(f"\n{split}\n".encode())
        for rel, label, digest in zip(listing.files[split], listing.labels[split].tolist(), digests[split]):
            h.update(json.dumps([rel, label, digest]).encode("utf-8", "surrogateescape"))
    return h.hexdigest(), options


def content_digests(listing: FolderListing) -> dict[str, list[str]]:
    """split → the SHA-256 (hex) of every file's bytes, in canonical order; on a few threads (hashlib and file
    reads release the GIL)."""
    paths = [listing.root / rel for split in SPLITS for rel in listing.files[split]]
    digests: list = [None] * len(paths)

    def digest(i: int) -> None:
        try:
            h = hashlib.sha256()
            with open(paths[i], "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
            digests[i] = h.hexdigest()
        except OSError as exc:
            raise CorruptDataError(f"{paths[i]} cannot be read ({exc.strerror or exc}). Make it readable, or move "
                                   "it out of the image folder.") from exc

    _for_each(len(paths), digest)
    n_train = len(listing.files["train"])
    return {"train": digests[:n_train], "test": digests[n_train:]}


def cache_file(root: Path, key: str, options: dict) -> Path:
    """``<cache>/folders/<name>-<folder and options digest>-<key>.npz``; refuses a cache inside ``root``."""
    resolved, base = root.resolve(), cache_root().resolve()
    if base == resolved or resolved in base.parents:
        raise ConfigError(f"The cache folder {base} (${CACHE_ENV}) lies inside the image folder {resolved}; "
                          f"the cache must not be written into your data. Set ${CACHE_ENV} to a folder elsewhere.")
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", resolved.name)[:40].strip("._") or "folder"
    where = hashlib.sha256(f"{resolved}\0{json.dumps(options, sort_keys=True)}".encode(
        "utf-8", "surrogateescape")).hexdigest()[:12]
    return base / "folders" / f"{slug}-{where}-{key[:32]}.npz"


def _read_cache(path: Path, key: str, listing: FolderListing) -> dict[str, np.ndarray] | None:
    """The cached arrays when ``path`` holds exactly this key's data; ``None`` (decode again) otherwise."""
    try:
        if not path.is_file():
            return None
    except OSError:  # a cache folder that cannot be used (a path too long, no permission): the write says why
        return None
    try:
        arrays = read_npz(path, what="a decoded-image cache", required=("key", "x_train", "x_test"), optional=())
    except DataDietError:  # damaged or foreign: decoding again rewrites it
        return None
    if str(arrays.pop("key")) != key:
        return None
    for split in SPLITS:
        x = arrays[f"x_{split}"]
        if x.dtype != np.uint8 or x.ndim != 4 or len(x) != len(listing.files[split]):
            return None
    return arrays


def _write_cache(path: Path, key: str, arrays: dict[str, np.ndarray], listing: FolderListing) -> str | None:
    """Write the cache and delete the ones it supersedes; ``None``, or why it could not be written (warned)."""
    stem = path.name.rsplit("-", 1)[0]
    try:
        with _cache_temporary(path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, key=np.asarray(key), x_train=arrays["x_train"], x_test=arrays["x_test"],
                     classes=np.asarray(listing.classes, dtype=str))
        for stale in path.parent.glob(f"{stem}-*.npz"):  # the same folder and options, from files since changed
            if stale != path:
                stale.unlink(missing_ok=True)
    except OSError as exc:
        reason = f"{exc.strerror or exc}" + (f": {_shorten(str(exc.filename))}" if exc.filename else "")
        warnings.warn(f"Could not write the decoded-image cache {_shorten(str(path))} ({reason}); the folder "
                      f"{listing.root} will be decoded again next time. {_cache_advice(exc)}", CacheWarning,
                      stacklevel=3)
        return reason
    return None


def _cache_advice(exc: OSError) -> str:
    """How to make the cache usable: it lives where ``$DATADIET_CACHE`` says, which the user may not know."""
    where = (f"${CACHE_ENV}, the folder where datadiet keeps decoded image folders," if os.environ.get(CACHE_ENV)
             else f"The decoded image folders are kept in {DEFAULT_CACHE} (${CACHE_ENV} is not set), which")
    if exc.errno == errno.ENAMETOOLONG:
        return f"{where} is a path too long for the system: set ${CACHE_ENV} to a shorter folder path."
    return f"{where} cannot be written: set ${CACHE_ENV} to a writable folder."


# The cache's temporaries, ".<target name>.<host>.<pid>.<8 hex digits>.tmp": each names the process writing it,
# so that the next load removes those of dead writers without looking at the clock.
_TEMPORARY = re.compile(r"^\.(?P<target>.+\.npz)\.(?P<host>[A-Za-z0-9-]+)\.(?P<pid>[0-9]+)\.[0-9a-f]{8}\.tmp$")
# What io.atomic_path's temporaries look like (earlier versions wrote the cache with it): no writer in the name,
# so only their age tells a killed write from one in progress.
_LEGACY_TEMPORARY = re.compile(r"^\..+\.npz\.[A-Za-z0-9_]{8}\.tmp$")


def _host() -> str:
    """This machine's name as it appears in a temporary's name (a cache folder may be shared by machines, and a
    process id means something only on the machine that runs it)."""
    return re.sub(r"[^A-Za-z0-9-]+", "-", socket.gethostname())[:40].strip("-") or "host"


@contextmanager
def _cache_temporary(path: Path) -> Iterator[Path]:
    """A temporary file beside ``path`` named after this process, moved onto ``path`` when the block succeeds
    (written, flushed to disk, renamed: never half a cache under the cache's name) and removed if it fails."""
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = path.parent / f".{path.name}.{_host()}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # 0o666: the umask decides
            break
        except FileExistsError:  # the same 8 random hex digits again: draw others
            continue
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def remove_cache_orphans(folder: Path, *, age: float = ORPHAN_AGE) -> int:
    """Delete the cache temporaries that killed writes left in ``folder``: those named after a process of this
    machine that is no longer running, whatever their age.  A process of another machine (a shared cache folder)
    cannot be looked up from here, and earlier versions named none: such a temporary is deleted once ``age``
    seconds old (a write in progress keeps its file's modification time fresh).  Returns how many were deleted;
    never fails."""
    try:
        names = [p.name for p in folder.glob(".*.tmp")]
    except OSError:
        return 0
    count, host = 0, _host()
    for name in names:
        match = _TEMPORARY.match(name)
        if match and match["host"] == host:
            orphan = not _running(int(match["pid"]))
        else:
            orphan = bool(match or _LEGACY_TEMPORARY.match(name)) and _older_than(folder / name, age)
        if orphan:
            try:
                (folder / name).unlink()
                count += 1
            except OSError:  # gone already, or not ours to delete: the cache works without this
                continue
    return count


def _running(pid: int) -> bool:
    """Whether a process with this id runs on this machine (one we may not signal runs too)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)  # signal 0: nothing is sent, only whether the process exists is checked
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, run by another user
        return True
    except OverflowError:  # no such process id on this system
        return False
    return True


def _older_than(path: Path, age: float) -> bool:
    try:
        return time.time() - path.stat().st_mtime >= age
    except OSError:
        return False


# ----------------------------------------------------------------------------- decoding

def decode_listing(listing: FolderListing, *, resize: tuple[int, int] | None = None,
                   channels: int | None = None) -> dict[str, np.ndarray]:
    """``{"x_train", "x_test"}``: every file of ``listing`` decoded to uint8 ``[N, C, H, W]``, canonical order.

    First every file's header is read (size and mode, cheap), so that mixed sizes or channel counts are refused
    before anything is decoded; then the images are decoded into preallocated arrays.
    """
    paths = [listing.root / rel for split in SPLITS for rel in listing.files[split]]
    probes: list = [None] * len(paths)

    def probe(i: int) -> None:
        probes[i] = _probe(paths[i])

    _for_each(len(paths), probe)
    sizes = [p[0] for p in probes]
    empty = [i for i, (w, h) in enumerate(sizes) if w == 0 or h == 0]
    if empty:  # checked here, not by Pillow's loaders (most refuse such a header, not all): NaN statistics else
        w, h = sizes[empty[0]]
        raise CorruptDataError(
            f"{paths[empty[0]]} is an empty image ({w}x{h} pixels, width x height; {len(empty)} such files): it has "
            "no pixel. Replace it with a real image, or move it out of the folder.")
    floats = [i for i, p in enumerate(probes) if p[1] == "F"]
    if floats:
        raise CorruptDataError(
            f"{paths[floats[0]]} is a 32-bit floating-point image ({len(floats)} such files); datadiet reads 8-bit "
            "and 16-bit images. Convert them to 8-bit (0..255), or store the data as arrays (arrays:FILE.npz).")
    kinds = [1 if p[1] in GRAY_MODES else 3 for p in probes]
    if channels is None and len(set(kinds)) > 1:
        gray, color = kinds.index(1), kinds.index(3)
        raise ConfigError(
            f"{listing.root}: the images mix grayscale and colour, e.g. {_rel(listing.root, paths[gray])} is "
            f"grayscale ({probes[gray][1]}) and {_rel(listing.root, paths[color])} is colour ({probes[color][1]}). "
            "Choose one: --channels 1 (convert all to grayscale) or --channels 3 (all to RGB); in Python, "
            "channels=1 or 3.")
    if resize is None and len(set(sizes)) > 1:
        first = {}
        for i, s in enumerate(sizes):
            first.setdefault(s, i)
        examples = ", ".join(f"{_rel(listing.root, paths[i])} is {w}x{h}" for (w, h), i in list(first.items())[:3])
        raise ConfigError(
            f"{listing.root}: the images have {len(first)} different sizes (width x height): {examples}. Give "
            "one size to resize them all to: --resize H W (e.g. --resize 32 32); in Python, resize=(H, W).")
    c = channels or kinds[0]
    h, w = resize if resize is not None else (sizes[0][1], sizes[0][0])
    mode = "L" if c == 1 else "RGB"
    out = np.empty((len(paths), c, h, w), dtype=np.uint8)

    def decode(i: int) -> None:
        out[i] = _decode_image(paths[i], mode, (w, h))

    _for_each(len(paths), decode)
    n_train = len(listing.files["train"])
    return {"x_train": out[:n_train], "x_test": out[n_train:]}


def _pil():
    from PIL import Image  # lazy: only image folders (and CINIC) need Pillow

    return Image


def _unreadable_errors() -> tuple[type[BaseException], ...]:
    Image = _pil()
    return (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)


def _probe(path: Path) -> tuple[tuple[int, int], str]:
    """``((width, height), mode)`` from the file's header."""
    Image = _pil()
    try:
        with Image.open(path) as img:
            return img.size, img.mode
    except _unreadable_errors() as exc:
        raise _unreadable(path, exc) from exc


def _decode_image(path: Path, mode: str, size: tuple[int, int]) -> np.ndarray:
    """One image as uint8 ``[C, H, W]``: converted to ``mode`` (``L`` or ``RGB``), resized to ``size`` (W, H)."""
    Image = _pil()
    try:
        with Image.open(path) as img:
            img = _eight_bit(img, path).convert(mode)
            if img.size != size:
                img = img.resize(size, resample=getattr(Image, "Resampling", Image).BILINEAR)
            array = np.asarray(img)
    except _unreadable_errors() as exc:
        raise _unreadable(path, exc) from exc
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def _eight_bit(img, path: Path):
    """``img`` with 16-bit grayscale scaled to 8 bits (Pillow's own conversion clips every value above 255 to
    white); other modes unchanged."""
    if img.mode not in WIDE_MODES:
        return img
    values = np.asarray(img)
    if values.size and (int(values.min()) < 0 or int(values.max()) > 65535):
        raise CorruptDataError(
            f"{path} is a 32-bit integer image with values in [{int(values.min())}, {int(values.max())}]; datadiet "
            "reads 8-bit images and scales 16-bit ones (0..65535) to 8 bits. Convert it to 8 or 16 bits first.")
    scaled = (values.astype(np.uint32) * 255 + 32767) // 65535  # round(v * 255 / 65535), in integers
    return _pil().fromarray(scaled.astype(np.uint8))


def _unreadable(path: Path, exc: BaseException) -> CorruptDataError:
    return CorruptDataError(f"{path} is not a readable image ({type(exc).__name__}: {exc}). Replace it with a "
                            "valid image, or move it out of the folder (files without an image extension are "
                            "ignored).")


def _for_each(n: int, work: Callable[[int], None]) -> None:
    """``work(i)`` for i in 0..n-1: inline when n is small, else on a few threads (decoding releases the GIL);
    the first error stops the rest and is raised."""
    if n < _INLINE:
        for i in range(n):
            work(i)
        return

    def chunk(start: int) -> None:
        for i in range(start, min(start + _CHUNK, n)):
            work(i)

    with ThreadPoolExecutor(max_workers=max(1, min(8, os.cpu_count() or 1))) as pool:
        futures = [pool.submit(chunk, start) for start in range(0, n, _CHUNK)]
        try:
            for future in futures:
                future.result()
        except BaseException:
            for future in futures:
                future.cancel()
            raise
