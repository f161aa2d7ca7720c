"""The small things on a new user's path (issue 26, item 7): forgetting on a small dataset, `train --subset-file`
without `--dataset`, an early step rate and ETA with a --resize hint for large images, and a flip warning that says
what is on."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from datadiet.cli import main, size_hint
from datadiet.config import TrainConfig
from datadiet.data import Dataset, save_arrays
from datadiet.scores import load_scores
from datadiet.scores.functions import NeverPresentedWarning
from datadiet.training import train
from datadiet.training.stream import AugmentationScaleWarning, warn_if_large


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("DATADIET_CACHE", str(tmp_path / "cache"))


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def features(path: Path, n_train: int = 10, n_test: int = 6) -> str:
    """``arrays:PATH`` of 2-class float features, ``n_train`` training examples (ids 100…)."""
    rng = np.random.default_rng(0)
    y_train, y_test = np.arange(n_train) % 2, np.arange(n_test) % 2
    x_train = rng.normal(size=(n_train, 4)).astype(np.float32) + y_train[:, None]
    x_test = rng.normal(size=(n_test, 4)).astype(np.float32) + y_test[:, None]
    save_arrays(path, x_train, y_train, x_test, y_test, ids_train=np.arange(100, 100 + n_train))
    return f"arrays:{path}"


def big_folder(root: Path, side: int = 130, per_class: int = 5) -> Path:
    """Two classes of ``side``×``side`` grayscale PNGs."""
    rng = np.random.default_rng(1)
    for c, name in enumerate(("dark", "light")):
        for i in range(per_class):
            path = root / name / f"img{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(100 * c, 100 * c + 120, (side, side), dtype=np.uint8), mode="L").save(path)
    return root


MLP = ["--model", "mlp", "--width", "0.25", "--eval-batch-size", "16", "--device", "cpu"]

# ----------------------------------------------------------------------------- 1. forgetting on a small dataset


def test_score_forgetting_on_data_a_run_cannot_present_whole(tmp_path, capsys):
    # 10 examples at batch 8: one full batch per epoch, so one epoch presents 8 and never the other 2
    dataset = features(tmp_path / "small.npz")
    with pytest.warns(NeverPresentedWarning, match="2 of 10 examples were never presented"):
        code, _, err = run(capsys, "score", "--dataset", dataset, *MLP, "--batch-size", "8", "--epochs", "1",
                           "--scores", "forgetting", "--runs", "1", "--out", tmp_path / "scores")
    assert code == 0, err
    values = load_scores(tmp_path / "scores" / "forgetting-end.npz").runs[0]
    # one presentation at most (P = 1): a presented example scores 0 (right) or P + 1 = 2 (wrong, never learned);
    # the 2 never presented score as never learned, the highest
    assert set(values.tolist()) <= {0.0, 2.0} and (values == 2.0).sum() >= 2


def test_reproduce_smoke_on_a_small_folder_scores_forgetting(tmp_path, capsys):
    # 2 classes × 5 images, 1 held out per class: 8 training images at batch 3 present 6 per epoch
    root = big_folder(tmp_path / "images", side=12)
    with pytest.warns(NeverPresentedWarning, match="2 of 8 examples were never presented"):
        code, out, err = run(capsys, "reproduce", "--preset", "smoke", "--dataset", f"folder:{root}",
                             "--out", tmp_path / "results", "--width", "0.25", "--batch-size", "3", "--epochs", "1",
                             "--eval-batch-size", "16", "--no-augment", "--methods", "forgetting@end",
                             "--keeps", "0.5", "--eval-seeds", "1", "--score-runs", "1", "--score-draws", "1")
    assert code == 0, err
    assert "keep 0.5" in out


# ----------------------------------------------------------------------------- 2. train --subset-file


def _manifest(tmp_path: Path, capsys, dataset: str) -> Path:
    """Score (with --subset and --label-noise) and prune: the manifest of half the subset."""
    options = ["--subset", "12", "--label-noise", "0.25"]
    assert run(capsys, "score", "--dataset", dataset, *options, *MLP, "--batch-size", "4", "--epochs", "1",
               "--scores", "el2n", "--score-epochs", "1", "--runs", "1", "--out", tmp_path / "scores")[0] == 0
    manifest = tmp_path / "kept.json"
    assert run(capsys, "prune", "--score-file", tmp_path / "scores" / "el2n-epoch1.npz", "--keep", "0.5",
               "--out", manifest)[0] == 0
    return manifest


def test_train_subset_file_reads_the_data_and_its_options_from_the_manifest(tmp_path, capsys):
    dataset = features(tmp_path / "emb.npz", n_train=20)
    manifest = _manifest(tmp_path, capsys, dataset)
    recorded = json.loads(manifest.read_text())["data"]
    assert recorded["dataset"] == dataset and recorded["subset"] == 12 and recorded["label_noise"] == 0.25
    # no --dataset, no data option: the manifest's data; a flag that repeats it, or the test split's size, passes
    code, out, err = run(capsys, "train", "--subset-file", manifest, *MLP, "--batch-size", "4", "--epochs", "1",
                         "--subset", "12", "--test-subset", "4", "--out", tmp_path / "run")
    assert code == 0, err
    assert "training on 6 of 12 examples" in out
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["data"] == {**recorded, "test_subset": 4}
    assert result["dataset"]["fingerprint"] == json.loads(manifest.read_text())["dataset"]["fingerprint"]


@pytest.mark.parametrize("flag, value, had", [
    ("--label-noise", "0.1", "--label-noise 0.25"),
    ("--subset", "10", "--subset 12"),
    ("--dataset", "fashion-mnist", None),
])
def test_train_subset_file_refuses_a_data_flag_that_contradicts_the_manifest(tmp_path, capsys, flag, value, had):
    dataset = features(tmp_path / "emb.npz", n_train=20)
    manifest = _manifest(tmp_path, capsys, dataset)
    code, _, err = run(capsys, "train", "--subset-file", manifest, flag, value, *MLP, "--out", tmp_path / "run")
    assert code == 2
    message = " ".join(err.split())
    assert f"{flag} {value} contradicts subset file {manifest}" in message
    assert f"selected from {dataset}" + (f" with {had}" if had else ".") in message
    assert not (tmp_path / "run").exists()


def test_train_subset_file_of_an_older_manifest_uses_the_dataset_it_names(tmp_path, capsys):
    dataset = features(tmp_path / "emb.npz", n_train=12)
    assert run(capsys, "score", "--dataset", dataset, *MLP, "--batch-size", "4", "--epochs", "1", "--scores",
               "el2n", "--score-epochs", "1", "--runs", "1", "--out", tmp_path / "scores")[0] == 0
    manifest = tmp_path / "kept.json"
    assert run(capsys, "prune", "--score-file", tmp_path / "scores" / "el2n-epoch1.npz", "--keep", "0.5",
               "--out", manifest)[0] == 0
    record = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({k: v for k, v in record.items() if k not in ("data", "data_path")}))
    code, out, err = run(capsys, "train", "--subset-file", manifest, *MLP, "--batch-size", "4", "--epochs", "1")
    assert code == 0, err
    assert "training on 6 of 12 examples" in out


def test_train_subset_file_finds_a_folder_scored_by_a_relative_path_and_follows_a_move(tmp_path, capsys, monkeypatch):
    big_folder(tmp_path / "digits", side=12)
    monkeypatch.chdir(tmp_path)
    recipe = ["--model", "smallcnn", "--width", "0.25", "--batch-size", "4", "--epochs", "1", "--device", "cpu"]
    assert run(capsys, "score", "--dataset", "folder:digits", *recipe, "--scores", "el2n", "--score-epochs", "1",
               "--runs", "1", "--out", "scores")[0] == 0
    assert run(capsys, "prune", "--score-file", "scores/el2n-epoch1.npz", "--keep", "0.5", "--out", "kept.json")[0] == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # folder:digits means nothing here: the manifest's absolute path finds it
    code, out, err = run(capsys, "train", "--subset-file", tmp_path / "kept.json", *recipe)
    assert code == 0, err
    assert "training on 4 of 8 examples" in out
    (tmp_path / "digits").rename(tmp_path / "moved")
    code, _, err = run(capsys, "train", "--subset-file", tmp_path / "kept.json", *recipe)
    assert code == 2 and "Give its new location: --dataset folder:PATH" in " ".join(err.split())
    code, out, err = run(capsys, "train", "--subset-file", tmp_path / "kept.json", "--dataset",
                         f"folder:{tmp_path / 'moved'}", *recipe)
    assert code == 0 and "training on 4 of 8 examples" in out, err


# ----------------------------------------------------------------------------- 3. progress, and the --resize hint

FIRST_STEP = re.compile(r"^step 1/(\d+): [\d.,]+ (steps/s|s/step), ETA \d", re.MULTILINE)


def test_train_says_its_pace_and_eta_after_its_first_step(tmp_path, capsys):
    dataset = features(tmp_path / "emb.npz", n_train=16)
    code, _, err = run(capsys, "train", "--dataset", dataset, *MLP, "--batch-size", "4", "--epochs", "2")
    assert code == 0
    first = FIRST_STEP.search(err)
    assert first and first.group(1) == "8"  # 16 / 4 = 4 steps an epoch, 2 epochs
    epoch_line = err.index("(epoch 1.00)")
    assert first.start() < epoch_line  # before the first epoch's line, whatever the time it took
    assert re.search(r"\(epoch 1\.00\) .* train loss [\d.]+, [\d.,]+ (steps/s|s/step), ETA \d", err)


def test_a_fast_pace_is_written_in_plain_digits():
    from datadiet.training.engine import _pace

    assert _pace(1 / 12345.0, 0) == "12,345 steps/s"  # never 1.23e+04
    assert _pace(1 / 41.7, 500) == "41.7 steps/s, ETA 12 s" and _pace(3.2, 77) == "3.2 s/step, ETA 4.1 min"


def test_the_first_step_line_comes_once_per_call_and_the_last_step_has_no_eta():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(8, 3)).astype(np.float32), np.arange(8) % 2
    lines = []
    train(TrainConfig(model="mlp", width=0.25, batch_size=4, epochs=1), Dataset.from_tensors(x, y, x, y),
          log=lines.append, progress=False)
    assert [line.split(":")[0].split(" (")[0] for line in lines] == ["step 1/2", "step 2/2"]
    assert "ETA" in lines[0] and "ETA" not in lines[1]


def test_size_hint_for_large_images_on_a_built_in_model():
    hint = size_hint((3, 300, 300), "resnet18", "folder:photos")
    assert hint.startswith("hint: 300×300 images") and "about 88× slower than 32×32" in hint  # 90000 / 1024
    assert "an estimate" in hint and "--resize 32 32" in hint
    assert "--resize applies to folder: data only" in size_hint((1, 200, 100), "smallcnn", "arrays:x.npz")
    assert size_hint((3, 128, 128), "resnet18", "folder:photos") is None  # not over 128×128
    assert size_hint((3, 300, 300), "mypackage.models:net", "folder:photos") is None  # not a built-in
    assert size_hint((512,), "mlp", "arrays:x.npz") is None  # feature vectors


def test_train_on_large_images_prints_the_resize_hint_and_the_flip_actually_used(tmp_path, capsys):
    root = big_folder(tmp_path / "photos")
    argv = ["train", "--dataset", f"folder:{root}", "--model", "smallcnn", "--width", "0.25", "--batch-size", "4",
            "--steps", "1", "--eval-batch-size", "4", "--device", "cpu"]
    with pytest.warns(AugmentationScaleWarning) as caught:
        code, out, _ = run(capsys, *argv)
    assert code == 0
    assert "hint: 130×130 images make each step of smallcnn about 17× slower than 32×32 ones" in out
    assert "--resize 32 32" in out
    said = " ".join(str(w.message) for w in caught if issubclass(w.category, AugmentationScaleWarning))
    assert "no flips (the default for your own data" in said and "random horizontal flips" not in said
    with pytest.warns(AugmentationScaleWarning, match=r"random horizontal flips \(--flip\)"):
        assert run(capsys, *argv, "--flip")[0] == 0


# ----------------------------------------------------------------------------- 4. the flip warning


@pytest.mark.parametrize("flip, user_data, said", [
    (None, False, "random horizontal flips (the built-in datasets' default)"),
    (True, False, "random horizontal flips (the built-in datasets' default)"),  # decided before training: the same
    (False, False, "no flips (--no-flip)"),
    (None, True, "no flips (the default for your own data"),
    (False, True, "no flips (the default for your own data"),
    (True, True, "random horizontal flips (--flip)"),
])
def test_the_large_image_warning_says_whether_flips_are_on_and_why(flip, user_data, said):
    with pytest.warns(AugmentationScaleWarning) as caught:
        warn_if_large(TrainConfig(flip=flip), (3, 96, 96), user_data=user_data)
    message = str(caught[0].message)
    assert said in message and "96×96" in message and "pad 4 px" in message


def test_no_large_image_warning_for_small_images_or_without_augmentation(recwarn):
    warn_if_large(TrainConfig(), (3, 64, 64), user_data=False)
    warn_if_large(TrainConfig(augment=False), (3, 96, 96), user_data=True)
    assert not [w for w in recwarn if issubclass(w.category, AugmentationScaleWarning)]
