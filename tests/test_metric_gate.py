"""Issue 26 §2–3: the metric a reproduction's report judges by, and the "did it learn?" gate before any verdict,
on hand-made run records whose numbers are chosen so the outcome is known by hand."""
import json

import numpy as np

import pytest

from datadiet.report.pruning import NOT_JUDGED, learned_gate, write_pruning_report
from datadiet.report.tables import class_recall_table, compare_to_random, curve_table, flatten_results, read_csv

# Four evaluation seeds per point; forgetting@end clearly worse at 0.3 and clearly better at 0.5 (by accuracy).
ACCURACIES = {
    ("random", 0.3): [0.70, 0.71, 0.69, 0.70],
    ("random", 0.5): [0.80, 0.81, 0.79, 0.80],
    ("forgetting@end", 0.3): [0.60, 0.61, 0.59, 0.60],
    ("forgetting@end", 0.5): [0.90, 0.91, 0.89, 0.90],
    ("full", 1.0): [0.95, 0.96, 0.94, 0.95],
}


def _records(accuracies=ACCURACIES, *, majority=0.1, recall=None, balanced=None, classes=True):
    """Run records as the sweep writes them; ``recall`` / ``balanced``: (method, keep) → per-run value (else the
    accuracy stands in); ``classes=False``: records written before runs measured classes."""
    out = []
    for (m, k), accs in accuracies.items():
        for s, a in enumerate(accs):
            r = {"run_id": f"{m}-{k}-{s}", "method": m, "keep": k, "offset": None, "test_accuracy": a,
                 "test_loss": 1 - a, "steps": 10, "n_train": int(100 * k), "wall_seconds": 0.1,
                 "dataset_fingerprint": "x", "train": {"seed": 1000 + s, "model": "mlp", "width": 8, "epochs": 1},
                 "data": {"dataset": "fashion_mnist", "subset": 100}}
            if classes:
                b = (balanced or {}).get((m, k), accs)[s]
                r.update(test_majority_rate=majority, test_balanced_accuracy=b, test_worst_class_accuracy=b / 2,
                         test_class_recall=(recall or {})[(m, k)][s] if (m, k) in (recall or {}) else [a, a])
            out.append(r)
    return out


def _report(tmp_path, records, config=None):
    folder = tmp_path / "reproduce"
    folder.mkdir()
    summary = write_pruning_report(folder, {"title": "hand-made", "preset": "x", **(config or {})}, records, {})
    return folder, summary


def test_shuffled_labels_are_not_judged(tmp_path):
    # full data at the majority rate (what shuffled labels give): mean 0.60, interval [0.587, 0.613] holds 0.6
    shuffled = {**ACCURACIES, ("full", 1.0): [0.59, 0.61, 0.60, 0.60]}
    folder, summary = _report(tmp_path, _records(shuffled, majority=0.6))
    assert summary["learned"] is False
    assert json.loads((folder / "summary.json").read_text())["learned"] is False
    versus = read_csv(folder / "vs_random.csv")
    assert {v["verdict"] for v in versus} == {NOT_JUDGED} and {v["verdict_holm"] for v in versus} == {NOT_JUDGED}
    assert summary["better_at"] == {} and summary["beat_random"] == []
    assert summary["verdicts"]["forgetting@end"][NOT_JUDGED] == [0.3, 0.5]
    opening = (folder / "section.md").read_text().splitlines()[2]
    assert opening.startswith("**The model did not learn the task on this setting**")
    assert "0.6000" in opening
    text = (folder / "section.md").read_text()
    assert "--epochs" in text and "--resize" in text and "--lr" in text
    assert "**keep 0.3**: not judged — forgetting@end" in text
    # the differences stay: the table still shows what was measured
    assert versus[0]["diff"] == pytest.approx(-0.10)


def test_a_model_that_learned_keeps_its_verdicts(tmp_path):
    (tmp_path / "old").mkdir()
    old_folder, old = _report(tmp_path / "old", _records(classes=False))
    folder, summary = _report(tmp_path, _records(majority=0.1))
    assert summary["learned"] is True and "above the majority-class rate 0.1000" in summary["learned_reason"]
    assert json.loads((folder / "summary.json").read_text())["learned"] is True
    assert summary["verdicts"] == old["verdicts"]  # the gate changes no verdict of a model that learned
    assert summary["verdicts"]["forgetting@end"]["worse"] == [0.3]
    assert summary["verdicts"]["forgetting@end"]["better"] == [0.5]
    assert read_csv(folder / "vs_random.csv") == read_csv(old_folder / "vs_random.csv")
    # records written before runs measured the majority rate: unknown, said, verdicts as before
    assert old["learned"] is None
    assert "Did the model learn the task? Unknown" in (old_folder / "section.md").read_text()


def test_gate_levels_by_hand():
    records = _records(recall={("full", 1.0): [[0.5, 0.5, None]] * 4},
                       balanced={("full", 1.0): [0.5] * 4})
    # balanced accuracy against chance over the 2 classes present (a None class is absent): 0.5 is not above 0.5
    gate = learned_gate(records, "balanced")
    assert gate["level"] == pytest.approx(0.5) and gate["learned"] is False
    assert "balanced accuracy" in gate["reason"] and "chance (1/2)" in gate["reason"]
    assert learned_gate(records, "accuracy")["learned"] is True  # 0.95 against the majority rate 0.1
    assert learned_gate(_records(classes=False), "balanced")["learned"] is None
    assert learned_gate([r for r in records if r["method"] != "full"], "accuracy")["learned"] is None


def test_tables_follow_the_chosen_metric():
    balanced = {("random", 0.3): [0.30, 0.31, 0.29, 0.30], ("forgetting@end", 0.3): [0.50, 0.51, 0.49, 0.50]}
    records = _records(balanced=balanced)
    rows = flatten_results(records)
    by_accuracy = {(v["method"], v["keep"]): v for v in compare_to_random(rows)}
    by_balanced = {(v["method"], v["keep"]): v for v in compare_to_random(rows, metric="balanced")}
    assert by_accuracy[("forgetting@end", 0.3)]["verdict"] == "worse"   # 0.60 against 0.70
    assert by_balanced[("forgetting@end", 0.3)]["verdict"] == "better"  # 0.50 against 0.30
    assert by_balanced[("forgetting@end", 0.3)]["diff"] == pytest.approx(0.20)
    curve = {(c["method"], c["keep"]): c for c in curve_table(rows, "worst-class")}
    assert curve[("random", 0.3)]["mean"] == pytest.approx(0.15)  # the hand-made worst class: half the balanced
    # records without the metric are left out of its tables
    rows[0]["test_balanced_accuracy"] = None
    curve = {(c["method"], c["keep"]): c for c in curve_table(rows, "balanced")}
    assert curve[(rows[0]["method"], rows[0]["keep"])]["n"] == 3


def test_class_recall_table_flags_a_dropped_class(tmp_path):
    recall = {("forgetting@end", 0.3): [[0.6, 0.0]] * 4, ("forgetting@end", 0.5): [[0.9, 0.1], [0.9, 0.0]] * 2,
              ("full", 1.0): [[0.95, 0.9], [0.95, 0.7], [0.95, 0.8], [0.95, None]]}
    records = _records(recall=recall)
    rows = {(r["method"], r["keep"], r["class"]): r for r in class_recall_table(records)}
    assert rows[("full", 1.0, 1)]["mean_recall"] == pytest.approx(0.8) and rows[("full", 1.0, 1)]["runs"] == 3
    assert rows[("forgetting@end", 0.3, 1)]["dropped"] is True
    assert rows[("forgetting@end", 0.5, 1)]["dropped"] is False  # 0.05 on average: low, not gone
    assert not any(r["dropped"] for r in rows.values() if r["class"] == 0)
    folder, summary = _report(tmp_path, records)
    assert summary["dropped_classes"] == ["forgetting@end at keep 0.3: class 1 recognised in none of its 4 runs "
                                          "(recall 0; full data 0.8000)"]
    csv_rows = read_csv(folder / "class_recall.csv")
    assert [r["dropped"] for r in csv_rows if r["method"] == "forgetting@end" and r["class"] == 1] == ["True", "False"]
    text = (folder / "section.md").read_text()
    assert "### Recall per class" in text and "0.000 (dropped)" in text


def test_a_balanced_metric_opens_the_report(tmp_path):
    folder, summary = _report(tmp_path, _records(), {"metric": "balanced", "metric_reason": "the training split's "
                                                     "largest class is 3× its smallest"})
    lines = (folder / "section.md").read_text().splitlines()
    assert lines[2].startswith("Judged by **balanced accuracy** (`--metric balanced`: the training split's largest")
    assert summary["metric"] == "balanced"
    text = "\n".join(lines)  # the tables' headings name the metric too, not "acc."
    assert "| mean balanced acc. |" in text and "Δ balanced acc. (points)" in text and "| mean acc. |" not in text


def test_default_metric_follows_the_training_split_balance():
    from datadiet.report.tables import IMBALANCE, choose_metric

    balanced = np.arange(30) % 3                       # 10 of each class
    assert choose_metric("auto", balanced, 3)[0] == "accuracy"
    at_limit = np.array([0] * 15 + [1] * 10 + [2] * 10)  # 1.5× exactly: not over it
    assert choose_metric("auto", at_limit, 3) == ("accuracy", "the default: the training split's largest class has "
                                                  "1.50× the examples of its smallest, at most 1.5×")
    skewed = np.array([0] * 16 + [1] * 10 + [2] * 10)    # 1.6×
    metric, why = choose_metric("auto", skewed, 3)
    assert metric == "balanced" and "1.60×" in why and IMBALANCE == 1.5
    assert choose_metric("worst-class", skewed, 3)[0] == "worst-class"  # a chosen metric stands
    assert choose_metric("accuracy", skewed, 3)[1].startswith("chosen with --metric")
    assert choose_metric("auto", np.array([0, 0, 2, 2]), 3)[0] == "accuracy"  # an absent class is no imbalance


def test_methods_of_an_untrained_scorer_are_flagged(tmp_path):
    why = "its network had not learned to fit the training data when scored: mean training loss 2.290"
    folder = tmp_path / "reproduce"
    folder.mkdir()
    summary = write_pruning_report(folder, {"title": "hand-made"}, _records(), {}, untrained={"forgetting@end": why,
                                                                                             "el2n@epoch2": why})
    assert summary["untrained_scorers"] == {"forgetting@end": f"forgetting@end: {why}"}  # el2n is not in the runs
    text = (folder / "section.md").read_text()
    assert text.splitlines()[2].startswith("**Warning**: some methods select by a score taken from a network that "
                                           "had not learned")
    finding = next(line for line in text.splitlines() if line.startswith("- **forgetting@end**:"))
    assert finding.endswith(f"**Untrained scorer**: forgetting@end: {why}.")


def test_recall_rows_name_their_classes_and_a_class_full_data_ignores_is_warned():
    from datadiet.report.pruning import dropped_class_warnings, unlearned_class_warnings
    from datadiet.report.tables import class_recall_table

    def record(method, keep, recall):
        return {"method": method, "keep": keep, "offset": None, "test_class_recall": recall}

    records = [record("full", 1.0, [0.0, 0.9, 0.5]), record("full", 1.0, [0.0, 0.7, 0.5]),
               record("el2n@epoch1", 0.5, [0.0, 0.0, 0.6])]
    rows = class_recall_table(records, ["dress", "pullover", "tshirt"])
    assert [r["class_name"] for r in rows if r["method"] == "full"] == ["dress", "pullover", "tshirt"]
    (dropped,) = dropped_class_warnings(rows)  # pullover: full data 0.8 by hand, the method 0
    assert "class 'pullover' recognised in none of its 1 runs" in dropped and "full data 0.8000" in dropped
    (ignored,) = unlearned_class_warnings(rows)  # dress: recall 0 in both full-data runs
    assert ignored.startswith("full data recognises none of class 'dress' (recall 0 in all 2 runs)")
    assert [r["class_name"] for r in class_recall_table(records)][:3] == ["0", "1", "2"]  # no names: the index


def test_a_comparison_not_judged_says_why_and_promises_no_seeds():
    from datadiet.report.pruning import judged

    versus = [{"verdict": "not resolved", "verdict_holm": "not resolved", "note": "2 seeds: not informative",
               "seeds_needed": 4}, {"verdict": "no different", "note": "outside the baseline's range", "seeds_needed": 3}]
    first, second = judged(versus, learned_task=False)
    assert (first["verdict"], first["note"], first["seeds_needed"]) == ("not judged", "the model did not learn the task",
                                                                        None)
    assert (second["verdict_holm"], second["note"]) == ("not judged", "outside the baseline's range")
    assert judged(versus, learned_task=True) == versus and judged(versus, learned_task=None) == versus
