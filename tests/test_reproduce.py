"""`reproduce --preset smoke` end to end on generated Fashion-MNIST files, the report, and the tables behind it."""
import json
import shutil
from dataclasses import replace

import numpy as np
import pytest
from scipy import stats

from fakes import forbid_training, run_files, runs_dir, score_dirs, smoke_reproduction, study_dir, write_fake_mnist
from datadiet.cli import main
from datadiet.errors import DataDietError
from datadiet.report.tables import compare_to_random, curve_table, read_csv
from datadiet.stats import interval_verdict, spearman_matrix, welch_interval
from datadiet.studies.common import extra_windows
from datadiet.studies.reproduce import PRESETS, reproduce


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    return smoke_reproduction(tmp_path_factory)


def test_smoke_writes_every_output(smoke):
    _, out, summary = smoke
    study = study_dir(out)
    for name in ("config.json", "plan.json", "results.csv", "curve.csv", "vs_random.csv", "spearman.csv",
                 "class_counts.csv", "compute.csv", "summary.json", "pruning_curve.png", "spearman.png",
                 "grand_init_vs_input_norm.png", "section.md"):
        assert (study / name).is_file(), name
    for name in ("report.md", "report.html"):  # the workspace's report gathers every study's section
        assert (out / name).is_file(), name
        assert not (study / name).exists(), name
    assert json.loads((out / "workspace.json").read_text())["kind"] == "datadiet workspace"
    assert len(list(runs_dir(out).glob("*.json"))) == 14
    draws = score_dirs(out)  # one score folder per draw, draw 0 first
    assert len(draws) == 2 and len(set(draws)) == 2
    assert all(d.parent == out / "scores" and (d / "grand-init.npz").is_file() for d in draws)
    rows = read_csv(study / "results.csv")
    methods = {"full", "random", "input_norm", "grand@init", "grand@epoch1", "el2n@epoch1", "forgetting@end"}
    assert {r["method"] for r in rows} == methods
    assert len(rows) == 2 * (1 + 6)  # 2 evaluation seeds × (full + 6 methods at one fraction)
    assert {r["seed"] for r in rows} == {1000, 1001}  # evaluation seeds differ from scoring seeds 0, 1
    assert len({r["steps"] for r in rows}) == 1  # matched budget at every kept fraction
    assert {r["n_train"] for r in rows if r["method"] != "full"} == {192}
    report = (out / "report.md").read_text()
    lines = report.splitlines()
    assert lines[0] == "# datadiet report"
    assert "## Pruning curves: smoke test (seconds)" in lines  # the reproduction's section, one level down
    assert "### Findings" in lines and "## Findings" not in lines
    assert "![pruning curves](reproduce/pruning_curve.png)" in lines
    assert (out / "reproduce/pruning_curve.png").is_file()  # the link resolves from report.md
    # The curve table: one row per point, with the number of evaluation runs behind it.
    assert "| method | subset | runs | mean acc. | 16th pct | 84th pct |" in lines
    assert any(line.startswith("| el2n@epoch1 | keep 0.5 | 2 | 0.") for line in lines)
    assert any(line.startswith("| random | keep 0.5 | 2 | 0.") for line in lines)
    assert any(line.startswith("| full | keep 1 | 2 | 0.") for line in lines)
    # The difference table: every score against random at the same kept fraction, with a verdict.
    versus = [line for line in lines if line.startswith("| el2n@epoch1 | keep 0.5 | 2 | ") and line.endswith(" |")
              and any(f"| {v} |" in line for v in ("better", "no different", "worse", "not resolved", "not measured",
                                                     "not judged"))]
    assert len(versus) == 1
    # random pixels teach nothing: the did-it-learn gate decides (on two runs' mean) and the report says how
    assert summary["learned"] is not None and summary["metric"] == "accuracy"
    assert json.loads((study / "config.json").read_text())["metric"] == "accuracy"  # cycling labels: balanced
    if summary["learned"] is False:
        assert any(line.startswith("**The model did not learn the task on this setting**") for line in lines)
    # a method is flagged exactly where its score file says its network had not learned when it scored
    from datadiet.scores import load_scores
    untrained = {t.label for d in score_dirs(out) for t in map(load_scores, sorted(d.glob("*.npz")))
                 if t.meta.get("untrained")}
    assert set(summary["untrained_scorers"]) == untrained & methods
    assert all(load_scores(d / "grand-init.npz").meta["untrained"] is None for d in draws)  # at init by design
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 3
    assert "<script" not in html
    assert "<h3>Findings</h3>" in html
    assert "<td>el2n@epoch1</td><td>keep 0.5</td><td>2</td>" in html  # the same table, as HTML
    assert -1 <= summary["spearman_grand_init_input_norm"] <= 1


@pytest.mark.filterwarnings("ignore:Precision loss:RuntimeWarning")  # scipy, on near-identical tiny-model accuracies
def test_report_numbers_match_independent_computations(smoke):
    _, out, summary = smoke
    rows = read_csv(study_dir(out) / "results.csv")
    curve = {(r["method"], r["keep"]): r for r in read_csv(study_dir(out) / "curve.csv")}
    accs = [r["test_accuracy"] for r in rows if r["method"] == "el2n@epoch1"]
    assert curve[("el2n@epoch1", 0.5)]["mean"] == pytest.approx(np.mean(accs))
    assert curve[("el2n@epoch1", 0.5)]["p16"] == pytest.approx(np.percentile(accs, 16))
    rand = [r["test_accuracy"] for r in rows if r["method"] == "random"]
    versus = {r["method"]: r for r in read_csv(study_dir(out) / "vs_random.csv")}
    assert versus["el2n@epoch1"]["diff"] == pytest.approx(np.mean(accs) - np.mean(rand))
    # two evaluation seeds a side: no p-value or interval is claimed (datadiet.stats.MIN_SEEDS), the verdict waits
    assert len(accs) == len(rand) == 2
    assert np.isnan(versus["el2n@epoch1"]["p_value"]) and np.isnan(versus["el2n@epoch1"]["ci_low"])
    # (random pixels may teach nothing: then the gate makes every verdict "not judged")
    assert versus["el2n@epoch1"]["verdict"] == ("not resolved" if summary["learned"] else "not judged")


def test_report_command_rebuilds_the_same_tables(smoke, tmp_path, capsys):
    out = tmp_path / "results"
    shutil.copytree(smoke[1], out)  # the module's folder stays as the fixture made it
    names = ("reproduce/vs_random.csv", "reproduce/curve.csv", "reproduce/section.md", "report.md")
    before = {name: (out / name).read_text() for name in names}
    for name in ("report.md", "report.html", "reproduce/vs_random.csv", "reproduce/section.md"):
        (out / name).unlink()
    assert main(["report", str(out)]) == 0
    for name, text in before.items():
        assert (out / name).read_text() == text, name
    assert (out / "report.html").is_file()
    assert "report:" in capsys.readouterr().out


def test_metric_flag_judges_the_report_and_old_folders_are_judged_by_accuracy(smoke, tmp_path, monkeypatch):
    root, _, _ = smoke
    out = tmp_path / "results"
    shutil.copytree(smoke[1], out)
    forbid_training(monkeypatch)  # a metric changes what the report reads, never a run
    summary = reproduce(replace(PRESETS["smoke"], metric="balanced"), out, data_root=str(root), log=lambda _: None)
    study = study_dir(out)
    config = json.loads((study / "config.json").read_text())
    assert config["metric"] == "balanced" and config["metric_reason"].startswith("chosen with --metric")
    rows = read_csv(study / "results.csv")
    curve = {(r["method"], r["keep"]): r for r in read_csv(study / "curve.csv")}
    balanced = [r["test_balanced_accuracy"] for r in rows if r["method"] == "el2n@epoch1"]
    assert curve[("el2n@epoch1", 0.5)]["mean"] == pytest.approx(np.mean(balanced))
    assert summary["metric"] == "balanced"
    assert (study / "section.md").read_text().splitlines()[2].startswith("Judged by **balanced accuracy**")
    # a folder written before --metric: judged by accuracy, and the report says why
    del config["metric"], config["metric_reason"]
    (study / "config.json").write_text(json.dumps(config))
    assert main(["report", str(out)]) == 0
    assert json.loads((study / "summary.json").read_text())["metric"] == "accuracy"
    curve = {(r["method"], r["keep"]): r for r in read_csv(study / "curve.csv")}
    accuracies = [r["test_accuracy"] for r in rows if r["method"] == "el2n@epoch1"]
    assert curve[("el2n@epoch1", 0.5)]["mean"] == pytest.approx(np.mean(accuracies))
    assert "this folder predates --metric, so accuracy" in (study / "section.md").read_text()


def test_rerunning_resumes_and_refuses_another_preset(smoke, tmp_path, monkeypatch):
    root, _, _ = smoke
    out = tmp_path / "results"
    shutil.copytree(smoke[1], out)  # the rerun rewrites the report: not in the module's folder
    before = run_files(out)
    assert len([f for f in before if f.startswith("sweep/runs/")]) == 14
    for draw in score_dirs(out):  # one per score run, in each draw's folder
        prefix = f"{draw.relative_to(out).as_posix()}/.runs/"
        assert len([f for f in before if f.startswith(prefix) and f.endswith(".npz")]) == 2, prefix
    logs = []
    forbid_training(monkeypatch)  # every score run and evaluation run comes from the folder
    reproduce(PRESETS["smoke"], out, data_root=str(root), log=logs.append)
    assert any("14 already finished, 0 to run" in m for m in logs)
    assert run_files(out) == before  # no run added or rewritten
    # quick's 8,000 examples: data it can load (the study checks its data loads before it reads the folder)
    big = write_fake_mnist(tmp_path / "big", n_train=8000, n_test=20)
    with pytest.raises(DataDietError, match="holds another experiment.*differs in preset, data, train"):
        reproduce(PRESETS["quick"], out, data_root=str(big), log=lambda _: None)
    with pytest.raises(DataDietError, match="differs in score_runs"):
        reproduce(replace(PRESETS["smoke"], score_runs=3), out, data_root=str(root), log=lambda _: None)
    with pytest.raises(DataDietError, match="differs in the scores of --methods"):
        reproduce(replace(PRESETS["smoke"], methods=("el2n@epoch1", "score2@init")), out, data_root=str(root),
                  log=lambda _: None)


def test_selection_rules_extend_a_finished_experiment(smoke, tmp_path, monkeypatch):
    """el2n@epoch1+ccs and +moderate beside el2n@epoch1: the same score runs, only the new runs train."""
    root, out, _ = smoke
    extended = tmp_path / "extended"
    shutil.copytree(out, extended)
    methods = (*PRESETS["smoke"].resolved.methods, "el2n@epoch1+ccs", "el2n@epoch1+moderate")
    logs = []
    summary = reproduce(replace(PRESETS["smoke"], methods=methods), extended, data_root=str(root), log=logs.append)
    assert any("14 already finished, 4 to run" in m for m in logs)  # 2 rules × 2 evaluation seeds
    assert not any("run 1/2 (seed 0): 2" in m and "scoring" in m for m in logs)  # score runs came from the cache
    assert {"el2n@epoch1+ccs", "el2n@epoch1+moderate"} <= set(summary["verdicts"])


def test_offsets_extend_a_finished_experiment(smoke, tmp_path, capsys):
    root, out, _ = smoke
    extended = tmp_path / "extended"
    shutil.copytree(out, extended)
    argv = ["reproduce", "--preset", "smoke", "--out", str(extended), "--data-root", str(root),
            "--offsets", "0", "0.25", "0.5", "0.9"]
    assert main(argv) == 0
    # offset 0.5 is the default keep-highest window and 0.9 does not fit (0.9 + 0.5 > 1): two new windows
    assert "14 already finished, 20 to run" in capsys.readouterr().out
    rows = read_csv(study_dir(extended) / "results.csv")
    windows = {(r["method"], r["offset"]) for r in rows if r["method"] == "el2n@epoch1"}
    assert windows == {("el2n@epoch1", None), ("el2n@epoch1", 0.0), ("el2n@epoch1", 0.25)}
    assert {r["n_train"] for r in rows if r["offset"] is not None} == {192}
    records = [json.loads(p.read_text()) for p in runs_dir(extended).glob("*.json")]
    lowest = next(r for r in records if r["method"] == "input_norm" and r["offset"] == 0.0)
    highest = next(r for r in records if r["method"] == "input_norm" and r["offset"] is None and r["train"]["seed"] == lowest["train"]["seed"])
    assert lowest["subset_digest"] != highest["subset_digest"]
    summary = json.loads((study_dir(extended) / "summary.json").read_text())
    assert all(len(sum(v.values(), [])) == 2 for v in summary["offset_verdicts"].values())
    assert (study_dir(extended) / "offset_curve.png").is_file()
    report = (extended / "report.md").read_text().splitlines()
    assert any(line.startswith("| el2n@epoch1 | keep 0.5 offset 0.25 | 2 | 0.") for line in report)
    assert "![offset sweeps](reproduce/offset_curve.png)" in report
    assert (extended / "report.html").read_text().count("data:image/png;base64,") == 4


def test_windows_skip_the_default_and_windows_past_the_top():
    assert extra_windows(0.5, (0.0, 0.25, 0.5, 0.6)) == [0.0, 0.25]
    assert extra_windows(0.3, (0.7, 0.1)) == [0.1]


def test_positional_preset_still_works_and_says_it_is_deprecated(tmp_path, capsys):
    assert main(["reproduce", "smoke", "--out", str(tmp_path), "--keeps", "0"]) == 2  # refused before any work
    err = " ".join(capsys.readouterr().err.split())
    assert "`datadiet reproduce NAME` is deprecated and goes away in 0.3; use `datadiet reproduce --preset smoke`" in err
    assert "--keeps takes fractions in (0, 1)" in err  # the positional preset reached the config
    assert main(["reproduce", "smoke", "--preset", "quick", "--out", str(tmp_path)]) == 2
    assert "Two presets given" in capsys.readouterr().err


@pytest.mark.parametrize("flags, message", [(["--keeps", "0"], "--keeps takes fractions in (0, 1)"),
                                            (["--offsets", "1.0"], "--offsets takes fractions in [0, 1)"),
                                            (["--eval-seeds", "0"], "--eval-seeds must be at least 1")])
def test_bad_grid_options_are_clear_errors(flags, message, tmp_path, capsys):
    assert main(["reproduce", "--preset", "smoke", "--out", str(tmp_path), *flags]) == 2
    assert message in " ".join(capsys.readouterr().err.split())


def test_report_on_a_folder_without_results_is_a_clear_error(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "holds no finished study" in err and "run `datadiet reproduce`" in err


def test_welch_interval_and_verdicts_on_hand_made_numbers():
    rows = [{"method": m, "keep": 0.5, "test_accuracy": a} for m, a in
            [("random", 0.80), ("random", 0.81), ("random", 0.79), ("good", 0.90), ("good", 0.91), ("good", 0.89),
             ("same", 0.80), ("same", 0.82), ("same", 0.78), ("full", 0.95)]]
    verdicts = {v["method"]: v for v in compare_to_random(rows)}
    assert set(verdicts) == {"good", "same"}
    assert verdicts["good"]["verdict"] == "better"
    assert verdicts["good"]["diff"] == pytest.approx(0.10)
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


def test_presets_follow_the_papers():
    paper = PRESETS["paper"].resolved
    assert paper.setting.data.dataset == "cifar10"
    assert paper.setting.train.model == "resnet18"
    assert paper.setting.train.epochs == 200
    assert paper.score_runs == 10
    assert paper.eval_seeds == 4
    assert {"grand@init", "grand@epoch20", "el2n@epoch20", "forgetting@end", "input_norm"} == set(map(str, paper.methods))
    assert PRESETS["quick"].resolved.eval_seeds >= 2
    assert PRESETS["gpu"].resolved.score_runs == 10
    assert PRESETS["gpu"].resolved.eval_seeds == 4


def test_resolved_fills_only_empty_fields_from_the_setting():
    config = replace(PRESETS["smoke"], keeps=(0.3,), eval_seeds=5)
    resolved = config.resolved
    assert resolved.keeps == (0.3,)
    assert resolved.eval_seeds == 5
    assert resolved.score_runs == config.setting.score_runs
    assert tuple(map(str, resolved.methods)) == ("input_norm", "grand@init", "grand@epoch1", "el2n@epoch1",
                                                 "forgetting@end")
    assert resolved.resolved == resolved


def test_no_spread_is_not_measured_rather_than_certain():
    diff, low, high, p = welch_interval(np.array([0.9, 0.9]), np.array([0.8, 0.8]))
    assert diff == pytest.approx(0.1)
    assert np.isnan([low, high, p]).all()
    assert interval_verdict(low, high) == "not measured"
    assert interval_verdict(*welch_interval(np.array([0.9]), np.array([0.8, 0.7]))[1:3]) == "not measured"
    assert interval_verdict(0.01, 0.02) == "better"
    assert interval_verdict(-0.02, 0.01) == "no different"
    assert interval_verdict(-0.02, -0.01) == "worse"


def test_spearman_matrix_of_two_scores_is_a_matrix():
    rng = np.random.default_rng(1)
    scores = {"a": rng.random(30), "b": rng.random(30)}
    names, rho = spearman_matrix(scores)
    assert names == ["a", "b"]
    assert rho.shape == (2, 2)
    assert rho[0, 1] == rho[1, 0] == pytest.approx(stats.spearmanr(scores["a"], scores["b"]).statistic)


def test_report_summary_with_one_run_per_point_says_not_resolved():
    from datadiet.report.pruning import _finding_lines, _summary

    rows = [{"method": m, "keep": 0.5, "test_accuracy": a} for m, a in [("random", 0.8), ("el2n@epoch2", 0.9)]]
    versus = compare_to_random(rows)
    assert [v["verdict"] for v in versus] == ["not resolved"]
    summary = _summary(curve_table(rows), versus, None, {"preset": "x"})
    assert summary["beat_random"] == []
    assert summary["verdicts"]["el2n@epoch2"]["not resolved"] == [0.5]
    assert "not resolved against random (1 seed: not informative) at keep 0.5" in _finding_lines(summary, versus)[0]
