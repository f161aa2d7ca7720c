"""Kept examples per class: recorded in the plan, shown in the report, warned about when a class all but vanishes."""
import json

import numpy as np
import pytest

from fakes import tiny_dataset
from datadiet.config import DataConfig, TrainConfig
from datadiet.report.classes import class_count_markdown, class_count_rows, class_warnings
from datadiet.report.pruning import write_pruning_report
from datadiet.report.tables import read_csv
from datadiet.runs.sweep import task_for
from datadiet.selection import class_counts, short_classes
from datadiet.runs.plan import plan_class_counts
from datadiet.runs.plan import plan_classes, write_plan


def test_class_counts_and_short_classes_by_hand():
    assert class_counts([2, 0, 2, 2], 4).tolist() == [1, 0, 3, 0]  # absent classes count 0
    # keep 0.5 of classes of 10, 10, 4: shares 5, 5, 2; half shares 2.5, 2.5, 1. Kept 3 → fine, 2 → short,
    # 1 → exactly half of 2 is not under half.
    assert short_classes([3, 2, 1], [10, 10, 4], 0.5) == [1]
    assert short_classes([0, 5, 0], [10, 10, 1], 0.5) == [0, 2]  # share 0.5: even one example matters


# A plan as reproduce writes it: moderate at keep 0.5 keeps no "1" (issue 18), random draws two subsets.
CLASSES = {
    "names": ["0", "1", "2"], "sizes": [10, 10, 4],
    "counts": {"m": [7, 0, 5], "r1": [5, 4, 3], "r2": [4, 6, 2], "h": [5, 5, 2]},
    "runs": {"m": {"method": "el2n@epoch2+moderate", "keep": 0.5, "offset": None, "seed": 1000},
             "r1": {"method": "random", "keep": 0.5, "offset": None, "seed": 1000},
             "r2": {"method": "random", "keep": 0.5, "offset": None, "seed": 1001},
             "h": {"method": "el2n@epoch2+balanced", "keep": 0.5, "offset": None, "seed": 1000},
             "f": {"method": "full", "keep": 1.0, "offset": None, "seed": 1000}},
}


def test_rows_give_mean_min_max_per_point_and_class():
    rows = class_count_rows(CLASSES)
    assert [(r["method"], r["class"]) for r in rows][:3] == [("random", "0"), ("random", "1"), ("random", "2")]
    by = {(r["method"], r["class"]): r for r in rows}
    assert len(rows) == 3 * 3  # random, moderate, balanced; full data has no counts
    assert by[("random", "1")] == {"method": "random", "keep": 0.5, "offset": None, "class": "1", "size": 10,
                                   "share": 5.0, "kept_mean": 5.0, "kept_min": 4, "kept_max": 6, "subsets": 2}
    assert by[("el2n@epoch2+moderate", "1")]["kept_max"] == 0
    assert class_count_rows(None) == [] and class_count_rows({}) == []  # plans before class counts


def test_warnings_name_the_method_fraction_and_class():
    warnings = class_warnings(class_count_rows(CLASSES))
    assert warnings == [
        "el2n@epoch2+moderate at keep 0.5 keeps 0 of the 10 examples of class '1', under half of its proportional "
        "share (5); a +balanced method keeps every class's proportional share, so an imbalanced dataset stays as "
        "imbalanced; a +equal method keeps the same count from every class"]
    # the smallest of several subsets counts: random keeping 1 of class "2" once (share 2, half 1) is fine,
    # keeping 0 once is not
    shaky = {**CLASSES, "counts": {**CLASSES["counts"], "r2": [4, 6, 0]}}
    assert "random at keep 0.5 keeps as few as 0 (the fewest in its 2 subsets) of the 4 examples of class '2'" in \
        " ".join(class_warnings(class_count_rows(shaky)))


def test_an_equal_method_is_not_warned_about_its_proportional_share():
    # +equal keeps 2 of each class of 10, 10 and 2 at keep 0.3 (shares 3, 3, 0.6): by design, not a vanished class
    equal = {"names": ["0", "1", "2"], "sizes": [10, 10, 2], "counts": {"e": [1, 1, 2]},
             "runs": {"e": {"method": "el2n@epoch2+equal/run1", "keep": 0.3, "offset": None, "seed": 1000}}}
    assert class_warnings(class_count_rows(equal)) == []
    moderate = {**equal, "runs": {"e": {**equal["runs"]["e"], "method": "el2n@epoch2+moderate"}}}
    assert len(class_warnings(class_count_rows(moderate))) == 2


def test_the_data_command_prints_counts_per_class_and_the_imbalance_ratio(tmp_path, capsys):
    from test_class_quota import write_imbalanced_mnist
    from datadiet.cli import main

    root = write_imbalanced_mnist(tmp_path / "data")  # class 0: 16 training examples, classes 1-9: 2 each
    assert main(["data", "--dataset", "mnist", "--data-root", str(root)]) == 0
    stdout = capsys.readouterr().out
    assert "  train examples per class: 0 16, 1 2, 2 2, 3 2, 4 2, 5 2, 6 2, 7 2, 8 2, 9 2\n" in stdout
    assert "  imbalance ratio (largest class / smallest): 8 ('0' 16 / '1' 2)\n" in stdout


def test_the_data_command_names_a_class_without_training_examples(capsys):
    from datadiet.cli import _say_class_balance

    _say_class_balance(tiny_dataset(10, classes=4))  # labels 0 1 2 3 0 1 2 3 0 1: c0, c1 3 each, c2, c3 2 each
    assert capsys.readouterr().out.splitlines()[-1].endswith("1.5 ('c0' 3 / 'c2' 2)")
    dataset = tiny_dataset(4, classes=4)
    dataset.labels[3] = 0  # c3 has none left
    _say_class_balance(dataset)
    assert capsys.readouterr().out.splitlines()[-1].endswith("infinite, no training example of class 'c3'")


def test_markdown_shows_a_column_per_class_or_the_fewest_kept():
    rows = class_count_rows(CLASSES)
    lines = class_count_markdown(rows, class_warnings(rows))
    assert lines[0] == "### Kept examples per class"  # a heading within the reproduction's section
    assert lines[2].startswith("- **Warning**: el2n@epoch2+moderate at keep 0.5 keeps 0")
    assert "| method | subset | 0 | 1 | 2 |" in lines
    assert "| *share* | keep 0.5 | *5* | *5* | *2* |" in lines
    assert "| random | keep 0.5 | 4.5 | 5 | 2.5 |" in lines
    assert "| el2n@epoch2+moderate | keep 0.5 | 7 | 0 | 5 |" in lines
    many = {"names": [f"c{i}" for i in range(30)], "sizes": [10] * 30,
            "counts": {"m": [5] * 29 + [1]}, "runs": {"m": CLASSES["runs"]["m"]}}
    lines = class_count_markdown(class_count_rows(many), [])
    assert "| el2n@epoch2+moderate | keep 0.5 | c29: 1 of share 5 | 1 |" in lines
    assert class_count_markdown([], []) == []


def test_the_plan_records_each_subset_s_counts():
    ds = tiny_dataset(12, classes=3)  # label = id % 3; classes c0, c1, c2
    data, train = DataConfig(), TrainConfig()
    tasks = [task_for(data, train, "el2n@epoch2", 0.5, [0, 3, 6, 9, 1, 4], ds),  # 4 of c0, 2 of c1
             task_for(data, train, "random", 0.5, [2, 5, 8, 11, 7, 10], ds)]
    record = plan_class_counts(tasks, ds)
    assert record["names"] == ["c0", "c1", "c2"] and record["sizes"] == [4, 4, 4]
    assert record["counts"] == {tasks[0].spec.run_id: [4, 2, 0], tasks[1].spec.run_id: [0, 2, 4]}


def test_write_plan_and_the_report_carry_the_counts(tmp_path):
    ds = tiny_dataset(12, classes=3)
    data, train = DataConfig(), TrainConfig()
    tasks = [task_for(data, train, "el2n@epoch2", 0.5, [0, 3, 6, 9, 1, 4], ds)]
    write_plan(tmp_path, tasks, ds)
    plan = json.loads((tmp_path / "plan.json").read_text())
    classes = plan_classes(plan)
    assert classes["counts"] == {tasks[0].spec.run_id: [4, 2, 0]}
    assert plan_classes({"runs": plan["runs"]}) is None  # a plan of datadiet 0.2
    records = [_record(tasks[0].spec.run_id, "el2n@epoch2", 0.5, s, 0.8 + s / 100) for s in range(3)]
    records += [_record(f"r{s}", "random", 0.5, s, 0.7) for s in range(3)]
    summary = write_pruning_report(tmp_path, {"title": "t"}, records, {"a": np.arange(5.0)}, classes=classes)
    assert summary["class_warnings"] == [
        "el2n@epoch2 at keep 0.5 keeps 0 of the 4 examples of class 'c2', under half of its proportional share (2); "
        "a +balanced method keeps every class's proportional share, so an imbalanced dataset stays as imbalanced; a "
        "+equal method keeps the same count from every class"]
    text = (tmp_path / "section.md").read_text()  # the section the workspace's report.md gathers
    assert text.splitlines()[2].startswith("**Warning**: some subsets keep a class at under half")
    assert "| el2n@epoch2 | keep 0.5 | 4 | 2 | 0 |" in text
    assert [r["kept_mean"] for r in read_csv(tmp_path / "class_counts.csv")] == [4, 2, 0]
    assert json.loads((tmp_path / "summary.json").read_text())["class_warnings"] == summary["class_warnings"]


def test_a_report_without_class_counts_has_no_section(tmp_path):
    records = [_record(f"x{s}", "random", 0.5, s, 0.7) for s in range(2)]
    summary = write_pruning_report(tmp_path, {"title": "t"}, records, {"a": np.arange(5.0)})
    assert summary["class_warnings"] == []
    assert "Kept examples per class" not in (tmp_path / "section.md").read_text()
    assert not (tmp_path / "class_counts.csv").exists()


def _record(run_id, method, keep, seed, accuracy):
    return {"run_id": run_id, "method": method, "keep": keep, "offset": None, "test_accuracy": accuracy,
            "test_loss": 1.0, "steps": 10, "n_train": 6, "wall_seconds": 1.0, "dataset_fingerprint": "f",
            "train": {"seed": seed, "model": "mlp", "width": 1, "epochs": 1},
            "data": {"dataset": "tiny", "subset": None}}


@pytest.mark.parametrize("name", ["a|b"])
def test_class_names_cannot_break_the_table(name):
    classes = {"names": [name], "sizes": [2], "counts": {"m": [1]}, "runs": {"m": CLASSES["runs"]["m"]}}
    assert "| method | subset | a\\|b |" in class_count_markdown(class_count_rows(classes), [])
