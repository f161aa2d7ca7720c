"""File plumbing: atomic writes, strict JSON, the one safe ``.npz`` reader, and one command per results folder.

Results must survive a run killed at any moment, so every write goes to a
temporary file in the same directory, is flushed to disk, and is then renamed
over the target (``os.replace`` is atomic on POSIX and Windows).  Every ``.npz``
datadiet reads goes through :func:`read_npz`, which never unpickles and checks
declared sizes before decompressing.
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
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence, TypeVar

from .errors import CorruptDataError, DataDietError, FolderBusyError, NonFiniteLossError

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
NPY_MAGIC = b"\x93NUMPY"
MAX_RATIO = 200            # a compressed member larger than BOMB_FLOOR: at most this expansion
BOMB_FLOOR = 64 * 1024**2  # bytes


def is_zip_archive(path: str | os.PathLike) -> bool:
    """Whether ``path`` starts like a zip (``.npz``) archive. Checked before ``np.load``, which would otherwise
    read any other file as a pickle and complain about ``allow_pickle``, a message that misleads."""
    try:
        with open(path, "rb") as fh:
            return fh.read(4).startswith(ZIP_MAGIC)
    except OSError:
        return False


# ----------------------------------------------------------------------------- reading .npz and .npy files safely

class _Refusal:
    """Builds the one paragraph a refused file gets: "<path> is not <what>: <why>. <fix>"."""

    def __init__(self, path: Path, what: str, error: type[DataDietError], fix: str):
        self.path, self.what, self.error, self.fix = path, what, error, fix

    def __call__(self, why: str) -> DataDietError:
        return self.error(f"{self.path} is not {self.what}: {why}. {self.fix}".rstrip())


def read_npz(path: str | os.PathLike, *, what: str = "an .npz archive of plain arrays", required: Sequence[str] = (),
             optional: Sequence[str] | None = None, error: type[DataDietError] = CorruptDataError,
             fix: str = "Write it again.") -> dict[str, Any]:
    """The arrays of the ``.npz`` archive at ``path``; any problem is one ``error`` paragraph naming the file.

    This is the one way datadiet reads an ``.npz`` (score files, arrays brought by the user, caches). A file that is
    not a zip archive is refused before numpy sees it (``np.load`` would read it as a pickle); object arrays are
    refused and never unpickled (``allow_pickle=False``); and the sizes the zip and ``.npy`` headers declare are
    checked before anything is decompressed (:func:`_check_member`), so a zip bomb or a forged header costs nothing.
    ``required`` keys must be present; ``optional`` ones are read when present (``None``: every key is read).
    ``what`` names the expected content and ``fix`` says how to get a good file.
    """
    import numpy as np  # here, not at the top: the command line imports io at startup and answers --help at once

    path = Path(path)
    refuse = _Refusal(path, what, error, fix)
    _check_npz_head(path, refuse)
    try:
        with zipfile.ZipFile(path) as archive:
            members = _wanted_members(archive, required, optional, refuse)
            for key, member in members.items():
                _check_member(archive, member, key, refuse)
        check_memory(sum(m.file_size for m in members.values()), str(path), error)
        with np.load(path, allow_pickle=False) as data:
            return {key: _read_key(data, key, refuse) for key in members}
    except DataDietError:  # already one paragraph (some error types are also OSError or ValueError)
        raise
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise refuse(f"it is truncated or damaged ({exc})") from exc


def read_npy(path: str | os.PathLike, *, what: str = "a .npy file of a plain array",
             error: type[DataDietError] = CorruptDataError, fix: str = "Write it again.") -> Any:
    """The array of the ``.npy`` file at ``path``, with the same refusals as :func:`read_npz` (no pickle, a header
    that declares more data than the file holds, more than the memory available)."""
    import numpy as np  # lazily, as in read_npz

    path = Path(path)
    refuse = _Refusal(path, what, error, fix)
    try:
        with open(path, "rb") as fh:
            declared = _declared_bytes(fh, refuse, "it")
            stored = path.stat().st_size - fh.tell()
        if declared > stored:
            raise refuse(f"its header declares {_size(declared)} of array data but only {_size(stored)} are stored "
                         "(truncated or forged)")
        check_memory(declared, str(path), error)
        return np.load(path, allow_pickle=False)
    except DataDietError:  # already one paragraph (some error types are also OSError or ValueError)
        raise
    except ValueError as exc:
        raise _value_error(exc, refuse, "it") from None
    except (OSError, EOFError) as exc:
        raise refuse(f"it cannot be read ({exc})") from exc


def _check_npz_head(path: Path, refuse: _Refusal) -> None:
    """Refuse, by its first bytes, a file that is no zip archive: before numpy could take it for a pickle."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(len(NPY_MAGIC))
    except IsADirectoryError:
        raise refuse("it is a directory") from None
    except OSError as exc:
        raise refuse(f"it cannot be read ({exc.strerror or exc})") from exc
    if not head:
        raise refuse("it is empty")
    if head.startswith(NPY_MAGIC):
        raise refuse("it is a single .npy array, not an .npz archive")
    if len(head) < 4 and any(magic.startswith(head) for magic in ZIP_MAGIC):
        raise refuse(f"it is truncated (it ends after {len(head)} bytes)")
    if not head.startswith(ZIP_MAGIC):
        raise refuse("it is not an .npz (zip) archive at all")


def _wanted_members(archive: zipfile.ZipFile, required: Sequence[str], optional: Sequence[str] | None,
                    refuse: _Refusal) -> dict[str, zipfile.ZipInfo]:
    """The archive's members to read, by key (numpy's name: the member name without ``.npy``)."""
    present = {m.filename[:-4] if m.filename.endswith(".npy") else m.filename: m for m in archive.infolist()}
    missing = [k for k in required if k not in present]
    if missing:
        holds = ", ".join(sorted(present)) or "no key at all"
        raise refuse(f"it has no {', '.join(missing)} (missing {missing}; it holds {holds})")
    return {k: m for k, m in present.items() if k in required or optional is None or k in optional}


def _check_member(archive: zipfile.ZipFile, member: zipfile.ZipInfo, key: str, refuse: _Refusal) -> None:
    """Refuse a member that would expand like a zip bomb, or whose ``.npy`` header declares more data than the
    member holds (a forged header makes numpy allocate it all), by reading headers only."""
    where = f"its key {key!r}"
    if member.file_size > BOMB_FLOOR and member.file_size > MAX_RATIO * max(member.compress_size, 1):
        raise refuse(f"{where} declares {_size(member.file_size)} compressed into {_size(member.compress_size)} "
                     f"(more than {MAX_RATIO}:1): a zip bomb, or an array of almost nothing but zeros, which datadiet "
                     "does not decompress. Store real data uncompressed (numpy.savez)")
    with archive.open(member) as fh:
        declared = _declared_bytes(fh, refuse, where)
        if declared > member.file_size - fh.tell():
            raise refuse(f"{where}: its header declares {_size(declared)} of array data but only "
                         f"{_size(member.file_size - fh.tell())} are stored (truncated or forged)")


def _declared_bytes(fh, refuse: _Refusal, where: str) -> int:
    """The array bytes a ``.npy`` header declares (shape × item size), read without the data; ``fh`` is left at
    the start of the data."""
    import numpy as np  # lazily, as in read_npz

    try:
        major, _ = np.lib.format.read_magic(fh)
        read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
        shape, _, dtype = read_header(fh)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise refuse(f"{where} is not a readable .npy array ({exc})") from exc
    return math.prod(shape) * dtype.itemsize


def _read_key(data, key: str, refuse: _Refusal) -> Any:
    try:
        return data[key]
    except ValueError as exc:
        raise _value_error(exc, refuse, f"its key {key!r}") from None


def _value_error(exc: ValueError, refuse: _Refusal, where: str) -> DataDietError:
    """numpy's ValueError, said for a human: an object array (refused, never unpickled) or damaged data."""
    if "pickle" in str(exc).lower():
        return refuse(f"{where} holds Python objects (pickled data), which datadiet never loads; store plain arrays "
                      "(text as a string array, e.g. np.array(['cat', 'dog']))")
    return refuse(f"{where} is truncated or damaged ({exc})")


def check_memory(needed: int, where: str, error: type[DataDietError] = CorruptDataError) -> None:
    """Refuse to read ``needed`` bytes of arrays when less memory than that is available."""
    available = available_memory()
    if available is not None and needed > available:
        raise error(f"{where} holds {_size(needed)} of arrays, more than the {_size(available)} of memory available: "
                    "datadiet holds the data in memory. Use a subset of it, or a machine with more memory.")


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (Linux ``MemAvailable``; else physical memory; else None)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def _size(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


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
BEFORE_RESULTS = (LOCK_NAME, "config.json", "workspace.json", "plan.json")


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
    (at any depth: a study's own folder holds its config.json) and empty folders; a folder with anything else in it (a result, a checkpoint, a user's file) stays."""
    try:
        entries = list(folder.rglob("*"))
        if any(not p.is_dir() and p.name not in BEFORE_RESULTS for p in entries):
            return
        for path in entries:  # a study writes its config.json into its own folder (reproduce/config.json)
            if not path.is_dir():
                path.unlink(missing_ok=True)
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
