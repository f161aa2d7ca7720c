"""`datadiet prune`: the manifest records every selection parameter and the kept count per class, and the command
prints the counts and warns about classes kept at under half of their share."""
import json
from collections import Counter
from dataclasses import replace

import numpy as np
import pytest

from fakes import write_fake_mnist
from datadiet.cli import main
from datadiet.scores import load_scores, save_scores
from datadiet.selection import select

TINY = ["--model", "smallcnn", "--width", "0.25", "--batch-size", "8", "--eval-batch-size", "16"]


@pytest.fixture(scope="module")
def score_file(tmp_path_factory):
    """Random scores of 40 fake MNIST examples; labels cycle 0..9, so label = id % 10 and every class has 4."""
    tmp = tmp_path_factory.mktemp("prune")
    root = write_fake_mnist(tmp / "data", n_train=40, n_test=8)
    assert main(["score", "--dataset", "mnist", "--data-root", str(root), *TINY, "--epochs", "1", "--scores",
                 "random", "--runs", "1", "--out", str(tmp / "s")]) == 0
    return tmp / "s" / "random.npz"


def _prune(capsys, score_file, out, *flags):
    code = main(["prune", "--score-file", str(score_file), "--out", str(out), *flags])
    stdout, err = capsys.readouterr()
    return code, stdout, err


def test_the_manifest_records_every_parameter_used_and_the_class_counts(score_file, tmp_path, capsys):
    out = tmp_path / "w.json"
    code, stdout, _ = _prune(capsys, score_file, out, "--keep", "0.5", "--tie-seed", "3")
    assert code == 0
    manifest = json.loads(out.read_text())
    table = load_scores(score_file)
    assert manifest["ids"] == select(table, keep=0.5, tie_seed=3).tolist()
    selection = dict(manifest["selection"])
    assert selection.pop("scores_fingerprint") == table.meta["dataset"]["fingerprint"]
    assert selection == {"scores": str(score_file), "score": "random", "rule": "window", "keep": 0.5,
                         "offset": 0.5, "order": "highest", "tie_seed": 3, "class_balanced": False}
    by_class = Counter(i % 10 for i in manifest["ids"])  # the fake data's labels, independently
    assert manifest["class_counts"] == {str(c): by_class[c] for c in range(10)}
    assert "files" not in manifest  # built-in data
    assert "kept per class: " + ", ".join(f"{c} {by_class[c]}/4" for c in range(10)) in stdout


def test_ccs_records_its_resolved_defaults(score_file, tmp_path, capsys):
    out = tmp_path / "c.json"
    assert _prune(capsys, score_file, out, "--keep", "0.3", "--rule", "ccs", "--class-balanced")[0] == 0
    selection = json.loads(out.read_text())["selection"]
    assert {k: selection[k] for k in ("rule", "keep", "beta", "bins", "seed", "tie_seed", "class_balanced")} == \
        {"rule": "ccs", "keep": 0.3, "beta": 0.1, "bins": 50, "seed": 0, "tie_seed": 0, "class_balanced": True}
    assert "offset" not in selection and "order" not in selection


def test_an_explicit_offset_records_no_order(score_file, tmp_path, capsys):
    out = tmp_path / "o.json"
    assert _prune(capsys, score_file, out, "--keep", "0.25", "--offset", "0.5")[0] == 0
    selection = json.loads(out.read_text())["selection"]
    assert selection["offset"] == 0.5 and "order" not in selection


def test_a_class_kept_at_under_half_its_share_is_warned_about(score_file, tmp_path, capsys):
    # Class 1 (ids 1, 11, 21, 31) scores lowest of all: keeping the highest half keeps none of it.
    table = load_scores(score_file)
    runs = np.where(table.ids % 10 == 1, -1.0, table.runs)
    low_ones = tmp_path / "low.npz"
    save_scores(low_ones, replace(table, runs=runs))
    code, stdout, _ = _prune(capsys, low_ones, tmp_path / "x.json", "--keep", "0.5")
    assert code == 0
    assert "warning: class '1' keeps 0 of its 4 examples, under half of its proportional share (0.5 x 4 = 2)" in stdout
    code, stdout, _ = _prune(capsys, low_ones, tmp_path / "b.json", "--keep", "0.5", "--class-balanced")
    assert code == 0 and "warning" not in stdout
    assert json.loads((tmp_path / "b.json").read_text())["class_counts"]["1"] == 2


def test_unbounded_bins_and_bad_tie_seeds_exit_2_naming_the_flag(score_file, tmp_path, capsys):
    code, _, err = _prune(capsys, score_file, tmp_path / "x.json", "--keep", "0.5", "--rule", "ccs", "--bins",
                          "1000000000")
    assert code == 2 and "--bins: 1000000000 bins for 40 scored examples; use at most 50" in err
    code, _, err = _prune(capsys, score_file, tmp_path / "x.json", "--keep", "0.5", "--tie-seed", "-1")
    assert code == 2 and "--tie-seed" in err
    assert not (tmp_path / "x.json").exists()


def test_folder_data_lists_each_kept_file(tmp_path, capsys, monkeypatch):
    from PIL import Image

    from datadiet.config import DataConfig
    from datadiet.data import load_data

    monkeypatch.setenv("DATADIET_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    root = tmp_path / "images"
    for name in ("ant", "bee"):
        for i in range(10):
            (root / name).mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8), mode="L").save(root / name / f"{i}.png")
    dataset = f"folder:{root}"
    assert main(["score", "--dataset", dataset, *TINY, "--epochs", "1", "--scores", "random", "--runs", "1",
                 "--out", str(tmp_path / "s")]) == 0
    capsys.readouterr()
    assert _prune(capsys, tmp_path / "s" / "random.npz", tmp_path / "k.json", "--keep", "0.5")[0] == 0
    manifest = json.loads((tmp_path / "k.json").read_text())
    assert len(manifest["files"]) == len(manifest["ids"])
    train = load_data(DataConfig(dataset=dataset)).train
    rows = train.positions_of(manifest["ids"]).numpy()
    for path, row in zip(manifest["files"], rows):  # each listed file holds the kept example's pixels
        pixels = np.asarray(Image.open(root / path))
        assert np.array_equal(pixels, train.images[row, 0].numpy()), path
    assert manifest["class_counts"] == {name: sum(p.startswith(f"{name}/") for p in manifest["files"])
                                        for name in ("ant", "bee")}


# --- ties (issue 26 §4): a constructed score file, counted by hand ------------------------------------------------

def _tied_scores(score_file, tmp_path):
    """30 of the 40 examples score 0 (ids not divisible by 4), the other 10 score their id + 1, all distinct."""
    table = load_scores(score_file)
    runs = np.where(table.ids % 4 == 0, table.ids + 1.0, 0.0)[None, :]
    path = tmp_path / "tied.npz"
    save_scores(path, replace(table, runs=runs))
    return path


def test_prune_names_the_tie_and_warns_when_the_tie_order_picked_the_subset(score_file, tmp_path, capsys):
    tied = _tied_scores(score_file, tmp_path)
    # keep 0.5 keeps 20: the 10 positive scores, then 10 of the 30 zeros, which only the tie order tells apart.
    code, stdout, _ = _prune(capsys, tied, tmp_path / "t.json", "--keep", "0.5")
    assert code == 0
    manifest = json.loads((tmp_path / "t.json").read_text())
    assert manifest["tie_decided"] == 10
    assert manifest["score_ties"] == {"largest_tie_value": 0.0, "largest_tie_count": 30, "largest_tie_share": 0.75,
                                      "tied_share": 0.75}
    assert "ties: 75 % of the scores (30 of 40) tie at 0; the seeded tie order picked 10 of the 20 kept examples " \
           "(50 %)" in stdout
    assert "warning: the seeded tie order, not random, picked 10 of the 20 kept examples (50 %)" in stdout
    assert "--tie-seed" in stdout


def test_class_balanced_tie_decided_is_counted_per_class(score_file, tmp_path, capsys):
    tied = _tied_scores(score_file, tmp_path)
    code, stdout, _ = _prune(capsys, tied, tmp_path / "b.json", "--keep", "0.5", "--class-balanced")
    assert code == 0
    # Class c holds ids c, c+10, c+20, c+30 (label = id % 10) and keeps 2; with p positive scores, 2 - p zeros are
    # picked among the 4 - p zeros by the tie order when p < 2, none otherwise.
    positives = [sum((c + 10 * k) % 4 == 0 for k in range(4)) for c in range(10)]
    expected = sum(max(0, 2 - p) for p in positives)
    assert json.loads((tmp_path / "b.json").read_text())["tie_decided"] == expected == 10


def test_no_tie_no_warning_and_random_is_not_applicable(score_file, tmp_path, capsys):
    code, stdout, _ = _prune(capsys, score_file, tmp_path / "n.json", "--keep", "0.5")
    assert code == 0 and "ties: no two scores are equal; the seeded tie order picked 0 of the 20" in stdout
    assert "warning: the seeded tie order" not in stdout
    assert json.loads((tmp_path / "n.json").read_text())["tie_decided"] == 0
    code, stdout, _ = _prune(capsys, _tied_scores(score_file, tmp_path), tmp_path / "r.json", "--keep", "0.5",
                             "--rule", "random")
    assert code == 0 and "ties: 75 % of the scores (30 of 40) tie at 0 (the random rule reads no score)" in stdout
    assert "warning: the seeded tie order" not in stdout
    assert json.loads((tmp_path / "r.json").read_text())["tie_decided"] is None


def test_score_names_each_files_largest_tie_and_warns_over_a_tenth(score_file, tmp_path, capsys):
    from datadiet.cli import _say_score_ties

    root = write_fake_mnist(tmp_path / "data", n_train=40, n_test=8)
    assert main(["score", "--dataset", "mnist", "--data-root", str(root), *TINY, "--epochs", "1", "--scores",
                 "random", "--runs", "1", "--out", str(tmp_path / "s")]) == 0
    stdout = capsys.readouterr().out
    assert "random: no two scores are equal" in stdout and "warning" not in stdout.replace(str(tmp_path), "")
    _say_score_ties(load_scores(_tied_scores(score_file, tmp_path)))
    stdout = capsys.readouterr().out
    assert "random: 75 % of the scores (30 of 40) tie at 0" in stdout
    assert ("warning: random: 75 % of examples tie at 0; a selection whose boundary falls among them picks those "
            "examples by the seeded tie order (--tie-seed), not by the score") in stdout
