"""Atomic writes: all or nothing, and files as readable as a plain open() would make them."""
import json
import math
import os

import numpy as np
import pytest
import torch

from datadiet.io import NON_FINITE_KEY, atomic_path, write_json_atomic, write_text_atomic


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
