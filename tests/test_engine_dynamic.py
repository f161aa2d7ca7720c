"""The engine with dynamic pruning (InfoBatch, RS2) and compute accounting: what is trained, at which learning
rate, with which loss weights, what it costs, and that a killed run resumes bit-identically."""
import re
from dataclasses import dataclass

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fakes import TINY, assert_same_state, learnable_splits, model_state
from datadiet.config import TrainConfig, resolve_flip
from datadiet.dynamic import InfoBatchParameters, RS2Parameters
from datadiet.data.transforms import Normalizer
from datadiet.errors import ConfigError
from datadiet.training import (BatchStream, StartFrom, engine, flops_per_example, init_model, load_checkpoint, lr_at,
                               lr_at_progress, place_model, to_layout, train)
from datadiet.training.step import EagerStep

N = 256  # learnable_splits' training rows: 16 full batches of 16



@pytest.fixture(scope="module")
def splits():
    return learnable_splits()


@pytest.fixture
def steps_taken(monkeypatch):
    """Every call of the engine's SGD step, as the step saw it: batch size, learning rate, loss weights."""
    calls = []
    real = engine.make_step

    def make(*args, **kwargs):
        step = real(*args, **kwargs)

        def spy(x, y, lr, weight=None):
            calls.append({"batch": len(y), "lr": lr, "weight": None if weight is None else weight.clone()})
            return step(x, y, lr, weight)
        return spy

    monkeypatch.setattr(engine, "make_step", make)
    return calls


# ----------------------------------------------------------------------------- static runs are unchanged


def _old_engine_loop(config, splits, positions=None):
    """The engine's training loop as it was before dynamic pruning, written out: the same seeds, stream and
    schedule, and the unweighted mean cross-entropy."""
    config = resolve_flip(config, user_data=False)
    rows = torch.arange(len(splits.train)) if positions is None else positions
    images, labels = splits.train.images[rows], splits.train.labels[rows]
    plan = config.schedule(train_size=len(rows), full_size=len(splits.train))
    model = place_model(init_model(config, splits.train), config, torch.device("cpu"))
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum, nesterov=config.nesterov,
                                weight_decay=config.weight_decay)
    normalize, losses = Normalizer(splits.mean, splits.std), []
    model.train()
    for step, (idx, x) in enumerate(BatchStream(images, plan, config).batches(0, plan.total), 1):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step - 1, plan.total, config)
        loss = F.cross_entropy(model(to_layout(normalize(x), config)).float(), labels[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.detach())
    per_epoch = plan.per_epoch
    epoch_means = [float(torch.stack(losses[i:i + per_epoch]).mean()) for i in range(0, len(losses), per_epoch)]
    return model, epoch_means


def test_a_static_run_is_bit_identical_to_the_loop_before_dynamic_pruning(splits):
    positions = torch.arange(0, N, 3)  # 86 rows: batches of 16, 5 per epoch, 6 rows dropped each epoch
    config = TrainConfig(epochs=1, dynamic="none", **TINY)
    result = train(config, splits, positions=positions, evaluate_test=False)
    model, epoch_means = _old_engine_loop(config, splits, positions)
    assert_same_state(model_state(result.model), model_state(model))
    assert [loss for _, loss in result.train_loss] == epoch_means[:len(result.train_loss)]
    assert result.steps == 16 and result.passes_per_epoch == [80, 80, 80, 16]  # 5 + 5 + 5 + 1 batches of 16


# ----------------------------------------------------------------------------- what is trained, and its cost


@pytest.mark.parametrize("recipe", [dict(epochs=2), dict(epochs=3, dynamic="infobatch"),
                                    dict(epochs=3, dynamic=RS2Parameters(0.3))], ids=["static", "infobatch", "rs2"])
def test_sample_passes_are_the_examples_of_the_batches_actually_trained(splits, steps_taken, recipe):
    result = train(TrainConfig(**recipe, **TINY), splits, evaluate_test=False, record_correctness=True)
    trained = sum(call["batch"] for call in steps_taken)
    assert result.cost.sample_passes == trained == sum(result.passes_per_epoch)
    assert result.steps == len(steps_taken)
    assert len(result.correctness.events()[0]) == trained  # the forgetting log sees every presentation
    assert result.cost.forward_passes == 0 and 0 < result.cost.wall_seconds < result.wall_seconds
    train_flops, _ = flops_per_example(result.model, tuple(splits.train.shape), splits.train.num_classes)
    assert result.cost.flops == trained * train_flops
    summary = result.summary()
    assert summary["cost"] == result.cost.to_dict() and summary["passes_per_epoch"] == result.passes_per_epoch
    assert len(result.passes_per_epoch) == recipe["epochs"]


def test_infobatch_trains_fewer_examples_and_its_last_epoch_on_everything(splits, steps_taken):
    result = train(TrainConfig(epochs=4, dynamic=InfoBatchParameters(delta=0.75), **TINY), splits, evaluate_test=False)
    per_epoch = result.passes_per_epoch
    assert per_epoch[0] == N and per_epoch[-1] == N  # nothing to prune by yet; annealed from epoch 4 × 0.75 = 3
    assert all(p < N for p in per_epoch[1:3]) and all(p % 16 == 0 for p in per_epoch)
    assert result.steps == sum(per_epoch) // 16 and result.epochs_seen == 4.0


def test_rs2_trains_a_fresh_fraction_each_epoch_within_a_static_subset(splits):
    subset = torch.arange(0, N, 2)  # 128 rows; RS2 keeps 64 of them per epoch
    result = train(TrainConfig(epochs=3, budget="epochs", dynamic=RS2Parameters(0.5), **TINY), splits, positions=subset,
                   evaluate_test=False, record_correctness=True)
    ids = result.correctness.events()[0]
    assert result.passes_per_epoch == [64, 64, 64] and result.steps == 12
    assert set(ids.tolist()) <= set(subset.tolist())
    assert len(set(ids[:128].tolist())) == 128  # epochs 0 and 1 cover the subset once: no example twice first


def test_a_dynamic_run_on_a_subset_with_a_matched_budget_is_refused(splits):
    with pytest.raises(ConfigError, match="--budget epochs"):
        train(TrainConfig(epochs=2, dynamic=RS2Parameters(0.5), **TINY), splits, positions=torch.arange(100))


# ----------------------------------------------------------------------------- the learning rate follows progress


def test_the_learning_rate_follows_progress_through_the_epochs(splits, steps_taken):
    # RS2 keeps 128 of 256 rows: 8 batches per epoch, 4 epochs. Milestones 0.3, 0.6, 0.8 of 4 epochs are reached
    # at epoch 1.2 (batch 1.6 of 8, so from batch 2 on), 2.4 (from batch 4 of epoch 2) and 3.2 (batch 2 of epoch 3).
    train(TrainConfig(epochs=4, dynamic=RS2Parameters(0.5), lr=0.1, lr_decay=0.2, **TINY), splits, evaluate_test=False)
    expected = [0.1] * 8 + [0.1] * 2 + [0.02] * 6 + [0.02] * 4 + [0.004] * 4 + [0.004] * 2 + [0.0008] * 6
    assert [call["lr"] for call in steps_taken] == pytest.approx(expected, rel=1e-12)


def test_lr_at_progress_by_hand():
    config = TrainConfig(epochs=10, lr=1.0, lr_decay=0.5, milestones=(0.25, 0.5))
    # 0.25 of 10 epochs = epoch 2.5: in an epoch of 4 batches, batch 2 is the first at or past it.
    assert [lr_at_progress(2, b, 4, config) for b in range(4)] == [1.0, 1.0, 0.5, 0.5]
    assert lr_at_progress(2, 4, 9, config) == 1.0 and lr_at_progress(2, 5, 9, config) == 0.5  # 2.44 < 2.5 <= 2.56
    assert lr_at_progress(4, 6, 7, config) == 0.5 and lr_at_progress(5, 0, 3, config) == 0.25
    assert lr_at_progress(0, 0, 1, TrainConfig(epochs=10, milestones=(0.0,))) == pytest.approx(0.1 * 0.2)


# ----------------------------------------------------------------------------- InfoBatch's weights reach the loss


def test_infobatch_passes_its_weights_to_the_step_and_the_last_epoch_none(splits, steps_taken):
    result = train(TrainConfig(epochs=3, dynamic=InfoBatchParameters(0.5, delta=0.6), **TINY), splits,
                   evaluate_test=False)
    weights = [call["weight"] for call in steps_taken]
    epoch_of = np.repeat(np.arange(3), [p // 16 for p in result.passes_per_epoch])
    assert all(w is not None and w.dtype == torch.float32 for w in weights)
    assert all(torch.equal(w, torch.ones(16)) for w, e in zip(weights, epoch_of) if e != 1)  # epoch 0; annealed 2
    pruned = torch.cat([w for w, e in zip(weights, epoch_of) if e == 1])
    assert set(pruned.unique().tolist()) == {1.0, 2.0} and (pruned == 2.0).sum() > 0  # 1 / (1 - 0.5) = 2


def test_a_weighted_step_minimizes_the_mean_of_weight_times_loss():
    torch.manual_seed(0)
    model, x, y = torch.nn.Linear(5, 3), torch.randn(8, 5), torch.randint(0, 3, (8,))
    weight = torch.tensor([2.0, 1.0, 2.0, 2.0, 1.0, 1.0, 2.0, 1.0])
    reference = torch.nn.Linear(5, 3)
    reference.load_state_dict(model.state_dict())
    step = EagerStep(model, torch.optim.SGD(model.parameters(), lr=0.5), torch.autocast("cpu", enabled=False))
    _, loss, per_example = step(x, y, 0.5, weight)

    # By hand, in float64: loss_i = logsumexp(z_i) - z_i[y_i]; the loss is sum_i w_i loss_i / 8.
    w64, b64 = reference.weight.detach().double().requires_grad_(), reference.bias.detach().double().requires_grad_()
    z = x.double() @ w64.T + b64
    by_hand = torch.logsumexp(z, 1) - z[torch.arange(8), y]
    weighted = (weight.double() * by_hand).sum() / 8
    weighted.backward()
    assert torch.allclose(per_example.double(), by_hand.detach(), atol=1e-6)
    assert float(loss) == pytest.approx(weighted.item(), abs=1e-6)
    assert torch.allclose(model.weight.double(), w64.detach() - 0.5 * w64.grad, atol=1e-6)
    assert torch.allclose(model.bias.double(), b64.detach() - 0.5 * b64.grad, atol=1e-6)


# ----------------------------------------------------------------------------- kill and resume, seeds, RNG


INFOBATCH = dict(epochs=4, dynamic="infobatch", **TINY)


@pytest.fixture(scope="module")
def uninterrupted(splits):
    return train(TrainConfig(**INFOBATCH), splits, evaluate_test=False).steps


@pytest.mark.parametrize("k", [16, 23], ids=["epoch boundary", "mid-epoch"])
def test_a_killed_infobatch_run_resumes_bit_identically(tmp_path, splits, uninterrupted, k):
    config, end = TrainConfig(**INFOBATCH), uninterrupted
    whole = train(config, splits, checkpoint_dir=tmp_path / "whole", checkpoint_steps=[k, end], evaluate_test=False)
    train(config, splits, checkpoint_dir=tmp_path / "killed", checkpoint_steps=[k], stop_after=k, evaluate_test=False)
    resumed = train(config, splits, start_from=StartFrom.from_checkpoint(tmp_path / "killed", k),
                    checkpoint_dir=tmp_path / "resumed", checkpoint_steps=[end], evaluate_test=False)

    assert resumed.steps == whole.steps == end
    assert_same_state(model_state(resumed.model), model_state(whole.model))
    saved, finished = load_checkpoint(tmp_path / "resumed", end), load_checkpoint(tmp_path / "whole", end)
    for key in ("loss", "last_seen", "rows", "weight"):  # the loss table and the last epoch's draw
        assert torch.equal(saved["dynamic"]["pruner"][key], finished["dynamic"]["pruner"][key]), key
    assert saved["dynamic"]["pruner"]["loss"].dtype == torch.float64
    later = [entry for entry in whole.train_loss if entry[0] > k]
    # Epoch-end losses; the resumed run's first epoch mean covers only its own steps when k is mid-epoch.
    assert [s for s, _ in resumed.train_loss] == [s for s, _ in later]
    assert resumed.train_loss[1:] == later[1:] and (k != 16 or resumed.train_loss[0] == later[0])
    assert sum(resumed.passes_per_epoch) == resumed.cost.sample_passes == sum(whole.passes_per_epoch) - 16 * k


def test_a_finished_infobatch_run_resumed_at_its_end_stays_there(tmp_path, splits, uninterrupted):
    """Resumed from its own last checkpoint, the run trains nothing: it reports the step it stands at (not the budget's
    upper bound), and a hook beyond that step is an error rather than silently skipped."""
    config, end = TrainConfig(**INFOBATCH), uninterrupted
    train(config, splits, checkpoint_dir=tmp_path, checkpoint_steps=[end], evaluate_test=False)
    again = train(config, splits, start_from=StartFrom.from_checkpoint(tmp_path, end), evaluate_test=False)
    assert again.steps == end and sum(again.passes_per_epoch) == 0
    with pytest.raises(ConfigError):
        train(config, splits, start_from=StartFrom.from_checkpoint(tmp_path, end), hooks={end + 1: lambda m, s: None},
              evaluate_test=False)


def test_a_dynamic_run_cannot_resume_from_a_checkpoint_without_its_pruner(tmp_path, splits):
    train(TrainConfig(epochs=1, **TINY), splits, checkpoint_dir=tmp_path, checkpoint_steps=[5], evaluate_test=False)
    with pytest.raises(ConfigError, match="pruner"):
        train(TrainConfig(**INFOBATCH), splits, start_from=StartFrom.from_checkpoint(tmp_path, 5))


def _left_out_in_epoch_1(tmp_path, splits, seed):
    train(TrainConfig(seed=seed, **INFOBATCH), splits, checkpoint_dir=tmp_path / str(seed), checkpoint_steps=[17],
          stop_after=17, evaluate_test=False)
    rows = load_checkpoint(tmp_path / str(seed), 17)["dynamic"]["pruner"]["rows"]  # epoch 1's rows, drawn at step 17
    return set(range(N)) - set(rows.tolist())


def test_different_seeds_prune_different_rows(tmp_path, splits):
    a, b = _left_out_in_epoch_1(tmp_path, splits, 0), _left_out_in_epoch_1(tmp_path, splits, 1)
    assert a and b and a != b


def test_dynamic_runs_leave_the_global_generators_alone(splits):
    np.random.seed(123)
    torch.manual_seed(123)
    numpy_state, torch_state = np.random.get_state(), torch.get_rng_state()
    for recipe in (dict(epochs=2, dynamic="infobatch"), dict(epochs=2, dynamic=RS2Parameters(0.5))):
        train(TrainConfig(**recipe, **TINY), splits, evaluate_test=False)
    after = np.random.get_state()
    assert after[0] == numpy_state[0] and np.array_equal(after[1], numpy_state[1]) and after[2:] == numpy_state[2:]
    assert torch.equal(torch.get_rng_state(), torch_state)


# ----------------------------------------------------------------------------- hooks and checkpoints count steps


def test_hooks_see_actual_steps_and_an_unreached_one_is_an_error(splits):
    seen = []
    result = train(TrainConfig(epochs=2, dynamic=RS2Parameters(0.5), **TINY), splits, evaluate_test=False,
                   hooks={s: lambda model, step: seen.append(step) for s in (0, 8, 16)})
    assert seen == [0, 8, 16] and result.steps == 16
    with pytest.raises(ConfigError, match="never reached"):  # InfoBatch prunes: it cannot take its most steps
        train(TrainConfig(**INFOBATCH), splits, hooks={64: lambda model, step: None}, evaluate_test=False)


# ----------------------------------------------------------------------------- a pruner of your own


@dataclass(frozen=True)
class EveryOtherParameters:
    phase: int = 0  # which half of the rows epoch 0 trains: 0 the even rows, 1 the odd; the halves then alternate


class EveryOther:
    """The simplest pruner: every other row, the other half the next epoch. It ignores losses (no ``learns``)."""

    def __init__(self, n: int, *, epochs: int, seed: int, phase: int = 0):
        self.n, self.phase = n, phase

    def epoch_rows(self, epoch: int) -> np.ndarray:
        return np.arange((self.phase + epoch) % 2, self.n, 2)

    def epoch_sizes(self) -> tuple[int, int]:
        return self.n // 2, (self.n + 1) // 2

    def state_dict(self) -> dict:
        return {"phase": self.phase}

    def load_state_dict(self, state: dict) -> None:
        assert state["phase"] == self.phase


def test_a_new_pruner_is_one_class_and_one_entry(monkeypatch, splits):
    """What ARCHITECTURE.md promises: registered in PRUNERS, a pruner trains through datadiet.train, its parameters
    are flags, its dict form loads back, and it is a method by name."""
    import argparse

    import datadiet
    from datadiet import dynamic
    from datadiet.config import add_arguments, from_arguments, from_dict, to_dict
    from datadiet.methods import DynamicMethod

    monkeypatch.setitem(dynamic.PRUNERS, "every-other", dynamic.Pruner(EveryOther, EveryOtherParameters))
    config = TrainConfig(epochs=2, dynamic=EveryOtherParameters(phase=1), **TINY)
    result = datadiet.train(config, splits, evaluate_test=False, record_correctness=True)
    ids = result.correctness.events()[0]  # the ids trained, in order (ids = row positions here)
    assert result.passes_per_epoch == [N // 2, N // 2] and result.steps == N // 16
    assert set(ids[:N // 2].tolist()) == set(range(1, N, 2)) and set(ids[N // 2:].tolist()) == set(range(0, N, 2))

    assert to_dict(config)["dynamic"] == {"name": "every-other", "phase": 1}
    assert from_dict(TrainConfig, to_dict(config)) == config
    assert TrainConfig(epochs=2, dynamic={"name": "every-other", "phase": 1}, **TINY) == config
    assert TrainConfig(epochs=2, dynamic="every-other", **TINY).dynamic == EveryOtherParameters(phase=0)
    parser = argparse.ArgumentParser()
    add_arguments(parser, TrainConfig)
    args = parser.parse_args(["--dynamic", "every-other", "--phase", "1", "--epochs", "2"])
    assert from_arguments(TrainConfig, args).dynamic == EveryOtherParameters(phase=1)
    with pytest.raises(ConfigError, match="--phase applies only to --dynamic every-other, not to --dynamic infobatch"):
        from_arguments(TrainConfig, parser.parse_args(["--dynamic", "infobatch", "--phase", "1", "--epochs", "2"]))
    assert DynamicMethod("every-other", 1).recipe(TrainConfig(epochs=2, **TINY)) == config
    assert str(DynamicMethod.parse("every-other:phase=1")) == "every-other"


def test_a_pruner_parameter_may_not_take_a_recipe_fields_name(monkeypatch):
    from datadiet import dynamic

    @dataclass(frozen=True)
    class Clashing:
        epochs: int = 1

    monkeypatch.setitem(dynamic.PRUNERS, "clashing", dynamic.Pruner(EveryOther, Clashing))
    with pytest.raises(ConfigError, match="a parameter named epochs, a TrainConfig field"):
        TrainConfig(epochs=2, dynamic="clashing")


# ----------------------------------------------------------------------------- configuration


@pytest.mark.parametrize("fields, flag", [
    (dict(dynamic="sometimes"), "--dynamic must be one of none, infobatch, rs2, got 'sometimes'"),
    (dict(dynamic="rs2"), "--dynamic rs2 needs --fraction"),
    (dict(dynamic={"name": "rs2", "fraction": 0.0}), "--fraction"),
    (dict(dynamic={"name": "rs2", "fraction": 1.5}), "--fraction"),
    (dict(dynamic={"name": "none", "fraction": 0.5}), "--fraction applies only to --dynamic rs2, not to --dynamic none"),
    (dict(dynamic={"name": "infobatch", "fraction": 0.5}), "--fraction applies only to --dynamic rs2"),
    (dict(dynamic={"prune_ratio": 0.3}), "--prune-ratio applies only to --dynamic infobatch"),
    (dict(dynamic={"name": "rs2", "fraction": 0.5, "delta": 0.5}), "--delta applies only to --dynamic infobatch, "
                                                                   "not to --dynamic rs2"),
    (dict(dynamic={"name": "infobatch", "gamma": 2}), "--dynamic infobatch has no parameter 'gamma'"),
    (dict(dynamic={"name": "infobatch", "prune_ratio": 1.0}), "--prune-ratio"),
    (dict(dynamic={"name": "infobatch", "delta": 0.0}), "--delta"),
    (dict(dynamic=InfoBatchParameters, epochs=2), "no registered pruner's parameters"),
    (dict(dynamic="infobatch", steps=100), "--steps"),
    (dict(dynamic="infobatch", epochs=2.5), "--epochs"),
    (dict(dynamic={"name": "rs2", "fraction": 0.5}, epochs=0.5), "--epochs"),
    (dict(precision="fp16"), "--precision"),
])
def test_bad_dynamic_and_precision_settings_name_the_flag(fields, flag):
    with pytest.raises(ConfigError, match=re.escape(flag)):
        TrainConfig(**fields)


def test_a_parameter_is_checked_when_its_parameters_are_built():
    with pytest.raises(ConfigError, match=re.escape("--prune-ratio must be a number in [0, 1)")):
        InfoBatchParameters(prune_ratio=1.0)
    with pytest.raises(ConfigError, match=re.escape("--fraction must be a number in (0, 1]")):
        RS2Parameters(0.0)
    with pytest.raises(TypeError):
        RS2Parameters()  # RS2's fraction has no default (TrainConfig(dynamic="rs2") says which flag is missing)


def test_the_pruner_is_one_field_in_every_spelling():
    """Parameters, a name (its defaults), the dict form: the same frozen, hashable recipe."""
    as_parameters = TrainConfig(epochs=3, dynamic=InfoBatchParameters(0.3))
    assert TrainConfig(epochs=3, dynamic={"name": "infobatch", "prune_ratio": 0.3}) == as_parameters
    assert TrainConfig(epochs=3, dynamic="infobatch") == TrainConfig(epochs=3, dynamic=InfoBatchParameters())
    assert TrainConfig(dynamic="none") == TrainConfig(dynamic=None) == TrainConfig()
    assert as_parameters.pruner_name == "infobatch" and TrainConfig().pruner_name == "none"
    assert len({as_parameters, TrainConfig(epochs=3, dynamic=InfoBatchParameters(0.3)), TrainConfig()}) == 2
    assert not hasattr(as_parameters, "prune_ratio") and not hasattr(as_parameters, "keep")  # no flat fields


@pytest.mark.parametrize("flat, dynamic", [
    ({"dynamic": "none", "prune_ratio": 0.5, "delta": 0.875, "keep": None}, None),
    ({"prune_ratio": 0.5, "delta": 0.875, "keep": None}, None),
    ({"dynamic": "infobatch", "prune_ratio": 0.3, "delta": 0.5, "keep": None}, InfoBatchParameters(0.3, 0.5)),
    ({"dynamic": "rs2", "prune_ratio": 0.5, "delta": 0.875, "keep": 0.25}, RS2Parameters(0.25)),
    ({"dynamic": "rs2", "keep": 0.25}, RS2Parameters(0.25)),
])
def test_a_flat_config_of_an_earlier_version_loads(flat, dynamic):
    """config.json and run records written before pruners had their own parameters (RS2's fraction was keep)."""
    from datadiet.config import from_dict

    assert from_dict(TrainConfig, {"epochs": 3, **flat}) == TrainConfig(epochs=3, dynamic=dynamic)


@pytest.mark.parametrize("flat, message", [
    ({"dynamic": "none", "keep": 0.5}, "--fraction applies only to --dynamic rs2, not to --dynamic none"),
    ({"dynamic": "rs2", "keep": None}, "--dynamic rs2 needs --fraction"),
    ({"dynamic": "rs2", "keep": 0.5, "prune_ratio": 0.3}, "--prune-ratio applies only to --dynamic infobatch"),
    ({"dynamic": "slimming"}, "--dynamic must be one of none, infobatch, rs2, got 'slimming'"),
])
def test_an_edited_flat_config_is_refused_naming_the_flag(flat, message):
    from datadiet.config import from_dict

    with pytest.raises(ConfigError, match=re.escape(message)):
        from_dict(TrainConfig, {"epochs": 3, **flat})


def test_new_fields_at_their_defaults_keep_old_identities():
    from datadiet.config import DataConfig
    from datadiet.runs.identity import identity
    from datadiet.runs.sweep import RunSpec

    # Computed before the fields existed.
    assert RunSpec(DataConfig(), TrainConfig(), "random", 0.5, None, "abc").run_id == "fe34caf9045b024dbffd"
    old = {"train": TrainConfig(epochs=4, width=0.5), "data": DataConfig(subset=8000)}
    assert identity(old) == "654884af3f43be967bb7"
    changed = [TrainConfig(epochs=4, width=0.5, **fields) for fields in (
        dict(dynamic=RS2Parameters(0.5)), dict(dynamic="infobatch"), dict(dynamic=InfoBatchParameters(0.3)),
        dict(precision="bf16"))]
    ids = {identity({"train": t, "data": DataConfig(subset=8000)}) for t in changed}
    assert len(ids) == 4 and "654884af3f43be967bb7" not in ids


# ----------------------------------------------------------------------------- on a GPU

requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@requires_cuda
def test_a_graphed_weighted_step_computes_what_the_eager_one_does():
    from datadiet.training.step import GraphedStep

    torch.manual_seed(0)
    models = [torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3)).cuda() for _ in "ab"]
    models[1].load_state_dict(models[0].state_dict())
    graphed = GraphedStep(models[0], torch.optim.SGD(models[0].parameters(), lr=0.1, momentum=0.9), None)
    eager = EagerStep(models[1], torch.optim.SGD(models[1].parameters(), lr=0.1, momentum=0.9),
                      torch.autocast("cuda", enabled=False))
    for i in range(5):
        x, y = torch.randn(16, 6, device="cuda"), torch.randint(0, 3, (16,), device="cuda")
        weight = torch.where(torch.rand(16, device="cuda") < 0.5, 2.0, 1.0)
        lr = 0.1 / (1 + i // 2)  # two learning rates: two recorded graphs
        (_, loss_g, per_g), (_, loss_e, per_e) = graphed(x, y, lr, weight), eager(x, y, lr, weight)
        assert torch.allclose(per_g, per_e, atol=1e-5) and torch.allclose(loss_g, loss_e, atol=1e-5)
    for a, b in zip(models[0].parameters(), models[1].parameters()):
        assert torch.allclose(a, b, atol=1e-5)


@requires_cuda
def test_on_cuda_the_losses_reach_infobatch_once_per_epoch(splits):
    result = train(TrainConfig(epochs=3, dynamic=InfoBatchParameters(delta=0.6), device="cuda", **TINY), splits,
                   evaluate_test=False)
    assert result.passes_per_epoch[0] == N and result.passes_per_epoch[1] < N == result.passes_per_epoch[2]
