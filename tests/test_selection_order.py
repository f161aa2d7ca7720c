"""The one rank order of datadiet (ties in a seeded pseudo-random order of the ids) and the offset-window rule."""
import numpy as np
import pytest

from datadiet.errors import ConfigError
from datadiet.selection import is_top_window, offset_windows, rank_order, select, tie_keys
from tie_reference import reference_rank, splitmix64, tie_key


def test_tie_keys_are_the_splitmix64_stream_of_the_tie_seed():
    # Published splitmix64 test vector: seed 1234567 gives 6457827717110365317, 3203168211198807973, ...
    assert tie_keys([0, 1], 1234567).tolist() == [6457827717110365317, 3203168211198807973]
    ids = [0, 1, 2, 7, 99, 12345, 2 ** 40]
    for seed in (0, 1, 17, 2 ** 63 + 5):
        assert tie_keys(ids, seed).tolist() == [tie_key(i, seed) for i in ids]
    assert splitmix64(1234567 + 0x9E3779B97F4A7C15) == 6457827717110365317  # the reference itself


def test_rank_order_is_ascending_with_ties_in_the_seeded_key_order():
    values = np.array([2.0, 1.0, 2.0, 1.0])
    ids = np.array([7, 9, 3, 5])
    for seed in range(5):
        assert rank_order(values, ids, seed).tolist() == reference_rank(values, ids, seed)
    # By hand for seed 0: key(5) = 6038094601263162090 < key(9) = 17561866513979060390, so among the 1.0s id 5
    # (position 3) comes before id 9 (position 1); key(7) = 14232521865600346940 < key(3) = 17909611376780542444,
    # so among the 2.0s id 7 (position 0) comes before id 3 (position 2).
    assert tie_key(5) == 6038094601263162090 and tie_key(9) == 17561866513979060390
    assert tie_key(7) == 14232521865600346940 and tie_key(3) == 17909611376780542444
    assert rank_order(values, ids).tolist() == [3, 1, 0, 2]
    assert rank_order(values).tolist() == reference_rank(values)  # without ids, the positions are the ids


def test_rank_order_matches_the_reference_on_many_ties():
    rng = np.random.default_rng(0)
    values = rng.integers(0, 5, 300).astype(float)
    ids = rng.permutation(10_000)[:300]
    for seed in (0, 3, 2 ** 40):
        assert rank_order(values, ids, seed).tolist() == reference_rank(values, ids, seed)


def test_all_tied_scores_on_a_class_sorted_layout_keep_every_class_near_its_share():
    # Issue 18: 10 classes of 100 stored one after the other (ids 0..999). With ties broken by id, keep 0.5 kept
    # classes 5-9 whole and dropped classes 0-4. With the seeded order, each class's count is that of a random
    # draw of 500 of 1000: hypergeometric, mean 50, standard deviation 4.7.
    labels = np.repeat(np.arange(10), 100)
    tied = np.zeros(1000)
    per_seed = []
    for tie_seed in range(40):
        for kw in (dict(), dict(order="lowest"), dict(rule="moderate"), dict(rule="ccs")):
            counts = np.bincount(labels[select(tied, keep=0.5, tie_seed=tie_seed, **kw)], minlength=10)
            assert counts.sum() == 500
            assert counts.min() >= 50 - 20 and counts.max() <= 50 + 20  # > 4 standard deviations: never by chance
        per_seed.append(np.bincount(labels[select(tied, keep=0.5, tie_seed=tie_seed)], minlength=10))
    mean = np.mean(per_seed, axis=0)  # over 40 seeds: standard error 0.75
    assert np.all(np.abs(mean - 50) < 4)
    assert 2.5 < np.std(per_seed) < 7  # spread like random draws, not 0 (always the same classes) or 50


def test_the_issue_18_forgetting_layout_keeps_every_class():
    # 1,229 of 1,438 examples tie at 0 (forgetting on a class-sorted folder); keep 0.5 once kept 5 of class 0.
    rng = np.random.default_rng(1)
    sizes = [143, 144, 144, 144, 144, 144, 144, 143, 144, 144]
    labels = np.repeat(np.arange(10), sizes)
    scores = np.zeros(len(labels))
    scores[rng.choice(len(labels), len(labels) - 1229, replace=False)] = rng.integers(1, 6, len(labels) - 1229)
    kept = select(scores, keep=0.5)
    counts = np.bincount(labels[kept], minlength=10)
    share = 0.5 * np.array(sizes)
    assert np.all(counts >= 0.5 * share), counts


def test_rank_order_does_not_depend_on_the_input_order():
    rng = np.random.default_rng(2)
    values = rng.integers(0, 3, 200).astype(float)
    ids = np.arange(500, 700)
    order = ids[rank_order(values, ids, 4)]
    kept = select(values, keep=0.3, ids=ids, tie_seed=4)
    for _ in range(5):
        perm = rng.permutation(200)
        assert np.array_equal(ids[perm][rank_order(values[perm], ids[perm], 4)], order)
        assert np.array_equal(select(values[perm], keep=0.3, ids=ids[perm], tie_seed=4), kept)
        for kw in (dict(rule="ccs", seed=2), dict(rule="moderate")):
            assert np.array_equal(select(values[perm], keep=0.3, ids=ids[perm], tie_seed=4, **kw),
                                  select(values, keep=0.3, ids=ids, tie_seed=4, **kw))


def test_different_tie_seeds_keep_different_tied_examples():
    tied = np.zeros(100)
    kept = {tuple(select(tied, keep=0.5, tie_seed=s).tolist()) for s in range(10)}
    assert len(kept) == 10


def test_without_ties_the_order_is_the_plain_sort():
    rng = np.random.default_rng(3)
    values = rng.permutation(1000).astype(float) / 7
    for seed in (0, 1, 99):
        assert np.array_equal(rank_order(values, tie_seed=seed), np.argsort(values))
        assert select(values, keep=0.2, tie_seed=seed).tolist() == sorted(np.argsort(values)[-200:].tolist())


@pytest.mark.parametrize("tie_seed", [-1, 1.5, True, 2 ** 64, "0"])
def test_bad_tie_seeds_are_refused(tie_seed):
    with pytest.raises(ConfigError, match="--tie-seed"):
        select(np.zeros(4), keep=0.5, tie_seed=tie_seed)


def test_selection_keeps_the_top_of_the_rank_order():
    values = np.array([0.5, 0.1, 0.5, 0.9, 0.1])
    ids = np.arange(10, 15)
    order = rank_order(values, ids)
    assert select(values, keep=0.4, ids=ids).tolist() == sorted(ids[order[-2:]].tolist())


def test_offset_windows_keep_those_inside_the_ranking_in_the_order_given():
    assert offset_windows(0.5, (0.0, 0.5, 0.6, 0.2)) == [0.0, 0.5, 0.2]
    assert offset_windows(0.3, (0.7,)) == [0.7]  # 0.7 + 0.3 is 1 up to rounding
    assert offset_windows(0.3, (-0.1,)) == []


def test_the_top_window_is_recognised_despite_rounding():
    assert is_top_window(0.3, 0.7)
    assert is_top_window(0.7, 1 - 0.7)
    assert not is_top_window(0.5, 0.4)
