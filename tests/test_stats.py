"""stats: Welch interval, verdict, Spearman (pair and matrix), correlations and AUROC against hand computations."""
import math

import numpy as np
import pytest
from scipy import stats as sp

from datadiet.errors import ConfigError
from datadiet.stats import auroc, correlations, interval_verdict, spearman, spearman_matrix, welch_interval
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
