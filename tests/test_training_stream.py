import pytest
import torch

from fakes import learnable_splits
from datadiet.config import TrainConfig, resolve_flip
from datadiet.data.transforms import augment
from datadiet.training import BatchStream, seed_streams

TINY = {"model": "smallcnn", "width": 0.25, "batch_size": 16}
N = 100  # 6 full batches of 16 per epoch, 4 rows dropped


def _stream(augment_on=True, seed=5, n=N, **overrides):
    # The engine decides the flip (None: the data's default) before it makes a stream; so do we.
    config = resolve_flip(TrainConfig(steps=40, seed=seed, augment=augment_on, **{**TINY, **overrides}), user_data=False)
    images = learnable_splits(n_train=n).train.images
    return BatchStream(images, config.schedule(train_size=n), config)


def _take(stream, start, end):
    return [(rows.clone(), x.clone()) for rows, x in stream.batches(start, end)]


def _assert_same_batches(a, b):
    assert len(a) == len(b)
    for (rows_a, x_a), (rows_b, x_b) in zip(a, b):
        assert torch.equal(rows_a, rows_b) and torch.equal(x_a, x_b)


def test_the_stream_draws_one_permutation_per_epoch_and_one_augmentation_per_batch():
    # The draw order the engine always had; changing it would change every saved run.
    stream = _stream()
    _, order_seed, aug_seed = seed_streams(5)
    order_gen, aug_gen = torch.Generator().manual_seed(order_seed), torch.Generator().manual_seed(aug_seed)
    expected = []
    for epoch in range(3):
        order = torch.randperm(N, generator=order_gen)
        for b in range(6):
            rows = order[b * 16:(b + 1) * 16]
            expected.append((rows, augment(stream.images[rows], pad=1, flip=True, generator=aug_gen)))
    _assert_same_batches(_take(stream, 0, 18), expected)


@pytest.mark.parametrize("augment_on", [True, False])
@pytest.mark.parametrize("k", [0, 6, 12, 9, 17, 40])  # start, epoch boundaries, mid-epoch, the very end
def test_a_stream_resumed_at_step_k_yields_the_rest_of_the_uninterrupted_stream(k, augment_on):
    whole = _take(_stream(augment_on), 0, 40)
    resumed = _take(_stream(augment_on), k, 40)  # a fresh stream, as in a resumed run
    _assert_same_batches(resumed, whole[k:])


def test_a_stream_stopped_early_is_a_prefix_and_each_call_starts_from_the_seed():
    stream = _stream()
    whole = _take(stream, 0, 40)
    _assert_same_batches(_take(stream, 0, 21), whole[:21])
    _assert_same_batches(_take(stream, 9, 21), whole[9:21])


def test_each_epoch_presents_distinct_rows_in_full_batches_and_plain_inputs_are_the_rows():
    stream = _stream(augment_on=False)
    batches = _take(stream, 0, 12)
    for epoch in (batches[:6], batches[6:]):
        rows = torch.cat([r for r, _ in epoch])
        assert len(rows) == 96 and len(rows.unique()) == 96  # 4 rows dropped: no partial batch
    for rows, x in batches:
        assert torch.equal(x, stream.images[rows])


def test_the_batch_is_capped_at_the_subset_size():
    stream = _stream(n=10)
    batches = _take(stream, 0, 3)
    assert [len(r) for r, _ in batches] == [10, 10, 10]
    assert all(sorted(r.tolist()) == list(range(10)) for r, _ in batches)


def test_another_seed_gives_another_order_and_augmentation():
    a, b = _take(_stream(seed=5), 0, 1)[0], _take(_stream(seed=6), 0, 1)[0]
    assert not torch.equal(a[0], b[0]) and not torch.equal(a[1], b[1])
