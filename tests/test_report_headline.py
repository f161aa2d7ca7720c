"""The report's headline: per kept fraction, which scores were better, no different and worse than random, with
and without Holm's correction, on a hand-made results table; and `holm` against hand computations."""
import json
import math

import numpy as np
import pytest
from scipy import stats as sp

from datadiet.report.pruning import _summary, write_pruning_report
from datadiet.report.tables import compare_to_random, curve_table, flatten_results, read_csv
from datadiet.stats import holm, interval_verdict, p_value_verdict, welch_interval

# Four evaluation seeds per point. forgetting@end: clearly worse at keep 0.3, clearly better at 0.5.
# el2n@epoch2 at 0.5: Welch p ≈ 0.033 (uncorrected "better"), third smallest of 6 p-values → Holm 4 · 0.033 ≈ 0.13.
ACCURACIES = {
    ("random", 0.3): [0.70, 0.71, 0.69, 0.70],
    ("random", 0.5): [0.80, 0.81, 0.79, 0.80],
    ("forgetting@end", 0.3): [0.60, 0.61, 0.59, 0.60],
    ("forgetting@end", 0.5): [0.90, 0.91, 0.89, 0.90],
    ("grand@init", 0.3): [0.70, 0.72, 0.68, 0.70],
    ("grand@init", 0.5): [0.80, 0.82, 0.78, 0.80],
    ("el2n@epoch2", 0.3): [0.69, 0.71, 0.70, 0.70],
    ("el2n@epoch2", 0.5): [0.81, 0.83, 0.81, 0.82],
    ("full", 1.0): [0.95, 0.96, 0.94, 0.95],
}

HEADLINE = [
    ("**keep 0.3**: better — none; no different — el2n@epoch2, grand@init; worse — forgetting@end "
    "(Holm-corrected over 6 comparisons: better — none; no different — el2n@epoch2, grand@init; "
    "worse — forgetting@end)"),
    ("**keep 0.5**: better — el2n@epoch2, forgetting@end; no different — grand@init; worse — none "
    "(Holm-corrected over 6 comparisons: better — forgetting@end; no different — el2n@epoch2, grand@init; "
    "worse — none)"),
]


def _rows(accuracies=ACCURACIES, offsets=None):
    offsets = offsets or {}
    return [{"method": m, "keep": k, "offset": offsets.get((m, k)), "seed": s, "test_accuracy": a}
            for (m, k), accs in accuracies.items() for s, a in enumerate(accs)]


def _records(accuracies=ACCURACIES):
    return [{"run_id": f"{m}-{k}-{s}", "method": m, "keep": k, "offset": None, "test_accuracy": a, "test_loss": 1 - a,
             "steps": 10, "n_train": int(100 * k), "wall_seconds": 0.1, "dataset_fingerprint": "x",
             "train": {"seed": 1000 + s, "model": "mlp", "width": 8, "epochs": 1},
             "data": {"dataset": "fashion_mnist", "subset": 100}}
            for (m, k), accs in accuracies.items() for s, a in enumerate(accs)]


def test_holm_by_hand():
    # sorted: 0.005 (×4 = 0.02), 0.01 (×3 = 0.03), 0.03 (×2 = 0.06), 0.04 (×1 = 0.04 → max with 0.06 = 0.06)
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # 2 · 0.5 = 1, capped
    assert holm([0.02]) == pytest.approx([0.02])  # one comparison: nothing to correct
    assert len(holm([])) == 0


def test_holm_skips_unmeasured_comparisons():
    adjusted = holm([0.01, float("nan"), 0.04])
    assert math.isnan(adjusted[1])
    assert adjusted[[0, 2]] == pytest.approx([0.02, 0.04])  # m = 2, not 3


def test_holm_properties_on_random_p_values():
    rng = np.random.default_rng(0)
    for m in (1, 2, 5, 40):
        p = rng.random(m) ** 3
        adjusted = holm(p)
        assert np.all(adjusted >= p - 1e-15)
        assert np.all(adjusted <= 1)
        order = np.argsort(p)
        assert np.all(np.diff(adjusted[order]) >= 0)  # monotone in the raw order
        assert np.all(adjusted <= np.minimum(1, m * p) + 1e-15)  # never stricter than Bonferroni


def test_p_value_verdict_agrees_with_the_welch_interval():
    rng = np.random.default_rng(1)
    for _ in range(200):
        a, b = rng.normal(0.8, 0.01, size=4), rng.normal(0.8 + rng.normal(0, 0.01), 0.01, size=3)
        diff, low, high, p = welch_interval(a, b)
        assert p_value_verdict(diff, p, 0.05) == interval_verdict(low, high)
    diff, low, high, p = welch_interval(np.array([0.9]), np.array([0.8, 0.7]))
    assert p_value_verdict(diff, p) == interval_verdict(low, high) == "not measured"


def test_compare_to_random_adds_holm_columns():
    versus = {(v["method"], v["keep"]): v for v in compare_to_random(_rows())}
    assert len(versus) == 6
    raw = [v["p_value"] for v in versus.values()]
    assert [v["p_holm"] for v in versus.values()] == pytest.approx(list(holm(raw)))
    el2n = versus[("el2n@epoch2", 0.5)]
    assert el2n["p_value"] == pytest.approx(sp.ttest_ind(ACCURACIES[("el2n@epoch2", 0.5)],
                                                         ACCURACIES[("random", 0.5)], equal_var=False).pvalue)
    assert 0.025 < el2n["p_value"] < 0.05
    # uncorrected "better", but Holm over 6 comparisons (third smallest p: × 4) says no different
    assert el2n["verdict"] == "better"
    assert el2n["p_holm"] == pytest.approx(4 * el2n["p_value"])
    assert el2n["verdict_holm"] == "no different"
    assert versus[("forgetting@end", 0.5)]["verdict_holm"] == "better"
    assert versus[("forgetting@end", 0.3)]["verdict_holm"] == "worse"


def test_headline_names_each_fraction_where_a_score_won_or_lost():
    rows = _rows()
    versus = compare_to_random(rows)
    summary = _summary(curve_table(rows), versus, None, {"preset": "x"})
    assert summary["headline"] == HEADLINE
    assert summary["better_at"] == {"el2n@epoch2": ["keep 0.5"], "forgetting@end": ["keep 0.5"]}
    assert summary["better_at_holm"] == {"forgetting@end": ["keep 0.5"]}
    assert summary["beat_random"] == ["el2n@epoch2"]  # better somewhere, worse nowhere
    assert summary["holm_comparisons"] == 6


def test_a_score_better_at_one_fraction_and_worse_at_another_is_not_hidden():
    accuracies = {k: v for k, v in ACCURACIES.items() if k[0] in ("random", "forgetting@end")}
    rows = _rows(accuracies)
    summary = _summary(curve_table(rows), compare_to_random(rows), None, {})
    assert summary["beat_random"] == []  # the old single verdict: "no score beat random"
    assert summary["better_at"] == {"forgetting@end": ["keep 0.5"]}
    assert summary["headline"][0].startswith("**keep 0.3**: better — none; no different — none; worse — forgetting@end")
    assert summary["headline"][1].startswith("**keep 0.5**: better — forgetting@end; no different — none; worse — none")


def test_headline_labels_offset_windows_and_says_not_measured():
    accuracies = {("random", 0.5): [0.80, 0.81, 0.79, 0.80], ("el2n@epoch2", 0.5): [0.90, 0.91, 0.89, 0.90],
                  ("lowest", 0.5): [0.60, 0.61, 0.59, 0.60], ("single", 0.5): [0.9]}
    rows = _rows(accuracies, offsets={("lowest", 0.5): 0.0})
    versus = compare_to_random(rows)
    summary = _summary(curve_table(rows), versus, None, {})
    assert summary["holm_comparisons"] == 2  # the single run has no p-value
    assert summary["headline"] == [
        ("**keep 0.5**: better — el2n@epoch2; no different — none; worse — none; not measured — single "
        "(Holm-corrected over 2 comparisons: better — el2n@epoch2; no different — none; worse — none; "
        "not measured — single)"),
        ("**keep 0.5 offset 0**: better — none; no different — none; worse — lowest "
        "(Holm-corrected over 2 comparisons: better — none; no different — none; worse — lowest)"),
    ]


def test_report_opens_with_the_headline(tmp_path):
    records = _records()
    rng = np.random.default_rng(2)
    summary = write_pruning_report(tmp_path, {"title": "hand-made", "preset": "x"}, records,
                                   {"a": rng.random(20), "b": rng.random(20)})
    lines = (tmp_path / "report.md").read_text().splitlines()
    assert lines[:5] == ["# datadiet report: hand-made", "", f"- {HEADLINE[0]}", f"- {HEADLINE[1]}", ""]
    text = "\n".join(lines)
    assert ("Better than random at some kept fraction (95 % Welch interval above zero): **el2n@epoch2** (keep 0.5), "
            "**forgetting@end** (keep 0.5); of these, never worse anywhere: **el2n@epoch2**.") in lines
    assert ("After Holm's correction over all 6 comparisons with random, better somewhere: "
            "**forgetting@end** (keep 0.5).") in lines
    assert "What beat random" not in text and "No score beat random" not in text
    assert "| method | subset | runs | Δ acc. (points) | 95 % CI | p | verdict | p (Holm) | verdict (Holm) |" in lines
    assert any(line.startswith("| el2n@epoch2 | keep 0.5 | 4 |") and line.endswith("| better | 0.131 | no different |")
               for line in lines)
    assert any("after Holm's correction no different at keep 0.5" in line for line in lines if "el2n@epoch2" in line)
    html = (tmp_path / "report.html").read_text()
    assert "<li><b>keep 0.5</b>: better — el2n@epoch2, forgetting@end; no different — grand@init" in html
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["headline"] == HEADLINE == summary["headline"]
    assert saved["better_at"] == {"el2n@epoch2": ["keep 0.5"], "forgetting@end": ["keep 0.5"]}
    table = {(r["method"], r["keep"]): r for r in read_csv(tmp_path / "vs_random.csv")}
    assert table[("el2n@epoch2", 0.5)]["verdict_holm"] == "no different"
    assert table[("el2n@epoch2", 0.5)]["p_holm"] == pytest.approx(4 * table[("el2n@epoch2", 0.5)]["p_value"])
    assert len(flatten_results(records)) == 36
