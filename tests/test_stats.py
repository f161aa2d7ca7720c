"""stats: Welch interval, verdict, the comparison a report may state (few seeds, no spread), seeds to resolve,
Spearman (pair and matrix), correlations and AUROC against hand computations."""
import dataclasses
import math

import numpy as np
import pytest
from scipy import stats as sp

from datadiet.errors import ConfigError
from datadiet.stats import (holm_correct, auroc, compare_groups, correlations, interval_cell, interval_text, interval_verdict,
                            pooled_spread, seeds_text, seeds_to_resolve, spearman, spearman_matrix, summarize,
                            verdict_phrase, welch_interval)
from fakes import brute_force_auroc


def test_spearman_by_hand():
    # ranks of a: 1 2 3 4; ranks of b: 1 3 2 4 → d² = 0 1 1 0 → 1 − 6·2 / (4·15) = 0.8
    assert spearman([1.0, 2.0, 3.0, 4.0], [10.0, 30.0, 20.0, 40.0]) == pytest.approx(0.8)
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)


def test_spearman_of_a_constant_is_nan_not_a_number():
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))
    assert math.isnan(spearman([1], [2]))


def test_spearman_refuses_vectors_of_different_lengths():
    with pytest.raises(ConfigError, match="one length"):
        spearman([1, 2, 3], [1, 2])


def test_matrix_of_two_and_three_scores_equals_pairwise_values():
    rng = np.random.default_rng(0)
    a, b, c = rng.normal(size=(3, 50))
    names, rho = spearman_matrix({"a": a, "b": b})
    assert names == ["a", "b"]
    assert rho.shape == (2, 2)
    assert rho[0, 1] == rho[1, 0] == pytest.approx(sp.spearmanr(a, b).statistic)
    names, rho = spearman_matrix({"a": a, "b": b, "c": c})
    assert np.allclose(np.diag(rho), 1)
    assert rho[1, 2] == pytest.approx(sp.spearmanr(b, c).statistic)


def test_correlations_give_both_coefficients_with_p_values():
    a, b = np.array([1.0, 2, 3, 4, 5]), np.array([2.0, 1, 4, 3, 6])
    out = correlations(a, b)
    assert out["spearman"] == pytest.approx(sp.spearmanr(a, b).statistic)
    assert out["pearson_p"] == pytest.approx(sp.pearsonr(a, b).pvalue)
    assert all(math.isnan(v) for v in correlations(a, np.ones(5)).values())


def test_welch_interval_matches_scipy_and_the_verdict_reads_it():
    a, b = np.array([0.80, 0.82, 0.81]), np.array([0.70, 0.72, 0.69, 0.71])
    diff, low, high, p = welch_interval(a, b)
    assert diff == pytest.approx(a.mean() - b.mean())
    assert p == pytest.approx(sp.ttest_ind(a, b, equal_var=False).pvalue)
    assert low < diff < high
    assert interval_verdict(low, high) == "better"
    assert interval_verdict(-high, -low) == "worse"
    assert interval_verdict(-0.1, 0.1) == "no different"


def test_one_run_or_no_spread_is_not_measured():
    _, low, high, p = welch_interval(np.array([0.8]), np.array([0.7, 0.71]))
    assert interval_verdict(low, high) == "not measured"
    assert math.isnan(p)
    _, low, high, _ = welch_interval(np.array([0.8, 0.8]), np.array([0.7, 0.7]))
    assert interval_verdict(low, high) == "not measured"


def test_auroc_by_hand_with_a_tie():
    # positives 0.9 and 0.5; negatives 0.5 and 0.1: pairs (0.9>0.5, 0.9>0.1, 0.5=0.5 → ½, 0.5>0.1) = 3.5 / 4
    assert auroc([0.9, 0.5, 0.5, 0.1], [True, True, False, False]) == pytest.approx(0.875)
    assert auroc([1, 2, 3], [False, False, True]) == 1.0


def test_auroc_needs_both_classes():
    with pytest.raises(ConfigError, match="positive and negative"):
        auroc([1.0, 2.0], [True, True])


# Moved here with auroc from the noisy-labels analysis.

def test_auroc_counts_ties_as_half_pairs():
    scores = np.array([1.0, 2.0, 2.0, 3.0])
    positive = np.array([False, True, False, True])
    assert auroc(scores, positive) == pytest.approx(3.5 / 4)  # (2 vs 1) 1, (2 vs 2) ½, (3 vs ·) 2
    assert auroc(np.ones(5), np.array([1, 0, 1, 0, 0], bool)) == 0.5
    assert auroc([0, 1, 2], [True, False, False]) == 0.0


def test_auroc_equals_brute_force_on_random_arrays_with_many_ties():
    rng = np.random.default_rng(0)
    for _ in range(20):
        n = int(rng.integers(5, 60))
        scores = rng.integers(0, 4, n).astype(float)  # four values: ties everywhere
        positive = rng.random(n) < 0.3
        positive[:2] = [True, False]
        assert auroc(scores, positive) == pytest.approx(brute_force_auroc(scores, positive), abs=1e-12)


def test_auroc_rejects_one_class_and_mismatched_shapes():
    with pytest.raises(ConfigError, match="both positive and negative examples; got 0 positive of 2"):
        auroc([0.1, 0.2], [False, False])
    with pytest.raises(ConfigError, match="one flag per score"):
        auroc([0.1, 0.2], [True])


# ---------------------------------------------------------------- compare_groups: what a report may claim

def test_two_seeds_a_side_give_the_mean_difference_and_no_interval():
    c = compare_groups([0.70, 0.74], [0.60, 0.62, 0.64])
    assert c.diff == pytest.approx(0.72 - 0.62)
    assert math.isnan(c.ci_low) and math.isnan(c.ci_high) and math.isnan(c.p_value)
    assert (c.verdict, c.note) == ("not resolved", "2 seeds: not informative")
    # withheld, not missing: Welch gives a finite interval here, which a report must not print at face value
    assert np.isfinite(welch_interval(np.array([0.70, 0.74]), np.array([0.60, 0.62, 0.64]))[1])
    assert compare_groups([0.9], [0.8, 0.7, 0.6]).note == "1 seed: not informative"


def test_three_seeds_a_side_give_the_welch_interval():
    a, b = [0.80, 0.82, 0.81], [0.70, 0.72, 0.69]
    c = compare_groups(a, b)
    ci = sp.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert (c.ci_low, c.ci_high) == pytest.approx((ci.low, ci.high))
    assert (c.verdict, c.note) == ("better", "")


def test_no_spread_on_either_side_is_an_exact_verdict_never_nan():
    worse = compare_groups([0.75] * 3, [0.80] * 4)
    assert worse.diff == pytest.approx(-0.05)
    assert worse.ci_low == worse.ci_high == worse.diff
    assert (worse.verdict, worse.note, worse.p_value) == ("worse", "exact: no spread", 0.0)
    same = compare_groups([0.75] * 3, [0.75] * 3)
    assert (same.diff, same.verdict, same.note, same.p_value) == (0.0, "no different", "identical", 1.0)
    assert interval_text(worse.diff, worse.ci_low, worse.ci_high, worse.note) == \
        "-5.00 points (exact: no spread)"
    assert verdict_phrase(same.verdict, "random", same.note) == "no different from random (identical)"


def test_a_side_without_runs_is_not_measured():
    c = compare_groups([], [0.8, 0.7, 0.9])
    assert (c.verdict, c.note, c.seeds_needed) == ("not measured", "no runs", None)
    assert interval_text(c.diff, c.ci_low, c.ci_high, c.note) == "not measured (no runs)"


def test_words_of_a_comparison():
    assert interval_text(0.012, 0.004, 0.02, "") == "+1.20 points, 95 % CI [+0.40, +2.00]"
    assert interval_text(-0.5474, math.nan, math.nan, "2 seeds: not informative") == \
        "-54.74 points, 95 % CI n/a (2 seeds: not informative)"
    assert interval_cell(math.nan, math.nan, "2 seeds: not informative") == "n/a (2 seeds: not informative)"
    assert verdict_phrase("not resolved", "random", "2 seeds: not informative") == \
        "not resolved against random (2 seeds: not informative)"
    assert verdict_phrase("better", "random") == "better than random"
    assert [seeds_text(v) for v in (None, 7, math.inf)] == ["—", "7", "> 100000"]


# ---------------------------------------------------------------- seeds to resolve, pooled spread, summary

def test_seeds_to_resolve_by_hand():
    # diff 2 points, spread 2 points: resolved once t(0.975; 2n − 2) · sqrt(2 / n) < 1.
    # n = 8: t(14) = 2.145 · 0.5 = 1.072 (not yet); n = 9: t(16) = 2.120 · 0.4714 = 0.9994 (resolved)
    assert sp.t.ppf(0.975, 14) * math.sqrt(2 / 8) > 1 > sp.t.ppf(0.975, 16) * math.sqrt(2 / 9)
    assert seeds_to_resolve(0.02, 0.02) == 9
    assert seeds_to_resolve(-0.02, 0.02) == 9  # the sign does not matter
    # a difference five spreads wide: n = 2 would do (t(2) = 4.303 · 1 = 4.3 < 5), but below MIN_SEEDS = 3 no
    # interval is ever stated, so the answer is 3
    assert sp.t.ppf(0.975, 2) * math.sqrt(2 / 2) * 0.01 < 0.05
    assert seeds_to_resolve(0.05, 0.01) == 3
    assert seeds_to_resolve(0.0, 0.01) is None and seeds_to_resolve(0.01, 0.0) is None
    assert seeds_to_resolve(0.01, math.nan) is None
    assert seeds_to_resolve(1e-6, 1.0) == math.inf  # would take more than SEEDS_LIMIT runs


def test_compare_groups_plans_with_the_pooled_spread():
    a, b = [1.0, 2.0, 3.0], [2.0, 4.0]   # variances 1 and 2: pooled sqrt((2 · 1 + 1 · 2) / 3)
    assert pooled_spread(a, b) == pytest.approx(math.sqrt(4 / 3))
    assert pooled_spread([1.0], [2.0, 4.0]) == pytest.approx(math.sqrt(2))  # one run says nothing about spread
    assert math.isnan(pooled_spread([1.0], [2.0]))
    c = compare_groups(a, b)
    assert c.seeds_needed == seeds_to_resolve(2.0 - 3.0, math.sqrt(4 / 3))


def test_summarize_by_hand():
    s = summarize([0.70, 0.80, 0.90])
    assert (s["n"], s["mean"], s["std"]) == (3, pytest.approx(0.80), pytest.approx(0.10))
    # numpy's linear percentile: position 0.16 · 2 = 0.32 between 0.70 and 0.80
    assert s["p16"] == pytest.approx(0.70 + 0.32 * 0.10) and s["p84"] == pytest.approx(0.80 + 0.68 * 0.10)
    assert math.isnan(summarize([0.5])["std"])
    assert summarize([])["n"] == 0 and math.isnan(summarize([])["mean"])


def test_seeds_to_resolve_never_claims_the_seeds_already_run_when_welch_does_not_resolve():
    # Unequal spreads: the pooled plan says 3 seeds, but Welch's interval over these 3 seeds includes zero.
    a, b = np.array([0.8852, 0.8838, 0.8772]), np.array([0.8744, 0.8747, 0.8750])
    c = compare_groups(a, b)
    assert c.verdict == "no different" and c.ci_low < 0 < c.ci_high
    assert seeds_to_resolve(c.diff, pooled_spread(a, b)) <= 3  # what the pooled plan alone would say
    assert c.seeds_needed == 4


def test_a_comparison_is_frozen_and_its_row_keeps_the_table_columns_in_order():
    c = compare_groups([0.80, 0.82, 0.81], [0.70, 0.72, 0.69])
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.verdict = "worse"
    assert list(c.row()) == ["diff", "ci_low", "ci_high", "p_value", "verdict", "note", "seeds_needed"]
    assert c.row()["diff"] == c.diff


def test_holm_correct_adds_the_corrected_verdicts_by_hand():
    # p-values 0.01, 0.04, NaN: m = 2 finite; adjusted 2 · 0.01 = 0.02 and max(0.02, 1 · 0.04) = 0.04
    rows = [{"diff": 0.1, "p_value": 0.01, "verdict": "better"}, {"diff": -0.1, "p_value": 0.04, "verdict": "worse"},
            {"diff": 0.2, "p_value": math.nan, "verdict": "not resolved"}]
    out = holm_correct(rows, level=0.95)
    assert [r["p_holm"] for r in out[:2]] == pytest.approx([0.02, 0.04])
    assert [r["verdict_holm"] for r in out] == ["better", "worse", "not resolved"]
    assert "p_holm" not in rows[0]  # the input is left as it was
    assert [r["verdict_holm"] for r in holm_correct(rows, level=0.99)][:2] == ["no different", "no different"]
