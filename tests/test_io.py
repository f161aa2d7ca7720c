"""Atomic writes: all or nothing, and files as readable as a plain open() would make them."""
import os

import pytest

from datadiet.io import atomic_path, write_json_atomic, write_text_atomic


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
