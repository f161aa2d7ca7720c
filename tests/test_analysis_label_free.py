"""Label-independent scores (Paul et al. App. D): Spearman against scipy on the score files, accuracy table
against numpy/scipy on the results, counterparts, errors."""
import math
from dataclasses import replace

import numpy as np
import pytest
from scipy import stats

from datadiet.errors import DataDietError
from datadiet.report.tables import read_csv
from datadiet.runs import Execution, Workspace
from datadiet.runs.presets import PRESETS as SETTINGS  # the one preset table (smoke: every study's)
from datadiet.studies.label_free import PRESETS, accuracy_table, counterpart_of, default_labels, findings, run
from fakes import assert_rerun_trains_nothing, copy_workspace, smoke_analysis, stored_scores

LABELS = default_labels(SETTINGS["smoke"])


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    ws, summary = smoke_analysis(tmp_path_factory, "label_free")
    means = {label: t.mean for label, t in stored_scores(ws).items()}
    return ws, summary, means


def test_default_labels_cover_both_kinds_at_both_times():
    assert LABELS == ("grand@init", "el2n@init", "score1@init", "score2@init", "score3@init",
                      "grand@epoch1", "el2n@epoch1", "score1@epoch1", "score2@epoch1", "score3@epoch1")


def test_spearman_matches_scipy_on_the_score_files(workspace):
    ws, _, means = workspace
    matrix = {r["score"]: r for r in read_csv(ws.root / "label_free" / "spearman.csv")}
    assert set(matrix) == set(LABELS)
    for a in LABELS:
        for b in LABELS:
            assert matrix[a][b] == pytest.approx(stats.spearmanr(means[a], means[b]).statistic, abs=1e-12)
    table = read_csv(ws.root / "label_free" / "accuracy.csv")
    for row in table:
        if row["counterpart"]:
            want = stats.spearmanr(means[row["score"]], means[row["counterpart"]]).statistic
            assert row["spearman_counterpart"] == pytest.approx(want, abs=1e-12)


def test_accuracy_table_matches_the_results(workspace):
    ws, summary, _ = workspace
    folder = ws.root / "label_free"
    for name in ("accuracy.png", "spearman.png", "section.md"):
        assert (folder / name).stat().st_size > 0, name
    results, table = read_csv(folder / "results.csv"), read_csv(folder / "accuracy.csv")

    def accs(method, keep=0.5):
        return np.array([r["test_accuracy"] for r in results if r["method"] == method and r["keep"] == keep])

    assert [r["score"] for r in table] == list(LABELS)
    for row in table:
        a, rand = accs(row["score"]), accs("random")
        assert len(a) == row["n"] == 2
        assert len(rand) == 2
        assert row["mean"] == pytest.approx(a.mean())
        assert row["random"] == pytest.approx(rand.mean())
        assert row["full"] == pytest.approx(accs("full", 1.0).mean())
        assert row["vs_random"] == pytest.approx(a.mean() - rand.mean())
        assert str(row["uses_labels"]) == str(row["name"] in ("grand", "el2n"))  # the CSV holds True/False
        if row["counterpart"]:
            assert row["vs_counterpart"] == pytest.approx(a.mean() - accs(row["counterpart"]).mean())
        else:
            assert math.isnan(row["vs_counterpart"])
    # first what the intervals cover (2 seeds × 2 score draws), then the findings of the table
    assert summary["findings"][0].startswith("Intervals cover 2 evaluation seeds × 2 independent score draws")
    assert summary["findings"][1:] == findings(summary["points"])
    assert sum(f.startswith("score") for f in summary["findings"]) == 6


def test_counterparts():
    assert counterpart_of("score2@epoch2") == "el2n@epoch2"
    assert counterpart_of("score1@init") == "grand@init"
    assert counterpart_of("score3@epoch20") == "grand@epoch20"
    assert counterpart_of("grand@init") is None
    assert counterpart_of("el2n@epoch2") is None


def test_accuracy_table_intervals_and_findings_on_hand_made_rows():
    accs = {"score2@init": [0.70, 0.72, 0.71], "el2n@init": [0.80, 0.83, 0.81], "random": [0.74, 0.75, 0.73],
            "full": [0.90, 0.91, 0.92]}
    rows = [{"method": m, "keep": 1.0 if m == "full" else 0.5, "offset": None, "test_accuracy": a}
            for m, v in accs.items() for a in v]
    rho = {"score2@init": [1.0, 0.3], "el2n@init": [0.3, 1.0]}
    free, using = accuracy_table(rows, ["score2@init", "el2n@init"], [0.5], rho, ["score2@init", "el2n@init"])
    ci = stats.ttest_ind(accs["score2@init"], accs["el2n@init"], equal_var=False).confidence_interval(0.95)
    assert (free["vs_counterpart_low"], free["vs_counterpart_high"]) == pytest.approx((ci.low, ci.high))
    assert free["vs_counterpart"] == pytest.approx(0.71 - 0.81333333)
    assert free["spearman_counterpart"] == 0.3
    assert free["p16"] == pytest.approx(np.percentile(accs["score2@init"], 16))
    lines = findings([free, using])
    assert "score2@init at keep 0.5: accuracy 0.7100, worse than random" in lines[0]
    assert "worse than it; Spearman 0.30" in lines[0]
    assert lines[1].endswith("none (0 of 1).")
    assert "Label-using scores significantly better than random: el2n@init (keep 0.5)" in lines[2]


def test_unknown_score_is_a_clear_error_before_training(tmp_path):
    empty = Workspace(tmp_path / "ws", Execution(data_root=str(tmp_path / "nowhere")), log=lambda _: None)
    with pytest.raises(DataDietError, match="Unknown score label.*'score4@init'"):
        run(replace(PRESETS["smoke"], scores=("score4@init", "grand@init")), empty)


def test_a_second_run_trains_nothing(workspace, tmp_path):
    assert_rerun_trains_nothing(copy_workspace(workspace[0], tmp_path / "ws"), "label_free")
