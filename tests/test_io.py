"""Atomic writes: all or nothing, and files as readable as a plain open() would make them."""
import json
import math
import os
import zipfile
from io import BytesIO

import numpy as np
import pytest
import torch
from fakes import PipeGuard

from datadiet import io as datadiet_io
from datadiet.errors import ConfigError, CorruptDataError
from datadiet.io import NON_FINITE_KEY, atomic_path, read_npy, read_npz, write_json_atomic, write_text_atomic


def test_written_file_has_the_umask_mode_not_mkstemps_0600(tmp_path):
    write_text_atomic(tmp_path / "a.txt", "x")
    (tmp_path / "plain.txt").write_text("x")
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == (tmp_path / "plain.txt").stat().st_mode & 0o777


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "r.json"
    write_json_atomic(target, {"a": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert target.read_text() == '{\n  "a": 1\n}\n'
    assert os.listdir(tmp_path) == ["r.json"]


def test_json_is_strict_non_finite_numbers_become_null_with_a_note(tmp_path):
    target = tmp_path / "summary.json"
    write_json_atomic(target, {"a": float("nan"), "b": [1.0, np.float32("inf")], "c": {"d": torch.tensor(-math.inf)},
                               "e": np.float64(0.5), "f": "NaN"})

    def refuse(token):
        raise ValueError(token)
    record = json.loads(target.read_text(), parse_constant=refuse)  # no bare NaN / Infinity token
    assert record == {"a": None, "b": [1.0, None], "c": {"d": None}, "e": 0.5, "f": "NaN",
                      NON_FINITE_KEY: ["a", "b[1]", "c.d"]}


def test_finite_json_gets_no_note_and_a_non_finite_top_level_value_is_null(tmp_path):
    write_json_atomic(tmp_path / "a.json", {"x": 1.5, "n": np.int64(3), "flag": np.bool_(True)})
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": 1.5, "n": 3, "flag": True}
    write_json_atomic(tmp_path / "b.json", [float("nan")])
    assert json.loads((tmp_path / "b.json").read_text()) == [None]


# ----------------------------------------------------------------------------- the one .npz reader

class _Trap:
    """Unpickling this object raises: a reader that unpickles fails the test loudly."""

    def __reduce__(self):
        return (_explode, ())


def _explode():
    raise AssertionError("a pickle was loaded")


def _read(path, **kwargs):
    return read_npz(path, what="a test archive", fix="Make another.", **kwargs)


def test_read_npz_reads_the_keys_asked_for(tmp_path):
    np.savez(tmp_path / "a.npz", x=np.arange(3), y=np.ones(2), extra=np.zeros(1))
    assert sorted(_read(tmp_path / "a.npz")) == ["extra", "x", "y"]
    got = _read(tmp_path / "a.npz", required=("x",), optional=("y", "absent"))
    assert sorted(got) == ["x", "y"] and got["x"].tolist() == [0, 1, 2]


@pytest.mark.parametrize("content, why", [
    (b"", "it is empty"), (b"PK\x03", "it is truncated (it ends after 3 bytes)"),
    (b"id,value\n1,2\n", "it is not an .npz (zip) archive at all"),
    (b"\x93NUMPY\x01\x00", "it is a single .npy array"),
    (b"PK\x03\x04 and then nothing", "it is truncated or damaged"),
])
def test_read_npz_refuses_what_is_no_npz_archive_in_one_paragraph(tmp_path, content, why):
    (tmp_path / "f.npz").write_bytes(content)
    with pytest.raises(CorruptDataError) as info:
        _read(tmp_path / "f.npz")
    assert str(info.value).startswith(f"{tmp_path / 'f.npz'} is not a test archive: {why}")
    assert str(info.value).endswith("Make another.") and "\n" not in str(info.value)


def test_read_npz_refuses_missing_keys_and_names_what_is_there(tmp_path):
    np.savez(tmp_path / "a.npz", x=np.arange(3))
    with pytest.raises(ConfigError, match=r"it has no y, z \(missing \['y', 'z'\]; it holds x\)"):
        _read(tmp_path / "a.npz", required=("x", "y", "z"), error=ConfigError)


def test_read_npz_never_unpickles_an_object_array(tmp_path):
    np.savez(tmp_path / "p.npz", ok=np.arange(2), bad=np.array([_Trap()], dtype=object))
    with pytest.raises(CorruptDataError, match=r"its key 'bad' holds Python objects"):
        _read(tmp_path / "p.npz")
    assert sorted(_read(tmp_path / "p.npz", optional=("ok",))) == ["ok"]  # a key not asked for is never read


def test_read_npz_refuses_a_zip_bomb_and_a_forged_header_before_decompressing(tmp_path, monkeypatch):
    monkeypatch.setattr(datadiet_io, "BOMB_FLOOR", 1000)  # a small bomb: 100 kB of zeros compresses far beyond 200:1
    with zipfile.ZipFile(tmp_path / "bomb.npz", "w", compression=zipfile.ZIP_DEFLATED) as archive:
        with archive.open("x.npy", "w") as fh:
            np.lib.format.write_array(fh, np.zeros(100_000, np.uint8))
    monkeypatch.setattr(np, "load", lambda *a, **k: pytest.fail("np.load was reached"))
    with pytest.raises(CorruptDataError, match=r"its key 'x' declares 100\.\d kB compressed into .*zip bomb"):
        _read(tmp_path / "bomb.npz")
    buffer = BytesIO()
    np.lib.format.write_array(buffer, np.zeros(4, np.float64))
    forged = buffer.getvalue().replace(b"(4,)", b"(9,)")  # the header claims 9 rows, the data holds 4
    with zipfile.ZipFile(tmp_path / "forged.npz", "w") as archive:
        archive.writestr("x.npy", forged)
    with pytest.raises(CorruptDataError, match=r"declares 72 bytes of array data but only 32 bytes are stored"):
        _read(tmp_path / "forged.npz")


def test_read_npz_refuses_more_than_the_memory_available(tmp_path, monkeypatch):
    np.savez(tmp_path / "a.npz", x=np.zeros(100))
    monkeypatch.setattr(datadiet_io, "available_memory", lambda: 100)
    with pytest.raises(CorruptDataError, match=r"a\.npz holds \d+ bytes of arrays, more than the 100 bytes"):
        _read(tmp_path / "a.npz")


def test_read_npy_refuses_pickles_and_truncation(tmp_path):
    np.save(tmp_path / "ok.npy", np.arange(4.0))
    assert read_npy(tmp_path / "ok.npy").tolist() == [0.0, 1.0, 2.0, 3.0]
    np.save(tmp_path / "p.npy", np.array([_Trap()], dtype=object))
    with pytest.raises(CorruptDataError, match=r"p\.npy is not a \.npy file of a plain array: it holds Python objects"):
        read_npy(tmp_path / "p.npy")
    (tmp_path / "cut.npy").write_bytes((tmp_path / "ok.npy").read_bytes()[:-8])
    with pytest.raises(CorruptDataError, match=r"declares 32 bytes of array data but only 24 bytes are stored"):
        read_npy(tmp_path / "cut.npy")


# ----------------------------------------------------------------------------- the one strict, bounded JSON reader

def _refused(path, why):
    with pytest.raises(datadiet_io.UnreadableFileError) as info:
        datadiet_io.load_json(path)
    assert str(path) in str(info.value) and why in info.value.why, info.value.why
    return info.value


def test_load_json_reads_strict_json_from_a_regular_file(tmp_path):
    path = tmp_path / "plan.json"
    write_json_atomic(path, {"runs": {"a": [1, 2.5, None, "x"]}, "seed": 2**63 - 1})
    assert datadiet_io.load_json(path) == {"runs": {"a": [1, 2.5, None, "x"]}, "seed": 2**63 - 1}


def test_load_json_refuses_what_is_no_regular_file_without_opening_it(tmp_path):
    """A pipe with no writer would block open() and read(); /dev/zero never ends. Neither is opened for long."""
    with PipeGuard(tmp_path / "pipe.json", tmp_path / "spare") as pipe:  # a reader that opened it reads nothing
        _refused(pipe, "a named pipe (FIFO), not a regular file")
    (tmp_path / "zero.json").symlink_to("/dev/zero")
    _refused(tmp_path / "zero.json", "a character device (such as /dev/zero), not a regular file")
    _refused(tmp_path, "a directory, not a regular file")
    assert _refused(tmp_path / "nope.json", "does not exist").missing


def test_load_json_refuses_a_file_beyond_its_limit(tmp_path):
    path = tmp_path / "big.json"
    path.write_text("[" + "0, " * 100 + "0]")
    assert datadiet_io.load_json(path, limit=1000) == [0] * 101
    with pytest.raises(datadiet_io.UnreadableFileError, match=r"big\.json: larger than 100 bytes"):
        datadiet_io.load_json(path, limit=100)


@pytest.mark.parametrize("text, why", [
    ("[" * 100_000 + "]" * 100_000, "nested more than 100 levels deep"),  # the parser's own recursion limit
    ("[" * 101 + "]" * 101, "nested more than 100 levels deep"),          # beyond datadiet's
    ("[" + "7" * 5001 + "]", "an integer of 5,001 digits"),               # beyond Python's int-string limit
    ("[" + "7" * 101 + "]", "an integer of 101 digits"),
    ('{"a": NaN}', "NaN is not a JSON number"),
    ('{"a": -Infinity}', "-Infinity is not a JSON number"),
    ('{"a": 1e999}', "1e999 is too large for a float"),
    ("{'a': 1}", "not valid JSON (Expecting property name"),
])
def test_load_json_refuses_what_datadiet_never_writes(tmp_path, text, why):
    path = tmp_path / "record.json"
    path.write_text(text)
    _refused(path, why)


def test_load_json_accepts_the_deepest_and_longest_values_allowed(tmp_path):
    path = tmp_path / "edge.json"
    path.write_text("[" * 99 + str(-10**99 - 1) + "]" * 99)  # 100 levels with the number's list; 100 digits
    value = datadiet_io.load_json(path)
    for _ in range(99):
        value = value[0]
    assert value == -10**99 - 1


def test_load_json_refuses_text_that_is_not_utf8(tmp_path):
    path = tmp_path / "latin.json"
    path.write_bytes(b'{"name": "caf\xe9"}')
    _refused(path, "not UTF-8 text")


def test_read_npz_and_read_npy_refuse_a_pipe_without_waiting_for_it(tmp_path):
    with PipeGuard(tmp_path / "scores.npz", tmp_path / "spare") as pipe:
        for read in (read_npz, read_npy):
            with pytest.raises(CorruptDataError, match=r"scores\.npz .*: it is a named pipe \(FIFO\), not a regular"):
                read(pipe)
        assert not datadiet_io.is_zip_archive(pipe)


# ----------------------------------------------------------------------------- folders that cannot be written

def _unwritable(folder, monkeypatch):
    """``folder`` made unwritable by its permissions and, for root whom they do not stop, as on a read-only file
    system (creating a file in it fails with EROFS)."""
    import errno
    import tempfile

    folder.chmod(0o555)
    if os.geteuid() == 0:
        mkstemp = tempfile.mkstemp

        def refuse(*args, dir=None, **kwargs):
            if dir is not None and os.path.samefile(dir, folder):
                raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(dir))
            return mkstemp(*args, dir=dir, **kwargs)
        monkeypatch.setattr(tempfile, "mkstemp", refuse)


def test_an_unwritable_folder_is_refused_with_the_fix_of_the_command(tmp_path, monkeypatch):
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "workspace.json").write_text("{}")
    _unwritable(folder, monkeypatch)
    try:
        with pytest.raises(datadiet_io.FolderNotWritableError, match=r"results cannot be written .*another --out"):
            with datadiet_io.folder_lock(folder, "datadiet reproduce"):
                pass
        with pytest.raises(datadiet_io.FolderNotWritableError, match=r"results cannot be written .*Copy it") as info:
            with datadiet_io.folder_lock(folder, "datadiet migrate", fix="Copy it."):
                pass
        assert "--out" not in str(info.value)
        with pytest.raises(datadiet_io.FolderNotWritableError, match=r"`datadiet report` on the copy") as info:
            with datadiet_io.report_lock(folder):
                pass
        assert "--out" not in str(info.value)
        assert sorted(os.listdir(folder)) == ["workspace.json"]  # no lock file, no probe left
    finally:
        folder.chmod(0o755)
