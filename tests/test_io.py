"""Atomic writes: all or nothing, and files as readable as a plain open() would make them."""
import json
import math
import os
import zipfile
from io import BytesIO

import numpy as np
import pytest
import torch

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
