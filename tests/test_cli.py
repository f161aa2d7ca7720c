"""The command line: a real run on fake IDX files, and every bad-input path exits 2 with a message."""
import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import write_fake_mnist, write_idx
from datadiet.cli import main

TINY = ["--model", "smallcnn", "--width", "0.25", "--batch-size", "8", "--eval-batch-size", "16"]


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_train_writes_config_result_and_checkpoints(tmp_path, capsys):
    root = write_fake_mnist(tmp_path / "data", n_train=32, n_test=16)
    out = tmp_path / "run"
    code, stdout, _ = run_cli(capsys, "train", "--dataset", "mnist", "--data-root", str(root), "--epochs", "1",
                              *TINY, "--out", str(out), "--checkpoint-steps", "0", "4")
    assert code == 0 and "final test accuracy" in stdout
    result = json.loads((out / "result.json").read_text())
    assert result["train"]["model"] == "smallcnn" and result["train"]["batch_size"] == 8
    assert result["dataset"]["size"] == 32 and len(result["dataset"]["fingerprint"]) == 32
    assert result["result"]["steps"] == 4 and 0 <= result["result"]["test_accuracy"] <= 1
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step_000000000.pt", "step_000000004.pt"]
    assert json.loads((out / "config.json").read_text())["version"] == result["version"]


def test_tuple_and_bool_flags_reach_the_config(tmp_path, capsys):
    root = write_fake_mnist(tmp_path / "data", n_train=16, n_test=8)
    out = tmp_path / "run"
    code, _, _ = run_cli(capsys, "train", "--dataset", "mnist", "--data-root", str(root), "--steps", "2", *TINY,
                         "--milestones", "0.5", "--no-augment", "--out", str(out))
    cfg = json.loads((out / "result.json").read_text())["train"]
    assert code == 0 and cfg["milestones"] == [0.5] and cfg["augment"] is False


def _assert_clean_error(code, err, *fragments):
    assert code == 2
    assert err.startswith("datadiet: error:") and "Traceback" not in err
    for fragment in fragments:
        assert fragment in " ".join(err.split())


def test_missing_dataset(tmp_path, capsys):
    code, _, err = run_cli(capsys, "train", "--data-root", str(tmp_path))
    _assert_clean_error(code, err, "'fashion-mnist' was not found", "apt-get install dataset-fashion-mnist")


def test_corrupt_gzip(tmp_path, capsys):
    root = write_fake_mnist(tmp_path)
    img = root / "train-images-idx3-ubyte.gz"
    img.write_bytes(img.read_bytes()[: len(img.read_bytes()) // 2])
    code, _, err = run_cli(capsys, "data", "--dataset", "mnist", "--data-root", str(root))
    _assert_clean_error(code, err, "damaged gzip", "download it again")


def test_wrong_magic(tmp_path, capsys):
    root = write_fake_mnist(tmp_path)
    write_idx(root / "t10k-images-idx3-ubyte.gz", np.zeros(20, np.uint8))
    code, _, err = run_cli(capsys, "data", "--dataset", "mnist", "--data-root", str(root))
    _assert_clean_error(code, err, "magic number 0x00000801, expected 0x00000803")


def test_unknown_model_and_dataset(tmp_path, capsys):
    root = write_fake_mnist(tmp_path)
    code, _, err = run_cli(capsys, "train", "--dataset", "mnist", "--data-root", str(root), "--model", "resnet7")
    _assert_clean_error(code, err, "Unknown model 'resnet7'")
    code, _, err = run_cli(capsys, "train", "--dataset", "svhn")
    _assert_clean_error(code, err, "Unknown dataset 'svhn'")


def test_out_of_range_config(capsys):
    code, _, err = run_cli(capsys, "train", "--label-noise", "1.5")
    _assert_clean_error(code, err, "Label_noise must lie in [0, 1]")


def test_nan_loss(tmp_path, capsys):
    root = write_fake_mnist(tmp_path)
    code, _, err = run_cli(capsys, "train", "--dataset", "mnist", "--data-root", str(root), "--steps", "20",
                           "--lr", "1e30", *TINY)
    _assert_clean_error(code, err, "NaN or infinite", "lower the learning rate")


def test_console_entry_point_runs_as_a_module(tmp_path):
    root = write_fake_mnist(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "datadiet", "data", "--dataset", "mnist", "--data-root", str(root)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "fingerprint" in proc.stdout


def test_score_command_writes_verified_score_files(tmp_path, capsys):
    from datadiet.data import load_splits
    from datadiet.scores import load_scores

    root = write_fake_mnist(tmp_path / "data", n_train=32, n_test=8)
    out = tmp_path / "scores"
    code, stdout, _ = run_cli(capsys, "score", "--dataset", "mnist", "--data-root", str(root), *TINY,
                              "--epochs", "2", "--score", "el2n", "grand", "input_norm", "--epoch", "0", "1",
                              "--runs", "2", "--seed", "7", "--out", str(out))
    assert code == 0 and "wrote" in stdout
    table = load_scores(out / "grand-epoch1.npz", dataset=load_splits("mnist", root).train)
    assert table.runs.shape == (2, 32) and table.meta["seeds"] == [7, 8] and table.meta["model"] == "smallcnn"
    assert table.meta["train"]["batch_size"] == 8 and table.meta["step"] == 4
    assert load_scores(out / "input_norm.npz").runs.shape == (1, 32)


def test_score_command_rejects_unknown_scores(capsys):
    code, _, err = run_cli(capsys, "score", "--score", "gradnorm", "--out", "x")
    _assert_clean_error(code, err, "Unknown score 'gradnorm'")


def test_prune_then_train_on_the_manifest(tmp_path, capsys):
    root = write_fake_mnist(tmp_path / "data", n_train=40, n_test=8)
    common = ["--dataset", "mnist", "--data-root", str(root), *TINY]
    assert run_cli(capsys, "score", *common, "--epochs", "1", "--score", "el2n", "--epoch", "1", "--runs", "1",
                   "--out", str(tmp_path / "s"))[0] == 0
    subset = tmp_path / "subset.json"
    code, stdout, _ = run_cli(capsys, "prune", "--scores", str(tmp_path / "s" / "el2n-epoch1.npz"), "--keep", "0.25",
                              "--class-balanced", "--out", str(subset))
    assert code == 0 and "kept 10 of 40" in stdout
    manifest = json.loads(subset.read_text())
    assert len(manifest["ids"]) == 10 and manifest["selection"]["class_balanced"] is True
    out = tmp_path / "run"
    code, stdout, _ = run_cli(capsys, "train", *common, "--epochs", "1", "--subset-file", str(subset), "--out", str(out))
    assert code == 0 and "training on 10 of 40" in stdout
    assert json.loads((out / "result.json").read_text())["result"]["steps"] == 40 // 8  # matched budget


def test_manifest_from_other_data_and_bad_fractions_are_refused(tmp_path, capsys):
    root = write_fake_mnist(tmp_path / "data", n_train=40, n_test=8)
    common = ["--dataset", "mnist", "--data-root", str(root), *TINY]
    run_cli(capsys, "score", *common, "--epochs", "1", "--score", "random", "--runs", "1", "--out", str(tmp_path / "s"))
    code, _, err = run_cli(capsys, "prune", "--scores", str(tmp_path / "s" / "random.npz"), "--keep", "1.5",
                           "--out", str(tmp_path / "x.json"))
    _assert_clean_error(code, err, "keep must be a fraction in (0, 1]")
    code, _, err = run_cli(capsys, "prune", "--scores", str(tmp_path / "s" / "random.npz"), "--keep", "0.5",
                           "--offset", "0.7", "--out", str(tmp_path / "x.json"))
    _assert_clean_error(code, err, "> 1")
    run_cli(capsys, "prune", "--scores", str(tmp_path / "s" / "random.npz"), "--keep", "0.5", "--out",
            str(tmp_path / "x.json"))
    code, _, err = run_cli(capsys, "train", *common, "--subset", "20", "--steps", "1", "--subset-file",
                           str(tmp_path / "x.json"))
    _assert_clean_error(code, err, "was selected from mnist (40 examples")
