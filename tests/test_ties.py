"""Ties, named: the tie summary of a score array, and how many kept examples the seeded tie order picked
(``tie_decided``), against hand cases and a brute-force reference that enumerates every tie order."""
import itertools
import math
from collections import Counter

import numpy as np
import pytest

from datadiet.errors import ConfigError
from datadiet.selection import percent, select, tie_decided, tie_phrase, tie_summary


# --- tie_summary -----------------------------------------------------------------------------------------------------

def _summary_reference(values):
    """Counted by hand with a Counter: the largest group (lowest value among equals) and the tied share."""
    counts = Counter(float(v) for v in values)
    top = max(counts.values())
    if top < 2:
        return {"largest_tie_value": None, "largest_tie_count": 0, "largest_tie_share": 0.0, "tied_share": 0.0}
    value = min(v for v, c in counts.items() if c == top)
    return {"largest_tie_value": value, "largest_tie_count": top, "largest_tie_share": top / len(values),
            "tied_share": sum(c for c in counts.values() if c > 1) / len(values)}


def test_tie_summary_of_a_forgetting_like_array():
    # 89 of 100 at 0 (never forgotten), 5 at 1, 6 distinct: tied share (89 + 5) / 100.
    values = np.array([0.0] * 89 + [1.0] * 5 + [2.0, 3.0, 4.0, 5.0, 6.0, 7.0])
    assert tie_summary(values) == {"largest_tie_value": 0.0, "largest_tie_count": 89, "largest_tie_share": 0.89,
                                   "tied_share": 0.94}
    assert tie_phrase(tie_summary(values)) == "89 % of the scores (89 of 100) tie at 0"


def test_tie_summary_without_ties_and_with_equal_groups():
    assert tie_summary([3.0, 1.0, 2.0]) == _summary_reference([3.0, 1.0, 2.0])
    assert tie_phrase(tie_summary([3.0, 1.0, 2.0])) == "no two scores are equal"
    # two groups of 2: the lower value is named
    assert tie_summary([5.0, 2.0, 5.0, 2.0, 1.0]) == {"largest_tie_value": 2.0, "largest_tie_count": 2,
                                                      "largest_tie_share": 0.4, "tied_share": 0.8}


def test_tie_summary_matches_the_counter_reference_on_random_integer_scores():
    rng = np.random.default_rng(0)
    for _ in range(50):
        values = rng.integers(0, rng.integers(2, 12), size=rng.integers(1, 30)).astype(float) / 4
        assert tie_summary(values) == pytest.approx(_summary_reference(values))


def test_percent_words():
    assert [percent(s) for s in (0.891, 0.0, 0.0012, 1.0, 0.1)] == ["89 %", "0 %", "0.12 %", "100 %", "10 %"]


# --- tie_decided: hand cases -----------------------------------------------------------------------------------------

def test_hardest_takes_one_of_four_tied_zeros():
    values = np.array([0.0, 0.0, 0.0, 0.0, 1.0, 2.0])
    kept = select(values, keep=0.5)  # 1 and 2, then one zero chosen by the tie order
    assert tie_decided(values, np.arange(6), kept, rule="hardest") == 1
    assert tie_decided(values, np.arange(6), kept) == 1  # the window rule at its default (keep-highest) offset


def test_no_tie_at_the_boundary_decides_nothing():
    values = np.array([0.0, 0.0, 0.0, 1.0, 2.0, 3.0])  # the zeros all go, nothing straddles
    assert tie_decided(values, np.arange(6), select(values, keep=0.5), rule="hardest") == 0
    assert tie_decided(values, np.arange(6), select(values, keep=1.0), rule="hardest") == 0


def test_all_equal_scores_leave_every_kept_example_to_the_tie_order():
    values = np.zeros(10)
    assert tie_decided(values, np.arange(10), select(values, keep=0.3)) == 3


def test_a_window_counts_groups_crossing_either_edge():
    # ascending 1 1 2 2 3 3; offset 1/6, keep 4/6 keeps ranks 1..4: one 1, both 2s, one 3 → the 1 and the 3.
    values = np.array([3.0, 1.0, 2.0, 3.0, 2.0, 1.0])
    kept = select(values, keep=4 / 6, offset=1 / 6)
    assert Counter(values[kept].tolist()) == {1.0: 1, 2.0: 2, 3.0: 1}
    assert tie_decided(values, np.arange(6), kept, rule="window") == 2


def test_moderate_ranks_distances_to_the_median():
    # median 2, distances 2 1 0 1 2: keeping 2 keeps the median and one of the two at distance 1.
    values = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    kept = select(values, keep=0.4, rule="moderate")
    assert tie_decided(values, np.arange(5), kept, rule="moderate") == 1
    # the same kept ids read as a window of the scores would have no tie at all
    assert tie_decided(values, np.arange(5), kept, rule="hardest") == 0


def test_class_balanced_counts_inside_each_class_and_sums():
    # class 0: 0 0 0 5 (keep 2: the 5 and one 0 → 1); class 1: 1 2 3 4 (no tie → 0). Globally the zeros would not
    # straddle the top-4 boundary (5 4 3 2 are the four highest), so per class matters.
    values = np.array([0.0, 0.0, 0.0, 5.0, 1.0, 2.0, 3.0, 4.0])
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    kept = select(values, keep=0.5, labels=labels, class_balanced=True)
    assert tie_decided(values, np.arange(8), kept, labels=labels, class_balanced=True) == 1
    assert tie_decided(values, np.arange(8), select(values, keep=0.5)) == 0
    with pytest.raises(ConfigError, match="labels"):
        tie_decided(values, np.arange(8), kept, class_balanced=True)


def test_ccs_counts_only_ties_across_the_hardest_cut():
    # beta 0.25 of 8 cuts the top 2 (ascending: 0 1 2 3 3 3 3 3): the 3s straddle the cut; the kept 3s count.
    values = np.array([3.0, 0.0, 3.0, 1.0, 3.0, 2.0, 3.0, 3.0])
    kept = select(values, keep=0.5, rule="ccs", beta=0.25, bins=1, seed=4)
    assert tie_decided(values, np.arange(8), kept, rule="ccs", beta=0.25) == int((values[kept] == 3).sum())
    assert tie_decided(values, np.arange(8), kept, rule="ccs", beta=0.0) == 0  # no cut: only the draw picks
    # keep 0.5 resolves the default beta, 0: nothing cut
    assert tie_decided(values, np.arange(8), kept, rule="ccs", keep=0.5) == 0


def test_random_is_not_applicable_and_foreign_ids_are_refused():
    assert tie_decided(np.zeros(4), np.arange(4), [0, 1], rule="random") is None
    with pytest.raises(ConfigError, match="kept ids"):
        tie_decided(np.zeros(4), np.arange(4), [0, 9])
    with pytest.raises(ConfigError, match="--rule"):
        tie_decided(np.zeros(4), np.arange(4), [0], rule="nearest")


# --- tie_decided against a brute-force reference ---------------------------------------------------------------------

def _valid_selections(keys, groups, quotas, start_of):
    """Every kept set (a frozenset of positions) the rule yields under some tie order: all permutations of the
    positions serve as tie orders; inside each group, the window [start, start + quota) of (key, tie rank)."""
    n = len(keys)
    out = set()
    for order in itertools.permutations(range(n)):
        tie_rank = {p: r for r, p in enumerate(order)}
        kept = []
        for members, quota in zip(groups, quotas):
            ranked = sorted(members, key=lambda p: (keys[p], tie_rank[p]))
            start = start_of(len(members), quota)
            kept += ranked[start:start + quota]
        out.add(frozenset(kept))
    return out


def _reference_count(keys, labels, kept, valid):
    """An example is tie-decided if swapping it with a left-out one of equal key (same class) gives another
    selection of the same rule; count them."""
    kept = frozenset(kept)
    left_out = [y for y in range(len(keys)) if y not in kept]
    return sum(any(keys[y] == keys[x] and labels[y] == labels[x] and (kept - {x}) | {y} in valid for y in left_out)
               for x in kept)


def _check_rule(values, labels, rule, keep, quota, tie_seed, **options):
    n = len(values)
    kept = select(values, keep=keep, rule=rule, tie_seed=tie_seed, labels=labels if quota else None,
                  class_quota=quota, **options).tolist()
    group_labels = labels if quota else np.zeros(n, dtype=int)
    groups = [[p for p in range(n) if group_labels[p] == c] for c in sorted(set(group_labels.tolist()))]
    quotas = [sum(group_labels[p] == group_labels[g[0]] for p in kept) for g in groups]
    if rule == "moderate":  # each group ranks the distances to its own median
        keys = np.empty(n)
        for g in groups:
            keys[g] = np.abs(values[g] - np.median(values[g]))
    else:
        keys = values
    if rule == "easiest" or rule == "moderate":
        start_of = lambda size, quota: 0  # noqa: E731
    elif "offset" in options:
        start_of = lambda size, quota: min(math.floor(options["offset"] * size + 1e-9), size - quota)  # noqa: E731
    else:
        start_of = lambda size, quota: size - quota  # noqa: E731
    valid = _valid_selections(keys, groups, quotas, start_of)
    assert frozenset(kept) in valid  # the reference describes the rule select applied
    expected = _reference_count(keys, group_labels, kept, valid)
    got = tie_decided(values, np.arange(n), kept, rule=rule, labels=labels, class_quota=quota, **options)
    assert got == expected, (values.tolist(), labels.tolist(), rule, keep, quota, tie_seed, options, kept)


@pytest.mark.parametrize("rule,options", [("hardest", {}), ("easiest", {}), ("moderate", {}),
                                          ("window", {"offset": 0.25})])
@pytest.mark.parametrize("quota", [None, "proportional", "equal"])
def test_tie_decided_matches_the_brute_force_reference(rule, options, quota):
    rng = np.random.default_rng([len(rule), len(quota or ""), ord(rule[0])])  # fixed per case, not str hash
    for _ in range(12):
        n = int(rng.integers(3, 7))
        values = rng.integers(0, 3, size=n).astype(float)  # few values: many ties, at every boundary
        labels = np.arange(n) % 2 if quota != "equal" else (np.arange(n) >= 2).astype(int)  # equal: unequal classes
        keep = float(rng.choice([0.34, 0.5, 0.67]))
        if rule == "window" and options["offset"] + keep > 1:
            keep = 0.5
        _check_rule(values, labels, rule, keep, quota, int(rng.integers(0, 5)), **options)


def _valid_pools(values, n_cut):
    """CCS's pools under every tie order: all but the top ``n_cut`` of (value, tie rank)."""
    n = len(values)
    pools = set()
    for order in itertools.permutations(range(n)):
        tie_rank = {p: r for r, p in enumerate(order)}
        pools.add(frozenset(sorted(range(n), key=lambda p: (values[p], tie_rank[p]))[:n - n_cut]))
    return pools


def test_ccs_matches_the_brute_force_reference_on_its_cut():
    rng = np.random.default_rng(7)
    for _ in range(15):
        n = int(rng.integers(4, 8))
        values = rng.integers(0, 3, size=n).astype(float)
        beta = float(rng.choice([0.2, 0.3, 0.4]))
        n_cut = math.floor(beta * n + 1e-9)
        keep = (n - n_cut) / n / 2 + 1e-3  # fits in the pool
        kept = select(values, keep=keep, rule="ccs", beta=beta, bins=1, seed=int(rng.integers(0, 9)),
                      tie_seed=int(rng.integers(0, 9)))
        pools = _valid_pools(values, n_cut)
        # a pool the kept set was drawn from: every pool holds the same values, so any such one gives the count
        pool = next(p for p in pools if set(kept.tolist()) <= p)
        cut = [y for y in range(n) if y not in pool]
        expected = sum(any(values[y] == values[x] and (pool - {x}) | {y} in pools for y in cut) for x in kept)
        assert tie_decided(values, np.arange(n), kept, rule="ccs", beta=beta) == expected


def test_the_count_of_a_ranking_rule_does_not_depend_on_the_tie_seed():
    # which zeros are kept changes with the tie seed; how many of them the tie order picked does not
    values = np.array([0.0] * 12 + [1.0, 2.0, 3.0])
    subsets = {tuple(select(values, keep=0.4, tie_seed=s).tolist()) for s in range(6)}
    assert len(subsets) > 1
    assert {tie_decided(values, np.arange(15), list(k)) for k in subsets} == {3}
