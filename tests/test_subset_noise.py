import pytest
import torch

from fakes import tiny_dataset
from datadiet.data.dataset import ImageDataset, channel_stats
from datadiet.data.noise import permute_labels
from datadiet.data.subset import _balanced_quotas, balanced_n, first_n, make_subset
from datadiet.errors import ConfigError, CorruptDataError


def test_first_n_keeps_ids_and_order():
    ds = tiny_dataset(20)
    sub = first_n(ds, 7)
    assert sub.ids.tolist() == list(range(7))
    assert torch.equal(sub.images, ds.images[:7])


def test_balanced_subset_is_balanced_sorted_and_seeded():
    ds = tiny_dataset(40, classes=4)
    a, b = balanced_n(ds, 10, seed=1), balanced_n(ds, 10, seed=1)
    assert torch.equal(a.ids, b.ids)
    assert a.ids.tolist() == sorted(a.ids.tolist())
    assert sorted(torch.bincount(a.labels, minlength=4).tolist()) == [2, 2, 3, 3]
    assert not torch.equal(a.ids, balanced_n(ds, 10, seed=2).ids)
    assert torch.equal(a.labels, ds.labels[a.ids])


def test_balanced_quotas_with_unequal_classes_spread_the_shortfall():
    assert _balanced_quotas([2, 10, 10], 12) == [2, 5, 5]
    assert _balanced_quotas([5, 5, 5], 7) == [3, 2, 2]
    assert sum(_balanced_quotas([1, 3, 100], 50)) == 50


@pytest.mark.parametrize("n", [0, 21, -3])
def test_subset_size_out_of_range(n):
    with pytest.raises(ConfigError, match="out of range"):
        make_subset(tiny_dataset(20), n)


def test_positions_of_round_trip_and_missing_ids():
    ds = tiny_dataset(20).take(torch.tensor([5, 3, 9, 1]))
    assert ds.positions_of([9, 5]).tolist() == [2, 0]
    with pytest.raises(CorruptDataError, match="not in tiny/train"):
        ds.positions_of([4])


def test_label_noise_permutes_a_fraction_and_records_it():
    ds = tiny_dataset(200, classes=5)
    noisy, rec = permute_labels(ds, 0.1, seed=0)
    assert len(rec.chosen_ids) == 20
    assert torch.equal(torch.bincount(noisy.labels), torch.bincount(ds.labels))  # histogram kept
    outside = torch.ones(200, dtype=torch.bool)
    outside[rec.chosen_ids] = False
    assert torch.equal(noisy.labels[outside], ds.labels[outside])
    changed = noisy.labels != ds.labels
    assert torch.equal(torch.nonzero(changed).flatten(), rec.changed_ids)
    assert set(rec.changed_ids.tolist()) <= set(rec.chosen_ids.tolist())
    assert torch.equal(rec.original_labels, ds.labels[rec.chosen_ids])
    again, rec2 = permute_labels(ds, 0.1, seed=0)
    assert torch.equal(again.labels, noisy.labels)
    assert torch.equal(rec2.chosen_ids, rec.chosen_ids)


def test_label_noise_fraction_must_be_a_fraction():
    with pytest.raises(ConfigError):
        permute_labels(tiny_dataset(), 1.5, seed=0)


def test_channel_stats_match_a_direct_computation():
    ds = tiny_dataset(30, channels=3)
    mean, std = channel_stats(ds.images, chunk=7)
    x = ds.images.double() / 255
    torch.testing.assert_close(torch.tensor(mean, dtype=torch.float64), x.mean(dim=(0, 2, 3)))
    torch.testing.assert_close(torch.tensor(std, dtype=torch.float64), x.permute(1, 0, 2, 3).reshape(3, -1).std(1, unbiased=False))


def test_dataset_rejects_inconsistent_arrays():
    with pytest.raises(CorruptDataError, match="uint8"):
        ImageDataset("x", "train", torch.zeros(2, 1, 2, 2), torch.zeros(2, dtype=torch.long),
                     torch.arange(2), ("a",))
    with pytest.raises(CorruptDataError, match="do not belong together"):
        ImageDataset("x", "train", torch.zeros(2, 1, 2, 2, dtype=torch.uint8), torch.zeros(3, dtype=torch.long),
                     torch.arange(2), ("a",))
