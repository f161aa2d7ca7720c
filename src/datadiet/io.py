"""Atomic file writes: a reader sees the old file or the new one, never half.

Results must survive a run killed at any moment, so every write goes to a
temporary file in the same directory, is flushed to disk, and is then renamed
over the target (``os.replace`` is atomic on POSIX and Windows).
"""
from __future__ import annotations

import functools
import json
import math
import os
import re
import socket
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

from .errors import FolderBusyError, NonFiniteLossError

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
T = TypeVar("T")


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
    """Write ``obj`` as strict JSON (see :func:`json_text`)."""
    write_text_atomic(target, json_text(obj))


NON_FINITE_KEY = "non_finite_as_null"


def json_text(obj: Any) -> str:
    """``obj`` as indented, key-sorted, strict JSON.

    JSON has no NaN or infinity, and Python's bare ``NaN`` token makes a file that other readers refuse, so a
    non-finite number is written as ``null``. A dict gets a note, :data:`NON_FINITE_KEY`, listing where (for
    example ``["verdicts.el2n.p"]``), so a reader can tell such a null from a value that was never there.
    """
    nulled: list[str] = []
    plain = _finite(obj, "", nulled)
    if nulled and isinstance(plain, dict):
        plain[NON_FINITE_KEY] = nulled
    return json.dumps(plain, indent=2, sort_keys=True, allow_nan=False, default=_json_default) + "\n"


def _finite(value: Any, where: str, nulled: list[str]) -> Any:
    """``value`` with every non-finite float (numpy and torch scalars included) replaced by ``None``."""
    if isinstance(value, dict):
        return {k: _finite(v, f"{where}.{k}" if where else str(k), nulled) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v, f"{where}[{i}]", nulled) for i, v in enumerate(value)]
    if not isinstance(value, (bool, int, str)) and getattr(value, "shape", None) == ():
        value = value.item()  # a numpy or torch scalar
    if isinstance(value, float) and not math.isfinite(value):
        nulled.append(where or "(the value)")
        return None
    return value


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (set, frozenset)):
        return list(obj)
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item"):  # a one-element array
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
    A folder the lock created itself is removed again when the command fails before writing a result (it then
    holds nothing but the lock, ``config.json`` and ``workspace.json``): a refused command leaves no folder.
    """
    folder = Path(folder)
    made = _outermost_missing(folder)  # what mkdir creates here, if anything
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
        except Exception as exc:
            if made is not None and not isinstance(exc, NonFiniteLossError):  # a diverged run says what it keeps
                _remove_if_unused(folder, made)
            raise
        finally:
            del _held[key]
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # closing drops the flock


# What a command writes into its results folder before its first result: removed with the folder it created.
BEFORE_RESULTS = (LOCK_NAME, "config.json", "workspace.json")


def _outermost_missing(folder: Path) -> Path | None:
    """The outermost of ``folder`` and its parents that does not exist yet (``None``: ``folder`` exists)."""
    missing = None
    for path in (folder, *folder.parents):
        if path.exists():
            break
        missing = path
    return missing


def _remove_if_unused(folder: Path, made: Path) -> None:
    """Remove ``folder`` and the empty parents up to ``made`` when it holds nothing but :data:`BEFORE_RESULTS`
    and empty folders; a folder with anything else in it (a result, a checkpoint, a user's file) stays."""
    try:
        entries = list(folder.rglob("*"))
        if any(not p.is_dir() and (p.parent != folder or p.name not in BEFORE_RESULTS) for p in entries):
            return
        for name in BEFORE_RESULTS:
            (folder / name).unlink(missing_ok=True)
        for sub in sorted((p for p in entries if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
            sub.rmdir()
        for path in (folder, *folder.parents):
            path.rmdir()
            if path == made:
                break
    except OSError:  # cleaning up after a refusal must never hide the refusal itself
        pass


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


def is_results_folder(folder: str | os.PathLike) -> bool:
    """Whether datadiet has written results into ``folder`` (one of :data:`RESULT_MARKERS` at its top)."""
    return any((Path(folder) / marker).is_file() for marker in RESULT_MARKERS)


def remove_orphan_temporaries(folder: Path) -> int:
    """Delete the temporaries of :func:`atomic_path` that a killed writer left under ``folder``.

    Only in a folder datadiet has written results into (a marker file at its top), and only names of exactly the
    form ``atomic_path`` makes: a user's own ``.session.tmp`` beside the results is never touched.
    """
    if not is_results_folder(folder):
        return 0
    count = 0
    for tmp in folder.rglob(".*.tmp"):
        if tmp.is_file() and _ORPHAN.match(tmp.name):
            tmp.unlink(missing_ok=True)
            count += 1
    return count


# ----------------------------------------------------------------------------- one report build at a time

REPORT_WAIT_SECONDS = 120.0  # a report builds in seconds; longer means a stuck or suspended builder
_reporting: dict[Path, int] = {}  # folders whose report this process is building → nesting depth


@contextmanager
def report_lock(folder: str | os.PathLike, wait: float | None = None) -> Iterator[None]:
    """Build the report of ``folder`` alone: reading its runs and writing the report files is one step.

    ``datadiet report`` takes no folder lock, so that a running experiment can be reported, but two builds that
    overlap (a ``report`` that reads, then the ``reproduce`` that finishes and writes, then the ``report`` that
    writes) would leave the older report on disk. Builds therefore take turns: an ``flock`` on the folder itself
    (no file is created), waited for up to ``wait`` seconds (:data:`REPORT_WAIT_SECONDS`), after which
    :class:`FolderBusyError` says so. A folder that holds no results is not locked (reading it fails, with its
    own message), and neither is one on a file system without ``flock``.
    """
    folder = Path(folder)
    if fcntl is None or not folder.is_dir() or not is_results_folder(folder):
        yield
        return
    key = folder.resolve()
    if key in _reporting:  # a report built while building a report (reproduce → build_report)
        _reporting[key] += 1
        try:
            yield
        finally:
            _reporting[key] -= 1
        return
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        _wait_for_report_lock(fd, folder, REPORT_WAIT_SECONDS if wait is None else wait)
        _reporting[key] = 1
        try:
            yield
        finally:
            del _reporting[key]
    finally:
        os.close(fd)  # drops the flock


def _wait_for_report_lock(fd: int, folder: Path, wait: float) -> None:
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise FolderBusyError(
                    f"Another datadiet command has been writing the report of {folder} for over {wait:g} s. Its "
                    f"runs are saved: run `datadiet report {folder}` again once the other command is done "
                    "(or check that it is not stopped, e.g. suspended with Ctrl-Z).") from None
            time.sleep(0.1)
        except OSError:  # a file system without flock (some network mounts): build unserialised, as before
            return


def builds_report(build: Callable[..., T]) -> Callable[..., T]:
    """Decorate a report builder whose first argument is the folder: it runs under :func:`report_lock`."""
    @functools.wraps(build)
    def locked(folder, *args, **kwargs):
        with report_lock(folder):
            return build(folder, *args, **kwargs)
    return locked
