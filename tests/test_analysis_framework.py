"""The analyses' shared machinery on generated Fashion-MNIST: workspace, cached scores, sections, report, CLI.

Uses the `correlations` and `transfer` analyses, whose numbers are checked against scipy and numpy here.
"""
import json

import numpy as np
import pytest
from scipy import stats

from datadiet.analysis.tables import read_csv
from datadiet.cli import main
from datadiet.experiments.analyses import Workspace, available, get_analysis, run_analysis
from datadiet.experiments.analyses.common import SETTINGS, markdown_table, standard_scores
from datadiet.experiments.analyses.transfer import transfer_table
from datadiet.scores import load_scores
from fakes import write_fake_mnist


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("analyses")
    root = write_fake_mnist(tmp / "data", n_train=480, n_test=240)
    logs = []
    ws = Workspace(tmp / "ws", data_root=str(root), log=logs.append)
    summary = run_analysis("correlations", "smoke", workspace=ws)
    return ws, summary, logs


def test_correlations_match_scipy_on_the_score_files(workspace):
    ws, summary, _ = workspace
    files = sorted((ws.root / "scores").glob("*/*.npz"))
    means = {load_scores(f).label: load_scores(f).mean for f in files}
    assert set(means) == set(standard_scores(SETTINGS["smoke"]))
    matrix = {r["score"]: r for r in read_csv(ws.root / "correlations" / "spearman.csv")}
    for a, b in [("grand@init", "input_norm"), ("el2n@epoch1", "forgetting@end"), ("score2@init", "random")]:
        assert matrix[a][b] == pytest.approx(stats.spearmanr(means[a], means[b]).statistic, abs=1e-12)
    pairs = read_csv(ws.root / "correlations" / "pairs.csv")
    assert len(pairs) == len(means) * (len(means) - 1) // 2
    assert [abs(p["spearman"]) for p in pairs] == sorted((abs(p["spearman"]) for p in pairs), reverse=True)
    expected = stats.spearmanr(means["grand@init"], means["input_norm"]).statistic
    assert f"Spearman **{expected:.2f}**" in summary["findings"][0]


def test_sections_and_self_contained_report(workspace):
    ws, _, _ = workspace
    section = (ws.root / "correlations" / "section.md").read_text()
    assert section.startswith("## Rank correlations") and "correlations/spearman.png" in section
    report = (ws.root / "report.md").read_text()
    assert section in report
    html = (ws.root / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 2 and "<table>" in html and "<script" not in html


def test_a_second_analysis_reuses_the_cached_score_runs(workspace):
    ws, _, logs = workspace
    logs.clear()
    summary = run_analysis("transfer", "smoke", workspace=ws)
    scoring = [m for m in logs if m.startswith("run ")]
    # the setting's own architecture: cached; the second architecture: trained once
    assert sum("cached" in m for m in scoring) == 2 and sum("cached" not in m for m in scoring) == 2
    rows = read_csv(ws.root / "transfer" / "results.csv")
    assert {r["target"] for r in rows} == {"smallcnn×0.25", "vgg13×0.125"}
    assert len(summary["points"]) == 4
    logs.clear()
    run_analysis("transfer", "smoke", workspace=ws)
    assert any("16 already finished, 0 to run" in m for m in logs)  # nothing retrains
    assert not any(m.startswith("run ") and "cached" not in m for m in logs)


def test_transfer_table_against_hand_computation():
    rows = [{"target": "A", "method": m, "keep": 0.5, "test_accuracy": a} for m, a in
            [("s", 0.80), ("s", 0.82), ("s from B", 0.81), ("s from B", 0.85), ("random", 0.70), ("random", 0.72)]]
    table = transfer_table(rows, {("A", "s"): "A", ("A", "s from B"): "B"}, [0.5])
    borrowed = next(r for r in table if r["source"] == "B")
    assert borrowed["mean"] == pytest.approx(0.83) and borrowed["random"] == pytest.approx(0.71)
    assert borrowed["vs_own"] == pytest.approx(0.02) and borrowed["vs_random"] == pytest.approx(0.12)
    t = stats.ttest_ind([0.81, 0.85], [0.80, 0.82], equal_var=False)
    half = borrowed["vs_own_high"] - borrowed["vs_own"]
    se = 0.02 / t.statistic
    assert half == pytest.approx(stats.t.ppf(0.975, t.df) * se)


def test_markdown_table_truncates_and_formats():
    rows = [{"a": 0.123456, "b": None, "c": "x"}] * 3
    lines = markdown_table(rows, limit=2)
    assert lines[0] == "| a | b | c |" and lines[2] == "| 0.1235 |  | x |" and "1 more rows" in lines[-1]


def test_cli_lists_every_analysis_and_rejects_unknown_ones(workspace, capsys):
    ws, _, _ = workspace
    assert set(available()) >= {"correlations", "transfer"}
    with pytest.raises(SystemExit):
        main(["analyze", "no_such_analysis"])
    assert "invalid choice" in capsys.readouterr().err
    with pytest.raises(Exception, match="Unknown preset"):
        from datadiet.experiments.analyses import get_preset
        get_preset(get_analysis("correlations"), "huge")
    assert main(["report", str(ws.root)]) == 0
    assert "report:" in capsys.readouterr().out


def test_cli_runs_an_analysis_into_a_workspace(workspace, capsys):
    ws, _, _ = workspace
    argv = ["analyze", "correlations", "--preset", "smoke", "--out", str(ws.root), "--data-root", ws.data_root]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "Spearman" in out and "report:" in out
    assert json.loads((ws.root / "workspace.json").read_text())["kind"] == "datadiet analyses"


def test_every_analysis_has_the_three_presets_as_frozen_configs():
    import dataclasses

    from datadiet.experiments.analyses import MODULES, SETTINGS, available

    modules = available()
    assert tuple(modules) == MODULES  # none silently missing
    for name, module in modules.items():
        assert set(module.PRESETS) == {"smoke", "quick", "paper"}, name
        for preset, config in module.PRESETS.items():
            assert dataclasses.is_dataclass(config) and type(config).__dataclass_params__.frozen, name
            assert config.setting == SETTINGS[preset], (name, preset)  # a preset runs on its own setting
        assert callable(module.run) and module.TITLE and module.SOURCE


def test_correlations_of_two_chosen_scores_and_an_unknown_one(workspace):
    from dataclasses import replace

    from datadiet.errors import DataDietError
    from datadiet.experiments.analyses import correlations

    ws, _, _ = workspace
    config = replace(correlations.PRESETS["smoke"], scores=("grand@init", "input_norm"))
    summary = run_analysis("correlations", config=config, workspace=ws)
    tables = {t.label: t for t in map(load_scores, sorted((ws.root / "scores").glob("*/*.npz")))}
    expected = stats.spearmanr(tables["grand@init"].mean, tables["input_norm"].mean).statistic
    assert summary["spearman"] == {"grand@init ~ input_norm": pytest.approx(expected)}
    with pytest.raises(DataDietError, match="Unknown score label.*'el2n@epoch9'"):
        run_analysis("correlations", config=replace(config, scores=("el2n@epoch9",)), workspace=ws)
    run_analysis("correlations", "smoke", workspace=ws)  # leave the fixture's workspace as it was
