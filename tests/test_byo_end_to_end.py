"""Bring your own data and model, end to end through the command line: score → prune → train, and a
smoke-sized reproduce with a custom grid, on an image folder, on feature arrays, and with a user model."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fakes import runs_dir, study_dir
from datadiet.cli import main
from datadiet.data import save_arrays
from datadiet.report.tables import read_csv
from datadiet.scores import load_scores
from datadiet.selection import select

CLASSES = ("circle", "cross", "square")


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("DATADIET_CACHE", str(tmp_path / "cache"))


def image_folder(root: Path, per_class: int = 12) -> Path:
    """``root/<class>/img<i>.png``: 12×12 grayscale, a class-dependent bright block plus noise."""
    rng = np.random.default_rng(0)
    for c, name in enumerate(CLASSES):
        for i in range(per_class):
            img = rng.integers(0, 60, (12, 12), dtype=np.uint8)
            img[2 + 3 * c:5 + 3 * c, 2:10] = 220
            path = root / name / f"img{i:02d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img, mode="L").save(path)
    return root


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


RECIPE = ["--width", "0.25", "--batch-size", "8", "--eval-batch-size", "16", "--epochs", "2", "--no-augment"]


@pytest.mark.parametrize("source", ["folder", "arrays"])
def test_score_prune_train_on_user_data(tmp_path, capsys, source):
    if source == "folder":
        dataset = f"folder:{image_folder(tmp_path / 'images')}"
        model = ["--model", "smallcnn"]
    else:
        rng = np.random.default_rng(1)
        y_train, y_test = np.repeat(np.arange(3), 12), np.repeat(np.arange(3), 4)
        x_train = rng.normal(size=(36, 5)).astype(np.float32) + y_train[:, None]
        x_test = rng.normal(size=(12, 5)).astype(np.float32) + y_test[:, None]
        save_arrays(tmp_path / "emb.npz", x_train, y_train, x_test, y_test, ids_train=np.arange(100, 136))
        dataset = f"arrays:{tmp_path / 'emb.npz'}"
        model = ["--model", "mlp"]
    common = ["--dataset", dataset, *model, *RECIPE]
    code, out, _ = run(capsys, "data", "--dataset", dataset)
    assert code == 0 and ("circle" in out if source == "folder" else "5 features" in out or "(5,)" in out)
    assert run(capsys, "score", *common, "--scores", "el2n", "grand", "--score-epochs", "1", "--runs", "2",
               "--out", tmp_path / "scores")[0] == 0
    table = load_scores(tmp_path / "scores" / "el2n-epoch1.npz")
    assert table.runs.shape[0] == 2 and len(table.ids) == (30 if source == "folder" else 36)  # 2 of 12 held out
    code, out, _ = run(capsys, "prune", "--score-file", tmp_path / "scores" / "el2n-epoch1.npz", "--keep", "0.5",
                       "--rule", "ccs", "--out", tmp_path / "kept.json")
    assert code == 0
    manifest = json.loads((tmp_path / "kept.json").read_text())
    assert manifest["ids"] == select(table, keep=0.5, rule="ccs").tolist()
    if source == "arrays":
        assert set(manifest["ids"]) <= set(range(100, 136))  # the user's own ids
    code, out, _ = run(capsys, "train", *common, "--subset-file", tmp_path / "kept.json", "--out", tmp_path / "run")
    assert code == 0 and f"training on {len(manifest['ids'])} of" in out
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["data"]["dataset"] == dataset and 0 <= result["result"]["test_accuracy"] <= 1


def test_reproduce_with_a_custom_grid_on_an_image_folder(tmp_path, capsys):
    dataset = f"folder:{image_folder(tmp_path / 'images')}"
    out = tmp_path / "results"
    argv = ["reproduce", "--preset", "smoke", "--dataset", dataset, "--out", out, *RECIPE,
            "--methods", "el2n@epoch1", "el2n@epoch1+ccs", "input_norm", "--keeps", "0.5", "0.7",
            "--eval-seeds", "2", "--score-runs", "2"]
    code, stdout, _ = run(capsys, *argv)
    assert code == 0 and "keep 0.5" in stdout
    config = json.loads((study_dir(out) / "config.json").read_text())
    assert config["data"]["dataset"] == dataset and config["data"]["subset"] is None  # not the preset's subset
    assert config["train"]["epochs"] == 2 and config["train"]["width"] == 0.25
    rows = read_csv(study_dir(out) / "results.csv")
    assert {r["method"] for r in rows} == {"full", "random", "el2n@epoch1", "el2n@epoch1+ccs", "input_norm"}
    assert len(rows) == 2 * (1 + 2 * 4)
    # a second run resumes: nothing trains again
    assert run(capsys, *argv)[0] == 0


def test_reproduce_with_a_user_model(tmp_path, capsys):
    dataset = f"folder:{image_folder(tmp_path / 'images')}"
    out = tmp_path / "results"
    grid = ["--methods", "el2n@epoch1", "grand@init", "--keeps", "0.5", "--eval-seeds", "2", "--score-runs", "1"]
    # a --width the factory cannot take would be recorded but never used: refused, and nothing is written
    code, _, err = run(capsys, "reproduce", "--preset", "smoke", "--dataset", dataset, "--out", out, *RECIPE,
                       "--model", "user_models:no_width", *grid)
    assert code == 2 and "--width" in err and "user_models:no_width" in err and not out.exists()
    no_width = [a for a in RECIPE if a not in ("--width", "0.25")]
    code, _, _ = run(capsys, "reproduce", "--preset", "smoke", "--dataset", dataset, "--out", out, *no_width,
                     "--model", "user_models:no_width", *grid)
    assert code == 0
    records = [json.loads(p.read_text()) for p in runs_dir(out).glob("*.json")]
    assert {r["train"]["model"] for r in records} == {"user_models:no_width"}
    # the smoke preset's width 0.25 means nothing to this factory: recorded as 1, what was built
    assert {r["train"]["width"] for r in records} == {1.0}
    assert len(records) == 2 * 4


def test_edited_folder_is_not_mistaken_for_the_old_one(tmp_path, capsys):
    """The folder's content is part of each run's identity: edit one image and every run trains again."""
    root = image_folder(tmp_path / "images")
    argv = ["reproduce", "--preset", "smoke", "--dataset", f"folder:{root}", "--out", tmp_path / "results",
            *RECIPE, "--methods", "input_norm", "--keeps", "0.5", "--eval-seeds", "1", "--score-runs", "1"]
    assert run(capsys, *argv)[0] == 0
    first = {p.name for p in runs_dir(tmp_path / "results").glob("*.json")}
    for path in sorted((root / "cross").glob("*.png")):  # some of them are training images
        img = np.array(Image.open(path))
        img[0, 0] = 255 - img[0, 0]
        Image.fromarray(img, mode="L").save(path)
    assert run(capsys, *argv)[0] == 0
    second = {p.name for p in runs_dir(tmp_path / "results").glob("*.json")}
    assert first and first.isdisjoint(second - first) and len(second) == 2 * len(first)


def test_reproduce_on_feature_arrays_with_the_mlp(tmp_path, capsys):
    rng = np.random.default_rng(2)
    y_train, y_test = np.repeat(np.arange(3), 16), np.repeat(np.arange(3), 5)
    x_train = rng.normal(size=(48, 6)).astype(np.float32) + y_train[:, None]
    x_test = rng.normal(size=(15, 6)).astype(np.float32) + y_test[:, None]
    save_arrays(tmp_path / "emb.npz", x_train, y_train, x_test, y_test, classes=np.array(["a", "b", "c"]))
    out = tmp_path / "results"
    code, _, _ = run(capsys, "reproduce", "--preset", "smoke", "--dataset", f"arrays:{tmp_path / 'emb.npz'}",
                     "--model", "mlp", "--out", out, *RECIPE, "--methods", "el2n@epoch1", "grand@init",
                     "forgetting@end", "--keeps", "0.5", "--eval-seeds", "2", "--score-runs", "2")
    assert code == 0
    rows = read_csv(study_dir(out) / "results.csv")
    assert {r["method"] for r in rows} == {"full", "random", "el2n@epoch1", "grand@init", "forgetting@end"}
    assert {r["n_train"] for r in rows if r["method"] != "full"} == {24}
    assert json.loads((study_dir(out) / "config.json").read_text())["train"]["model"] == "mlp"


def test_prune_finds_the_scored_folder_from_another_directory_and_after_a_move(tmp_path, capsys, monkeypatch):
    """A score file records the folder as given (relative) and its absolute path; `prune --dataset` re-points."""
    image_folder(tmp_path / "digits")
    monkeypatch.chdir(tmp_path)
    assert run(capsys, "score", "--dataset", "folder:digits", "--scores", "input_norm", "--runs", "1",
               "--device", "cpu", "--out", "digits-scores")[0] == 0
    score_file = tmp_path / "digits-scores" / "input_norm.npz"
    meta = load_scores(score_file).meta
    assert meta["data"]["dataset"] == "folder:digits" and meta["data_path"] == str(tmp_path / "digits")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # folder:digits means nothing here: the absolute path is used
    code, out, _ = run(capsys, "prune", "--score-file", "../digits-scores/input_norm.npz", "--keep", "0.5",
                       "--out", "kept.json")
    assert code == 0 and "kept 15 of 30" in out
    expected = select(load_scores(score_file), keep=0.5).tolist()
    assert json.loads((elsewhere / "kept.json").read_text())["ids"] == expected
    (tmp_path / "digits").rename(tmp_path / "moved")
    code, _, err = run(capsys, "prune", "--score-file", "../digits-scores/input_norm.npz", "--keep", "0.5",
                       "--out", "again.json")
    assert code == 2 and "--dataset folder:PATH" in err and not (elsewhere / "again.json").exists()
    code, _, _ = run(capsys, "prune", "--score-file", "../digits-scores/input_norm.npz", "--keep", "0.5",
                     "--dataset", "folder:../moved", "--out", "again.json")
    assert code == 0 and json.loads((elsewhere / "again.json").read_text())["ids"] == expected
    other = image_folder(tmp_path / "other", per_class=11)  # other images: the fingerprint refuses them
    code, _, err = run(capsys, "prune", "--score-file", "../digits-scores/input_norm.npz", "--keep", "0.5",
                       "--dataset", f"folder:{other}", "--out", "wrong.json")
    assert code == 2 and "fingerprint" in err and not (elsewhere / "wrong.json").exists()
