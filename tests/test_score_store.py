"""Score files: round trip, plain-numpy readability, and every refusal."""
import json

import numpy as np
import pytest
import torch

from fakes import tiny_dataset
from datadiet.scores import ScoreFileError, ScoreTable, load_scores, save_scores


def _table(ds, runs=None, **meta):
    runs = np.random.default_rng(0).random((3, len(ds))) if runs is None else runs
    return ScoreTable("el2n", ds.ids.numpy(), runs, {"dataset": ds.describe(), "when": "epoch2", **meta})


def test_round_trip_keeps_ids_runs_and_meta(tmp_path):
    ds = tiny_dataset(20)
    table = _table(ds, seeds=[0, 1, 2])
    path = save_scores(tmp_path / "el2n.npz", table)
    back = load_scores(path, dataset=ds)
    np.testing.assert_array_equal(back.ids, table.ids)
    np.testing.assert_array_equal(back.runs, table.runs)
    np.testing.assert_allclose(back.mean, table.runs.mean(0))
    assert back.meta["seeds"] == [0, 1, 2]
    assert back.label == "el2n@epoch2"


def test_file_opens_with_plain_numpy(tmp_path):
    ds = tiny_dataset(5)
    save_scores(tmp_path / "s.npz", _table(ds))
    with np.load(tmp_path / "s.npz", allow_pickle=False) as data:
        assert data["runs"].shape == (3, 5)
        assert json.loads(str(data["meta"]))["format"] == "datadiet-scores/1"


def test_scores_from_another_dataset_are_refused(tmp_path):
    ds = tiny_dataset(20)
    save_scores(tmp_path / "s.npz", _table(ds))
    other = ds.with_labels((ds.labels + 1) % ds.num_classes)
    with pytest.raises(ScoreFileError, match="not on tiny .*recompute the scores"):
        load_scores(tmp_path / "s.npz", dataset=other)
    with pytest.raises(ScoreFileError, match="20 examples"):
        load_scores(tmp_path / "s.npz", dataset=ds.take(torch.arange(10)))


def test_nan_and_shape_errors():
    ds = tiny_dataset(4)
    with pytest.raises(ScoreFileError, match="NaN scores for 1 examples"):
        _table(ds, runs=np.array([[0.0, np.nan, 1.0, 2.0]]))
    with pytest.raises(ScoreFileError, match="do not match"):
        _table(ds, runs=np.zeros((2, 3)))


def test_corrupt_truncated_foreign_and_missing_files(tmp_path):
    ds = tiny_dataset(4)
    path = save_scores(tmp_path / "s.npz", _table(ds))
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ScoreFileError, match="truncated or damaged"):
        load_scores(path)
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(ScoreFileError, match="missing"):
        load_scores(tmp_path / "other.npz")
    np.savez(tmp_path / "v2.npz", ids=np.arange(2), runs=np.zeros((1, 2)), meta=np.array(json.dumps({"format": "x/2"})))
    with pytest.raises(ScoreFileError, match="format 'x/2'"):
        load_scores(tmp_path / "v2.npz")
    with pytest.raises(ScoreFileError, match="does not exist"):
        load_scores(tmp_path / "nope.npz")


def test_a_pickled_object_array_is_refused(tmp_path):
    np.savez(tmp_path / "p.npz", ids=np.array([object()], dtype=object), runs=np.zeros((1, 1)), meta=np.array("{}"))
    with pytest.raises(ScoreFileError):
        load_scores(tmp_path / "p.npz")


def test_a_file_holding_some_of_the_ids_says_so_not_that_the_data_differs(tmp_path):
    ds = tiny_dataset(20)
    full = _table(ds)
    keep = np.r_[0:7, 9:20]  # ids 7 and 8 cut out
    some = ScoreTable("el2n", full.ids[keep], full.runs[:, keep], full.meta)
    save_scores(tmp_path / "s.npz", some)
    with pytest.raises(ScoreFileError) as info:
        load_scores(tmp_path / "s.npz", dataset=ds)
    message = " ".join(str(info.value).split())
    assert str(tmp_path / "s.npz") in message
    assert "hold 18 example ids" in message and "has 20 examples" in message, message
    assert f"first missing id: {int(ds.ids[7])}" in message, message
    assert "not on" not in message and "cut short or edited" in message


def test_meta_config_entries_of_the_wrong_type_are_refused_naming_the_key(tmp_path):
    ds = tiny_dataset(8)
    for entry, key, value, wanted in [("data", "subset", 384.5, "a whole number or null"),
                                      ("data", "resize", [2, "x"], "a list of whole numbers or null"),
                                      ("train", "lr", "fast", "a number"),
                                      ("train", "milestones", 0.5, "a list of numbers")]:
        meta = {"dataset": ds.describe(), "when": "epoch2", entry: {key: value}}
        save_scores(tmp_path / "s.npz", ScoreTable("el2n", ds.ids.numpy(), np.zeros((1, 8)), meta))
        with pytest.raises(ScoreFileError) as info:
            load_scores(tmp_path / "s.npz")
        message = str(info.value)
        assert str(tmp_path / "s.npz") in message and f"'{entry}.{key}'" in message and wanted in message, message
    meta = {"dataset": ds.describe(), "data": {"subset": 384, "label_noise": 0, "resize": [8, 8]},
            "train": {"lr": 0.1, "milestones": [0.5, 1], "steps": None}}
    save_scores(tmp_path / "s.npz", ScoreTable("el2n", ds.ids.numpy(), np.zeros((1, 8)), meta))
    assert load_scores(tmp_path / "s.npz").meta["data"]["subset"] == 384  # whole numbers are numbers too
