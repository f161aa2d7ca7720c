"""Bad score files are refused with a ScoreFileError naming them (never a numpy message, never an unpickle),
and selection refuses scores it cannot rank."""
import json
import pickle
import zipfile

import numpy as np
import pytest

from fakes import tiny_dataset
from datadiet.errors import ConfigError, DataDietError
from datadiet.scores import ScoreFileError, ScoreTable, load_scores, save_scores
from datadiet.selection import SelectionError, select

UNPICKLED = []


def _record_unpickle():
    UNPICKLED.append(True)
    return "boom"


class Trap:
    """Unpickling this object leaves a trace in UNPICKLED."""

    def __reduce__(self):
        return (_record_unpickle, ())


def _table(ds, runs=None):
    runs = np.random.default_rng(0).random((2, len(ds))) if runs is None else runs
    return ScoreTable("el2n", ds.ids.numpy(), runs, {"dataset": ds.describe(), "when": "epoch2"})


def _refused(path, *patterns):
    with pytest.raises(ScoreFileError) as info:
        load_scores(path)
    message = str(info.value)
    assert str(path) in message
    assert "allow_pickle" not in message
    for pattern in patterns:
        assert pattern in message, message
    return message


NOT_OURS = "is not a datadiet score file (.npz written by `datadiet score`)"


def test_a_text_file_is_not_a_score_file(tmp_path):
    path = tmp_path / "scores.txt"
    path.write_text("id,score\n0,0.5\n1,0.7\n")
    _refused(path, NOT_OURS, "not an .npz (zip) archive")


def test_an_empty_file(tmp_path):
    path = tmp_path / "empty.npz"
    path.write_bytes(b"")
    _refused(path, NOT_OURS, "it is empty")


def test_a_single_npy_array(tmp_path):
    path = tmp_path / "runs.npy"
    np.save(path, np.zeros((2, 3)))
    _refused(path, NOT_OURS, "single .npy array")


def test_a_truncated_npz(tmp_path):
    path = save_scores(tmp_path / "s.npz", _table(tiny_dataset(30)))
    data = path.read_bytes()
    for cut in (3, 100, len(data) // 2, len(data) - 10):
        path.write_bytes(data[:cut])
        _refused(path, NOT_OURS, "truncated", "Recompute it with `datadiet score`")


def test_a_corrupt_member_of_the_archive(tmp_path):
    path = tmp_path / "s.npz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("ids.npy", b"\x93NUMPY garbage")
        zf.writestr("runs.npy", b"nothing")
        zf.writestr("meta.npy", b"")
    _refused(path, NOT_OURS, "is not a readable .npy array", "Recompute it with `datadiet score`")


def test_an_npz_missing_an_array(tmp_path):
    path = tmp_path / "s.npz"
    np.savez(path, ids=np.arange(3), meta=np.array(json.dumps({"format": "datadiet-scores/1", "score": "el2n"})))
    _refused(path, NOT_OURS, "no runs", "missing ['runs']", "it holds ids, meta")


def test_bad_meta(tmp_path):
    path = tmp_path / "s.npz"
    np.savez(path, ids=np.arange(3), runs=np.zeros((1, 3)), meta=np.array("{not json"))
    _refused(path, NOT_OURS, "meta array is not valid JSON")
    np.savez(path, ids=np.arange(3), runs=np.zeros((1, 3)), meta=np.array("[1, 2]"))
    _refused(path, "meta array is not a JSON object")
    np.savez(path, ids=np.arange(3), runs=np.zeros((1, 3)), meta=np.array(json.dumps({"format": "datadiet-scores/1"})))
    _refused(path, "does not name the score")
    np.savez(path, ids=np.arange(3), runs=np.zeros((2, 4)),
             meta=np.array(json.dumps({"format": "datadiet-scores/1", "score": "el2n"})))
    _refused(path, "do not match")


@pytest.mark.parametrize("member", ["ids", "runs", "meta"])
def test_an_object_array_is_refused_and_never_unpickled(tmp_path, member):
    UNPICKLED.clear()
    arrays = {"ids": np.arange(1), "runs": np.zeros((1, 1)),
              "meta": np.array(json.dumps({"format": "datadiet-scores/1", "score": "el2n"}))}
    arrays[member] = np.array([Trap()], dtype=object)
    np.savez(tmp_path / "p.npz", **arrays)
    _refused(tmp_path / "p.npz", NOT_OURS, "Python objects (pickled data)")
    assert UNPICKLED == []
    with np.load(tmp_path / "p.npz", allow_pickle=True) as data:  # the trap works when pickles are allowed
        data[member]
    assert UNPICKLED == [True]


def test_a_plain_pickle_is_refused_and_never_unpickled(tmp_path):
    UNPICKLED.clear()
    path = tmp_path / "scores.pkl"
    path.write_bytes(pickle.dumps({"runs": Trap()}))
    _refused(path, NOT_OURS)
    assert UNPICKLED == []


def test_a_directory_and_a_missing_file(tmp_path):
    _refused(tmp_path, "is a directory")
    _refused(tmp_path / "nope.npz", "does not exist")


def test_infinite_scores_load_as_stored(tmp_path):
    ds = tiny_dataset(4)
    runs = np.array([[0.0, np.inf, 1.0, -np.inf]])
    back = load_scores(save_scores(tmp_path / "s.npz", _table(ds, runs)), dataset=ds)
    np.testing.assert_array_equal(back.runs, runs)
    assert back.source == str(tmp_path / "s.npz")


def test_check_dataset_names_the_file_and_both_fingerprints(tmp_path):
    ds = tiny_dataset(12)
    path = save_scores(tmp_path / "s.npz", _table(ds))
    other = ds.with_labels((ds.labels + 1) % ds.num_classes)
    with pytest.raises(ScoreFileError) as info:
        load_scores(path).check_dataset(other)
    message = str(info.value)
    for part in (str(path), ds.fingerprint, other.fingerprint, "datadiet score"):
        assert part in message


def test_selection_refuses_nan_and_infinite_scores():
    scores = np.array([0.1, np.nan, 0.3, np.inf, 0.5, -np.inf, 0.7])
    with pytest.raises(SelectionError, match=r"3 of 7 scores are not finite \(NaN, \+inf, -inf; first ids: 1, 3, 5\)"):
        select(scores, keep=0.5)
    ids = np.arange(100, 107)
    with pytest.raises(SelectionError, match="first ids: 101, 103, 105"):
        select(scores, keep=0.5, ids=ids)
    many = np.full(8, np.nan)
    with pytest.raises(SelectionError, match=r"8 of 8 scores .*first ids: 0, 1, 2, 3, 4, \.\.\.\)"):
        select(many, keep=0.5)
    table = ScoreTable("el2n", np.array([5, 6, 7]), np.array([[0.0, np.inf, 1.0]]))
    with pytest.raises(SelectionError, match=r"1 of 3 scores are not finite \(\+inf; first ids: 6\)"):
        select(table, keep=0.5)
    assert issubclass(SelectionError, ConfigError) and issubclass(SelectionError, DataDietError)
    assert issubclass(SelectionError, ValueError)
