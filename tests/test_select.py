"""The Data Diet B.3 selection rule on hand-made cases, and every refusal."""
import numpy as np
import pytest

from datadiet.errors import ConfigError
from datadiet.scores import ScoreTable
from datadiet.selection import select, select_random
from tie_reference import tie_key

# Example i has score s[i]; ascending order of ids: 3, 0, 5, 1, 4, 2  (scores 0..5 shuffled)
S = np.array([1.0, 3.0, 5.0, 0.0, 4.0, 2.0])


def test_default_keeps_the_highest_scores_in_canonical_order():
    assert select(S, keep=0.5).tolist() == [1, 2, 4]


def test_lowest_and_explicit_offset_windows():
    assert select(S, keep=0.5, order="lowest").tolist() == [0, 3, 5]
    # drop the lowest third (ids 3, 0), keep the next third (ids 5, 1), drop the rest
    assert select(S, keep=1 / 3, offset=1 / 3).tolist() == [1, 5]
    assert select(S, keep=1.0).tolist() == [0, 1, 2, 3, 4, 5]
    assert select(S, keep=0.5, offset=0.5).tolist() == select(S, keep=0.5).tolist()


def test_ties_are_broken_by_the_seeded_key_deterministically():
    # Tie keys for seed 0 (tests/tie_reference.py), ids 0..3: 1.63e19, 7.96e18, 4.88e17, 1.79e19. Ascending key
    # is the ascending rank among equal scores: ids 2, 1, 0, 3. The highest half is ids 0 and 3, not 2 and 3.
    tied = np.array([1.0, 1.0, 1.0, 1.0])
    by_key = sorted(range(4), key=tie_key)
    assert by_key == [2, 1, 0, 3]
    assert select(tied, keep=0.5).tolist() == sorted(by_key[2:])
    assert select(tied, keep=0.5, order="lowest").tolist() == sorted(by_key[:2])
    assert select(tied, keep=0.5).tolist() == select(tied, keep=0.5).tolist()
    assert select(tied, keep=0.5, tie_seed=1).tolist() == sorted(sorted(range(4), key=lambda i: tie_key(i, 1))[2:])


def test_ids_are_returned_not_positions():
    ids = np.array([10, 20, 30, 40, 50, 60])
    assert select(S, keep=0.5, ids=ids).tolist() == [20, 30, 50]


def test_score_table_uses_the_mean_over_runs():
    table = ScoreTable("el2n", np.array([7, 8, 9]), np.array([[0.0, 1.0, 5.0], [4.0, 1.0, 1.0]]))
    assert select(table, keep=1 / 3).tolist() == [9]  # means 2, 1, 3


def test_class_balanced_handles_unequal_classes():
    labels = np.array([0, 0, 0, 0, 0, 0, 1, 1])
    scores = np.array([6.0, 5.0, 4.0, 3.0, 2.0, 1.0, 0.5, 9.0])
    kept = select(scores, keep=0.5, labels=labels, class_balanced=True)
    assert kept.tolist() == [0, 1, 2, 7]  # 3 of class 0 (6 × 0.5), 1 of class 1 (2 × 0.5)
    assert select(scores, keep=0.5).tolist() == [0, 1, 2, 7]
    assert select(scores, keep=0.5, labels=labels, class_balanced=True, order="lowest").tolist() == [3, 4, 5, 6]


def test_class_balanced_total_is_exact_with_rounding():
    labels = np.repeat([0, 1, 2], [5, 5, 5])
    kept = select(np.arange(15.0), keep=0.4, labels=labels, class_balanced=True)
    assert len(kept) == 6
    assert np.bincount(labels[kept]).tolist() == [2, 2, 2]
    uneven = select(np.arange(10.0), keep=0.5, labels=np.repeat([0, 1, 2], [3, 3, 4]), class_balanced=True)
    assert len(uneven) == 5


def test_random_selection_is_seeded_and_sorted():
    a = select_random(np.arange(100), keep=0.3, seed=1)
    assert len(a) == 30
    assert a.tolist() == sorted(a.tolist())
    assert np.array_equal(a, select_random(np.arange(100), keep=0.3, seed=1))
    assert not np.array_equal(a, select_random(np.arange(100), keep=0.3, seed=2))


@pytest.mark.parametrize("kwargs, message", [
    (dict(keep=0.0), r"keep must be a fraction in \(0, 1\]"),
    (dict(keep=1.5), r"keep must be a fraction in \(0, 1\]"),
    (dict(keep=0.5, offset=-0.1), r"offset must be a fraction in \[0, 1\)"),
    (dict(keep=0.5, offset=0.6), "offset 0.6 \\+ keep 0.5 = 1.1 > 1"),
    (dict(keep=0.01), "keeps none"),
    (dict(keep=0.5, order="middle"), "order must be one of"),
    (dict(keep=0.5, class_balanced=True), "needs the labels"),
])
def test_bad_fractions_and_options_are_clear_errors(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        select(S, **kwargs)


def test_empty_class_and_nan_scores_are_errors():
    with pytest.raises(ConfigError, match=r"classes \[2\] have no examples"):
        select(S, keep=0.5, labels=np.array([0, 1, 0, 1, 0, 1]), class_balanced=True, num_classes=3)
    with pytest.raises(ConfigError, match="NaN"):
        select(np.array([1.0, np.nan]), keep=0.5)

@pytest.mark.parametrize("kwargs, flag", [
    (dict(keep=0.0), "--keep"),
    (dict(keep=True), "--keep"),
    (dict(keep=float("nan")), "--keep"),
    (dict(keep=0.01), "--keep"),
    (dict(keep=0.5, offset=1.0), "--offset"),
    (dict(keep=0.5, offset=float("nan")), "--offset"),
    (dict(keep=0.5, offset=0.6), "Lower --offset (at most 0.5 with --keep 0.5) or --keep"),
    (dict(keep=0.5, order="middle"), "--order"),
])
def test_range_errors_name_the_flag(kwargs, flag):
    with pytest.raises(ConfigError) as info:
        select(S, **kwargs)
    assert flag in str(info.value)


def test_numpy_fractions_are_accepted():
    assert select(S, keep=np.float32(0.5), offset=np.float64(0.0)).tolist() == [0, 3, 5]


# --- hostile input (issue 18 §4) -------------------------------------------------------------------------------

def test_ids_that_differ_from_the_table_s_own_are_refused():
    table = ScoreTable("el2n", np.array([7, 8, 9]), np.array([[0.0, 1.0, 5.0]]))
    with pytest.raises(ConfigError, match="ids: the ids given differ from those of the score table"):
        select(table, keep=1 / 3, ids=np.array([0, 1, 2]))
    with pytest.raises(ConfigError, match="differ"):
        select(table, keep=1 / 3, ids=np.array([9, 8, 7]))  # the same ids in another order relabel the scores
    assert select(table, keep=1 / 3, ids=np.array([7, 8, 9])).tolist() == [9]  # the same ids are fine


def test_duplicate_and_non_integer_ids_are_refused():
    with pytest.raises(ConfigError, match=r"ids: 2 ids appear more than once \(first: 3, 5\)"):
        select(S, keep=0.5, ids=[3, 5, 3, 5, 6, 7])
    with pytest.raises(ConfigError, match="ids must be a 1-D array of integer"):
        select(S, keep=0.5, ids=[0.5, 1, 2, 3, 4, 5])


@pytest.mark.parametrize("labels, num_classes, message", [
    ([0.0, 1.5, 0.0, 1.0, 0.0, 1.0], None, r"labels must be class indices \(integers\); 1 are not \(first at "
                                           r"position 1: .*1.5"),
    ([0.0, np.nan, 0.0, 1.0, 0.0, 1.0], None, "labels must be class indices"),
    ([0, 1, 0, 2, 0, 1], 2, r"labels must lie in \[0, 2\); 1 do not \(first at position 3: .*2"),
    ([0, 1, 0, -1, 0, 1], None, "labels must lie in 0 or more"),
    (["a", "b", "a", "b", "a", "b"], None, "labels must be a 1-D array of class indices"),
    ([0, 1, 0, 1, 0, 1], 0, "num_classes must be an integer >= 1"),
])
def test_bad_labels_for_class_balance_are_refused(labels, num_classes, message):
    with pytest.raises(ConfigError, match=message):
        select(S, keep=0.5, labels=np.array(labels), class_balanced=True, num_classes=num_classes)


def test_integer_valued_float_labels_are_class_indices():
    labels = np.array([0, 0, 0, 0, 0, 0, 1, 1])
    scores = np.array([6.0, 5.0, 4.0, 3.0, 2.0, 1.0, 0.5, 9.0])
    assert select(scores, keep=0.5, labels=labels.astype(float), class_balanced=True).tolist() == \
        select(scores, keep=0.5, labels=labels, class_balanced=True).tolist() == [0, 1, 2, 7]


def test_ccs_bins_are_bounded_by_the_scores_before_anything_is_allocated():
    scores = np.random.default_rng(0).normal(size=384)
    with pytest.raises(ConfigError, match="--bins: 1000000000 bins for 384 scored examples; use at most 384"):
        select(scores, keep=0.5, rule="ccs", bins=10 ** 9)
    assert len(select(scores, keep=0.5, rule="ccs", bins=384)) == 192
    assert len(select(scores[:10], keep=0.5, rule="ccs")) == 5  # the default 50 bins stay allowed on 10 scores
