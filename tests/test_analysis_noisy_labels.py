"""The noisy-labels analysis on generated Fashion-MNIST, and its pure parts on hand-made cases.

Numbers are checked against independent computations: AUROC against brute-force pair counting on the score
files, the corrupted set against the labels `load_data` gives, window counts against a plain sort.
"""
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

from datadiet.cli import main
from datadiet.data import load_data
from datadiet.errors import ConfigError, DataDietError
from datadiet.report.tables import read_csv
from datadiet.runs import Execution, Workspace
from datadiet.runs.presets import PRESETS as SETTINGS  # the one preset table (smoke: every study's)
from datadiet.runs.presets import standard_scores
from datadiet.scores import SCORES, load_scores
from datadiet.scores.functions import self_confidence
from datadiet.selection import offset_windows, select
from datadiet.studies import noisy_labels as nl
from datadiet.studies import run_analysis
from fakes import brute_force_auroc, copy_workspace, forbid_training, run_files, write_fake_mnist

# The smoke preset with one score run and one evaluation seed on 256 examples (8 full batches of 32, so every
# example is presented each epoch and forgetting is defined): the whole pipeline in seconds.
TINY = replace(SETTINGS["smoke"], data=replace(SETTINGS["smoke"].data, subset=256), score_runs=1, eval_seeds=1)
CONFIG = nl.Config(TINY, keeps=(0.5,), offsets=(0.0, 0.5))


@pytest.fixture(scope="module")
def analysis(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("noisy")
    data_root = write_fake_mnist(tmp / "data", n_train=480, n_test=240)
    ws = Workspace(tmp / "ws", Execution(data_root=str(data_root)), log=lambda _: None)
    summary = run_analysis("noisy_labels", config=CONFIG, workspace=ws)
    return ws, summary


def _data(ws, noise: float):
    return load_data(replace(TINY.data, data_root=ws.execution.data_root, label_noise=noise, noise_seed=CONFIG.noise_seed))


def _noisy_score_tables(ws):
    """The noisy runs' tables of the scores the analysis asked for (the runs also write e.g. self_confidence@init)."""
    tables = [load_scores(f) for f in sorted((ws.root / "scores").glob("*/*.npz"))]
    return {t.label: t for t in tables if t.meta["data"]["label_noise"] > 0 and t.label in nl.noisy_methods(CONFIG)}


def test_outputs_and_report_section(analysis):
    ws, summary = analysis
    folder = ws.root / nl.NAME
    for name in ("offsets.png", "el2n_distributions.png", "auroc.png"):
        assert (folder / name).stat().st_size > 10_000
    for name in ("offsets.csv", "best_offsets.csv", "auroc.csv", "windows.csv", "el2n_distributions.csv",
                 "results.csv", "corrupted.csv"):
        assert (folder / name).is_file()
    section = (folder / "section.md").read_text()
    assert section.startswith("## Noisy labels")
    assert section in (ws.root / "report.md").read_text()
    assert summary["n_train"] == 256
    assert summary["n_chosen"] == 26


def test_corrupted_set_matches_the_labels_load_data_gives(analysis):
    ws, summary = analysis
    clean, noisy = _data(ws, 0.0), _data(ws, CONFIG.label_noise)
    differs = set(clean.train.ids[clean.train.labels != noisy.train.labels].tolist())
    rows = read_csv(ws.root / nl.NAME / "corrupted.csv")
    assert {r["id"] for r in rows if r["changed"] == "True"} == differs
    assert summary["n_corrupted"] == len(differs) > 0
    clean_label = dict(zip(clean.train.ids.tolist(), clean.train.labels.tolist()))
    noisy_label = dict(zip(noisy.train.ids.tolist(), noisy.train.labels.tolist()))
    assert all(r["original_label"] == clean_label[r["id"]] for r in rows)
    assert all(r["noisy_label"] == noisy_label[r["id"]] for r in rows)
    # only training labels are corrupted: every evaluation is on the clean test set
    assert torch.equal(clean.test.labels, noisy.test.labels)


def test_auroc_table_equals_brute_force_pair_counts_on_the_score_files(analysis):
    ws, summary = analysis
    clean, noisy = _data(ws, 0.0), _data(ws, CONFIG.label_noise)
    tables = _noisy_score_tables(ws)
    assert set(tables) == set(standard_scores(TINY)) | {"self_confidence@epoch1"}
    rows = {r["score"]: r for r in read_csv(ws.root / nl.NAME / "auroc.csv")}
    assert set(rows) == set(tables)
    positive = (clean.train.labels != noisy.train.labels).numpy()
    for label, table in tables.items():
        assert np.array_equal(table.ids, noisy.train.ids.numpy())
        assert rows[label]["auroc"] == pytest.approx(brute_force_auroc(table.mean, positive), abs=1e-12)
        assert summary["auroc"][label] == pytest.approx(rows[label]["auroc"], abs=1e-12)
    best = max(rows.values(), key=lambda r: r["auroc"])
    assert f"{best['score']} {best['auroc']:.3f}" in summary["findings"][1]


def test_window_counts_and_curves_against_independent_computation(analysis):
    ws, _ = analysis
    clean, noisy = _data(ws, 0.0), _data(ws, CONFIG.label_noise)
    corrupted = set(clean.train.ids[clean.train.labels != noisy.train.labels].tolist())
    tables = _noisy_score_tables(ws)
    windows = read_csv(ws.root / nl.NAME / "windows.csv")
    for row in windows:
        table = tables[row["score"]]
        order = np.lexsort((table.ids, table.mean))  # ascending, ties by id
        n_keep = round(row["keep"] * len(order))
        start = len(order) - n_keep if row["top_window"] == "True" else int(np.floor(row["offset"] * len(order)))
        kept = table.ids[order[start:start + n_keep]]
        assert row["corrupted_kept"] == len(corrupted.intersection(kept.tolist()))
    results = read_csv(ws.root / nl.NAME / "results.csv")
    curve = read_csv(ws.root / nl.NAME / "offsets.csv")
    expected_points = {(d, m, 0.5, o) for d in nl.DATASETS for m in ("el2n@epoch1", "grand@init") for o in (0.0, 0.5)}
    assert expected_points <= {(r["labels"], r["method"], r["keep"], r["offset"]) for r in curve}
    for point in curve:
        accs = [r["test_accuracy"] for r in results if (r["labels"], r["method"], r["keep"], r["offset"]) ==
                (point["labels"], point["method"], point["keep"], point["offset"])]
        assert point["mean"] == pytest.approx(np.mean(accs))
        assert point["n"] == len(accs)
    assert {r["labels"] for r in results if r["method"] == "random"} == {"clean", "noisy"}


def test_rerun_trains_nothing(analysis, tmp_path, monkeypatch):
    logs = []
    ws = copy_workspace(analysis[0], tmp_path / "ws", log=logs.append)  # the rerun rewrites the section
    before = run_files(ws.root)
    assert len([f for f in before if f.startswith("sweep/runs/")]) == 12
    forbid_training(monkeypatch)
    summary = run_analysis("noisy_labels", config=CONFIG, workspace=ws)
    assert any("12 already finished, 0 to run" in m for m in logs)
    assert run_files(ws.root) == before
    assert summary["auroc"] == analysis[1]["auroc"]


# ---------------------------------------------------------------- pure parts (AUROC itself: test_stats.py)

def test_top_k_hits_breaks_ties_like_select():
    scores, positive = np.array([3.0, 1.0, 3.0, 2.0]), np.array([True, False, False, True])
    assert nl.top_k_hits(scores, positive, 2) == 1
    assert nl.top_k_hits(scores, positive, 3) == 2
    # tie at 3.0: the seeded tie order decides, exactly as select does
    top = int(select(scores, keep=0.25)[0])
    assert nl.top_k_hits(scores, positive, 1) == int(positive[top])


def test_corrupted_examples_are_checked_against_the_noisy_labels(analysis):
    ws, _ = analysis
    clean, noisy = _data(ws, 0.0).train, _data(ws, CONFIG.label_noise).train
    record = nl.corrupted_examples(clean, noisy, CONFIG.label_noise, CONFIG.noise_seed)
    assert set(record.changed_ids.tolist()) == set(clean.ids[clean.labels != noisy.labels].tolist())
    with pytest.raises(DataDietError, match="not made by permute_labels"):
        nl.corrupted_examples(clean, noisy, CONFIG.label_noise, CONFIG.noise_seed + 1)
    tampered = noisy.labels.clone()
    keep = int(torch.nonzero(clean.labels == noisy.labels)[0])
    tampered[keep] = (tampered[keep] + 1) % 10
    with pytest.raises(DataDietError, match="changed labels"):
        nl.corrupted_examples(clean, noisy.with_labels(tampered), CONFIG.label_noise, CONFIG.noise_seed)


def test_best_windows_on_a_hand_made_curve():
    curve = [{"labels": d, "method": "s", "keep": 0.5, "offset": o, "mean": m}
             for d, pts in (("clean", [(0.0, 0.6), (0.25, 0.7), (0.5, 0.8)]), ("noisy", [(0.0, 0.6), (0.25, 0.75), (0.5, 0.5)]))
             for o, m in pts]
    curve += [{"labels": d, "method": "random", "keep": 0.5, "offset": None, "mean": 0.65} for d in nl.DATASETS]
    curve += [{"labels": d, "method": "full", "keep": 1.0, "offset": None, "mean": 0.9} for d in nl.DATASETS]
    best = {b["labels"]: b for b in nl.best_windows(curve, ["s"], [0.5])}
    assert (best["clean"]["best_offset"], best["clean"]["hardest_mean"]) == (0.5, 0.8)
    assert (best["noisy"]["best_offset"], best["noisy"]["best_mean"], best["noisy"]["hardest_mean"]) == (0.25, 0.75, 0.5)
    assert best["noisy"]["random"] == 0.65
    assert best["noisy"]["full"] == 0.9


def test_windows_and_methods():
    assert offset_windows(0.5, (0.0, 0.2, 0.5, 0.6)) == [0.0, 0.2, 0.5]
    methods = nl.noisy_methods(replace(CONFIG, el2n_epoch=2))
    assert methods[:len(standard_scores(TINY))] == standard_scores(TINY)  # the standard ones, in order
    assert set(methods) - set(standard_scores(TINY)) == {"self_confidence@epoch1", "el2n@epoch2"}
    assert nl.sweep_labels(CONFIG) == ("el2n@epoch1", "grand@init")


# ---------------------------------------------------------------- error paths

def test_error_paths_fail_before_any_training(tmp_path):
    ws = Workspace(tmp_path / "ws", Execution(data_root=str(tmp_path / "nowhere")), log=lambda _: None)
    with pytest.raises(ConfigError, match="label_noise must lie in"):
        nl.run(replace(CONFIG, label_noise=0.0), ws)
    noisy_setting = replace(TINY, data=replace(TINY.data, label_noise=0.1))
    with pytest.raises(ConfigError, match="already has label_noise"):
        nl.run(replace(CONFIG, setting=noisy_setting), ws)
    with pytest.raises(ConfigError, match="No offset"):
        nl.run(replace(CONFIG, keeps=(0.7,), offsets=(0.5,)), ws)
    with pytest.raises(ConfigError, match=r"--keeps takes fractions in \(0, 1\); got \[1.0\]\. A kept fraction of 1"):
        nl.run(replace(CONFIG, keeps=(1.0,)), ws)
    with pytest.raises(ConfigError, match=r"--offsets takes fractions in \[0, 1\); got \[-0.1, 0.0\]"):
        nl.run(replace(CONFIG, offsets=(-0.1, 0.0)), ws)
    assert not (tmp_path / "ws" / "scores").exists()


def test_cli_reports_zero_noise_clearly(tmp_path, capsys):
    argv = ["analyze", "noisy_labels", "--preset", "smoke", "--out", str(tmp_path / "ws"), "--label-noise", "0"]
    assert main(argv) == 2
    assert "label_noise must lie in (0, 1]" in " ".join(capsys.readouterr().err.split())  # the CLI wraps lines


def test_presets_follow_the_paper():
    paper = nl.PRESETS["paper"]
    assert paper.setting.data.dataset == "cifar10"
    assert paper.keeps == (0.4, 0.5)
    assert paper.el2n_epoch == 10
    assert nl.sweep_labels(paper) == ("el2n@epoch10", "grand@init")
    assert paper.label_noise == 0.1
    for config in nl.PRESETS.values():
        replace(config)  # the config's checks run at construction (__post_init__): every preset passes them


# ---------------------------------------------------------------- the self-confidence score

class FixedLogits(nn.Module):
    """Returns the logits stored for each input index (inputs are indices)."""

    def __init__(self, logits, dtype=torch.float64):
        super().__init__()
        self.logits = nn.Parameter(torch.as_tensor(logits, dtype=dtype))

    def forward(self, x):
        return self.logits[x.long().flatten()]


def test_self_confidence_is_one_minus_the_probability_of_the_given_label():
    logits = [[0.0, 0.0, 0.0], [np.log(3.0), 0.0, 0.0], [np.log(3.0), 0.0, 0.0]]  # p = ⅓ ⅓ ⅓; ⅗ ⅕ ⅕
    values = self_confidence(FixedLogits(logits), torch.tensor([[0], [1], [2]]), torch.tensor([2, 0, 1]))
    np.testing.assert_allclose(values.numpy(), [2 / 3, 2 / 5, 4 / 5], rtol=1e-12)


def test_self_confidence_keeps_confident_examples_apart_in_float32():
    # p_y rounds to 1 in float32 for both, so 1 − p_y would tie them at 0; the off-label mass does not
    model = FixedLogits([[20.0, 0.0], [25.0, 0.0]], dtype=torch.float32)
    values = self_confidence(model, torch.tensor([[0], [1]]), torch.tensor([0, 0]))
    np.testing.assert_allclose(values.numpy(), [np.exp(-20.0), np.exp(-25.0)], rtol=1e-5)
    assert values[0] > values[1] > 0


def test_self_confidence_is_registered_as_a_label_using_model_score():
    spec = SCORES["self_confidence"]
    assert spec.kind == "model"
    assert spec.uses_labels
    assert spec.function is self_confidence
    with pytest.raises(ConfigError, match="one label per input"):
        self_confidence(FixedLogits([[0.0, 1.0]]), torch.tensor([[0]]), torch.tensor([0, 1]))
