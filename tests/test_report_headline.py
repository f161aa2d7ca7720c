"""The report's headline: per kept fraction, which scores were better, no different and worse than random, with
and without Holm's correction, on a hand-made results table; and `holm` against hand computations."""
import json
import math

import numpy as np
import pytest
from scipy import stats as sp

from datadiet.report.pruning import _finding_lines, _summary, write_pruning_report
from datadiet.report.tables import compare_to_random, curve_table, flatten_results, read_csv
from datadiet.stats import holm, interval_verdict, p_value_verdict, welch_interval
from datadiet.studies import build_workspace_report

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


def _write_report(root, config, records, score_means):
    """The reproduction's section into ``root/reproduce`` and the workspace report gathered from it (report.md and
    report.html in ``root``); returns (the study's folder, summary)."""
    folder = root / "reproduce"
    folder.mkdir()
    summary = write_pruning_report(folder, config, records, score_means)
    build_workspace_report(root, log=lambda _: None)
    return folder, summary


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


def test_headline_labels_offset_windows_and_says_not_resolved():
    accuracies = {("random", 0.5): [0.80, 0.81, 0.79, 0.80], ("el2n@epoch2", 0.5): [0.90, 0.91, 0.89, 0.90],
                  ("lowest", 0.5): [0.60, 0.61, 0.59, 0.60], ("single", 0.5): [0.9]}
    rows = _rows(accuracies, offsets={("lowest", 0.5): 0.0})
    versus = compare_to_random(rows)
    summary = _summary(curve_table(rows), versus, None, {})
    assert summary["holm_comparisons"] == 2  # the single run has no p-value
    assert summary["headline"] == [
        ("**keep 0.5**: better — el2n@epoch2; no different — none; worse — none; not resolved — single "
        "(Holm-corrected over 2 comparisons: better — el2n@epoch2; no different — none; worse — none; "
        "not resolved — single)"),
        ("**keep 0.5 offset 0**: better — none; no different — none; worse — lowest "
        "(Holm-corrected over 2 comparisons: better — none; no different — none; worse — lowest)"),
    ]


def test_report_opens_with_the_headline(tmp_path):
    records = _records()
    rng = np.random.default_rng(2)
    folder, summary = _write_report(tmp_path, {"title": "hand-made", "preset": "x"}, records,
                                    {"a": rng.random(20), "b": rng.random(20)})
    opening = ["## Pruning curves: hand-made", "", f"- {HEADLINE[0]}", f"- {HEADLINE[1]}", ""]
    assert (folder / "section.md").read_text().splitlines()[:5] == opening
    assert not (folder / "report.md").exists()  # the workspace's report.md gathers the section
    lines = (tmp_path / "report.md").read_text().splitlines()
    assert lines[0] == "# datadiet report"
    start = lines.index(opening[0])
    assert lines[start:start + 5] == opening  # the section opens with the headline there too
    text = "\n".join(lines)
    assert ("Better than random at some kept fraction (95 % Welch interval above zero): **el2n@epoch2** (keep 0.5), "
            "**forgetting@end** (keep 0.5); of these, never worse anywhere: **el2n@epoch2**.") in lines
    assert ("After Holm's correction over all 6 comparisons with random, better somewhere: "
            "**forgetting@end** (keep 0.5).") in lines
    assert "What beat random" not in text and "No score beat random" not in text
    assert ("| method | subset | runs | Δ acc. (points) | 95 % CI | p | verdict | p (Holm) | verdict (Holm) "
            "| seeds to resolve |") in lines
    # seeds to resolve, by hand: diff 0.0175, pooled spread sqrt((3 · 9.1667e-5 + 3 · 6.6667e-5) / 6) = 0.008898;
    # t(0.975; 4) · 0.008898 · sqrt(2/3) = 0.0202 > 0.0175, t(0.975; 6) · 0.008898 · sqrt(2/4) = 0.0154 < 0.0175 → 4
    assert any(line.startswith("| el2n@epoch2 | keep 0.5 | 4 |")
               and line.endswith("| better | 0.131 | no different | 4 |") for line in lines)
    assert any("after Holm's correction no different at keep 0.5" in line for line in lines if "el2n@epoch2" in line)
    html = (tmp_path / "report.html").read_text()
    assert "<li><b>keep 0.5</b>: better — el2n@epoch2, forgetting@end; no different — grand@init" in html
    saved = json.loads((folder / "summary.json").read_text())
    assert saved["headline"] == HEADLINE == summary["headline"]
    assert saved["better_at"] == {"el2n@epoch2": ["keep 0.5"], "forgetting@end": ["keep 0.5"]}
    table = {(r["method"], r["keep"]): r for r in read_csv(folder / "vs_random.csv")}
    assert table[("el2n@epoch2", 0.5)]["verdict_holm"] == "no different"
    assert table[("el2n@epoch2", 0.5)]["p_holm"] == pytest.approx(4 * table[("el2n@epoch2", 0.5)]["p_value"])
    assert len(flatten_results(records)) == 36


def _report(tmp_path, accuracies, config=None):
    records = _records(accuracies)
    folder, _ = _write_report(tmp_path, config or {"title": "t"}, records, {"a": np.arange(5.0)})
    return (tmp_path / "report.md").read_text(), json.loads((folder / "summary.json").read_text())


def test_two_seeds_print_no_interval_at_face_value(tmp_path):
    # two seeds a side with a large spread: the Welch interval is over 300 points wide, as in the report a user saw
    accuracies = {("random", 0.5): [0.20, 0.90], ("el2n@epoch2", 0.5): [0.10, 0.95],
                  ("forgetting@end", 0.5): [0.50, 0.52]}
    text, summary = _report(tmp_path, accuracies)
    _, low, high, _ = welch_interval(np.array([0.10, 0.95]), np.array([0.20, 0.90]))
    assert high - low > 3  # more than 300 points wide: what must not be printed
    rows = [line for line in text.splitlines() if line.startswith("| el2n@epoch2 | keep 0.5 | 2 | -2.50 |")]
    assert len(rows) == 1
    assert rows[0] == ("| el2n@epoch2 | keep 0.5 | 2 | -2.50 | n/a (2 seeds: not informative) | — | not resolved | — "
                       "| not resolved | 3728 | 0.1000 0.9500 / 0.2000 0.9000 |")
    assert "| per-run acc. (method / random) |" in text
    assert f"{low * 100:+.2f}" not in text and f"{high * 100:+.2f}" not in text
    assert summary["not_resolved"] == 2 and summary["holm_comparisons"] == 0 and summary["better_at"] == {}
    assert summary["headline"][0].startswith("**keep 0.5**: better — none; no different — none; worse — none; "
                                             "not resolved — el2n@epoch2, forgetting@end")
    assert "2 comparisons have fewer than 3 runs on a side" in text
    assert "*verdict (Holm)*: no comparison has a p-value to correct." in text
    assert ("**el2n@epoch2**: not resolved against random (2 seeds: not informative) at keep 0.5 (difference "
            "at keep 0.5: -2.50 points, 95 % CI n/a (2 seeds: not informative)).") in text
    # planning figure of the table, by hand: pooled spread sqrt((0.36125 + 0.245) / 2) = 0.5506; the smallest n with
    # t(0.975; 2n − 2) · 0.5506 · sqrt(2 / n) < 0.025: about 2 · (1.96 · 0.5506 / 0.025)² ≈ 3727
    spread = math.sqrt((np.var([0.10, 0.95], ddof=1) + np.var([0.20, 0.90], ddof=1)) / 2)
    assert sp.t.ppf(0.975, 2 * 3728 - 2) * spread * math.sqrt(2 / 3728) < 0.025 < \
        sp.t.ppf(0.975, 2 * 3727 - 2) * spread * math.sqrt(2 / 3727)


def test_largest_difference_is_the_largest_in_size():
    # the user's report: "largest difference −3.34 points at keep 0.7" while −54.74 at 0.3 stood beside it
    accuracies = {("random", 0.3): [0.80, 0.81, 0.79], ("m", 0.3): [0.2426, 0.2526, 0.2626],
                  ("random", 0.7): [0.90, 0.91, 0.89], ("m", 0.7): [0.8566, 0.8666, 0.8766]}
    rows = _rows(accuracies)
    versus = compare_to_random(rows)
    summary = _summary(curve_table(rows), versus, None, {})
    [line] = [x for x in _finding_lines(summary, versus) if x.startswith("**m**")]
    assert "largest difference in size at keep 0.3: -54.74 points, 95 % CI [" in line
    assert "-3.34" not in line


def test_no_spread_on_both_sides_is_an_exact_verdict_not_nan(tmp_path):
    # wine-like: a 36-example test set, every seed scores the same on both sides
    accuracies = {("random", 0.5): [35 / 36] * 3, ("up", 0.5): [1.0] * 3, ("same", 0.5): [35 / 36] * 3}
    text, summary = _report(tmp_path, accuracies)
    assert "nan" not in text.lower()
    assert "| up | keep 0.5 | 3 | +2.78 | exact: no spread | 0 | better (exact: no spread) | 0 " in text
    assert "| same | keep 0.5 | 3 | +0.00 | identical | 1 | no different (identical) | 1 " in text
    assert "**up**: better than random (exact: no spread) at keep 0.5" in text
    assert "**same**: no different from random (identical) at keep 0.5" in text
    assert summary["better_at"] == {"up": ["keep 0.5"]}


def test_the_report_says_what_its_intervals_cover(tmp_path):
    accuracies = {k: v for k, v in ACCURACIES.items() if k[0] in ("random", "el2n@epoch2")}
    text, summary = _report(tmp_path, accuracies, {"eval_seeds": 3, "score_runs": 4, "score_draws": 3})
    assert summary["coverage"].startswith("Intervals cover 3 evaluation seeds × 3 independent score draws (4 score "
                                          "runs each): evaluation seed s selects its subsets from draw s mod 3")
    assert summary["coverage"] in text.splitlines()
    fixed = _summary([], [], None, {"eval_seeds": 4, "score_runs": 10, "score_draws": 1})["coverage"]
    assert fixed.startswith("Intervals cover 4 evaluation seeds only; the score runs are fixed (one draw of 10 score "
                            "runs)")
    # a folder of an earlier version has no score_draws: one draw; more draws than seeds: only the seeds' draws count
    assert _summary([], [], None, {"eval_seeds": 4, "score_runs": 10})["coverage"] == fixed
    two = _summary([], [], None, {"eval_seeds": 2, "score_runs": 4, "score_draws": 3})["coverage"]
    assert two.startswith("Intervals cover 2 evaluation seeds × 2 independent score draws")
    assert "only in part" not in two and "only in part" not in summary["coverage"]
    shared = _summary([], [], None, {"eval_seeds": 3, "score_runs": 2, "score_draws": 2})["coverage"]
    assert "the score runs (seeds that share a draw share its scores, so they cover it only in part" in shared



# --- ties (issue 26 §4) ------------------------------------------------------------------------------------------

def _tied_means():
    """100 examples: 89 score 0, the 11 even ids 0..20 score 1..11 (distinct). Classes by parity: all 11 positive
    scores are in class 0."""
    forgetting = np.zeros(100)
    forgetting[0:22:2] = np.arange(1.0, 12.0)
    return {"forgetting@end": forgetting, "el2n@epoch2": np.linspace(0.0, 1.0, 100)}


TIE_ACCURACIES = {("random", 0.1): [0.5, 0.51, 0.49], ("random", 0.3): [0.6, 0.61, 0.59],
                  ("forgetting@end", 0.1): [0.5, 0.52, 0.48], ("forgetting@end", 0.3): [0.6, 0.62, 0.58],
                  ("forgetting@end+balanced", 0.1): [0.5, 0.5, 0.5], ("el2n@epoch2", 0.3): [0.6, 0.6, 0.61]}


def test_the_report_names_each_scores_tie_and_warns_where_the_tie_order_picked_the_subset(tmp_path):
    folder = tmp_path / "reproduce"
    folder.mkdir()
    summary = write_pruning_report(folder, {"title": "ties"}, _records(TIE_ACCURACIES), _tied_means())
    assert summary["score_ties"] == {
        "el2n@epoch2": {"largest_tie_value": None, "largest_tie_count": 0, "largest_tie_share": 0.0,
                        "tied_share": 0.0},
        "forgetting@end": {"largest_tie_value": 0.0, "largest_tie_count": 89, "largest_tie_share": 0.89,
                           "tied_share": 0.89}}
    # Counted by hand. keep 0.1 keeps the 10 highest of the 11 positive scores: no tie at the boundary. keep 0.3 keeps
    # all 11 and 19 of the 89 zeros. +balanced needs the labels, which this call does not give.
    rows = {(r["method"], r["keep"]): r for r in summary["tie_decided"]}
    assert set(rows) == {("forgetting@end", 0.1), ("forgetting@end", 0.3), ("forgetting@end+balanced", 0.1),
                         ("el2n@epoch2", 0.3)}
    assert [rows[("forgetting@end", k)]["tie_decided_max"] for k in (0.1, 0.3)] == [0, 19]
    assert rows[("forgetting@end", 0.3)]["kept"] == 30 and rows[("forgetting@end", 0.3)]["share_max"] == 19 / 30
    assert rows[("el2n@epoch2", 0.3)]["tie_decided_max"] == 0
    assert rows[("forgetting@end+balanced", 0.1)]["tie_decided_max"] is None
    assert summary["tie_warnings"] == [
        "forgetting@end: the seeded tie order, not the score, picked 19 of the 30 kept examples (63 %) at keep 0.3; "
        "its curve there measures the tie order as much as the score"]
    text = (folder / "section.md").read_text()
    assert text.splitlines()[2].startswith("**Warning**: the seeded tie order, not the score, picked over 10 % of the "
                                           "kept examples of some subsets (1 method;")
    assert "- **forgetting@end**: 89 % of the scores (89 of 100) tie at 0; 89 % of the examples share their score " \
           "with another." in text
    assert "- **el2n@epoch2**: no two scores are equal." in text
    assert "| forgetting@end | keep 0.3 | 30 | 19 | 63 % |" in text
    assert "| forgetting@end+balanced | keep 0.1 | 10 | — | — |" in text
    assert [r["tie_decided_max"] for r in read_csv(folder / "ties.csv")] == [0, None, 0, 19]  # by keep, method
    assert json.loads((folder / "summary.json").read_text())["tie_warnings"] == summary["tie_warnings"]


def test_with_labels_the_report_counts_class_quota_methods_per_class(tmp_path):
    # Class 1 (odd ids) is all zeros: +balanced at keep 0.1 keeps 5 of each class, and class 1's 5 are tie order.
    summary = write_pruning_report(tmp_path, {"title": "ties"}, _records(TIE_ACCURACIES), _tied_means(),
                                   labels=np.arange(100) % 2)
    rows = {(r["method"], r["keep"]): r for r in summary["tie_decided"]}
    assert rows[("forgetting@end+balanced", 0.1)]["tie_decided_max"] == 5
    assert rows[("forgetting@end", 0.1)]["tie_decided_max"] == 0  # all examples ranked at once: no tie at the cut
    assert summary["tie_warnings"][0].startswith("forgetting@end: ")
    assert summary["tie_warnings"][1] == (
        "forgetting@end+balanced: the seeded tie order, not the score, picked 5 of the 10 kept examples (50 %) at keep "
        "0.1; its curve there measures the tie order as much as the score")


def test_a_report_without_ties_has_no_tie_warning(tmp_path):
    summary = write_pruning_report(tmp_path, {"title": "t"}, _records(), {"a": np.arange(5.0)})
    assert summary["tie_warnings"] == [] and summary["tie_decided"] == []  # no method is a score of the report
    text = (tmp_path / "section.md").read_text()
    assert "- **a**: no two scores are equal." in text and "tie order, not the score" not in text


def test_tie_warnings_name_every_point_over_a_tenth_and_the_worst():
    from datadiet.report.pruning import tie_warnings

    def row(method, keep, decided, kept):
        return {"method": method, "keep": keep, "offset": None, "kept": kept, "subsets": 3,
                "tie_decided_mean": decided, "tie_decided_max": decided, "share_max": decided / kept}

    rows = [row("f", 0.3, 3, 30), row("f", 0.5, 39, 50), row("f", 0.7, 8, 70), row("g", 0.5, 5, 50)]
    # 3/30 = 10 % is not over a tenth; 8/70 ≈ 11 % is; g's 5/50 = 10 % is not
    assert tie_warnings(rows) == [
        "f: the seeded tie order, not the score, picked over 10 % of the kept examples at keep 0.5, keep 0.7 (the "
        "most: 39 of the 50 kept examples (78 %) at keep 0.5); its curve there measures the tie order as much as the "
        "score"]
    assert tie_warnings([{**rows[0], "tie_decided_max": None, "share_max": None}]) == []
