"""`reproduce smoke` end to end on generated Fashion-MNIST files, the report, and the tables behind it."""
import json
import shutil
from dataclasses import replace

import numpy as np
import pytest
from scipy import stats

from conftest import write_fake_mnist
from datadiet.analysis.tables import compare_to_random, curve_table, read_csv, spearman_matrix, welch_interval
from datadiet.cli import main
from datadiet.errors import DataDietError
from datadiet.experiments.reproduce import PRESETS, _windows, build_tasks, parse_method, reproduce


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("smoke")
    root = write_fake_mnist(tmp / "data", n_train=480, n_test=240)
    out = tmp / "results"
    summary = reproduce(PRESETS["smoke"], out, data_root=str(root), log=lambda _: None)
    return root, out, summary


def test_smoke_writes_every_output(smoke):
    _, out, summary = smoke
    for name in ("config.json", "results.csv", "curve.csv", "vs_random.csv", "spearman.csv", "summary.json",
                 "pruning_curve.png", "spearman.png", "grand_init_vs_input_norm.png", "report.md", "report.html"):
        assert (out / name).is_file(), name
    rows = read_csv(out / "results.csv")
    methods = {"full", "random", "input_norm", "grand@init", "grand@epoch1", "el2n@epoch1", "forgetting@end"}
    assert {r["method"] for r in rows} == methods
    assert len(rows) == 2 * (1 + 6)  # 2 evaluation seeds × (full + 6 methods at one fraction)
    assert {r["seed"] for r in rows} == {1000, 1001}  # evaluation seeds differ from scoring seeds 0, 1
    assert len({r["steps"] for r in rows}) == 1  # matched budget at every kept fraction
    assert {r["n_train"] for r in rows if r["method"] != "full"} == {192}
    report = (out / "report.md").read_text()
    assert "## What beat random" in report and "pruning_curve.png" in report
    assert "| el2n@epoch1 | keep 0.5 |" in report and "| random | keep 0.5 | 2 |" in report
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 3 and "<script" not in html
    assert -1 <= summary["spearman_grand_init_input_norm"] <= 1


@pytest.mark.filterwarnings("ignore:Precision loss:RuntimeWarning")  # scipy, on near-identical tiny-model accuracies
def test_report_numbers_match_independent_computations(smoke):
    _, out, _ = smoke
    rows = read_csv(out / "results.csv")
    curve = {(r["method"], r["keep"]): r for r in read_csv(out / "curve.csv")}
    accs = [r["test_accuracy"] for r in rows if r["method"] == "el2n@epoch1"]
    assert curve[("el2n@epoch1", 0.5)]["mean"] == pytest.approx(np.mean(accs))
    assert curve[("el2n@epoch1", 0.5)]["p16"] == pytest.approx(np.percentile(accs, 16))
    rand = [r["test_accuracy"] for r in rows if r["method"] == "random"]
    versus = {r["method"]: r for r in read_csv(out / "vs_random.csv")}
    assert versus["el2n@epoch1"]["diff"] == pytest.approx(np.mean(accs) - np.mean(rand))
    if np.std(accs) + np.std(rand) > 0:
        assert versus["el2n@epoch1"]["p_value"] == pytest.approx(stats.ttest_ind(accs, rand, equal_var=False).pvalue)


def test_report_command_rebuilds_the_same_tables(smoke, capsys):
    _, out, _ = smoke
    before = (out / "vs_random.csv").read_text()
    (out / "report.md").unlink()
    assert main(["report", str(out)]) == 0
    assert (out / "report.md").is_file() and (out / "vs_random.csv").read_text() == before
    assert "report:" in capsys.readouterr().out


def test_rerunning_resumes_and_refuses_another_preset(smoke):
    root, out, _ = smoke
    logs = []
    reproduce(PRESETS["smoke"], out, data_root=str(root), log=logs.append)
    assert any("14 already finished, 0 to run" in m for m in logs)
    assert any("cached" in m for m in logs)  # score runs come from the cache too
    with pytest.raises(DataDietError, match="holds another experiment.*differs in preset, data, train"):
        reproduce(PRESETS["quick"], out, data_root=str(root), log=lambda _: None)
    with pytest.raises(DataDietError, match="differs in score_runs"):
        reproduce(replace(PRESETS["smoke"], score_runs=3), out, data_root=str(root), log=lambda _: None)


def test_offsets_extend_a_finished_experiment(smoke, tmp_path, capsys):
    root, out, _ = smoke
    extended = tmp_path / "extended"
    shutil.copytree(out, extended)
    argv = ["reproduce", "smoke", "--out", str(extended), "--data-root", str(root), "--offsets", "0", "0.25", "0.5", "0.9"]
    assert main(argv) == 0
    # offset 0.5 is the default keep-highest window and 0.9 does not fit (0.9 + 0.5 > 1): two new windows
    assert "14 already finished, 20 to run" in capsys.readouterr().out
    rows = read_csv(extended / "results.csv")
    windows = {(r["method"], r["offset"]) for r in rows if r["method"] == "el2n@epoch1"}
    assert windows == {("el2n@epoch1", None), ("el2n@epoch1", 0.0), ("el2n@epoch1", 0.25)}
    assert {r["n_train"] for r in rows if r["offset"] is not None} == {192}
    records = [json.loads(p.read_text()) for p in (extended / "runs").glob("*.json")]
    lowest = next(r for r in records if r["method"] == "input_norm" and r["offset"] == 0.0)
    highest = next(r for r in records if r["method"] == "input_norm" and r["offset"] is None and r["train"]["seed"] == lowest["train"]["seed"])
    assert lowest["subset_digest"] != highest["subset_digest"]
    summary = json.loads((extended / "summary.json").read_text())
    assert all(len(sum(v.values(), [])) == 2 for v in summary["offset_verdicts"].values())
    assert (extended / "offset_curve.png").is_file()
    assert "| el2n@epoch1 | keep 0.5 offset 0.25 | 2 |" in (extended / "report.md").read_text()
    assert (extended / "report.html").read_text().count("data:image/png;base64,") == 4


def test_windows_skip_the_default_and_windows_past_the_top():
    assert _windows(0.5, (0.0, 0.25, 0.5, 0.6)) == [0.0, 0.25]
    assert _windows(0.3, (0.7, 0.1)) == [0.1]


@pytest.mark.parametrize("flags, message", [(["--keeps", "0"], "--keeps takes fractions in (0, 1]"),
                                            (["--offsets", "1.0"], "--offsets takes fractions in [0, 1)"),
                                            (["--eval-seeds", "0"], "--eval-seeds must be at least 1")])
def test_bad_grid_options_are_clear_errors(flags, message, tmp_path, capsys):
    assert main(["reproduce", "smoke", "--out", str(tmp_path), *flags]) == 2
    assert message in " ".join(capsys.readouterr().err.split())


def test_report_on_a_folder_without_results_is_a_clear_error(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "not a datadiet results folder" in " ".join(capsys.readouterr().err.split())


def test_welch_interval_and_verdicts_on_hand_made_numbers():
    rows = [{"method": m, "keep": 0.5, "test_accuracy": a} for m, a in
            [("random", 0.80), ("random", 0.81), ("random", 0.79), ("good", 0.90), ("good", 0.91), ("good", 0.89),
             ("same", 0.80), ("same", 0.82), ("same", 0.78), ("full", 0.95)]]
    verdicts = {v["method"]: v for v in compare_to_random(rows)}
    assert set(verdicts) == {"good", "same"}
    assert verdicts["good"]["verdict"] == "better" and verdicts["good"]["diff"] == pytest.approx(0.10)
    assert verdicts["same"]["verdict"] == "no different"
    diff, low, high, p = welch_interval(np.array([0.90, 0.91, 0.89]), np.array([0.80, 0.81, 0.79]))
    result = stats.ttest_ind([0.90, 0.91, 0.89], [0.80, 0.81, 0.79], equal_var=False)
    assert p == pytest.approx(result.pvalue)
    ci = result.confidence_interval(0.95)
    assert (low, high) == pytest.approx((ci.low, ci.high))
    assert curve_table(rows)[0]["n"] == 1  # "full" group


def test_spearman_matrix_matches_scipy_pairwise():
    rng = np.random.default_rng(0)
    scores = {"a": rng.random(50), "b": rng.random(50), "c": rng.random(50)}
    names, rho = spearman_matrix(scores)
    assert rho[0, 1] == pytest.approx(stats.spearmanr(scores["a"], scores["b"]).statistic)
    assert rho[1, 2] == pytest.approx(stats.spearmanr(scores["b"], scores["c"]).statistic)
    assert np.allclose(np.diag(rho), 1)


def test_parse_method_labels():
    assert parse_method("el2n@epoch2") == ("el2n", 2.0)
    assert parse_method("grand@init") == ("grand", 0.0)
    assert parse_method("forgetting@end") == ("forgetting", None)
    assert parse_method("input_norm") == ("input_norm", None)
    with pytest.raises(Exception, match="Cannot parse"):
        parse_method("el2n@yesterday")


def test_presets_follow_the_papers():
    paper = PRESETS["paper"]
    assert paper.data.dataset == "cifar10" and paper.train.model == "resnet18" and paper.train.epochs == 200
    assert paper.score_runs == 10 and paper.eval_seeds == 4
    assert {"grand@init", "grand@epoch20", "el2n@epoch20", "forgetting@end", "input_norm"} == set(paper.methods)
    assert PRESETS["quick"].eval_seeds >= 2 and PRESETS["gpu"].score_runs == 10 and PRESETS["gpu"].eval_seeds == 4


def test_no_spread_is_not_measured_rather_than_certain():
    from datadiet.analysis.tables import interval_verdict

    diff, low, high, p = welch_interval(np.array([0.9, 0.9]), np.array([0.8, 0.8]))
    assert diff == pytest.approx(0.1) and np.isnan([low, high, p]).all()
    assert interval_verdict(low, high) == "not measured"
    assert interval_verdict(*welch_interval(np.array([0.9]), np.array([0.8, 0.7]))[1:3]) == "not measured"
    assert interval_verdict(0.01, 0.02) == "better" and interval_verdict(-0.02, 0.01) == "no different"


def test_spearman_matrix_of_two_scores_is_a_matrix():
    rng = np.random.default_rng(1)
    scores = {"a": rng.random(30), "b": rng.random(30)}
    names, rho = spearman_matrix(scores)
    assert names == ["a", "b"] and rho.shape == (2, 2)
    assert rho[0, 1] == rho[1, 0] == pytest.approx(stats.spearmanr(scores["a"], scores["b"]).statistic)


def test_report_summary_with_one_run_per_point_says_not_measured():
    from datadiet.analysis.report import _finding_lines, _summary

    rows = [{"method": m, "keep": 0.5, "test_accuracy": a} for m, a in [("random", 0.8), ("el2n@epoch2", 0.9)]]
    versus = compare_to_random(rows)
    assert [v["verdict"] for v in versus] == ["not measured"]
    summary = _summary(curve_table(rows), versus, None, {"preset": "x"})
    assert summary["beat_random"] == [] and summary["verdicts"]["el2n@epoch2"]["not measured"] == [0.5]
    assert "not compared with random (one run or no spread) at keep 0.5" in _finding_lines(summary, versus)[0]
