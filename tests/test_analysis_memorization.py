"""Memorization estimates: the estimator against a per-example loop, and the smoke run of the external
analysis that estimates its own values."""
import csv

import numpy as np
import pytest

from datadiet.errors import ConfigError, DataDietError
from datadiet.runs import memorization as mz
from datadiet.runs.presets import PRESETS as SETTINGS
from datadiet.scores import load_scores
from fakes import copy_workspace, forbid_training, run_files, smoke_analysis


def loop_estimate(member, correct):
    """mem(i) by the definition, one example at a time."""
    out = []
    for i in range(member.shape[1]):
        inside = [bool(c) for m, c in zip(member[:, i], correct[:, i]) if m]
        outside = [bool(c) for m, c in zip(member[:, i], correct[:, i]) if not m]
        out.append(sum(inside) / len(inside) - sum(outside) / len(outside) if inside and outside else float("nan"))
    return np.array(out)


def test_estimator_matches_a_per_example_loop():
    rng = np.random.default_rng(0)
    member, correct = rng.random((9, 50)) < 0.5, rng.random((9, 50)) < 0.7
    member[:, 0], member[:, 1] = True, False  # never out / never in: no estimate
    mem, n_in, n_out = mz.memorization_estimate(member, correct)
    np.testing.assert_array_equal(np.isnan(mem), np.isnan(loop_estimate(member, correct)))
    np.testing.assert_allclose(mem[2:], loop_estimate(member, correct)[2:], rtol=0, atol=1e-12)
    np.testing.assert_array_equal(n_in + n_out, 9)
    assert np.isnan(mem[:2]).all()


def test_hand_computed_case():
    member = np.array([[1, 1], [1, 0], [0, 1], [0, 0]], dtype=bool)
    correct = np.array([[1, 1], [1, 0], [0, 1], [1, 0]], dtype=bool)
    mem, n_in, n_out = mz.memorization_estimate(member, correct)
    # example 0: in runs 0, 1 (both right), out runs 2, 3 (one right): 1 − 0.5; example 1: in 0, 2 (right),
    # out 1, 3 (wrong): 1 − 0
    np.testing.assert_allclose(mem, [0.5, 1.0])
    np.testing.assert_array_equal(n_in, [2, 2])


def test_subset_mask_is_seeded_and_sized():
    a, b = mz.subset_mask(101, 0.5, 3), mz.subset_mask(101, 0.5, 3)
    np.testing.assert_array_equal(a, b)
    assert a.sum() == 50
    assert not np.array_equal(a, mz.subset_mask(101, 0.5, 4))


def test_bad_settings_are_clear_errors(tmp_path):
    from datadiet.runs import Execution, Workspace

    ws = Workspace(tmp_path, Execution(data_root=str(tmp_path / "nowhere")), log=lambda _: None)
    with pytest.raises(ConfigError, match="at least 2 subset runs"):
        mz.estimate(ws, SETTINGS["smoke"], 1)
    with pytest.raises(ConfigError, match="strictly between 0 and 1"):
        mz.estimate(ws, SETTINGS["smoke"], 4, fraction=1.0)
    with pytest.raises(ValueError, match="runs, examples"):
        mz.memorization_estimate(np.ones(3, bool), np.ones(3, bool))


@pytest.fixture(scope="module")
def external_smoke(tmp_path_factory):
    return smoke_analysis(tmp_path_factory, "external")


def test_external_smoke_estimates_memorization_and_correlates_it(external_smoke):
    ws, summary = external_smoke
    [folder] = list((ws.root / "memorization" / "cache").iterdir())
    runs = sorted((folder / "fraction0.5").glob("run*.npz"))
    assert len(runs) == 4
    member = np.stack([np.load(r)["member"] for r in runs])
    correct = np.stack([np.load(r)["correct"] for r in runs])
    assert (member.sum(1) == 192).all()  # half of the 384 smoke examples each
    expected = loop_estimate(member, correct)
    with open(folder / "fraction0.5" / "memorization.csv") as fh:
        table = list(csv.DictReader(fh))
    ids = load_scores(next((ws.root / "scores").glob("*/input_norm.npz"))).ids
    position = {int(i): p for p, i in enumerate(ids)}
    assert len(table) == int(np.isfinite(expected).sum())
    assert len(table) > 0
    for row in table:
        assert float(row["memorization"]) == pytest.approx(expected[position[int(row["id"])]], abs=1e-12)
    assert summary["coverage"]["matched"] == len(table)
    assert summary["findings"][0].startswith("Values: memorization estimated here from 4 runs")
    assert any("Strongest rank correlation with memorization" in line for line in summary["findings"])


def test_external_smoke_resumes_without_training(external_smoke, tmp_path, monkeypatch):
    from datadiet.studies import run_analysis

    ws, first = copy_workspace(external_smoke[0], tmp_path / "ws"), external_smoke[1]  # the rerun rewrites files
    before = run_files(ws.root)
    assert len([f for f in before if f.startswith("memorization/cache/") and "/run" in f]) == 4
    forbid_training(monkeypatch)
    again = run_analysis("external", "smoke", workspace=ws)
    assert again["spearman"] == first["spearman"]
    assert run_files(ws.root) == before  # no memorization run, score run or cached file rewritten


def test_analyze_all_skips_external_without_input(tmp_path, monkeypatch, capsys):
    import datadiet.cli as cli

    monkeypatch.setattr(cli, "MODULES", ("external",))  # `all` runs these; the others would need CIFAR-10
    assert cli.main(["analyze", "all", "--preset", "paper", "--out", str(tmp_path / "ws")]) == 0  # paper: no estimate
    assert "external (paper): skipped, needs --values PATH" in capsys.readouterr().out


def test_a_damaged_cached_subset_run_is_one_paragraph_naming_it(tmp_path):
    path = tmp_path / "run0000.npz"
    np.savez(path, member=np.ones(4, dtype=bool))  # "correct" is missing: a foreign or half-written file
    with pytest.raises(DataDietError, match=r"run0000\.npz is not a cached memorization run: it has no correct .*"
                                            r"Delete it and run the same command again"):
        mz._subset_run(None, None, None, 0.5, path, "1/2")
