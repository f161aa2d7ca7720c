"""Atomic file writes: a reader sees the old file or the new one, never half.

Results must survive a run killed at any moment, so every write goes to a
temporary file in the same directory, is flushed to disk, and is then renamed
over the target (``os.replace`` is atomic on POSIX and Windows).
"""
from __future__ import annotations

import json
import os
import re
import socket
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from .errors import FolderBusyError

try:  # POSIX advisory locks: released by the kernel when the holder dies, so a dead holder never blocks
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None


def _file_mode() -> int:
    """The mode ``open()`` gives a new file: 0666 minus the process umask (read once, at import)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


_FILE_MODE = _file_mode()


@contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path; on success, move it onto ``target`` atomically."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    os.chmod(tmp, _FILE_MODE)  # mkstemp makes 0600 files; results should be readable like any other file
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:  # make the bytes durable before the rename
            os.fsync(fh.fileno())
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_text_atomic(target: str | os.PathLike, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(target: str | os.PathLike, obj: Any) -> None:
    write_text_atomic(target, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item"):  # numpy / torch scalars
        return obj.item()
    raise TypeError(f"cannot serialise {type(obj).__name__} to JSON")


ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # every .npz is a zip archive (the second: an empty one)


def is_zip_archive(path: str | os.PathLike) -> bool:
    """Whether ``path`` starts like a zip (``.npz``) archive. Checked before ``np.load``, which would otherwise
    read any other file as a pickle and complain about ``allow_pickle``, a message that misleads."""
    try:
        with open(path, "rb") as fh:
            return fh.read(4).startswith(ZIP_MAGIC)
    except OSError:
        return False


# ----------------------------------------------------------------------------- one command per results folder

LOCK_NAME = ".datadiet.lock"
_held: dict[Path, int] = {}  # folders this process holds → nesting depth (a command may lock a folder twice)


@contextmanager
def folder_lock(folder: str | os.PathLike, command: str = "datadiet") -> Iterator[Path]:
    """Hold ``folder`` for one command: a second process that asks for it stops with :class:`FolderBusyError`.

    The lock is ``folder/.datadiet.lock``, locked with ``flock`` and holding the holder's pid, host, command and
    start time (for the message). The kernel drops a dead holder's lock, so a killed command leaves no stale
    lock. The file itself is never deleted: deleting it would let two processes lock two different files.
    Taking the lock also removes the temporary files that killed writers left behind (nobody else writes here).
    Worker processes of the same command do not lock: only the command's own process writes results.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    key = folder.resolve()
    if key in _held:
        _held[key] += 1
        try:
            yield folder
        finally:
            _held[key] -= 1
        return
    path = folder / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        _acquire(fd, path, folder)
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "command": command,
                                 "since": time.strftime("%Y-%m-%d %H:%M:%S")}).encode())
        remove_orphan_temporaries(folder)
        _held[key] = 1
        try:
            yield folder
        finally:
            del _held[key]
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # closing drops the flock


def _acquire(fd: int, path: Path, folder: Path) -> None:
    if fcntl is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            raise _busy(path, folder) from None
        except OSError:  # a file system without flock (some network mounts): fall back to the pid check
            pass
    holder = _holder(path)
    if holder and holder.get("host") == socket.gethostname() and _alive(holder.get("pid")) \
            and holder.get("pid") != os.getpid():
        raise _busy(path, folder)


def _busy(path: Path, folder: Path) -> FolderBusyError:
    holder = _holder(path) or {}
    who = (f"{holder.get('command', 'another datadiet command')} (pid {holder.get('pid', '?')} on "
           f"{holder.get('host', '?')}, since {holder.get('since', '?')})")
    return FolderBusyError(f"{folder} is in use by {who}. Two commands writing one results folder would mix "
                           "their runs: wait for it to finish, or use another --out folder.")


def _holder(path: Path) -> dict | None:
    try:
        holder = json.loads(path.read_text(encoding="utf-8") or "null")
    except (OSError, ValueError):
        return None
    return holder if isinstance(holder, dict) else None


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


# What atomic_path's temporaries look like: ".<target name>.<8 characters of mkstemp>.tmp".
_ORPHAN = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")
# A folder datadiet has written results into has one of these at its top.
RESULT_MARKERS = ("config.json", "workspace.json", "score_config.json", "plan.json")


def remove_orphan_temporaries(folder: Path) -> int:
    """Delete the temporaries of :func:`atomic_path` that a killed writer left under ``folder``.

    Only in a folder datadiet has written results into (a marker file at its top), and only names of exactly the
    form ``atomic_path`` makes: a user's own ``.session.tmp`` beside the results is never touched.
    """
    if not any((folder / marker).is_file() for marker in RESULT_MARKERS):
        return 0
    count = 0
    for tmp in folder.rglob(".*.tmp"):
        if tmp.is_file() and _ORPHAN.match(tmp.name):
            tmp.unlink(missing_ok=True)
            count += 1
    return count
