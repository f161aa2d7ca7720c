"""Fetch datasets from their official sources, verify MD5 checksums, unpack safely.

Every file is downloaded into a temporary file next to its target, checked
against the published MD5 and only then renamed into place, so an interrupted
or corrupted download never looks like a finished one.  Archives are unpacked
into a temporary folder and moved into the layout that
:mod:`datadiet.data.registry` searches:

=============  ==========================================================
fashion-mnist  ``DATA_ROOT/fashion-mnist/*-ubyte.gz`` (read as they are)
mnist          ``DATA_ROOT/mnist/*-ubyte.gz``
cifar10        ``DATA_ROOT/cifar-10-batches-py/``
cifar100       ``DATA_ROOT/cifar-100-python/``
cinic10        ``DATA_ROOT/cinic10/{train,valid,test}/``
=============  ==========================================================

Nothing here touches the network at import time; tests pass ``fetch=`` to
:func:`download` to copy local files instead.
"""
from __future__ import annotations

import hashlib
import http.client
import logging
import os
import re
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path, PureWindowsPath
from typing import Callable

from ..errors import CorruptDataError, DataDietError, unknown_name
from ..io import atomic_path
from .registry import dataset_spec

log = logging.getLogger(__name__)

Fetch = Callable[[str, Path], None]
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Source:
    """One published file and its MD5."""

    url: str
    md5: str

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class DatasetSource:
    """Where a dataset comes from and where its pieces go below the data root.

    ``download_dir``, ``extract_dir`` and ``dataset_dir`` are relative to the
    data root; ``extract_dir`` is ``None`` for files used as downloaded.
    """

    files: tuple[Source, ...]
    download_dir: str
    extract_dir: str | None
    dataset_dir: str
    offline_hint: str = ""


_FASHION = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
_MNIST = "https://ossci-datasets.s3.amazonaws.com/mnist/"

SOURCES: dict[str, DatasetSource] = {
    "fashion-mnist": DatasetSource(
        files=(
            Source(_FASHION + "train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
            Source(_FASHION + "train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"),
            Source(_FASHION + "t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"),
            Source(_FASHION + "t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310"),
        ),
        download_dir="fashion-mnist", extract_dir=None, dataset_dir="fashion-mnist",
        offline_hint="On Debian/Ubuntu, `sudo apt-get install dataset-fashion-mnist` installs it without "
                     "a download.",
    ),
    "mnist": DatasetSource(
        files=(
            Source(_MNIST + "train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
            Source(_MNIST + "train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
            Source(_MNIST + "t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
            Source(_MNIST + "t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
        ),
        download_dir="mnist", extract_dir=None, dataset_dir="mnist",
    ),
    "cifar10": DatasetSource(
        files=(Source("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
                      "c58f30108f718f92721af3b95e74349a"),),
        download_dir=".", extract_dir=".", dataset_dir="cifar-10-batches-py",
    ),
    "cifar100": DatasetSource(
        files=(Source("https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
                      "eb9058c3a382ffc7106e4002c42a8d85"),),
        download_dir=".", extract_dir=".", dataset_dir="cifar-100-python",
    ),
    "cinic10": DatasetSource(
        files=(Source("https://datashare.ed.ac.uk/bitstream/handle/10283/3192/CINIC-10.tar.gz",
                      "6ee4d0c996905fe93221de577967a372"),),
        # The archive holds train/, valid/, test/ at its top level.
        download_dir=".", extract_dir="cinic10", dataset_dir="cinic10",
    ),
}


def download(name: str, data_root: str | os.PathLike, *, fetch: Fetch | None = None) -> Path:
    """Download (if needed), verify and unpack dataset ``name`` below ``data_root``.

    Returns the folder the registry will find the dataset in.  Files already
    present with the right MD5 are not fetched again, and an archive is not
    unpacked again when its dataset folder is already complete.  ``fetch(url,
    dest)`` writes the bytes at ``url`` to ``dest``; it defaults to urllib.
    """
    key = name.lower()
    if key not in SOURCES:
        raise unknown_name("dataset", name, tuple(SOURCES))
    spec = SOURCES[key]
    root = Path(data_root).expanduser()
    dataset_dir = root / spec.dataset_dir
    if spec.extract_dir is not None and _is_present(key, dataset_dir):
        log.info("%s is already unpacked in %s", key, dataset_dir)
        return dataset_dir
    for source in spec.files:
        path = fetch_verified(source, root / spec.download_dir, fetch=fetch, hint=spec.offline_hint)
        if spec.extract_dir is not None:
            extract_tar(path, root / spec.extract_dir)
    if not _is_present(key, dataset_dir):
        raise CorruptDataError(
            f"After downloading {key}, {dataset_dir} still does not hold the expected files. The published "
            "archive layout may have changed; unpack it by hand into that folder."
        )
    return dataset_dir


def fetch_verified(source: Source, folder: Path, *, fetch: Fetch | None = None, hint: str = "") -> Path:
    """``folder/<file name>`` with the right MD5, fetched unless already there."""
    target = Path(folder) / source.filename
    if target.is_file():
        if file_md5(target) == source.md5:
            log.info("%s is present and verified", target)
            return target
        log.warning("%s has the wrong MD5; downloading it again", target)
    log.info("downloading %s", source.url)
    # atomic_path removes the temporary file on any error, so a failed or
    # mismatching download leaves nothing behind.
    with atomic_path(target) as tmp:
        _run_fetch(fetch or urllib_fetch, source, tmp, target, hint)
        actual = file_md5(tmp)
        if actual != source.md5:
            raise CorruptDataError(
                f"Download of {source.url} has MD5 {actual}, expected {source.md5}. The transfer was "
                "corrupted or the server sent something else (a proxy error page?); the file was "
                f"discarded. Try again, or copy the official file to {target} by hand."
            )
    return target


def urllib_fetch(url: str, dest: Path) -> None:
    """Stream ``url`` into ``dest`` in chunks (memory stays small for large archives)."""
    request = urllib.request.Request(url, headers={"User-Agent": "datadiet"})
    with urllib.request.urlopen(request, timeout=60) as response, open(dest, "wb") as out:
        shutil.copyfileobj(response, out, _CHUNK)


def file_md5(path: str | os.PathLike) -> str:
    """Hex MD5 of a file, read in chunks."""
    h = hashlib.md5(usedforsecurity=False)  # a checksum against corruption, not a security check
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def extract_tar(archive: str | os.PathLike, dest: str | os.PathLike) -> None:
    """Unpack ``archive`` into ``dest``, refusing members that would land outside it.

    Members are unpacked into a temporary folder inside ``dest`` and each
    top-level entry is then moved into place, replacing a partial copy left by
    an earlier interrupted run.
    """
    archive, dest = Path(archive), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".extract-", dir=dest))
    try:
        _extract_checked(archive, staging)
        for entry in staging.iterdir():
            _replace(entry, dest / entry.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _extract_checked(archive: Path, into: Path) -> None:
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            for member in members:
                _check_member(archive, member)
            if hasattr(tarfile, "data_filter"):  # Python >= 3.12 and recent patch releases
                tar.extractall(into, members=members, filter="data")
            else:
                tar.extractall(into, members=members)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise CorruptDataError(
            f"Cannot unpack {archive} ({exc}). The archive is damaged or the disk is full; delete the "
            "archive and download it again."
        ) from exc


def _check_member(archive: Path, member: tarfile.TarInfo) -> None:
    """Only plain files and folders with relative paths that stay inside the target."""
    unsafe = _escapes(member.name)
    if unsafe or not (member.isfile() or member.isdir()):
        raise CorruptDataError(
            f"Refused to unpack {archive}: member {member.name!r} is "
            + ("a link or special file" if not unsafe else "a path outside the target folder")
            + ". The official archives hold only plain files and folders, so this archive is not "
            "the official one; delete it and download it again."
        )


def _escapes(name: str) -> bool:
    """True for names that are empty, absolute (POSIX or Windows) or climb with ``..``."""
    parts = re.split(r"[\\/]", name)
    return (not name.strip("/") or name.startswith(("/", "\\")) or bool(PureWindowsPath(name).drive)
            or ".." in parts)


def _replace(src: Path, dst: Path) -> None:
    if dst.is_dir() and not dst.is_symlink():
        shutil.rmtree(dst)
    elif dst.exists() or dst.is_symlink():
        dst.unlink()
    os.replace(src, dst)


def _run_fetch(fetch: Fetch, source: Source, tmp: Path, target: Path, hint: str) -> None:
    try:
        fetch(source.url, tmp)
    except DataDietError:
        raise
    except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
        raise DataDietError(
            f"Could not download {source.url} ({exc}). Is this machine offline or behind a proxy? "
            f"You can copy {source.filename} (MD5 {source.md5}) into {target.parent} by hand. "
            + hint
        ) from exc


def _is_present(name: str, folder: Path) -> bool:
    return folder.is_dir() and dataset_spec(name).is_present(folder)
