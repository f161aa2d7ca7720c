"""The one rank order of datadiet and the one offset-window rule."""
import numpy as np

from datadiet.selection import is_top_window, offset_windows, rank_order, select


def test_rank_order_is_ascending_with_ties_by_id():
    values = np.array([2.0, 1.0, 2.0, 1.0])
    ids = np.array([7, 9, 3, 5])
    assert rank_order(values, ids).tolist() == [3, 1, 2, 0]  # 1.0 (id 5), 1.0 (id 9), 2.0 (id 3), 2.0 (id 7)
    assert rank_order(values).tolist() == [1, 3, 0, 2]       # ties by position without ids


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
