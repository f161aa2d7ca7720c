"""Averaging sensitivity (Paul et al. App. E.1): n-run Spearman curves against scipy on the stored score rows,
pruning tables against numpy/scipy on the results, the single-run subsets against the stored run specs."""
import itertools
import json
import math
from dataclasses import replace

import numpy as np
import pytest
from scipy import stats

from datadiet.cli import main
from datadiet.errors import ConfigError, DataDietError
from datadiet.report.tables import read_csv
from datadiet.runs import digest_ids
from datadiet.selection import select
from datadiet.studies.averaging import PRESETS, n_run_curve, pruning_table, run_subsets
from fakes import copy_workspace, forbid_training, run_files, smoke_analysis, stored_scores


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    ws, summary = smoke_analysis(tmp_path_factory, "averaging")
    tables = stored_scores(ws)
    return ws, summary, tables


def test_n_run_curve_matches_scipy_on_the_score_files(workspace):
    ws, summary, tables = workspace
    curve = read_csv(ws.root / "averaging" / "n_runs.csv")
    assert {r["score"] for r in curve} == {label for label, t in tables.items()
                                          if t.runs.shape[0] > 1 and label != "random"}
    for row in curve:
        runs = tables[row["score"]].runs
        R, n = runs.shape[0], row["n"]
        full = runs.mean(axis=0)
        assert row["first_n"] == pytest.approx(stats.spearmanr(runs[:n].mean(0), full).statistic, abs=1e-12)
        rhos = [stats.spearmanr(runs[list(s)].mean(0), full).statistic for s in itertools.combinations(range(R), n)]
        assert row["subsets"] == math.comb(R, n)
        assert (row["min"], row["mean"], row["max"]) == pytest.approx((min(rhos), np.mean(rhos), max(rhos)), abs=1e-12)
        if n < R:
            others = [stats.spearmanr(runs[list(s)].mean(0), np.delete(runs, list(s), 0).mean(0)).statistic
                      for s in itertools.combinations(range(R), n)]
            assert row["disjoint"] == pytest.approx(np.mean(others), abs=1e-12)
        else:
            assert row["first_n"] == pytest.approx(1.0)
            assert math.isnan(row["disjoint"])
    el2n = next(r for r in curve if r["score"] == "el2n@epoch1" and r["n"] == 1)
    assert summary["single_run_spearman"]["el2n@epoch1"] == pytest.approx(el2n["mean"])
    assert f"el2n@epoch1 {el2n['mean']:.2f} ({el2n['min']:.2f}–{el2n['max']:.2f})" in summary["findings"][1]  # [0]: what the intervals cover


def test_single_run_and_mean_select_the_subsets_they_claim(workspace):
    ws, _, tables = workspace
    ids = tables["el2n@epoch1"].ids
    records = [json.loads(p.read_text()) for p in (ws.root / "sweep" / "runs").glob("*.json")]
    draws = ws.score_draws(PRESETS["smoke"].setting)  # evaluation seed s prunes with draw s mod 2
    for label in ("el2n@epoch1", "grand@epoch1"):
        for s, seed in enumerate((1000, 1001)):
            runs = draws.for_seed(s)[label].runs
            for method, values in ((f"{label}/run0", runs[0]), (label, runs.mean(0))):
                mine = [r for r in records if r["method"] == method and r["train"]["seed"] == seed]
                assert len(mine) == 1, (method, seed)
                assert mine[0]["subset_digest"] == digest_ids(select(values, keep=0.5, ids=ids))
    # one run's scores rank differently from the mean, so the two subsets (and run ids) differ
    assert digest_ids(select(tables["el2n@epoch1"].runs[0], keep=0.5, ids=ids)) != \
        digest_ids(select(tables["el2n@epoch1"].mean, keep=0.5, ids=ids))


def test_pruning_table_matches_the_results(workspace):
    ws, summary, _ = workspace
    folder = ws.root / "averaging"
    results, table = read_csv(folder / "results.csv"), read_csv(folder / "pruning.csv")
    assert (folder / "n_runs.png").stat().st_size > 0
    assert (folder / "pruning.png").stat().st_size > 0
    assert {(r["score"], r["keep"]) for r in table} == {("el2n@epoch1", 0.5), ("grand@epoch1", 0.5)}

    def accs(method):
        return np.array([r["test_accuracy"] for r in results if r["method"] == method and r["keep"] == 0.5])

    for row in table:
        single, averaged, rand = accs(f"{row['score']}/run0"), accs(row["score"]), accs("random")
        assert len(single) == len(averaged) == len(rand) == 2 == row["n"]
        assert row["single"] == pytest.approx(single.mean())
        assert row["averaged"] == pytest.approx(averaged.mean())
        assert row["averaged_minus_single"] == pytest.approx(averaged.mean() - single.mean())
        assert row["single_vs_random"] == pytest.approx(single.mean() - rand.mean())
    assert len(summary["pruning"]) == 2
    assert "Pruning to 0.5 with el2n@epoch1" in summary["findings"][-3]


def test_pruning_table_intervals_against_scipy():
    rng = np.random.default_rng(3)
    s = "el2n@epoch1"  # a score label: method names are parsed (single_label tags it /run0)
    accs = {f"{s}/run0": rng.normal(0.80, 0.01, 4), s: rng.normal(0.83, 0.01, 4), "random": rng.normal(0.81, 0.01, 4)}
    rows = [{"method": m, "keep": 0.5, "offset": None, "test_accuracy": float(a)} for m, v in accs.items() for a in v]
    (row,) = pruning_table(rows, [s], [0.5], 0)
    for name, a, b in (("averaged_minus_single", s, f"{s}/run0"), ("single_vs_random", f"{s}/run0", "random"),
                       ("averaged_vs_random", s, "random")):
        ci = stats.ttest_ind(accs[a], accs[b], equal_var=False).confidence_interval(0.95)
        assert row[name] == pytest.approx(accs[a].mean() - accs[b].mean())
        assert (row[f"{name}_low"], row[f"{name}_high"]) == pytest.approx((ci.low, ci.high))


def test_n_run_curve_on_a_hand_made_matrix():
    rows = np.array([[1.0, 2.0, 3.0, 4.0],
                     [2.0, 1.0, 4.0, 3.0],
                     [1.0, 3.0, 2.0, 5.0]])
    curve = n_run_curve(rows)
    assert [r["n"] for r in curve] == [1, 2, 3]
    assert [r["subsets"] for r in curve] == [3, 3, 1]
    # the mean [1.33, 2, 3, 4] ranks 1, 2, 3, 4; the single runs rank 1234, 2143 and 1324: ρ = 1, 0.6, 0.8
    assert curve[0]["first_n"] == pytest.approx(1.0)
    assert (curve[0]["min"], curve[0]["mean"], curve[0]["max"]) == pytest.approx((0.6, 0.8, 1.0))
    assert curve[2]["first_n"] == curve[2]["mean"] == pytest.approx(1.0)
    assert math.isnan(curve[2]["disjoint"])
    assert curve[0]["disjoint"] == pytest.approx(np.mean([stats.spearmanr(rows[i], np.delete(rows, i, 0).mean(0))
                                                          .statistic for i in range(3)]))
    assert curve[1]["first_n"] == pytest.approx(stats.spearmanr(rows[:2].mean(0), rows.mean(0)).statistic)
    assert [r["n"] for r in n_run_curve(rows, ns=[2])] == [2]
    constant = n_run_curve(np.ones((2, 5)))
    assert math.isnan(constant[0]["first_n"])  # a score that ranks nothing has no rank correlation


def test_run_subsets_enumerates_or_samples_distinct_choices():
    assert run_subsets(4, 2, 50) == list(itertools.combinations(range(4), 2))
    drawn = run_subsets(10, 5, 50, seed=1)
    assert len(drawn) == len(set(drawn)) == 50
    assert (0, 1, 2, 3, 4) in drawn
    assert all(len(s) == 5 for s in drawn)
    assert all(list(s) == sorted(s) for s in drawn)
    assert all(max(s) < 10 for s in drawn)
    assert drawn == run_subsets(10, 5, 50, seed=1)


def test_errors_are_clear(workspace, tmp_path):
    ws, _, _ = workspace
    with pytest.raises(DataDietError, match=r"n = \[4\].*1\.\.3"):
        n_run_curve(np.ones((3, 5)), ns=[4])
    # unknown labels and impossible n fail before any training, whatever the workspace holds
    # unknown labels, impossible n and a run that does not exist are refused when the config is built
    with pytest.raises(DataDietError, match="Unknown score label.*'el2n@epoch7'.*el2n@epoch1"):
        replace(PRESETS["smoke"], prune_scores=("el2n@epoch7",))
    with pytest.raises(DataDietError, match="Unknown score label.*'nonsense'"):
        replace(PRESETS["smoke"], curve_scores=("nonsense",))
    with pytest.raises(DataDietError, match=r"n = \[3\] runs out of 2"):
        replace(PRESETS["smoke"], ns=(1, 3))
    with pytest.raises(ConfigError, match="single_run 2 does not exist.*0..1"):
        replace(PRESETS["smoke"], single_run=2)
    with pytest.raises(ConfigError, match="--max-subsets must be at least 1"):
        replace(PRESETS["smoke"], max_subsets=0)


def test_cli_options_resume_without_retraining(workspace, tmp_path, capsys, monkeypatch):
    # This rewrites the averaging section with one score: in a copy, not in the module's workspace.
    ws = copy_workspace(workspace[0], tmp_path / "ws")
    before = run_files(ws.root)
    forbid_training(monkeypatch)
    argv = ["analyze", "averaging", "--preset", "smoke", "--out", str(ws.root), "--data-root", ws.execution.data_root,
            "--keeps", "0.5", "--prune-scores", "el2n@epoch1"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "sweep: 8 runs, 8 already finished, 0 to run" in out
    assert "grand@epoch1:" not in out
    assert run_files(ws.root) == before
    assert {r["score"] for r in read_csv(ws.root / "averaging" / "pruning.csv")} == {"el2n@epoch1"}
    assert {r["score"] for r in read_csv(workspace[0].root / "averaging" / "pruning.csv")} == {"el2n@epoch1",
                                                                                              "grand@epoch1"}
