"""Every class measured in every run: per-class recall, balanced and worst-class accuracy, the majority-class rate;
their place in run records and results.csv (old records without them stay readable); the "did it learn?" gate."""
import json
import math

import numpy as np
import pytest

from fakes import write_fake_mnist
from datadiet.config import DataConfig, TrainConfig
from datadiet.report.tables import CLASS_COLUMNS, class_cells, flatten_results, read_csv, write_csv
from datadiet.runs.sweep import RunSpec, Task, read_run_files, record_checksum, run_sweep, seal_record
from datadiet.stats import learned
from datadiet.training.engine import TrainResult
from datadiet.training.evaluate import (ClassMetrics, balanced_accuracy, class_metrics, class_recall, majority_rate,
                                        worst_class_accuracy)

NEW_KEYS = {"test_balanced_accuracy", "test_worst_class_accuracy", "test_class_recall", "test_majority_rate"}


def _pairs(confusion):
    """(labels, predictions) with ``confusion[true][predicted]`` examples of each pair, rows in a shuffled order."""
    labels, predicted = [], []
    for t, row in enumerate(confusion):
        for p, count in enumerate(row):
            labels += [t] * count
            predicted += [p] * count
    order = np.random.default_rng(0).permutation(len(labels))
    return np.array(labels)[order], np.array(predicted)[order]


# ---------------------------------------------------------------- the pure per-class numbers

def test_recall_balanced_and_worst_match_a_hand_made_confusion_matrix():
    confusion = [[8, 1, 1],   # class 0: 10 examples, 8 right
                 [2, 3, 0],   # class 1: 5 examples, 3 right
                 [0, 5, 15]]  # class 2: 20 examples, 15 right
    labels, predicted = _pairs(confusion)
    recall = class_recall(labels, labels == predicted, 3)
    assert recall == pytest.approx([0.8, 0.6, 0.75])
    metrics = class_metrics(labels, labels == predicted, 3)
    assert metrics.balanced_accuracy == pytest.approx((0.8 + 0.6 + 0.75) / 3)
    assert metrics.worst_class_accuracy == pytest.approx(0.6)
    assert metrics.majority_rate == pytest.approx(20 / 35)
    assert (labels == predicted).mean() == pytest.approx(26 / 35)  # overall accuracy is another number


def test_a_useless_model_looks_good_overall_and_bad_per_class():
    """The case that motivated the numbers: 4 classes, 57.5 % of one; a model that never predicts 2 of them."""
    confusion = [[220, 10, 0, 0],   # 230 of 400 = 0.575: the majority class
                 [60, 50, 0, 0],
                 [30, 0, 0, 0],     # never predicted
                 [30, 0, 0, 0]]     # never predicted
    labels, predicted = _pairs(confusion)
    m = class_metrics(labels, labels == predicted, 4)
    assert (labels == predicted).mean() == pytest.approx(270 / 400)  # 0.675: above the majority rate
    assert m.majority_rate == pytest.approx(0.575)
    assert list(m.recall) == pytest.approx([220 / 230, 50 / 110, 0.0, 0.0])  # never predicted: recall 0
    assert m.worst_class_accuracy == 0.0
    assert m.balanced_accuracy == pytest.approx((220 / 230 + 50 / 110) / 4)


def test_a_class_absent_from_the_evaluated_labels_is_unknown_and_left_out_of_the_means():
    labels = np.array([0, 0, 0, 2, 2])
    correct = np.array([True, True, False, False, True])
    m = class_metrics(labels, correct, 3)
    assert m.recall == (pytest.approx(2 / 3), None, 0.5)
    assert m.balanced_accuracy == pytest.approx((2 / 3 + 0.5) / 2)  # over the two classes present
    assert m.worst_class_accuracy == 0.5
    assert m.majority_rate == pytest.approx(3 / 5)
    assert balanced_accuracy([0.5, math.nan, 1.0]) == 0.75 and worst_class_accuracy([math.nan, 0.25]) == 0.25


def test_nothing_evaluated_gives_unknowns_and_bad_labels_are_refused():
    m = class_metrics(np.zeros(0, dtype=int), np.zeros(0, dtype=bool), 2)
    assert m == ClassMetrics((None, None), None, None, None)
    assert majority_rate([], 3) is None
    with pytest.raises(ValueError, match="0..1"):
        class_recall([0, 2], [True, True], 2)
    with pytest.raises(ValueError, match="2 labels but 1"):
        class_recall([0, 1], [True], 2)


def test_train_result_fields_are_unknown_when_the_test_split_was_not_evaluated():
    result = TrainResult(None, 1, 1.0, None, None, [], 0.0, None)
    assert result.class_fields() == dict.fromkeys(NEW_KEYS)
    result.test_classes = ClassMetrics((1.0, None), 1.0, 1.0, 1.0)
    assert result.summary()["test_class_recall"] == [1.0, None]


# ---------------------------------------------------------------- the "did it learn?" gate

def test_learned_on_hand_computed_intervals():
    # mean 0.67, sd 0.01, n 3: half-width t(0.975; 2) · 0.01 / √3 = 4.302653 · 0.0057735 = 0.024841
    ok, reason = learned([0.66, 0.67, 0.68], 0.575)
    assert ok is True and "CI [0.6452, 0.6948]" in reason and "above the majority-class rate 0.5750" in reason
    # mean 0.62, sd 0.02: half-width 0.049683, so the interval [0.5703, 0.6697] holds 0.575: not learned, although
    # the mean is above it
    ok, reason = learned([0.60, 0.62, 0.64], 0.575)
    assert ok is False and "CI [0.5703, 0.6697]" in reason and "holding the majority-class rate" in reason


def test_shuffled_labels_do_not_pass_the_gate():
    """Accuracies of models trained on shuffled labels scatter around the majority rate: never "learned"."""
    rng = np.random.default_rng(0)
    for rate in (0.1, 0.575):
        accuracies = rate + rng.normal(0, 0.01, size=5)
        ok, reason = learned(accuracies, rate)
        assert ok is False, reason
    assert learned([0.575, 0.575, 0.575], 0.575) == (
        False, "mean accuracy 0.5750 not above the majority-class rate 0.5750, exact (3 full-data runs, no spread)")


def test_few_runs_are_decided_on_the_mean_alone_and_unknowns_stay_unknown():
    ok, reason = learned([0.70, 0.90], 0.575)
    assert ok is True and "decided on the mean alone (2 full-data runs: no interval)" in reason
    assert learned([0.5], 0.575)[0] is False
    assert learned([], 0.575)[0] is None
    assert learned([0.9, 0.9, 0.9], None)[0] is None  # old records: no majority rate
    assert learned([None, math.nan], 0.25)[0] is None  # nothing known
    ok, reason = learned([0.5, 0.55, 0.6], 0.25, against="chance (1/4)")
    assert ok is True and "above chance (1/4) 0.2500" in reason


# ---------------------------------------------------------------- records and results.csv

TRAIN = TrainConfig(model="smallcnn", width=0.25, batch_size=16, epochs=1, eval_batch_size=64)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """One finished full-data run: (its folder, its data root)."""
    tmp = tmp_path_factory.mktemp("class-metrics")
    root = write_fake_mnist(tmp / "data", n_train=64, n_test=40)
    data = DataConfig(dataset="mnist", data_root=str(root))
    run_sweep([Task(RunSpec(data, TRAIN, "full", 1.0))], tmp / "sweep", log=lambda _: None)
    return tmp / "sweep", root


def test_a_run_record_carries_the_class_numbers_and_its_identity_and_checksum_hold(sweep):
    out, _ = sweep
    path = next((out / "runs").glob("*.json"))
    record = json.loads(path.read_text())
    assert NEW_KEYS <= set(record)
    recall = record["test_class_recall"]
    present = [r for r in recall if r is not None]
    assert len(recall) == 10 and all(0 <= r <= 1 for r in present)
    assert record["test_balanced_accuracy"] == pytest.approx(np.mean(present))
    assert record["test_worst_class_accuracy"] == min(present)
    # the test split's labels, read independently, give the majority rate
    from datadiet.data import load_data
    labels = load_data(DataConfig(dataset="mnist", data_root=str(sweep[1]))).test.labels.numpy()
    assert record["test_majority_rate"] == pytest.approx(np.bincount(labels).max() / len(labels))
    assert [r is None for r in recall] == [c == 0 for c in np.bincount(labels, minlength=10)]
    assert record["run_id"] == RunSpec(DataConfig(dataset="mnist", data_root="x"), TRAIN, "full", 1.0).run_id
    assert record["record_sha256"] == record_checksum(record)


def _old_record(record: dict) -> dict:
    """``record`` as a run written before runs measured classes: without the keys, sealed then."""
    return seal_record({k: v for k, v in record.items() if k not in NEW_KEYS})


def test_an_old_record_without_the_class_numbers_still_verifies_and_is_not_trained_again(sweep, tmp_path,
                                                                                       monkeypatch):
    import shutil

    import datadiet.runs.sweep as sweep_mod

    out = tmp_path / "sweep"
    shutil.copytree(sweep[0], out)
    path = next((out / "runs").glob("*.json"))
    path.write_text(json.dumps(_old_record(json.loads(path.read_text()))))
    files = read_run_files(out)
    assert path.stem in files.records and not files.invalid and not files.unchecked
    monkeypatch.setattr(sweep_mod, "execute_run", lambda *a, **k: pytest.fail("an old record was trained again"))
    data = DataConfig(dataset="mnist", data_root=str(sweep[1]))
    assert run_sweep([Task(RunSpec(data, TRAIN, "full", 1.0))], out, log=lambda _: None).skipped == 1


def test_results_csv_carries_the_class_columns_and_old_records_give_empty_cells(sweep, tmp_path):
    new = json.loads(next((sweep[0] / "runs").glob("*.json")).read_text())
    old = {**_old_record(new), "run_id": "old", "method": "random"}
    rows = flatten_results([old, new])
    assert set(CLASS_COLUMNS) <= set(rows[0]) and set(CLASS_COLUMNS) <= set(rows[1])
    write_csv(tmp_path / "results.csv", rows)
    back = {r["run_id"]: r for r in read_csv(tmp_path / "results.csv")}
    assert all(back["old"][c] is None for c in CLASS_COLUMNS)
    assert back[new["run_id"]]["test_balanced_accuracy"] == pytest.approx(new["test_balanced_accuracy"])
    cell = back[new["run_id"]]["test_class_recall"]
    assert [None if c == "nan" else float(c) for c in str(cell).split()] == pytest.approx(
        [None if r is None else round(r, 4) for r in new["test_class_recall"]], abs=1e-9)


def test_class_cells_spell_recall_in_class_order_with_nan_for_absent_classes():
    cells = class_cells({"test_balanced_accuracy": 0.5, "test_worst_class_accuracy": 0.0, "test_majority_rate": 0.6,
                         "test_class_recall": [1.0, None, 0.0]})
    assert cells == {"test_balanced_accuracy": 0.5, "test_worst_class_accuracy": 0.0, "test_majority_rate": 0.6,
                     "test_class_recall": "1.0000 nan 0.0000"}
