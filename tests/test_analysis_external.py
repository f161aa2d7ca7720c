"""External per-example values (Paul et al. App. G): a synthetic "memorization" table (a monotone function of one
score plus noise, covering part of the training set) correlated with every score, checked against scipy on a
join written independently; every error path of reading and joining the table."""
from dataclasses import replace

import numpy as np
import pytest
from scipy import stats

from datadiet.cli import main
from datadiet.errors import DataDietError
from datadiet.report.tables import read_csv
from datadiet.runs import Execution, Workspace
from datadiet.scores import load_scores
from datadiet.stats import correlations
from datadiet.studies import external as ext
from fakes import write_fake_mnist

SETTING = ext.PRESETS["smoke"].setting


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("external")
    root = write_fake_mnist(tmp / "data", n_train=480, n_test=240)
    ws = Workspace(tmp / "ws", Execution(data_root=str(root)), log=lambda _: None)
    ws.scores(SETTING)
    tables = {t.label: t for t in map(load_scores, sorted((ws.root / "scores").glob("*/*.npz")))}
    train_ids = tables["input_norm"].ids
    outside = np.setdiff1d(np.arange(480), train_ids)[:15]  # examples of the dataset, not of the smoke subset
    rng = np.random.default_rng(1)
    keep = rng.permutation(len(train_ids))[:250]
    driver = tables[SETTING.early("grand")].mean[keep]
    mem = np.exp(driver) + rng.normal(0, 0.3 * np.exp(driver).std(), len(keep))  # monotone + noise
    ids = np.concatenate([train_ids[keep], outside])
    values = np.concatenate([mem, rng.uniform(0, 1, len(outside))])
    csv_path = tmp / "memorization.csv"
    lines = ["example,mem,notes"] + [f"{i},{float(v)!r},x" for i, v in zip(ids, values)]
    csv_path.write_text("\n".join(lines) + "\n")
    code = main(["analyze", "external", "--preset", "smoke", "--out", str(ws.root), "--data-root", str(root),
                 "--values", str(csv_path), "--id-column", "example", "--value-column", "mem"])
    assert code == 0
    return ws, root, tables, dict(zip(ids.tolist(), values.tolist())), tmp


def test_correlations_match_scipy_on_an_independent_join(workspace):
    ws, _, tables, truth, _ = workspace
    rows = {r["score"]: r for r in read_csv(ws.root / "external" / "correlations.csv")}
    assert set(rows) == set(tables)
    for label, table in tables.items():
        x = [s for i, s in zip(table.ids.tolist(), table.mean) if i in truth]
        y = [truth[i] for i in table.ids.tolist() if i in truth]
        assert rows[label]["n"] == len(x) == 250
        assert rows[label]["spearman"] == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-9)
        assert rows[label]["pearson"] == pytest.approx(stats.pearsonr(x, y).statistic, abs=1e-9)
        assert rows[label]["spearman_p"] == pytest.approx(stats.spearmanr(x, y).pvalue, rel=1e-6, abs=1e-300)
    driver = rows[SETTING.early("grand")]
    assert driver["spearman"] > 0.7
    assert abs(rows["random"]["spearman"]) < 0.3  # the signal is found


def test_binned_means_and_outputs(workspace):
    ws, _, tables, truth, _ = workspace
    folder = ws.root / "external"
    for name in ("scatter.png", "binned.png", "correlations.csv", "binned.csv", "section.md", "summary.json"):
        assert (folder / name).stat().st_size > 0, name
    label = SETTING.early("el2n")
    table = tables[label]
    matched = [(s, i, truth[i]) for i, s in zip(table.ids.tolist(), table.mean) if i in truth]
    ordered = sorted(matched)  # by score, then id
    bins = [r for r in read_csv(folder / "binned.csv") if r["score"] == label]
    assert [r["n"] for r in bins] == [25] * 10
    for b, row in enumerate(bins):
        group = ordered[25 * b:25 * (b + 1)]
        assert row["value_mean"] == pytest.approx(np.mean([v for _, _, v in group]))
        assert row["score_min"] == pytest.approx(group[0][0])
        assert row["score_max"] == pytest.approx(group[-1][0])


def test_findings_report_the_coverage(workspace):
    ws, _, _, _, _ = workspace
    import json

    summary = json.loads((ws.root / "external" / "summary.json").read_text())
    assert summary["coverage"] == {"file_rows": 265, "matched": 250, "training_examples": 384, "outside_subset": 15}
    assert summary["findings"][0].startswith("250 of the 265 examples in the values file are among the 384")
    assert f"Spearman {summary['spearman'][SETTING.early('el2n')]:.3f}" in summary["findings"][2]


def test_npz_input_reads_like_the_csv(workspace, tmp_path):
    _, _, _, truth, tmp = workspace
    ids, values, name = ext.read_values(tmp / "memorization.csv", "example", "mem")
    assert name == "mem"
    assert dict(zip(ids.tolist(), values.tolist())) == truth
    np.savez(tmp_path / "mem.npz", ids=ids.astype(np.float64), values=values)  # integral float ids are accepted
    ids2, values2, name2 = ext.read_values(tmp_path / "mem.npz")
    assert name2 == "values"
    assert np.array_equal(ids2, ids)
    assert np.array_equal(values2, values)
    (tmp_path / "tab.csv").write_text("id\tv\n3\t0.5\n4\t1.5\n")
    ids3, values3, name3 = ext.read_values(tmp_path / "tab.csv")  # the only other column is the value
    assert ids3.tolist() == [3, 4]
    assert values3.tolist() == [0.5, 1.5]
    assert name3 == "v"


@pytest.mark.parametrize("text, kwargs, message", [
    ("idx,value\n1,2\n", {}, "no id column 'id'.*--id-column"),
    ("id,value\n1,2\n", {"value_column": "mem"}, "no value column 'mem'.*--value-column"),
    ("id,a,b\n1,2,3\n", {}, "2 columns besides 'id' \\(a, b\\).*--value-column"),
    ("id,value\n1,2\n2,high\n", {}, "line 3: value 'high' in column 'value' is not a number"),
    ("id,value\n1,2\n2,\n", {}, "line 3: the value in column 'value' is empty"),
    ("id,value\n1.5,2\n", {}, "id '1.5' in column 'id' is not an integer"),
    ("id,value\n1,2\n1,3\n4,5\n", {}, "1 ids occur more than once \\(first: \\[1\\]\\)"),
    ("id,value\n1,nan\n2,3\n", {}, "1 values of 'value' are NaN or infinite \\(ids \\[1\\]\\)"),
    ("id,value\n1,2,3\n", {}, "line 2: 3 fields, but the header has 2"),
    ("", {}, "is empty"),
    ("id,value\n", {}, "holds no rows"),
])
def test_bad_csv_files_are_clear_errors(tmp_path, text, kwargs, message):
    path = tmp_path / "values.csv"
    path.write_text(text)
    with pytest.raises(ext.ExternalValuesError, match=message):
        ext.read_values(path, **kwargs)


def test_bad_npz_files_and_missing_files(tmp_path):
    with pytest.raises(ext.ExternalValuesError, match="does not exist.*--values"):
        ext.read_values(tmp_path / "nope.csv")
    np.savez(tmp_path / "a.npz", ids=np.arange(3), vals=np.ones(3))
    with pytest.raises(ext.ExternalValuesError, match="no array 'values'"):
        ext.read_values(tmp_path / "a.npz")
    np.savez(tmp_path / "b.npz", ids=np.arange(3), values=np.array(["a", "b", "c"]))
    with pytest.raises(ext.ExternalValuesError, match="not numbers"):
        ext.read_values(tmp_path / "b.npz")
    np.savez(tmp_path / "c.npz", ids=np.arange(3), values=np.array([1.0, np.nan, 2.0]))
    with pytest.raises(ext.ExternalValuesError, match="NaN"):
        ext.read_values(tmp_path / "c.npz")
    np.savez(tmp_path / "d.npz", ids=np.array([0.5, 1, 2]), values=np.ones(3))
    with pytest.raises(ext.ExternalValuesError, match="not integer example ids"):
        ext.read_values(tmp_path / "d.npz")
    (tmp_path / "e.npz").write_bytes(b"not a zip")
    with pytest.raises(ext.ExternalValuesError, match=r"e.npz is not a file of values .*: it is not an .npz \(zip\) archive"):
        ext.read_values(tmp_path / "e.npz")


def test_join_allows_partial_coverage_but_not_foreign_ids():
    train_ids, dataset_ids = np.array([10, 3, 7, 20]), np.arange(30)
    positions, values, coverage = ext.join_values(np.array([7, 10, 25]), np.array([0.7, 1.0, 2.5]), train_ids,
                                                  dataset_ids, min_matched=2)
    assert positions.tolist() == [0, 2]
    assert values.tolist() == [1.0, 0.7]
    assert coverage == {"file_rows": 3, "matched": 2, "training_examples": 4, "outside_subset": 1}
    with pytest.raises(ext.ExternalValuesError, match="2 of the 3 ids .* not examples of cifar10's training split "
                                                      "\\(valid ids: 0..29; first unknown: \\[30, -1\\]\\)"):
        ext.join_values(np.array([30, 3, -1]), np.ones(3), train_ids, dataset_ids, dataset="cifar10")
    with pytest.raises(ext.ExternalValuesError, match="Only 2 of the 3 ids .* among the 4 training examples"):
        ext.join_values(np.array([7, 10, 25]), np.ones(3), train_ids, dataset_ids, min_matched=3)


def test_correlate_and_bins_by_hand():
    out = correlations(np.array([1.0, 2, 3, 4]), np.array([1.0, 4, 9, 16]))
    assert set(out) == {"spearman", "spearman_p", "pearson", "pearson_p"}
    assert out["spearman"] == pytest.approx(1.0)
    assert 0.9 < out["pearson"] < 1.0
    assert out["pearson"] == pytest.approx(stats.pearsonr([1.0, 2, 3, 4], [1.0, 4, 9, 16]).statistic)
    constant = correlations(np.ones(4), np.arange(4.0))
    assert all(np.isnan(v) for v in constant.values())  # a constant side correlates with nothing
    rows = ext.binned_means(np.array([1.0, 1.0, 0.0, 2.0]), np.array([10.0, 20.0, 30.0, 40.0]), np.array([9, 2, 5, 1]),
                            bins=2)
    # by score, ties by id: id 5 (0.0), id 2 (1.0), id 9 (1.0), id 1 (2.0)
    assert [(r["n"], r["value_mean"]) for r in rows] == [(2, 25.0), (2, 25.0)]
    assert rows[0]["score_max"] == 1.0
    assert rows[1]["score_min"] == 1.0


def test_run_without_values_says_to_pass_values(workspace, capsys):
    ws, root, _, _, _ = workspace
    no_input = replace(ext.PRESETS["smoke"], memorization_runs=0)
    assert "--values" in ext.missing_input(no_input)
    assert "--values" in ext.missing_input(ext.PRESETS["paper"])
    assert ext.missing_input(ext.PRESETS["smoke"]) is None
    with pytest.raises(ext.ExternalValuesError, match="pass --values PATH"):
        ext.run(no_input, ws)
    code = main(["analyze", "external", "--preset", "smoke", "--out", str(ws.root), "--data-root", str(root),
                 "--memorization-runs", "0"])
    assert code == 2
    assert "--values PATH" in capsys.readouterr().err


def test_unknown_score_and_too_few_matches_in_a_run(workspace, tmp_path):
    ws, _, _, _, tmp = workspace
    config = replace(ext.PRESETS["smoke"], values=str(tmp / "memorization.csv"), id_column="example",
                     value_column="mem")
    with pytest.raises(DataDietError, match="Unknown score label.*'el2n@epoch9'"):  # refused when built
        replace(config, scores=("el2n@epoch9",))
    with pytest.raises(ext.ExternalValuesError, match="Only 250 of the 265 ids"):
        ext.run(replace(config, min_matched=251), ws)
    (tmp_path / "foreign.csv").write_text("id,value\n0,1\n480,2\n")  # the fake training split has ids 0..479
    with pytest.raises(ext.ExternalValuesError, match="1 of the 2 ids .* not examples of fashion-mnist"):
        ext.run(replace(config, values=str(tmp_path / "foreign.csv"), id_column="id", value_column=None), ws)
