"""The analyses' shared machinery on generated Fashion-MNIST: workspace, cached scores, sections, report, CLI.

Uses the `correlations` and `transfer` analyses, whose numbers are checked against scipy and numpy here.
"""
import json

import pytest
from scipy import stats

from datadiet.cli import main
from datadiet.errors import UnknownNameError
from datadiet.report.markdown import markdown_table
from datadiet.report.tables import read_csv
from datadiet.runs import Execution, Workspace
from datadiet.runs.presets import PRESETS as SETTINGS
from datadiet.runs.presets import standard_scores
from datadiet.scores import load_scores
from datadiet.studies import MODULES, configured, get_study, run_analysis
from datadiet.studies.transfer import transfer_table
from fakes import copy_workspace, forbid_training, run_files, write_fake_mnist


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("analyses")
    root = write_fake_mnist(tmp / "data", n_train=480, n_test=240)
    ws = Workspace(tmp / "ws", Execution(data_root=str(root)), log=lambda _: None)
    summary = run_analysis("correlations", "smoke", workspace=ws)
    return ws, summary


def test_correlations_match_scipy_on_the_score_files(workspace):
    ws, summary = workspace
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
    ws, _ = workspace
    section = (ws.root / "correlations" / "section.md").read_text()
    lines = section.splitlines()
    assert lines[0] == "## Rank correlations between all scores"
    assert "![Spearman rank correlation between the mean scores](correlations/spearman.png)" in lines
    assert "Table `correlations/pairs.csv`:" in lines
    assert "| a | b | spearman |" in lines
    report = (ws.root / "report.md").read_text()
    assert report.startswith("# datadiet report\n")  # one report for every study of the workspace
    assert "Sections: `correlations`" in report
    assert section in report
    html = (ws.root / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 2
    assert "<h2>Rank correlations between all scores</h2>" in html
    assert "<tr><th>a</th><th>b</th><th>spearman</th></tr>" in html
    assert "<script" not in html


def test_a_second_analysis_reuses_the_cached_score_runs(workspace, tmp_path, monkeypatch):
    logs = []
    ws = copy_workspace(workspace[0], tmp_path / "ws", log=logs.append)  # transfer adds to the workspace
    summary = run_analysis("transfer", "smoke", workspace=ws)
    scoring = [m for m in logs if m.startswith("run ") or ": run " in m]  # "score draw 2/2: run 1/2 ..."
    # two score draws of two runs per architecture: the setting's own architecture's first draw is the shared,
    # cached one; its second draw and both of the second architecture's are trained once
    assert sum("cached" in m for m in scoring) == 2
    assert sum("cached" not in m for m in scoring) == 6
    rows = read_csv(ws.root / "transfer" / "results.csv")
    assert {r["target"] for r in rows} == {"smallcnn×0.25", "vgg13×0.125"}
    assert len(summary["points"]) == 4
    before = run_files(ws.root)
    assert len([f for f in before if f.startswith("sweep/runs/")]) == 16
    logs.clear()
    forbid_training(monkeypatch)
    run_analysis("transfer", "smoke", workspace=ws)
    assert any("16 already finished, 0 to run" in m for m in logs)
    assert run_files(ws.root) == before  # nothing retrained, nothing rewritten


def test_transfer_table_against_hand_computation():
    # three runs a side: with two, the Welch interval is not informative and left out (datadiet.stats.MIN_SEEDS)
    rows = [{"target": "A", "method": m, "keep": 0.5, "test_accuracy": a} for m, a in
            [("s", 0.80), ("s", 0.82), ("s", 0.81), ("s from B", 0.81), ("s from B", 0.85), ("s from B", 0.83),
             ("random", 0.70), ("random", 0.72), ("random", 0.71)]]
    table = transfer_table(rows, {("A", "s"): "A", ("A", "s from B"): "B"}, [0.5])
    borrowed = next(r for r in table if r["source"] == "B")
    assert borrowed["mean"] == pytest.approx(0.83)
    assert borrowed["random"] == pytest.approx(0.71)
    assert borrowed["vs_own"] == pytest.approx(0.02)
    assert borrowed["vs_random"] == pytest.approx(0.12)
    t = stats.ttest_ind([0.81, 0.85, 0.83], [0.80, 0.82, 0.81], equal_var=False)
    half = borrowed["vs_own_high"] - borrowed["vs_own"]
    se = 0.02 / t.statistic
    assert half == pytest.approx(stats.t.ppf(0.975, t.df) * se)


def test_markdown_table_truncates_and_formats():
    rows = [{"a": 0.123456, "b": None, "c": "x"}] * 3
    lines = markdown_table(rows, limit=2)
    assert lines[0] == "| a | b | c |"
    assert lines[1] == "|---|---|---|"
    assert lines[2] == "| 0.1235 |  | x |"
    assert len(lines) == 5
    assert lines[-1].startswith("| … 1 more rows in the CSV |")
    assert markdown_table([]) == ["(no rows)"]


def test_cli_lists_every_analysis_and_rejects_unknown_ones(workspace, tmp_path, capsys):
    ws = copy_workspace(workspace[0], tmp_path / "ws")  # `report` rewrites report.md and report.html
    assert set(MODULES) >= {"correlations", "transfer"}
    with pytest.raises(SystemExit):
        main(["analyze", "no_such_analysis"])
    assert "invalid choice" in capsys.readouterr().err
    with pytest.raises(UnknownNameError, match="Unknown preset of correlations 'huge'"):
        get_study("correlations").preset("huge")
    with pytest.raises(UnknownNameError, match="Unknown analysis 'nope'"):
        get_study("nope")
    assert get_study("grand-vs-norm").name == "grand_vs_norm"
    (ws.root / "report.md").unlink()
    assert main(["report", str(ws.root)]) == 0
    assert "report:" in capsys.readouterr().out
    assert (ws.root / "report.md").read_text() == (workspace[0].root / "report.md").read_text()


def test_cli_runs_an_analysis_into_a_workspace(workspace, tmp_path, capsys):
    ws = copy_workspace(workspace[0], tmp_path / "ws")  # the run rewrites the workspace's files
    argv = ["analyze", "correlations", "--preset", "smoke", "--out", str(ws.root), "--data-root", ws.execution.data_root,
            "--scores", "grand@init", "input_norm", "el2n@epoch1"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "Spearman" in out
    assert "report:" in out
    assert json.loads((ws.root / "workspace.json").read_text())["kind"] == "datadiet workspace"
    # --scores is a space-separated list that reached Config.scores
    summary = json.loads((ws.root / "correlations" / "summary.json").read_text())
    assert set(summary["spearman"]) == {"grand@init ~ input_norm", "grand@init ~ el2n@epoch1",
                                        "input_norm ~ el2n@epoch1"}


def test_analyze_flags_are_generated_from_each_config(capsys):
    from datadiet.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["analyze", "transfer", "--preset", "smoke", "--keeps", "0.3", "0.5",
                              "--architectures", "smallcnn:0.5", "vgg13:0.25", "--device", "cpu", "--cpus-per-run", "2"])
    assert args.keeps == [0.3, 0.5]
    assert args.architectures == [("smallcnn", 0.5), ("vgg13", 0.25)]
    assert args.device == "cpu"
    assert args.cpus_per_run == 2
    with pytest.raises(SystemExit):
        parser.parse_args(["analyze", "transfer", "--setting", "x"])  # the setting is the preset, not a flag
    assert "unrecognized arguments: --setting" in capsys.readouterr().err
    # a list flag given with no value empties the list: "empty = none" is reachable from the command line
    assert parser.parse_args(["analyze", "compute", "--rs2-keeps"]).rs2_keeps == []
    assert parser.parse_args(["analyze", "correlations", "--scores"]).scores == []
    capsys.readouterr()


def test_configured_applies_changes_and_ignores_none():
    correlations = get_study("correlations")
    config = configured(correlations, "smoke", scores=("input_norm", "random"), max_points=None)
    assert config.scores == ("input_norm", "random")
    assert config.max_points == correlations.presets["smoke"].max_points
    assert config.setting == SETTINGS["smoke"]


def test_every_analysis_has_the_three_presets_as_frozen_configs():
    import dataclasses

    from datadiet.studies import MODULES

    for name in MODULES:
        study = get_study(name)
        assert {"smoke", "quick", "paper"} <= set(study.presets) <= set(SETTINGS), name  # the one preset table
        assert dataclasses.fields(study.config)[0].name == "setting", name
        for preset, config in study.presets.items():
            assert isinstance(config, study.config), (name, preset)
            assert type(config).__dataclass_params__.frozen, name
            # a preset runs on its own setting, or the one the study declares for it (quick → quick-scarce)
            assert config.setting == SETTINGS[study.settings.get(preset, preset)], (name, preset)
        assert callable(study.run), name
        assert study.name == name
        assert study.title, name
        assert study.source, name


def test_correlations_of_two_chosen_scores_and_an_unknown_one(workspace, tmp_path):
    from dataclasses import replace

    from datadiet.errors import DataDietError
    from datadiet.studies import correlations

    ws = copy_workspace(workspace[0], tmp_path / "ws")  # this rewrites the correlations section
    config = replace(correlations.PRESETS["smoke"], scores=("grand@init", "input_norm"))
    summary = run_analysis("correlations", config=config, workspace=ws)
    tables = {t.label: t for t in map(load_scores, sorted((ws.root / "scores").glob("*/*.npz")))}
    expected = stats.spearmanr(tables["grand@init"].mean, tables["input_norm"].mean).statistic
    assert summary["spearman"] == {"grand@init ~ input_norm": pytest.approx(expected)}
    with pytest.raises(DataDietError, match="Unknown score label.*'el2n@epoch9'"):
        run_analysis("correlations", config=replace(config, scores=("el2n@epoch9",)), workspace=ws)
