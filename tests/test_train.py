import copy
import json
import re

import numpy as np
import pytest
import torch

from fakes import TINY, assert_same_state, learnable_splits, model_state, write_fake_mnist
from datadiet.cli import main
from datadiet.config import TrainConfig
from datadiet.data.dataset import DatasetSplits
from datadiet.data.transforms import Normalizer
from datadiet.errors import CheckpointError, ConfigError, NonFiniteLossError
from datadiet.training import (available_steps, correct_per_example, init_model, load_checkpoint, lr_at, restore,
                               train)




def test_schedule_decays_by_0_2_at_30_60_80_percent():
    cfg = TrainConfig(lr=0.1)
    lrs = [lr_at(s, 100, cfg) for s in (0, 29, 30, 59, 60, 79, 80, 99)]
    assert lrs == pytest.approx([0.1, 0.1, 0.02, 0.02, 0.004, 0.004, 0.0008, 0.0008])


def test_matched_budget_is_independent_of_subset_size():
    cfg = TrainConfig(epochs=200, batch_size=128)
    assert cfg.total_steps(train_size=50_000, full_size=50_000) == 78_000  # the paper's CIFAR-10 count
    assert cfg.total_steps(train_size=10_000, full_size=50_000) == 78_000
    per_subset = TrainConfig(epochs=200, batch_size=128, budget="epochs")
    assert per_subset.total_steps(train_size=10_000, full_size=50_000) == 200 * 78
    assert TrainConfig(steps=7).total_steps(train_size=1, full_size=9) == 7


def test_pruned_run_takes_the_same_number_of_steps():
    splits = learnable_splits()
    cfg = TrainConfig(epochs=1, **TINY)
    full = train(cfg, splits, evaluate_test=False)
    pruned = train(cfg, splits, positions=torch.arange(0, 256, 4), evaluate_test=False)
    assert full.steps == pruned.steps == 16
    assert pruned.epochs_seen == pytest.approx(4.0)


def test_training_learns_a_learnable_task():
    # No flips: a mirror swaps the left and right quadrants, i.e. the classes.
    result = train(TrainConfig(epochs=6, lr=0.05, flip=False, **TINY), learnable_splits())
    assert result.test_accuracy > 0.9
    assert result.train_loss[-1][1] < result.train_loss[0][1]


def test_a_run_reports_every_class_of_its_test_split():
    splits = learnable_splits()
    result = train(TrainConfig(steps=4, **TINY), splits)
    labels = splits.test.labels.numpy()
    correct = correct_per_example(result.model, splits.test.images, splits.test.labels,
                                  Normalizer(splits.mean, splits.std), TrainConfig(**TINY))
    recall = [correct[labels == c].mean() for c in range(4)]  # every class is in this test split
    assert list(result.test_classes.recall) == pytest.approx(recall)
    summary = result.summary()
    assert summary["test_balanced_accuracy"] == pytest.approx(sum(recall) / 4)
    assert summary["test_worst_class_accuracy"] == pytest.approx(min(recall))
    assert summary["test_majority_rate"] == pytest.approx(max(np.bincount(labels)) / len(labels))
    assert train(TrainConfig(steps=1, **TINY), splits, evaluate_test=False).test_classes is None


def test_datadiet_train_prints_balanced_and_worst_class_accuracy_beside_accuracy(tmp_path, capsys):
    root = write_fake_mnist(tmp_path / "data", n_train=32, n_test=16)
    assert main(["train", "--dataset", "mnist", "--data-root", str(root), "--steps", "2", "--model", "smallcnn",
                 "--width", "0.25", "--batch-size", "8", "--out", str(tmp_path / "run")]) == 0
    stdout = capsys.readouterr().out
    result = json.loads((tmp_path / "run" / "result.json").read_text())["result"]
    shown = re.search(r"final test accuracy ([\d.]+) \(balanced ([\d.]+), worst class ([\d.]+); majority-class "
                      r"rate ([\d.]+)\)", stdout)
    assert shown, stdout
    keys = ("test_accuracy", "test_balanced_accuracy", "test_worst_class_accuracy", "test_majority_rate")
    assert [float(v) for v in shown.groups()] == pytest.approx([result[k] for k in keys], abs=5e-5)


def test_same_seed_gives_bit_identical_weights_and_a_different_seed_does_not():
    splits = learnable_splits()
    a = train(TrainConfig(steps=10, seed=3, **TINY), splits)
    b = train(TrainConfig(steps=10, seed=3, **TINY), splits)
    c = train(TrainConfig(steps=10, seed=4, **TINY), splits)
    assert_same_state(model_state(a.model), model_state(b.model))
    assert a.test_accuracy == b.test_accuracy
    assert not torch.equal(a.model.classifier[-1].weight, c.model.classifier[-1].weight)


def test_checkpoint_step_0_is_the_initialization_and_step_k_the_weights_at_k(tmp_path):
    splits = learnable_splits()
    cfg = TrainConfig(steps=12, **TINY)
    seen = {}
    result = train(cfg, splits, checkpoint_dir=tmp_path, checkpoint_steps=[0, 5, 12],
                   hooks={5: lambda m, s: seen.setdefault(s, model_state(m))})
    assert available_steps(tmp_path) == [0, 5, 12]

    init = init_model(cfg, splits.train)
    model = copy.deepcopy(result.model)
    # Regression for the Flax bug (Kirsch 2023): step 0 must NOT fall back to the latest checkpoint.
    assert restore(model, tmp_path, 0) == 0
    assert_same_state(model_state(model), model_state(init))
    restore(model, tmp_path, 5)
    assert_same_state(model_state(model), seen[5])
    assert restore(model, tmp_path, None) == 12
    assert_same_state(model_state(model), model_state(result.model))
    assert load_checkpoint(tmp_path, 5)["optimizer"]["state"]  # momentum buffers are kept too


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="No checkpoints"):
        load_checkpoint(tmp_path)
    train(TrainConfig(steps=2, **TINY), learnable_splits(), checkpoint_dir=tmp_path, checkpoint_steps=[2],
          evaluate_test=False)
    with pytest.raises(CheckpointError, match=r"No checkpoint for step 0 .*available: \[2\]"):
        load_checkpoint(tmp_path, 0)
    (tmp_path / "step_000000002.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="Cannot read checkpoint"):
        load_checkpoint(tmp_path, 2)


def test_hooks_see_the_model_in_eval_mode_and_do_not_change_training():
    splits = learnable_splits()
    cfg = TrainConfig(steps=8, **TINY)
    modes = []

    def hook(model, step):
        modes.append((step, model.training))
        model(torch.randn(3, 1, 12, 12))  # an eval-mode forward must not touch BN statistics

    with_hooks = train(cfg, splits, hooks={0: hook, 4: hook, 8: hook}, evaluate_test=False)
    without = train(cfg, splits, evaluate_test=False)
    assert modes == [(0, False), (4, False), (8, False)]
    assert_same_state(model_state(with_hooks.model), model_state(without.model))


def test_steps_outside_the_run_are_rejected():
    with pytest.raises(ConfigError, match=r"outside this run's 0..3 steps"):
        train(TrainConfig(steps=3, **TINY), learnable_splits(), checkpoint_steps=[4])


def test_correctness_is_recorded_for_every_presentation():
    splits = learnable_splits(n_train=64)
    result = train(TrainConfig(steps=12, **TINY), splits, record_correctness=True, evaluate_test=False)
    ids, correct = result.correctness.events()
    assert len(ids) == 12 * 16 and correct.dtype == torch.bool
    assert torch.bincount(ids, minlength=64).tolist() == [3] * 64  # 3 epochs of 4 full batches
    history = result.correctness.history(splits.train.ids)
    assert history.shape == (64, 3) and set(history.unique().tolist()) <= {0, 1}
    for i in (0, 17, 63):  # each row lists that example's presentations in time order
        assert history[i].tolist() == correct[ids == i].to(torch.int8).tolist()


def test_correctness_history_pads_unequal_presentation_counts():
    from datadiet.training import CorrectnessLog

    log = CorrectnessLog()
    log.record(torch.tensor([7, 3]), torch.tensor([True, False]))
    log.record(torch.tensor([7]), torch.tensor([False]))
    assert log.history(torch.tensor([3, 7, 9])).tolist() == [[0, -1], [1, 0], [-1, -1]]


def test_nan_loss_stops_with_a_clear_error():
    splits = learnable_splits()
    poisoned = DatasetSplits(splits.train, splits.test, mean=(float("nan"),), std=splits.std)
    with pytest.raises(NonFiniteLossError, match="NaN or infinite by step 1 .*lower the learning rate"):
        train(TrainConfig(steps=5, **TINY), poisoned)


def test_empty_subset_is_rejected():
    with pytest.raises(ConfigError, match="empty subset"):
        train(TrainConfig(steps=1, **TINY), learnable_splits(), positions=[])


# ----------------------------------------------------------------------------- resuming (start_from)

@pytest.mark.parametrize("k", [0, 16, 21, 40])  # the start, an epoch boundary, mid-epoch, the very end
def test_resuming_a_checkpoint_with_its_own_seed_reproduces_the_uninterrupted_run(tmp_path, k):
    from datadiet.training import StartFrom

    splits = learnable_splits()  # 256 examples, batch 16: 16 steps per epoch; augmentation on
    cfg = TrainConfig(steps=40, milestones=(0.3, 0.6), seed=5, **TINY)
    whole = train(cfg, splits, checkpoint_dir=tmp_path, checkpoint_steps=[k], record_correctness=True,
                  evaluate_test=False)
    resumed = train(cfg, splits, start_from=StartFrom.from_checkpoint(tmp_path, k), record_correctness=True,
                    evaluate_test=False)
    assert resumed.steps == whole.steps == 40
    assert_same_state(model_state(resumed.model), model_state(whole.model))  # parameters and BN buffers, bit for bit
    ids_whole, _ = whole.correctness.events()
    ids_resumed, _ = resumed.correctness.events()
    assert torch.equal(ids_resumed, ids_whole[k * 16:])  # the same batches after step k


def test_a_child_with_another_seed_follows_that_seeds_data_order_from_step_k(tmp_path):
    from datadiet.training import StartFrom

    splits = learnable_splits()
    parent_cfg = TrainConfig(steps=40, seed=5, **TINY)
    child_cfg = TrainConfig(steps=40, seed=9, **TINY)
    parent = train(parent_cfg, splits, checkpoint_dir=tmp_path, checkpoint_steps=[21], evaluate_test=False)
    seen = {}
    child = train(child_cfg, splits, start_from=StartFrom.from_checkpoint(tmp_path, 21), record_correctness=True,
                  evaluate_test=False, hooks={21: lambda m, s: seen.setdefault(s, model_state(m))})
    other = train(child_cfg, splits, record_correctness=True, evaluate_test=False)  # seed 9 from its own init
    assert_same_state(seen[21], load_checkpoint(tmp_path, 21)["model"])  # the child starts from the parent's state
    assert torch.equal(child.correctness.events()[0], other.correctness.events()[0][21 * 16:])
    assert not torch.equal(child.model.classifier[-1].weight, parent.model.classifier[-1].weight)


def test_resuming_uses_the_full_runs_learning_rate_schedule(tmp_path):
    from datadiet.training import StartFrom

    splits = learnable_splits()
    cfg = TrainConfig(steps=20, milestones=(0.5,), lr_decay=0.0, **TINY)  # no learning after step 10
    train(cfg, splits, checkpoint_dir=tmp_path, checkpoint_steps=[12], evaluate_test=False)
    start = StartFrom.from_checkpoint(tmp_path, 12)
    resumed = train(cfg, splits, start_from=start, evaluate_test=False)
    params = {k: v for k, v in start.model.items() if "running" not in k and "num_batches" not in k}
    # lr 0 from step 10 on: weight decay and momentum act through the lr, so parameters stay put
    for name, value in params.items():
        assert torch.equal(resumed.model.state_dict()[name], value), name


def test_bad_resumes_are_clear_errors(tmp_path):
    from datadiet.training import StartFrom

    splits = learnable_splits()
    cfg = TrainConfig(steps=10, **TINY)
    train(cfg, splits, checkpoint_dir=tmp_path, checkpoint_steps=[6], evaluate_test=False)
    start = StartFrom.from_checkpoint(tmp_path, 6)
    with pytest.raises(ConfigError, match="Cannot resume at step 6: this run takes steps 0..4"):
        train(TrainConfig(steps=4, **TINY), splits, start_from=start)
    with pytest.raises(ConfigError, match=r"outside this run's 6..10 steps"):
        train(cfg, splits, start_from=start, hooks={3: lambda m, s: None})
    with pytest.raises(ConfigError, match="does not fit this model"):
        train(TrainConfig(steps=10, **{**TINY, "width": 0.5}), splits, start_from=start)


def test_ensure_checkpoints_continues_the_saved_run_instead_of_starting_over(tmp_path, monkeypatch):
    from datadiet.training import engine, ensure_checkpoints
    from datadiet.training.checkpoints import checkpoint_path

    splits = learnable_splits()
    cfg = TrainConfig(steps=40, seed=5, **TINY)
    assert ensure_checkpoints(cfg, splits, tmp_path / "a", [10, 20, 30], log=lambda _: None) == [10, 20, 30]
    first = load_checkpoint(tmp_path / "a", 30)["model"]
    checkpoint_path(tmp_path / "a", 30).unlink()  # as if the run had been killed before step 30
    starts, real_train = [], engine.train

    def spy(config, splits, **kwargs):
        starts.append(None if kwargs["start_from"] is None else kwargs["start_from"].step)
        return real_train(config, splits, **kwargs)

    monkeypatch.setattr(engine, "train", spy)
    seen = []
    saved = ensure_checkpoints(cfg, splits, tmp_path / "a", [10, 20, 30, 35], hooks={25: lambda m, s: seen.append(s)},
                               log=lambda _: None)
    assert saved == [30, 35] and starts == [20] and seen == [25]  # from the checkpoint before step 25
    assert_same_state(load_checkpoint(tmp_path / "a", 30)["model"], first)  # the same run, bit for bit
    assert ensure_checkpoints(cfg, splits, tmp_path / "a", [10, 35], log=lambda _: None) == [] and starts == [20]
