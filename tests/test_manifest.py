"""Subset manifests: round trip, and a clear ManifestError for every malformed, edited or foreign file."""
import json

import pytest
import torch

from fakes import tiny_dataset
from datadiet.manifest import DIGEST_KEY, FORMAT, ManifestError, ids_digest, load_subset, save_subset

N = 20


@pytest.fixture
def ds():
    return tiny_dataset(N)


def _save(tmp_path, ds, ids=(1, 4, 7, 9)):
    return save_subset(tmp_path / "subset.json", list(ids), ds, {"keep": 0.2})


def _edit(path, **changes):
    """Rewrite the manifest with some keys replaced (``None`` removes the key)."""
    record = json.loads(path.read_text())
    for key, value in changes.items():
        if value is None:
            record.pop(key)
        else:
            record[key] = value
    path.write_text(json.dumps(record))
    return path


def _old(path, ids):
    """A manifest as datadiet 0.2.0 wrote it (no digest), with the given ids."""
    return _edit(path, ids=ids, **{DIGEST_KEY: None})


def test_round_trip_stores_the_digest_and_returns_row_positions(tmp_path, ds):
    path = _save(tmp_path, ds, ids=[9, 1, 7])
    record = json.loads(path.read_text())
    assert record["format"] == FORMAT
    assert record["ids"] == [9, 1, 7]
    assert record[DIGEST_KEY] == ids_digest([9, 1, 7])
    assert load_subset(path, ds).tolist() == [9, 1, 7]
    shuffled = ds.take(torch.tensor([3, 2, 1, 0, *range(4, N)]))  # ids are mapped to rows, not taken as rows
    with pytest.raises(ManifestError, match="was selected from"):  # another order, another fingerprint
        load_subset(path, shuffled)


def test_an_old_manifest_without_a_digest_is_accepted(tmp_path, ds):
    path = _old(_save(tmp_path, ds), [2, 3, 5])
    assert load_subset(path, ds).tolist() == [2, 3, 5]


def test_ids_edited_under_the_same_fingerprint_are_caught_by_the_digest(tmp_path, ds):
    path = _edit(_save(tmp_path, ds, ids=[1, 4, 7]), ids=[1, 4, 8])
    with pytest.raises(ManifestError, match=rf"subset\.json.*{DIGEST_KEY}.*edited.*Re-run `datadiet prune`"):
        load_subset(path, ds)
    _edit(path, ids=[1, 4, 7], **{DIGEST_KEY: "0" * 64})
    with pytest.raises(ManifestError, match="edited after the file was written"):
        load_subset(path, ds)


def test_duplicate_ids_are_named(tmp_path, ds):
    path = _old(_save(tmp_path, ds), [3, 5, 3, 6, 5, 5])
    with pytest.raises(ManifestError, match=r"subset\.json: ids 3, 5 appear more than once.*datadiet prune"):
        load_subset(path, ds)


@pytest.mark.parametrize("bad, shown", [
    (1.5, r"ids\[1\] = 1\.5"),
    (2.0, r"ids\[1\] = 2\.0"),
    (True, r"ids\[1\] = true"),
    ("3", r'ids\[1\] = "3"'),
    (None, r"ids\[1\] = null"),
])
def test_ids_that_are_not_json_integers_are_named(tmp_path, ds, bad, shown):
    path = _old(_save(tmp_path, ds), [0, bad, 4])
    with pytest.raises(ManifestError, match=rf"subset\.json: example ids must be JSON integers; 1 are not \({shown}\)"):
        load_subset(path, ds)


def test_missing_or_non_list_ids(tmp_path, ds):
    path = _edit(_save(tmp_path, ds), ids=None)
    with pytest.raises(ManifestError, match=r"subset\.json has no \"ids\" list.*datadiet prune"):
        load_subset(path, ds)
    _edit(path, ids={"0": 1})
    with pytest.raises(ManifestError, match=r"\"ids\" must be a list of example ids, found a JSON object"):
        load_subset(path, ds)
    _edit(path, ids="1, 2, 3")
    with pytest.raises(ManifestError, match="found a JSON string"):
        load_subset(path, ds)
    _edit(path, ids=[])
    with pytest.raises(ManifestError, match="lists no ids"):
        load_subset(path, ds)


def test_a_huge_id_is_refused_without_a_traceback(tmp_path, ds):
    path = _old(_save(tmp_path, ds), [1, 2 ** 70])
    with pytest.raises(ManifestError, match=rf"too large to be example ids \(first: {2 ** 70};"):
        load_subset(path, ds)


def test_negative_ids_are_named(tmp_path, ds):
    path = _old(_save(tmp_path, ds), [1, -3, 2])
    with pytest.raises(ManifestError, match=r"subset\.json: 1 ids are negative \(first: -3\)"):
        load_subset(path, ds)


def test_ids_outside_the_dataset_are_named(tmp_path, ds):
    path = _old(_save(tmp_path, ds), [1, N, 2, N + 5])
    with pytest.raises(ManifestError, match=rf"2 ids are not examples of tiny/train \({N} examples; first absent: "
                                            rf"{N}, {N + 5}\)"):
        load_subset(path, ds)


def test_a_manifest_of_other_data_is_refused(tmp_path, ds):
    path = _save(tmp_path, ds)
    other = ds.with_labels((ds.labels + 1) % ds.num_classes)
    with pytest.raises(ManifestError, match=rf"subset\.json was selected from tiny \({N} examples, fingerprint "
                                            rf"{ds.fingerprint}\).*fingerprint {other.fingerprint}"):
        load_subset(path, other)
    _edit(path, dataset=["tiny"])
    with pytest.raises(ManifestError, match=r"subset\.json does not say which dataset.*\[\"tiny\"\]"):
        load_subset(path, ds)
    _edit(path, dataset={"name": "tiny"})
    with pytest.raises(ManifestError, match="not an object with a fingerprint"):
        load_subset(path, ds)


def test_files_that_are_not_manifests(tmp_path, ds):
    path = tmp_path / "subset.json"
    path.write_text("ids: 1, 2, 3\n")
    with pytest.raises(ManifestError,
                       match=r"subset file .*subset\.json: it is not valid JSON \(Expecting value.*not a JSON"):
        load_subset(path, ds)
    path.write_text("[1, 2, 3]")
    with pytest.raises(ManifestError, match=r"subset\.json is not a datadiet subset manifest .*found a JSON list"):
        load_subset(path, ds)
    path.write_text(json.dumps({"format": "datadiet-subset/9", "ids": [1]}))
    with pytest.raises(ManifestError, match="found format 'datadiet-subset/9'"):
        load_subset(path, ds)
    path.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ManifestError, match="Cannot read subset file"):
        load_subset(path, ds)
    with pytest.raises(ManifestError, match=r"nope\.json does not exist. Create it with `datadiet prune`"):
        load_subset(tmp_path / "nope.json", ds)
    with pytest.raises(ManifestError, match="is a directory"):
        load_subset(tmp_path, ds)


@pytest.mark.parametrize("ids, message", [
    ([1, 2, 1], r"out\.json: ids 1 appear more than once"),
    ([1, -2], r"out\.json: 1 ids are negative \(first: -2\)"),
    ([1.5, 2.0], r"out\.json: the ids must be a non-empty 1-D array of integers, got float64"),
    ([True], "got bool"),
    ([], "non-empty"),
    ([1, N], rf"out\.json: 1 example ids are not in tiny/train .*first: \[{N}\]"),
])
def test_save_refuses_ids_it_would_not_load(tmp_path, ds, ids, message):
    with pytest.raises(ManifestError, match=message):
        save_subset(tmp_path / "out.json", ids, ds, {})
    assert not (tmp_path / "out.json").exists()


# --- what a manifest records (issue 18 §3) ---------------------------------------------------------------------

def test_class_counts_name_every_class_including_those_kept_not_at_all(tmp_path, ds):
    # tiny_dataset labels cycle through 4 classes c0..c3: label = id % 4. Ids 1, 5, 9 are class c1, 2 is c2.
    record = json.loads(_save(tmp_path, ds, ids=[1, 5, 9, 2]).read_text())
    assert record["class_counts"] == {"c0": 0, "c1": 3, "c2": 1, "c3": 0}
    assert list(record["class_counts"]) == ["c0", "c1", "c2", "c3"]  # class order
    assert "files" not in record  # built-in style data has no files
    assert record["dataset"] == ds.describe()


def test_class_counts_fall_back_to_indices_without_class_names(tmp_path):
    from dataclasses import replace

    unnamed = replace(tiny_dataset(12, classes=3), classes=("same", "same", "same"))  # names that name nothing
    record = json.loads(save_subset(tmp_path / "s.json", [0, 3, 4], unnamed, {}).read_text())
    assert record["class_counts"] == {"0": 2, "1": 1, "2": 0}


def test_folder_data_lists_each_kept_file_in_the_order_of_the_ids(tmp_path, ds):
    class WithFiles:  # the ImageDataset of an image folder: files row for row with the labels
        def __init__(self, inner, files):
            self.inner, self.files = inner, files

        def __getattr__(self, name):
            return getattr(self.inner, name)

    shuffled = ds.take(torch.tensor([3, 2, 1, 0, *range(4, N)]))  # rows no longer in id order
    files = tuple(f"c{int(label)}/img{int(i):03d}.png" for i, label in zip(shuffled.ids, shuffled.labels))
    record = json.loads(save_subset(tmp_path / "s.json", [9, 0, 3], WithFiles(shuffled, files), {}).read_text())
    assert record["files"] == ["c1/img009.png", "c0/img000.png", "c3/img003.png"]
    assert load_subset(tmp_path / "s.json", shuffled).tolist() == [9, 3, 0]  # rows of ids 9, 0, 3


def test_a_manifest_without_the_new_fields_still_loads(tmp_path, ds):
    path = _edit(_save(tmp_path, ds, ids=[2, 3]), class_counts=None)
    assert load_subset(path, ds).tolist() == [2, 3]


def test_save_needs_the_dataset_not_its_description(tmp_path, ds):
    with pytest.raises(ManifestError, match="pass the dataset the ids index"):
        save_subset(tmp_path / "s.json", [1], ds.describe(), {})


def test_deeply_nested_json_is_a_manifest_error_naming_the_file(tmp_path, ds):
    from datadiet.errors import ConfigError

    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ConfigError, match=r"deep\.json: it is not valid JSON for datadiet \(nested more than 100"):
        load_subset(path, ds)


# --- ties (issue 26 §4) ------------------------------------------------------------------------------------------

TIES = {"largest_tie_value": 0.0, "largest_tie_count": 15, "largest_tie_share": 0.75, "tied_share": 0.75}


def test_the_manifest_records_the_score_ties_and_the_tie_decided_count(tmp_path, ds):
    path = save_subset(tmp_path / "t.json", [1, 4, 7, 9], ds, {"keep": 0.2}, score_ties=TIES, tie_decided=3)
    record = json.loads(path.read_text())
    assert record["score_ties"] == TIES and record["tie_decided"] == 3
    random_rule = json.loads(save_subset(tmp_path / "r.json", [1], ds, {}, score_ties=TIES).read_text())
    assert random_rule["tie_decided"] is None  # not applicable: the random rule reads no score
    assert "tie_decided" not in json.loads(_save(tmp_path, ds).read_text())  # no ties given, none recorded


def test_a_manifest_without_ties_still_loads(tmp_path, ds):
    path = save_subset(tmp_path / "t.json", [2, 3], ds, {}, score_ties=TIES, tie_decided=1)
    assert load_subset(_edit(path, score_ties=None, tie_decided=None), ds).tolist() == [2, 3]


def test_an_impossible_tie_decided_count_is_refused_before_writing(tmp_path, ds):
    with pytest.raises(ManifestError, match=r"t\.json: 5 tie-decided examples of 2 kept"):
        save_subset(tmp_path / "t.json", [2, 3], ds, {}, score_ties=TIES, tie_decided=5)
    assert not (tmp_path / "t.json").exists()
