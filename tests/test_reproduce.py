"""`reproduce smoke` end to end on generated Fashion-MNIST files, the report, and the tables behind it."""
import json

import numpy as np
import pytest
from scipy import stats

from conftest import write_fake_mnist
from datadiet.analysis.tables import compare_to_random, curve_table, read_csv, spearman_matrix, welch_interval
from datadiet.cli import main
from datadiet.errors import DataDietError
from datadiet.experiments.reproduce import PRESETS, build_tasks, parse_method, reproduce


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
    assert "| el2n@epoch1 | 0.5 |" in report and "| random | 0.5 | 2 |" in report
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 3 and "<script" not in html
    assert -1 <= summary["spearman_grand_init_input_norm"] <= 1


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
    with pytest.raises(DataDietError, match="holds results of the 'smoke' preset"):
        reproduce(PRESETS["quick"], out, data_root=str(root), log=lambda _: None)


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
