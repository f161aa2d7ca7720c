"""File plumbing: atomic writes, strict JSON, the one safe ``.npz`` reader, and one command per results folder.

Results must survive a run killed at any moment, so every write goes to a
temporary file in the same directory, is flushed to disk, and is then renamed
over the target (``os.replace`` is atomic on POSIX and Windows).  Every ``.npz``
datadiet reads goes through :func:`read_npz`, which never unpickles and checks
declared sizes before decompressing; every JSON file it reads back goes through
:func:`load_json` (strict, bounded in size, depth and digits).  Both read regular
files only (:func:`open_regular`): a named pipe or a device is refused, never
waited on or read without end.
"""
from __future__ import annotations

import errno
import functools
import json
import math
import os
import re
import socket
import stat
import tempfile
import time
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator, Sequence, TypeVar

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
    """Whether ``path`` is a regular file that starts like a zip (``.npz``) archive. Checked before ``np.load``,
    which would otherwise read any other file as a pickle and complain about ``allow_pickle``, a message that
    misleads."""
    try:
        with open_regular(path) as fh:
            return fh.read(4).startswith(ZIP_MAGIC)
    except (OSError, UnreadableFileError):
        return False


# ----------------------------------------------------------------------------- reading files: regular, bounded, strict

MAX_JSON_BYTES = 64 * 1024**2  # the most datadiet reads of one JSON file: its plans and records are far smaller
MAX_JSON_DEPTH = 100           # the deepest nesting a JSON file may have: datadiet's own nest a few levels
MAX_JSON_DIGITS = 100          # the longest integer a JSON file may hold: ids and seeds have at most 20 digits


class UnreadableFileError(CorruptDataError):
    """A file that cannot be read as what it should be. ``why`` says it in a phrase that follows the file name
    ("a named pipe (FIFO), not a regular file"); ``missing`` tells a file that does not exist from a bad one,
    which callers often explain differently. Callers turn it into their own paragraph; uncaught, it still names
    the file (status 2)."""

    def __init__(self, path: str | os.PathLike, why: str, *, missing: bool = False):
        super().__init__(f"{path}: {why}.")
        self.path, self.why, self.missing = Path(path), why, missing

    def sentence(self, subject: str = "it") -> str:
        """``why`` with a subject: "it is a named pipe (FIFO), ...", "it does not exist"."""
        verb = "" if self.why.startswith(("does ", "cannot ")) else "is "
        return f"{subject} {verb}{self.why}"


# What each kind of file that is not a regular file is, for the message (stat.S_IFMT → phrase).
_NOT_REGULAR = {stat.S_IFDIR: "a directory", stat.S_IFIFO: "a named pipe (FIFO)",
                stat.S_IFCHR: "a character device (such as /dev/zero)", stat.S_IFBLK: "a block device",
                stat.S_IFSOCK: "a socket"}


def _not_regular(mode: int) -> str | None:
    """Why a file of this mode cannot be read as data (``None``: a regular file)."""
    if stat.S_ISREG(mode):
        return None
    return f"{_NOT_REGULAR.get(stat.S_IFMT(mode), 'a special file')}, not a regular file"


def open_regular(path: str | os.PathLike) -> BinaryIO:
    """``path`` opened for reading in binary, or :class:`UnreadableFileError` unless it is a regular file.

    A named pipe blocks ``open()`` until a writer comes and then whatever it sends; a device such as
    ``/dev/zero`` never ends. The file is therefore checked before it is opened, opened without blocking (which
    changes nothing for a regular file) and checked again once open: a file swapped in between is refused too.
    """
    try:
        why = _not_regular(os.stat(path).st_mode)
        if why is not None:
            raise UnreadableFileError(path, why)
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise UnreadableFileError(path, "does not exist", missing=True) from None
    except OSError as exc:
        raise UnreadableFileError(path, f"cannot be read ({exc.strerror or exc})") from None
    try:
        why = _not_regular(os.fstat(fd).st_mode)
        if why is not None:
            raise UnreadableFileError(path, why)
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_bytes_bounded(path: str | os.PathLike, limit: int) -> bytes:
    """The bytes of the regular file ``path`` (:func:`open_regular`), refused beyond ``limit`` bytes: a file
    that grows while it is read, or is far larger than its format allows, never fills the memory."""
    with open_regular(path) as fh:
        try:
            if os.fstat(fh.fileno()).st_size > limit:
                raise UnreadableFileError(path, f"larger than {_size(limit)}, the most datadiet reads of such a file")
            data = fh.read(limit + 1)
        except OSError as exc:
            raise UnreadableFileError(path, f"cannot be read ({exc.strerror or exc})") from None
    if len(data) > limit:
        raise UnreadableFileError(path, f"larger than {_size(limit)}, the most datadiet reads of such a file")
    return data


def load_json(path: str | os.PathLike, *, limit: int | None = None) -> Any:
    """The JSON value of the file ``path``: the one strict reader of the JSON files datadiet reads back (run
    records, plans, configs, manifests).

    Refused, as :class:`UnreadableFileError` naming the file: anything but a regular file, more than ``limit``
    bytes (:data:`MAX_JSON_BYTES` by default), text that is not UTF-8, and what :func:`parse_json` refuses.
    """
    data = read_bytes_bounded(path, MAX_JSON_BYTES if limit is None else limit)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UnreadableFileError(path, f"not UTF-8 text (byte {exc.start})") from None
    try:
        return parse_json(text)
    except ValueError as exc:
        raise UnreadableFileError(path, str(exc)) from None


class _JsonRefusal(ValueError):
    pass


def parse_json(text: str) -> Any:
    """``text`` as strict JSON, or a ``ValueError`` whose message is a phrase ("not valid JSON (...)").

    Refused besides what JSON itself forbids: Python's ``NaN`` and ``Infinity`` tokens, a number beyond the range
    of a float (``1e999``), an integer of more than :data:`MAX_JSON_DIGITS` digits (Python would refuse one of
    4,300 with a message about its own conversion limit) and nesting deeper than :data:`MAX_JSON_DEPTH` levels
    (which would otherwise exhaust the stack of the parser, or of whatever walks the value later).
    """
    try:
        value = json.loads(text, parse_constant=_refuse_constant, parse_int=_bounded_int,
                           parse_float=_finite_float)
    except _JsonRefusal as exc:
        raise ValueError(f"not valid JSON ({exc})") from None
    except RecursionError:
        raise ValueError(f"not valid JSON for datadiet (nested more than {MAX_JSON_DEPTH} levels deep)") from None
    except ValueError as exc:
        raise ValueError(f"not valid JSON ({exc})") from None
    if _depth(value) > MAX_JSON_DEPTH:
        raise ValueError(f"not valid JSON for datadiet (nested more than {MAX_JSON_DEPTH} levels deep)")
    return value


def _refuse_constant(token: str):
    raise _JsonRefusal(f"{token} is not a JSON number")


def _bounded_int(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_JSON_DIGITS:
        raise _JsonRefusal(f"it holds an integer of {len(digits.lstrip('-')):,} digits, more than the "
                           f"{MAX_JSON_DIGITS} any datadiet file holds")
    return int(digits)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _JsonRefusal(f"the number {text[:20]}{'...' if len(text) > 20 else ''} is too large for a float")
    return value


def _depth(value: Any) -> int:
    """How deeply ``value`` nests lists and objects (a scalar: 0), without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        deepest = max(deepest, level)
        if level <= MAX_JSON_DEPTH:  # deeper is refused anyway: no need to walk on
            stack.extend((child, level + 1) for child in children)
    return deepest


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
        with open_regular(path) as fh:
            declared = _declared_bytes(fh, refuse, "it")
            stored = path.stat().st_size - fh.tell()
        if declared > stored:
            raise refuse(f"its header declares {_size(declared)} of array data but only {_size(stored)} are stored "
                         "(truncated or forged)")
        check_memory(declared, str(path), error)
        return np.load(path, allow_pickle=False)
    except UnreadableFileError as exc:
        raise refuse(exc.sentence()) from None
    except DataDietError:  # already one paragraph (some error types are also OSError or ValueError)
        raise
    except ValueError as exc:
        raise _value_error(exc, refuse, "it") from None
    except (OSError, EOFError) as exc:
        raise refuse(f"it cannot be read ({exc})") from exc


def _check_npz_head(path: Path, refuse: _Refusal) -> None:
    """Refuse, by its first bytes, a file that is no zip archive: before numpy could take it for a pickle."""
    try:
        with open_regular(path) as fh:
            head = fh.read(len(NPY_MAGIC))
    except UnreadableFileError as exc:
        raise refuse(exc.sentence()) from None
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


class FolderNotWritableError(DataDietError, PermissionError):
    """A results folder datadiet must write cannot be written (a read-only file system, or its permissions)."""


OUT_FIX = "Make it writable, or choose another --out folder."  # what a command with --out suggests


def check_writable(folder: Path, fix: str = OUT_FIX) -> None:
    """Refuse ``folder`` unless this process can create a file in it, before a command starts working there.

    Tried, not inferred from permission bits: a read-only file system refuses even root, and root ignores the
    bits. ``fix`` says what fits the command: another ``--out`` where it has one; else making the folder
    writable, or working on a copy. The probe is named like an :func:`atomic_path` temporary, so a probe left
    by a process killed at that instant is removed like one.
    """
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-check.", suffix=".tmp", dir=folder)
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise FolderNotWritableError(f"{folder} cannot be written ({exc.strerror}). {fix}") from None
        raise
    os.close(fd)
    try:
        os.unlink(probe)
    except FileNotFoundError:  # a command taking the folder's lock just now removed it as an orphan temporary
        pass


@contextmanager
def folder_lock(folder: str | os.PathLike, command: str = "datadiet", fix: str | None = None) -> Iterator[Path]:
    """Hold ``folder`` for one command: a second process that asks for it stops with :class:`FolderBusyError`.

    The lock is ``folder/.datadiet.lock``, locked with ``flock`` and holding the holder's pid, host, command and
    start time (for the message). The kernel drops a dead holder's lock, so a killed command leaves no stale
    lock. The file itself is never deleted: deleting it would let two processes lock two different files.
    Taking the lock also removes the temporary files that killed writers left behind (nobody else writes here).
    Worker processes of the same command do not lock: only the command's own process writes results.
    A folder the lock created itself is removed again when the command fails before writing a result (it then
    holds nothing but the lock, ``config.json`` and ``workspace.json``): a refused command leaves no folder.
    A folder that cannot be written is refused first (:func:`check_writable`); ``fix`` is what to suggest then,
    for a command without ``--out`` (``None``: choose another ``--out``, which a busy folder suggests too).
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
    try:
        check_writable(folder, fix or OUT_FIX)
    except FolderNotWritableError:
        if made is not None:
            _remove_if_unused(folder, made)
        raise
    path = folder / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        _acquire(fd, path, folder, elsewhere=fix is None)
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


def _acquire(fd: int, path: Path, folder: Path, elsewhere: bool = True) -> None:
    if fcntl is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            raise _busy(path, folder, elsewhere) from None
        except OSError:  # a file system without flock (some network mounts): fall back to the pid check
            pass
    holder = _holder(path)
    if holder and holder.get("host") == socket.gethostname() and _alive(holder.get("pid")) \
            and holder.get("pid") != os.getpid():
        raise _busy(path, folder, elsewhere)


def _busy(path: Path, folder: Path, elsewhere: bool = True) -> FolderBusyError:
    """The folder is held; ``elsewhere``: the command can be pointed at another folder (it has ``--out``)."""
    holder = _holder(path) or {}
    who = (f"{holder.get('command', 'another datadiet command')} (pid {holder.get('pid', '?')} on "
           f"{holder.get('host', '?')}, since {holder.get('since', '?')})")
    return FolderBusyError(f"{folder} is in use by {who}. Two commands writing one results folder would mix "
                           f"their runs: wait for it to finish{', or use another --out folder' if elsewhere else ''}.")


def _holder(path: Path) -> dict | None:
    try:  # a lock file holds one short line; anything else in its place is no holder (and is never waited on)
        holder = json.loads(read_bytes_bounded(path, 64 * 1024).decode("utf-8") or "null")
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


REPORT_FIX = ("`datadiet report` writes report.md and the sections it rebuilds into it: make it writable, or copy "
              "the folder somewhere you can write and run `datadiet report` on the copy.")


@contextmanager
def report_lock(folder: str | os.PathLike, wait: float | None = None) -> Iterator[None]:
    """Build the report of ``folder`` alone: reading its runs and writing the report files is one step.

    ``datadiet report`` takes no folder lock, so that a running experiment can be reported, but two builds that
    overlap (a ``report`` that reads, then the ``reproduce`` that finishes and writes, then the ``report`` that
    writes) would leave the older report on disk. Builds therefore take turns: an ``flock`` on the folder itself
    (no lock file is created), waited for up to ``wait`` seconds (:data:`REPORT_WAIT_SECONDS`), after which
    :class:`FolderBusyError` says so. A folder that holds no results is not locked (reading it fails, with its
    own message), and neither is one on a file system without ``flock``. A results folder that cannot be written
    is refused before anything is read (:data:`REPORT_FIX` says what to do).
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
    check_writable(folder, REPORT_FIX)
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
