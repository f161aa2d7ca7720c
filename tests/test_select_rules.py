"""The CCS and moderate selection rules on hand-made cases, their budget split, and every refusal."""
import numpy as np
import pytest

from datadiet.errors import ConfigError
from datadiet.selection import (
    RULES,
    SelectionError,
    _bin_budgets,
    _score_bins,
    default_ccs_beta,
    rank_order,
    select,
    select_random,
    selection_parameters,
)
from tie_reference import tie_key

# --- CCS: sharing the budget over the bins -----------------------------------------------------------------

def test_bins_smaller_than_their_share_are_taken_whole():
    # Scores span [0, 9]; bins=3 gives [0, 3), [3, 6), [6, 9] (9 is the max: last bin).
    # Bin 0 = {id 0}, bin 1 = {id 1}, bin 2 = {ids 2..9} (8 examples). Budget: keep 0.5 of 10 = 5.
    # Visit by size: bin 0 (share 5 // 3 = 1, takes its 1; 4 left), bin 1 (share 4 // 2 = 2, has only 1, takes 1;
    # 3 left), bin 2 (share 3 // 1 = 3, takes 3 of its 8 at random).
    scores = np.array([0.0, 5.0, 6.5, 7.0, 7.5, 8.0, 8.0, 8.5, 9.0, 9.0])
    kept = select(scores, keep=0.5, rule="ccs", beta=0.0, bins=3)
    assert len(kept) == 5
    assert {0, 1} <= set(kept.tolist())
    assert len(set(kept.tolist()) & set(range(2, 10))) == 3
    assert _score_bins(scores, 3).tolist() == [0, 1, 2, 2, 2, 2, 2, 2, 2, 2]
    assert _bin_budgets([1, 1, 8], 5).tolist() == [1, 1, 3]


def test_bin_budgets_by_hand():
    # [1, 3, 6], budget 6: bin 0 (share 6 // 3 = 2, has 1 -> 1; 5 left), bin 1 (5 // 2 = 2 -> 2; 3 left),
    # bin 2 (3 // 1 = 3 -> 3).
    assert _bin_budgets([1, 3, 6], 6).tolist() == [1, 2, 3]
    # The remainder of the floor division rolls forward: the last bins visited get the extra example.
    # [5, 5, 5], budget 10: 10 // 3 = 3 (7 left), 7 // 2 = 3 (4 left), 4 // 1 = 4.
    assert _bin_budgets([5, 5, 5], 10).tolist() == [3, 3, 4]
    # Equal sizes are visited in bin order: [4, 2, 2], budget 5 visits bin 1 (5 // 3 = 1; 4 left), bin 2
    # (4 // 2 = 2; 2 left), bin 0 (2 // 1 = 2).
    assert _bin_budgets([4, 2, 2], 5).tolist() == [2, 1, 2]
    # Empty bins neither get a share nor count among the bins sharing: 3 // 2 = 1 (2 left), then 2.
    assert _bin_budgets([0, 3, 0, 3], 3).tolist() == [0, 1, 0, 2]
    assert _bin_budgets([2, 3], 0).tolist() == [0, 0]
    assert _bin_budgets([2, 3], 5).tolist() == [2, 3]


def test_bin_budgets_are_exact_and_max_min_fair():
    """For any sizes and any budget <= sum(sizes), with counts c and U = {bins not taken whole (c < size)}:

    1. sum(c) == budget, and 0 <= c <= size for every bin (so an empty bin gets 0);
    2. at its turn (ascending size, ties by index) a bin gets at most floor(left / bins left): an equal share;
    3. water-filling: if U is not empty, every bin's count is at most min(c[U]) + 1, and the counts in U
       differ by at most 1 -- no bin got more than an equal share while another bin still wanted more.
    """
    rng = np.random.default_rng(0)
    for _ in range(2000):
        sizes = rng.integers(0, 12, int(rng.integers(1, 12))) * (rng.random() < 0.9)
        sizes[rng.random(len(sizes)) < 0.2] = 0
        budget = int(rng.integers(0, sizes.sum() + 1))
        c = _bin_budgets(sizes, budget)
        assert c.sum() == budget
        assert (0 <= c).all() and (c <= sizes).all()
        visit = sorted(np.flatnonzero(sizes).tolist(), key=lambda b: (sizes[b], b))
        left = budget
        for done, b in enumerate(visit):
            assert c[b] <= left // (len(visit) - done)
            left -= c[b]
        unfull = c[c < sizes]
        if len(unfull):
            assert c.max() <= unfull.min() + 1
            assert unfull.max() - unfull.min() <= 1


def test_ccs_takes_the_budget_of_each_bin_over_random_inputs():
    # Through select: the kept examples of each bin (bins of the pool left after the cut) number exactly
    # _bin_budgets(bin sizes, budget), and the total is the budget.
    rng = np.random.default_rng(1)
    for _ in range(200):
        n = int(rng.integers(5, 80))
        scores = rng.gamma(1.0, size=n) if rng.random() < 0.5 else rng.integers(0, 6, n).astype(float)
        keep, beta, bins = float(rng.uniform(0.05, 0.6)), float(rng.uniform(0, 0.35)), int(rng.integers(1, 12))
        if round(keep * n) < 1:
            continue
        kept = select(scores, keep=keep, rule="ccs", beta=beta, bins=bins, seed=int(rng.integers(100)))
        pool = rank_order(scores)[:n - int(np.floor(beta * n + 1e-9))]
        bin_of = _score_bins(scores[pool], bins)
        sizes = np.bincount(bin_of, minlength=bins)
        kept_bins = bin_of[np.isin(pool, kept)]
        assert len(kept) == round(keep * n) and np.isin(kept, pool).all()
        assert np.bincount(kept_bins, minlength=bins).tolist() == _bin_budgets(sizes, len(kept)).tolist()


# --- CCS: the hard cutoff --------------------------------------------------------------------------------------

def test_ties_at_the_cut_are_broken_by_the_tie_key():
    # The three 3.0s rank by tie key (seed 0): id 10 (7.31e18) < id 12 (9.67e18) < id 11 (1.40e19). Ascending
    # rank: id 13 (1), id 14 (2), ids 10, 12, 11 (3). beta 0.4 of 5 drops the 2 hardest: ids 12 and 11.
    # keep 0.6 = 3 = everything left: ids 10, 13, 14.
    assert tie_key(10) < tie_key(12) < tie_key(11)
    scores = np.array([3.0, 3.0, 3.0, 1.0, 2.0])
    ids = np.array([12, 10, 11, 13, 14])
    assert select(scores, keep=0.6, ids=ids, rule="ccs", beta=0.4).tolist() == [10, 13, 14]
    # the dropped ones are exactly what the window rule keeps as the hardest 40%
    assert select(scores, keep=0.4, ids=ids).tolist() == [11, 12]
    # Another tie seed orders the 3.0s differently; the cut follows it, and the window agrees.
    for tie_seed in range(1, 6):
        ranked = sorted([12, 10, 11], key=lambda i: tie_key(i, tie_seed))
        assert select(scores, keep=0.6, ids=ids, rule="ccs", beta=0.4, tie_seed=tie_seed).tolist() == \
            sorted([13, 14, ranked[0]])
        assert select(scores, keep=0.4, ids=ids, tie_seed=tie_seed).tolist() == sorted(ranked[1:])


def test_the_hardest_beta_fraction_is_never_kept():
    rng = np.random.default_rng(2)
    scores = rng.normal(size=200)
    hardest = set(select(scores, keep=0.2).tolist())  # the top 40 = floor(0.2 * 200)
    for seed in range(10):
        kept = select(scores, keep=0.3, rule="ccs", beta=0.2, bins=10, seed=seed)
        assert len(kept) == 60 and not hardest & set(kept.tolist())
    # class-balanced: the cut is made inside each class (the hardest floor(0.2 * n_c) of each class)
    labels = np.repeat([0, 1], [120, 80])
    hardest_per_class = set(select(scores, keep=0.2, labels=labels, class_balanced=True).tolist())
    kept = select(scores, keep=0.3, rule="ccs", beta=0.2, labels=labels, class_balanced=True)
    assert not hardest_per_class & set(kept.tolist())


def test_default_beta_is_piecewise_and_always_leaves_room():
    assert [default_ccs_beta(k) for k in (1.0, 0.7, 0.5, 0.3, 0.2, 0.1, 0.01)] == [0, 0, 0, 0.1, 0.1, 0.3, 0.3]
    for keep in np.linspace(0.01, 1, 100):
        assert 0 <= default_ccs_beta(keep) and keep + default_ccs_beta(keep) <= 1
    # The default never makes the budget unmeetable, class-balanced or not.
    rng = np.random.default_rng(3)
    for n in (7, 10, 33, 100):
        labels = rng.integers(0, 3, n)
        labels[:3] = [0, 1, 2]
        for keep in (0.1, 0.15, 0.19, 0.2, 0.3, 0.49, 0.5, 0.8, 1.0):
            if round(keep * n) < 1:
                continue
            assert len(select(rng.normal(size=n), keep=keep, rule="ccs")) == round(keep * n)
            assert len(select(rng.normal(size=n), keep=keep, rule="ccs", labels=labels, class_balanced=True)) \
                == round(keep * n)


def test_default_beta_drops_the_hardest_at_high_pruning():
    scores = np.arange(100.0)
    # keep 0.1: default beta 0.3 drops ids 70..99
    assert select(scores, keep=0.1, rule="ccs").max() < 70
    assert np.array_equal(select(scores, keep=0.1, rule="ccs"), select(scores, keep=0.1, rule="ccs", beta=0.3))


# --- CCS: class balance and seeds ------------------------------------------------------------------------------

@pytest.mark.parametrize("rule", ["ccs", "moderate"])
def test_class_balanced_counts_equal_the_window_quotas(rule):
    # Classes of 7, 5 and 3; keep 0.4 of 15 = 6. Exact shares 2.8, 2.0, 1.2 -> floors 2, 2, 1 and the one left
    # goes to the largest remainder (class 0): quotas 3, 2, 1.
    labels = np.repeat([0, 1, 2], [7, 5, 3])
    scores = np.random.default_rng(4).normal(size=15)
    window = select(scores, keep=0.4, labels=labels, class_balanced=True)
    kept = select(scores, keep=0.4, labels=labels, class_balanced=True, rule=rule)
    assert np.bincount(labels[kept], minlength=3).tolist() == np.bincount(labels[window]).tolist() == [3, 2, 1]


def test_seeds_are_reproducible_and_results_canonical():
    scores = np.random.default_rng(5).normal(size=1000)
    ids = np.arange(1000, 2000)
    labels = np.arange(1000) % 4
    a = select(scores, keep=0.1, ids=ids, rule="ccs", seed=7)
    assert np.array_equal(a, select(scores, keep=0.1, ids=ids, rule="ccs", seed=7))
    assert not np.array_equal(a, select(scores, keep=0.1, ids=ids, rule="ccs", seed=8))
    b = select(scores, keep=0.1, ids=ids, rule="ccs", seed=7, labels=labels, class_balanced=True)
    assert np.array_equal(b, select(scores, keep=0.1, ids=ids, rule="ccs", seed=7, labels=labels,
                                    class_balanced=True))
    for kept in (a, b, select(scores, keep=0.1, ids=ids, rule="moderate")):
        assert kept.dtype == np.int64 and len(kept) == 100
        assert np.all(np.diff(kept) > 0)  # sorted ascending and unique
    # The input order does not matter: the same (score, id) pairs shuffled give the same ids.
    perm = np.random.default_rng(6).permutation(1000)
    assert np.array_equal(a, select(scores[perm], keep=0.1, ids=ids[perm], rule="ccs", seed=7))


# --- moderate --------------------------------------------------------------------------------------------------

def test_moderate_with_an_odd_number_of_examples():
    # Median of 5, 1, 9, 3, 7 is 5; distances 0, 4, 4, 2, 2. Closest: id 0, then ids 3 and 4 tie at 2; the tie
    # goes to the lower tie key: id 4 (1.96e18) before id 3 (1.79e19).
    scores = np.array([5.0, 1.0, 9.0, 3.0, 7.0])
    assert tie_key(4) < tie_key(3)
    assert select(scores, keep=0.6, rule="moderate").tolist() == [0, 3, 4]
    assert select(scores, keep=0.4, rule="moderate").tolist() == [0, 4]
    # with ids, the tie follows the ids' keys, not the positions: id 40 (9.58e18) before id 30 (1.74e19)
    assert tie_key(40) < tie_key(30)
    assert select(scores, keep=0.4, rule="moderate", ids=[10, 11, 12, 40, 30]).tolist() == [10, 40]


def test_moderate_with_an_even_number_of_examples():
    # Median of 10, 2, 4, 8, 6, 12 is (6 + 8) / 2 = 7; distances 3, 5, 3, 1, 1, 5.
    # Closest: ids 3, 4 (1), then ids 0, 2 tie at 3 -> id 2 (key 4.88e17 < id 0's 1.63e19).
    scores = np.array([10.0, 2.0, 4.0, 8.0, 6.0, 12.0])
    assert tie_key(2) < tie_key(0)
    assert select(scores, keep=0.5, rule="moderate").tolist() == [2, 3, 4]
    assert select(scores, keep=1 / 3, rule="moderate").tolist() == [3, 4]


def test_moderate_class_balanced_uses_each_class_median():
    # Class 0 (1, 2, 3): median 2 -> id 1. Class 1 (10, 20, 30): median 20 -> id 4.
    # Without classes the median is (3 + 10) / 2 = 6.5: ids 2 and 3 (3.5 each) are closest.
    scores = np.array([1.0, 2.0, 3.0, 10.0, 20.0, 30.0])
    labels = np.array([0, 0, 0, 1, 1, 1])
    assert select(scores, keep=1 / 3, rule="moderate", labels=labels, class_balanced=True).tolist() == [1, 4]
    assert select(scores, keep=1 / 3, rule="moderate").tolist() == [2, 3]


# --- the window rule stays as it was ---------------------------------------------------------------------------

def test_the_default_rule_is_the_window_rule():
    rng = np.random.default_rng(8)
    scores = rng.integers(0, 4, 50).astype(float)
    labels = rng.integers(0, 3, 50)
    for kw in (dict(keep=0.3), dict(keep=0.5, order="lowest"), dict(keep=0.2, offset=0.3),
               dict(keep=0.4, labels=labels, class_balanced=True)):
        assert select(scores, **kw).tobytes() == select(scores, **kw, rule="window").tobytes()
    assert tuple(RULES) == ("window", "hardest", "easiest", "ccs", "moderate", "random")


# --- the registry ----------------------------------------------------------------------------------------------

def test_hardest_and_easiest_are_the_top_and_bottom_windows():
    """Independent reference: the window rule at offset 1 − keep and at offset 0 (Data Diet B.3)."""
    rng = np.random.default_rng(3)
    scores = rng.integers(0, 5, 40).astype(float)  # many ties: the tie order must agree too
    labels = rng.integers(0, 4, 40)
    for keep in (0.1, 0.35, 0.5, 0.9):
        for balanced in (dict(), dict(labels=labels, class_balanced=True)):
            assert np.array_equal(select(scores, keep=keep, rule="hardest", **balanced),
                                  select(scores, keep=keep, **balanced))
            assert np.array_equal(select(scores, keep=keep, rule="easiest", **balanced),
                                  select(scores, keep=keep, order="lowest", **balanced))


def test_random_rule_is_the_top_of_a_seeded_permutation_and_ignores_the_scores():
    ids = np.arange(100, 130)
    perm = np.random.default_rng(5).permutation(30)
    expected = np.sort(ids[np.argsort(perm)[-12:]])  # the 12 positions with the largest permutation values
    assert np.array_equal(select(np.zeros(30), keep=0.4, rule="random", ids=ids, seed=5), expected)
    assert np.array_equal(select(np.arange(30.0), keep=0.4, rule="random", ids=ids, seed=5), expected)
    assert np.array_equal(select_random(ids, keep=0.4, seed=5), expected)


def test_a_rule_is_one_function_and_one_entry(monkeypatch):
    """What ARCHITECTURE.md promises: a new rule in the registry is selectable by name, class-balanced too, and
    its options are refused for the other rules."""
    from datadiet import selection

    def every_other(values, ids, n_keep, rng, *, step, **_):
        return np.arange(0, len(values), step)[:n_keep]

    rule = selection.Rule(every_other, "every step-th example", ("step",), lambda keep, given: {"step": given["step"]})
    monkeypatch.setitem(selection.RULES, "every_other", rule)
    assert list(select(np.arange(10.0), keep=0.3, rule="every_other", step=2)) == [0, 2, 4]
    assert selection_parameters(keep=0.3, rule="every_other", step=2)["step"] == 2
    with pytest.raises(ConfigError, match="--step 2 means nothing with --rule window"):
        select(np.arange(10.0), keep=0.3, step=2)


# --- refusals --------------------------------------------------------------------------------------------------

S = np.arange(10.0)


@pytest.mark.parametrize("kwargs, message", [
    (dict(rule="ccs", offset=0.2), "--offset 0.2 means nothing with --rule ccs"),
    (dict(rule="moderate", offset=0.0), "--offset 0.0 means nothing with --rule moderate"),
    (dict(rule="ccs", order="lowest"), "--order lowest means nothing with --rule ccs"),
    (dict(rule="ccs", bins=0), "--bins: bins must be an integer >= 1"),
    (dict(rule="ccs", bins=2.5), "--bins: bins must be an integer >= 1"),
    (dict(rule="ccs", beta=1.0), r"--beta: beta must be a fraction in \[0, 1\)"),
    (dict(rule="ccs", beta=-0.1), r"--beta: beta must be a fraction in \[0, 1\)"),
    (dict(rule="ccs", seed=-1), "--sample-seed: sample_seed must be a non-negative integer"),
    (dict(rule="ccs", bins=10 ** 9), "--bins: 1000000000 bins for 10 scored examples; use at most 50"),
    (dict(rule="window", beta=0.1), "--beta 0.1 means nothing with --rule window"),
    (dict(rule="window", bins=10), "--bins 10 means nothing with --rule window"),
    (dict(seed=3), "--sample-seed 3 means nothing with --rule window"),
    (dict(rule="moderate", seed=3), "--sample-seed 3 means nothing with --rule moderate"),
    (dict(rule="ccs", keep=0.0), r"--keep: keep must be a fraction in \(0, 1\]"),
    (dict(rule="moderate", keep=0.01), "--keep: keeping 0.01 of 10 examples keeps none"),
])
def test_bad_rule_options_are_clear_errors(kwargs, message):
    kwargs = {"keep": 0.5, **kwargs}
    with pytest.raises(ConfigError, match=message):
        select(S, **kwargs)


def test_unknown_rule_lists_the_rules():
    with pytest.raises(ConfigError) as info:
        select(S, keep=0.5, rule="median")
    assert "--rule" in str(info.value) and str(tuple(RULES)) in str(info.value)


def test_a_cut_that_leaves_too_few_examples_is_refused():
    # keep 0.5 of 10 = 5, beta 0.6 drops 6: only 4 remain.
    with pytest.raises(ConfigError, match=r"--keep 0.5 with beta 0.6: 5 of the 10 examples .* only 4 remain"):
        select(S, keep=0.5, rule="ccs", beta=0.6)
    with pytest.raises(ConfigError, match=r"Lower --beta \(at most 0.5 with --keep 0.5\) or --keep"):
        select(S, keep=0.5, rule="ccs", beta=0.6)
    # Two classes of 5: quotas 2.5 each, the tied remainder goes to class 0 (3, 2). Class 0 keeps 3 of the
    # 5 - floor(0.6 * 5) = 2 left after its cut.
    with pytest.raises(ConfigError, match=r"3 of the 5 examples of class index 0 .* only 2 remain"):
        select(S, keep=0.5, rule="ccs", beta=0.6, labels=np.repeat([0, 1], [5, 5]), class_balanced=True)
    assert len(select(S, keep=0.5, rule="ccs", beta=0.5)) == 5  # beta = 1 - keep just fits


@pytest.mark.parametrize("rule", RULES)
def test_non_finite_scores_are_refused_by_every_rule(rule):
    with pytest.raises(SelectionError, match="NaN"):
        select(np.array([1.0, np.nan, 2.0]), keep=0.5, rule=rule)
    with pytest.raises(SelectionError, match=r"\+inf"):
        select(np.array([1.0, np.inf, 2.0]), keep=0.5, rule=rule)
