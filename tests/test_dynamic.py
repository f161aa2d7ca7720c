"""Dynamic pruning (datadiet.dynamic): InfoBatch's rules on hand-made losses, RS2's coverage, resume, seeds."""
import pickle
import re
import textwrap

import numpy as np
import pytest
import torch

import datadiet.dynamic as dynamic
from datadiet.dynamic import RS2, InfoBatch, batches
from datadiet.errors import ConfigError, NonFiniteLossError


def _losses(epoch: int, n: int) -> np.ndarray:
    """The losses a 'training' epoch reports: fixed per (epoch, row), whatever order rows are trained in."""
    return np.random.default_rng([99, epoch]).random(n)


def _run(pruner: InfoBatch, epochs, batch_size=None):
    """Train ``epochs`` with fake losses; return each epoch's rows and weights."""
    seen = []
    for epoch in epochs:
        rows = pruner.epoch_rows(epoch)
        for batch in batches(rows, batch_size or len(rows)):
            pruner.update(batch, _losses(epoch, pruner.n)[batch])
        seen.append((rows, pruner.weights(rows)))
    return seen


def _started(n, losses, **kwargs) -> InfoBatch:
    """An InfoBatch after epoch 0 trained every row with the given losses (row i got losses[i])."""
    pruner = InfoBatch(n, **{"epochs": 10, **kwargs})
    rows = pruner.epoch_rows(0)
    pruner.update(rows, np.asarray(losses, dtype=float)[rows])
    return pruner


# ----------------------------------------------------------------------------- InfoBatch rules


def test_epoch_zero_trains_everything_in_a_seeded_order_with_weight_one():
    pruner = InfoBatch(50, epochs=4, seed=3)
    rows = pruner.epoch_rows(0)
    assert rows.dtype == np.int64 and sorted(rows) == list(range(50)) and not np.array_equal(rows, np.arange(50))
    assert np.array_equal(rows, np.random.default_rng([3, 0]).permutation(50))  # the (seed, epoch) generator
    assert (pruner.weights(rows) == 1).all() and pruner.weights(rows).dtype == np.float32


def test_rows_below_the_mean_are_well_learned_and_half_of_them_are_left_out():
    pruner = _started(8, np.arange(8.0))  # mean 3.5: rows 0..3 are well-learned
    rows = pruner.epoch_rows(1)
    left_out = sorted(set(range(8)) - set(rows))
    assert len(rows) == 6 and len(set(rows)) == 6 and set(left_out) <= {0, 1, 2, 3}
    expected = {r: (2.0 if r < 4 else 1.0) for r in rows}  # the kept well-learned: 1 / (1 - 0.5)
    assert dict(zip(rows.tolist(), pruner.weights(rows).tolist())) == expected


def test_a_loss_equal_to_the_mean_is_not_well_learned():
    pruner = _started(3, [0.0, 2.0, 1.0], prune_ratio=0.9)  # mean 1: only row 0 is below; floor(0.9) = 0 left out
    rows = pruner.epoch_rows(1)
    assert sorted(rows) == [0, 1, 2]
    assert pruner.weights([0, 1, 2]).tolist() == pytest.approx([10.0, 1.0, 1.0])


@pytest.mark.parametrize("ratio, candidates, left_out", [(0.5, 4, 2), (0.25, 7, 1), (0.75, 3, 2), (0.3, 9, 2),
                                                          (0.0, 5, 0), (0.5, 1, 0)])
def test_floor_of_ratio_times_well_learned_rows_are_left_out(ratio, candidates, left_out):
    losses = [0.0] * candidates + [10.0] * (10 - candidates)  # the first `candidates` rows are below the mean
    pruner = _started(10, losses, prune_ratio=ratio)
    rows = pruner.epoch_rows(1)
    assert len(rows) == 10 - left_out and set(range(10)) - set(rows) <= set(range(candidates))
    weights = dict(zip(rows.tolist(), pruner.weights(rows).tolist()))
    assert all(weights[r] == pytest.approx(1 / (1 - ratio)) for r in rows if r < candidates)
    assert all(weights[r] == 1.0 for r in rows if r >= candidates)


def test_never_seen_rows_are_never_pruned_and_stay_out_of_the_mean():
    pruner = InfoBatch(4, epochs=10)
    pruner.epoch_rows(0)
    pruner.update([0, 1, 2], [1.0, 2.0, 9.0])  # row 3 was not trained (say, a dropped remainder)
    rows = pruner.epoch_rows(1)
    # Mean of the seen rows = 4, so rows 0 and 1 are well-learned; one of them is left out.  (Counting row 3 as
    # a loss of 0 would prune it; the reference's 3.0 would give a mean of 3.75 and the same candidates.)
    assert len(rows) == 3 and {2, 3} <= set(rows) and len({0, 1} & set(rows)) == 1
    kept = ({0, 1} & set(rows)).pop()
    assert pruner.weights([kept, 2, 3]).tolist() == [2.0, 1.0, 1.0]


@pytest.mark.parametrize("q_loss, q_weight", [(4.0, 1.0), (3.0, 2.0)])
def test_a_left_out_row_keeps_its_stale_loss_in_the_mean_but_cannot_be_left_out_again(q_loss, q_weight):
    pruner = _started(4, [0.0, 0.0, 10.0, 10.0])  # mean 5: rows 0 and 1 well-learned, one of them left out
    rows = pruner.epoch_rows(1)
    p = ({0, 1} - set(rows)).pop()  # left out in epoch 1
    q = 1 - p
    pruner.update([q, 2, 3], [q_loss, 6.0, 6.0])
    # Epoch 2: p's stale 0 still counts in the mean ((0 + q + 12) / 4 = 4 or 3.75); p itself is not fresh,
    # so it is trained with weight 1 although its loss is the lowest.  q is well-learned only below the mean;
    # with a single candidate floor(0.5) = 0 rows are left out.
    rows = pruner.epoch_rows(2)
    assert sorted(rows) == [0, 1, 2, 3]
    assert pruner.weights([p, q, 2, 3]).tolist() == [1.0, q_weight, 1.0, 1.0]


def test_a_row_left_out_in_one_epoch_is_trained_in_the_next():
    pruner = InfoBatch(300, epochs=20, delta=1.0, seed=1)
    previous_left_out = set()
    for epoch, (rows, _) in enumerate(_run(pruner, range(20))):
        left_out = set(range(300)) - set(rows)
        assert not left_out & previous_left_out, epoch
        assert epoch == 0 or len(left_out) > 0
        previous_left_out = left_out


def test_rows_dropped_with_the_last_partial_batch_are_trained_next_epoch_with_weight_one():
    pruner = InfoBatch(103, epochs=10, seed=2)
    for epoch in range(6):
        rows = pruner.epoch_rows(epoch)
        trained = np.concatenate(batches(rows, 10))
        pruner.update(trained, _losses(epoch, 103)[trained])
        untrained = sorted(set(rows) - set(trained))
        assert len(untrained) == len(rows) % 10
        if epoch < 5:  # their losses are not fresh, so they cannot be left out
            assert set(untrained) <= set(pruner.epoch_rows(epoch + 1))
            assert (pruner.weights(untrained) == 1).all()


@pytest.mark.parametrize("epochs, delta, full_from", [(10, 0.875, 9), (8, 0.875, 7), (100, 0.07, 7), (3, 0.5, 2),
                                                       (10, 1.0, 10), (1, 1.0, 1)])
def test_annealing_starts_at_ceil_of_epochs_times_delta(epochs, delta, full_from):
    assert InfoBatch(10, epochs, delta=delta).full_from == full_from


def test_with_ten_epochs_and_delta_0_875_epochs_0_to_8_prune_and_epoch_9_is_full_with_weight_one():
    pruner = InfoBatch(200, epochs=10, delta=0.875, seed=4)
    history = _run(pruner, range(10))
    for epoch, (rows, weights) in enumerate(history[1:9], start=1):
        assert len(rows) < 200 and (weights == 2.0).any(), epoch
    rows, weights = history[9]
    assert sorted(rows) == list(range(200)) and (weights == 1.0).all()


def test_seeds_prune_different_rows_and_the_same_seed_the_same():
    def left_out(seed):
        pruner = _started(1000, np.arange(1000.0), seed=seed)
        return set(range(1000)) - set(pruner.epoch_rows(1))
    assert left_out(0) == left_out(0)
    assert left_out(0) != left_out(1) and len(left_out(0)) == len(left_out(1)) == 250


def test_the_global_generators_are_untouched():
    np.random.seed(7)
    numpy_before, torch_before = np.random.get_state(), torch.random.get_rng_state()
    _run(InfoBatch(100, epochs=5), range(5))
    [RS2(100, 0.3).epoch_rows(e) for e in range(8)]
    numpy_after = np.random.get_state()
    assert numpy_before[0] == numpy_after[0] and np.array_equal(numpy_before[1], numpy_after[1])
    assert numpy_before[2:] == numpy_after[2:]
    assert torch.equal(torch_before, torch.random.get_rng_state())


# ----------------------------------------------------------------------------- resume


@pytest.mark.parametrize("stop_after_batches", [0, 3])  # at an epoch boundary, and mid-epoch
def test_a_resumed_infobatch_run_is_bit_identical_to_the_uninterrupted_one(stop_after_batches):
    n, epochs, k = 250, 10, 4

    def epoch_batches(pruner, epoch, skip=0):
        out = []
        for batch in batches(pruner.epoch_rows(epoch), 32)[skip:]:
            out.append((batch.copy(), pruner.weights(batch)))
            pruner.update(batch, _losses(epoch, n)[batch])
        return out

    whole = InfoBatch(n, epochs, seed=5)
    expected = [epoch_batches(whole, e) for e in range(epochs)]

    first = InfoBatch(n, epochs, seed=5)
    got = [epoch_batches(first, e) for e in range(k)]
    if stop_after_batches:  # killed inside epoch k, after a few batches
        partial = batches(first.epoch_rows(k), 32)[:stop_after_batches]
        for batch in partial:
            first.update(batch, _losses(k, n)[batch])
    saved = pickle.loads(pickle.dumps(first.state_dict()))  # as if written to disk

    resumed = InfoBatch(n, epochs, seed=5)
    resumed.load_state_dict(saved)
    tail = epoch_batches(resumed, k, skip=stop_after_batches)
    got.append(([(b.copy(), first.weights(b)) for b in partial] if stop_after_batches else []) + tail)
    got += [epoch_batches(resumed, e) for e in range(k + 1, epochs)]
    for epoch_expected, epoch_got in zip(expected, got, strict=True):
        assert len(epoch_expected) == len(epoch_got)
        for (rows_a, w_a), (rows_b, w_b) in zip(epoch_expected, epoch_got):
            assert np.array_equal(rows_a, rows_b) and np.array_equal(w_a, w_b)
    assert np.array_equal(whole.loss, resumed.loss) and np.array_equal(whole.last_seen, resumed.last_seen)


def test_a_state_from_another_configuration_is_refused():
    state = InfoBatch(10, epochs=5, seed=1).state_dict()
    with pytest.raises(ConfigError, match="configuration"):
        InfoBatch(10, epochs=5, seed=2).load_state_dict(state)
    with pytest.raises(ConfigError, match="configuration"):
        RS2(10, 0.5).load_state_dict(state)
    RS2(10, 0.5, seed=3).load_state_dict(pickle.loads(pickle.dumps(RS2(10, 0.5, seed=3).state_dict())))


# ----------------------------------------------------------------------------- RS2


@pytest.mark.parametrize("n, fraction", [(10, 0.3), (10, 0.5), (7, 1.0), (13, 0.2), (100, 0.07), (9, 0.75)])
def test_rs2_sees_every_example_once_before_any_twice(n, fraction):
    sampler = RS2(n, fraction, seed=11)
    k = round(fraction * n)
    epochs = [sampler.epoch_rows(e) for e in range(6 * n // k + 1)]
    assert all(len(rows) == k == len(set(rows)) and rows.dtype == np.int64 for rows in epochs)
    stream = np.concatenate(epochs)
    assert sorted(np.concatenate(epochs[:-(-n // k)])[:n]) == list(range(n))  # the first ceil(1/fraction) epochs
    for cycle in range(len(stream) // n):  # and every later block of n
        assert sorted(stream[cycle * n:(cycle + 1) * n]) == list(range(n)), cycle


def test_rs2_straddling_epoch_takes_the_old_tail_then_new_rows():
    sampler = RS2(10, 0.3, seed=0)  # 3 rows an epoch: epoch 3 holds position 9 of cycle 0 and 0..1 of cycle 1
    first_cycle = np.concatenate([sampler.epoch_rows(e) for e in range(3)])
    straddle = sampler.epoch_rows(3)
    last_of_cycle_0 = (set(range(10)) - set(first_cycle)).pop()
    assert straddle[0] == last_of_cycle_0 and len(set(straddle)) == 3 == sampler.n_keep  # the old tail first


def test_rs2_rows_depend_only_on_seed_and_epoch():
    walked = RS2(50, 0.3, seed=2)
    forward = [walked.epoch_rows(e) for e in range(12)]
    assert np.array_equal(RS2(50, 0.3, seed=2).epoch_rows(9), forward[9])  # a fresh object, as after a resume
    assert np.array_equal(walked.epoch_rows(2), forward[2])  # going back
    assert not np.array_equal(RS2(50, 0.3, seed=3).epoch_rows(0), forward[0])
    assert (walked.weights(forward[0]) == 1).all() and walked.sample_passes(0) == 15


# ----------------------------------------------------------------------------- batches and passes


def test_batches_drop_the_last_partial_batch_unless_there_is_no_full_one():
    rows = np.arange(10) * 3
    assert [b.tolist() for b in batches(rows, 4)] == [[0, 3, 6, 9], [12, 15, 18, 21]]
    assert [len(b) for b in batches(rows, 4, drop_last=False)] == [4, 4, 2]
    assert [b.tolist() for b in batches(rows[:3], 4)] == [[0, 3, 6]]  # as the engine: one short batch
    assert batches(rows[:0], 4) == []


def test_sample_passes_count_what_the_batches_train():
    pruner = _started(10, np.arange(10.0))
    assert pruner.sample_passes(1) == 8 and pruner.sample_passes(1, batch_size=3) == 6
    assert pruner.sample_passes(1, batch_size=20) == 8
    assert RS2(100, 0.25).sample_passes(7, batch_size=10) == 20


# ----------------------------------------------------------------------------- input errors


@pytest.mark.parametrize("make, flag", [
    (lambda: InfoBatch(10, 5, prune_ratio=1.0), "--prune-ratio"),
    (lambda: InfoBatch(10, 5, prune_ratio=-0.1), "--prune-ratio"),
    (lambda: InfoBatch(10, 5, prune_ratio=float("nan")), "--prune-ratio"),
    (lambda: InfoBatch(10, 5, delta=0.0), "--delta"),
    (lambda: InfoBatch(10, 5, delta=1.5), "--delta"),
    (lambda: InfoBatch(10, 0), "--epochs"),
    (lambda: InfoBatch(0, 5), "n "),
    (lambda: InfoBatch(10, 5, seed=-1), "--seed"),
    (lambda: RS2(10, 0.0), "--fraction"),
    (lambda: RS2(10, 1.2), "--fraction"),
    (lambda: RS2(10, 0.01), "--fraction"),  # keeps round(0.1) = 0 rows
    (lambda: RS2(10, "half"), "--fraction"),
    (lambda: InfoBatch(10, 5).epoch_rows(5), "epoch 5"),
    (lambda: batches(np.arange(5), 0), "--batch-size"),
])
def test_bad_arguments_are_config_errors_naming_the_flag(make, flag):
    with pytest.raises(ConfigError, match=re.escape(flag)):
        make()


def test_update_refuses_mismatched_out_of_range_and_non_finite_input():
    pruner = InfoBatch(10, epochs=5)
    with pytest.raises(RuntimeError, match="epoch_rows"):
        pruner.update([0], [1.0])
    pruner.epoch_rows(0)
    with pytest.raises(ConfigError, match="2 rows but 1 losses"):
        pruner.update([0, 1], [1.0])
    with pytest.raises(ConfigError, match="0..9"):
        pruner.update([-1], [1.0])
    with pytest.raises(NonFiniteLossError):
        pruner.update([0], [float("nan")])
    pruner.update(torch.tensor([3]), torch.tensor([0.5]))  # tensors are fine
    assert pruner.loss[3] == 0.5 and pruner.last_seen[3] == 0


# ----------------------------------------------------------------------------- the documented example


def test_the_docstring_loop_runs_and_prunes(capsys):
    code = textwrap.dedent(dynamic.__doc__.split("reduction=\"none\"``, to be weighted)::\n")[1].split("\n\n``")[0])
    namespace = {}
    exec(code, namespace)
    pruner, trained = namespace["pruner"], namespace["trained"]
    assert pruner.last_seen.max() == 9 and pruner.sample_passes(9) == 1000  # the annealed last epoch is full
    assert 6000 < trained < 10 * 1000  # epochs 1..8 leave out about a quarter of the data
    assert f"trained on {trained} examples" in capsys.readouterr().out


def test_infobatch_counts_past_epochs_without_drawing_them_again():
    pruner = InfoBatch(40, 10, prune_ratio=0.5, seed=1)
    rows0 = pruner.epoch_rows(0)
    pruner.update(rows0, np.linspace(0.0, 1.0, len(rows0)))
    rows1 = pruner.epoch_rows(1)
    state = pruner.state_dict()
    assert pruner.sample_passes(0) == 40 and pruner.sample_passes(1) == len(rows1) < 40  # epoch 1 pruned some
    after = pruner.state_dict()  # asking about epoch 0 changed nothing
    assert after["epoch"] == state["epoch"] == 1 and np.array_equal(after["rows"], state["rows"])
    with pytest.raises(ConfigError, match="cannot be drawn again"):
        pruner.epoch_rows(0)


# ----------------------------------------------------------------------------- the registry


def test_each_registered_pruner_is_built_from_its_parameters_as_by_hand():
    from datadiet.dynamic import PRUNERS, InfoBatchParameters, RS2Parameters, build_pruner, pruner_name

    assert {name: (p.cls, p.parameters) for name, p in PRUNERS.items()} == {
        "infobatch": (InfoBatch, InfoBatchParameters), "rs2": (RS2, RS2Parameters)}
    built = build_pruner(InfoBatchParameters(prune_ratio=0.3, delta=0.5), 40, 10, 7)
    assert (built.n, built.epochs, built.prune_ratio, built.delta, built.seed) == (40, 10, 0.3, 0.5, 7)
    rs2 = build_pruner(RS2Parameters(0.25), 40, 10, 7)
    assert np.array_equal(rs2.epoch_rows(3), RS2(40, 0.25, seed=7).epoch_rows(3))
    assert pruner_name(RS2Parameters(0.25)) == "rs2" and pruner_name(InfoBatchParameters()) == "infobatch"


def test_epoch_sizes_by_hand():
    # InfoBatch over 10 rows at ratio 0.5: at most 9 rows lie below the mean, floor(0.5 * 9) = 4 of them left out.
    assert InfoBatch(10, 5, prune_ratio=0.5).epoch_sizes() == (6, 10)
    assert InfoBatch(10, 5, prune_ratio=0.0).epoch_sizes() == (10, 10)
    assert RS2(10, 0.3).epoch_sizes() == (3, 3)  # round(0.3 * 10) rows, every epoch


def test_a_parameters_class_shared_by_two_pruners_is_refused(monkeypatch):
    from datadiet.dynamic import PRUNERS, Pruner, RS2Parameters, pruner_name

    monkeypatch.setitem(PRUNERS, "rs2-again", Pruner(RS2, RS2Parameters))
    with pytest.raises(ConfigError, match="parameters class of rs2 and rs2-again: give each pruner its own"):
        pruner_name(RS2Parameters(0.5))
    with pytest.raises(ConfigError, match="no registered pruner's parameters"):
        pruner_name(object())
