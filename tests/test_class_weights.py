"""--class-weights balanced: w_c = n / (K n_c) over the run's rows, the batch's mean of weighted losses; "none" is the
plain loss, to the bit."""
import pytest
import torch
import torch.nn.functional as F

from fakes import learnable_splits, tiny_dataset
from datadiet.config import TrainConfig, from_dict, to_dict
from datadiet.data.dataset import make_splits
from datadiet.errors import ConfigError
from datadiet.training import engine, train
from datadiet.training.step import EagerStep, balanced_class_weights, batch_loss


def test_balanced_weights_by_hand():
    # 4 rows of class 0, 1 of class 1, 1 of class 2: n = 6, K = 3
    assert balanced_class_weights(torch.tensor([0, 0, 0, 0, 1, 2]), 3).tolist() == pytest.approx([0.5, 2.0, 2.0])
    # class 2 absent from the rows: K counts the 2 classes present, class 2 weighs 0 (no row of it is ever weighted)
    assert balanced_class_weights(torch.tensor([0, 0, 0, 1]), 3).tolist() == pytest.approx([4 / 6, 2.0, 0.0])
    # balanced rows: every weight 1
    assert balanced_class_weights(torch.tensor([1, 0, 1, 0]), 2).tolist() == [1.0, 1.0]


def test_the_weights_average_one_over_the_rows():
    labels = torch.tensor([0] * 7 + [1] * 2 + [3] * 11)
    weights = balanced_class_weights(labels, 5)
    assert float(weights[labels].double().mean()) == pytest.approx(1.0, abs=1e-6)


def _hand_softmax_step(weight, bias, x, y, class_weight, lr):
    """One plain SGD step of a linear softmax classifier on the loss mean_i w[y_i] CE_i, with the gradient written
    out: dL/dlogits_i = w[y_i] / B (softmax_i - onehot_i); in float64, no autograd."""
    w, b, x = weight.double(), bias.double(), x.double()
    logits = x @ w.T + b
    p = torch.exp(logits - logits.max(1, keepdim=True).values)
    p = p / p.sum(1, keepdim=True)
    onehot = torch.zeros_like(p)
    onehot[torch.arange(len(y)), y] = 1.0
    g = class_weight.double()[y][:, None] * (p - onehot) / len(y)
    return w - lr * g.T @ x, b - lr * g.sum(0)


def test_one_balanced_step_equals_a_hand_weighted_step():
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    start_w, start_b = model.weight.detach().clone(), model.bias.detach().clone()
    x, y = torch.randn(6, 4), torch.tensor([0, 0, 0, 0, 1, 2])
    class_weight = torch.tensor([0.5, 2.0, 2.0])  # n / (K n_c) of these rows, by hand
    step = EagerStep(model, torch.optim.SGD(model.parameters(), lr=0.3), torch.autocast("cpu", enabled=False),
                     class_weight)
    step(x, y, 0.3)
    want_w, want_b = _hand_softmax_step(start_w, start_b, x, y, class_weight, 0.3)
    torch.testing.assert_close(model.weight.detach().double(), want_w, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(model.bias.detach().double(), want_b, atol=1e-6, rtol=1e-5)
    # and it is a different step from the unweighted one
    plain_w, _ = _hand_softmax_step(start_w, start_b, x, y, torch.ones(3), 0.3)
    assert not torch.allclose(model.weight.detach().double(), plain_w, atol=1e-4)


def test_the_loss_is_the_mean_of_weighted_losses_not_pytorch_s_weighted_mean():
    torch.manual_seed(1)
    logits, y = torch.randn(5, 3), torch.tensor([0, 0, 0, 1, 2])
    # weights of the run's rows (4, 1, 1 of the classes): this batch's weights sum to 5.5, not to its size 5 (over
    # all of the run's rows the two normalisations agree, since the weights' mean there is 1)
    class_weight = torch.tensor([0.5, 2.0, 2.0])
    loss, per_example = batch_loss(logits, y, None, class_weight)
    ce = -torch.log_softmax(logits.double(), 1)[torch.arange(5), y]
    assert float(loss) == pytest.approx(float((class_weight.double()[y] * ce).sum() / 5), rel=1e-6)
    # PyTorch's weight= divides by the sum of the batch's weights instead: not the convention chosen
    assert float(loss) != pytest.approx(float(F.cross_entropy(logits, y, weight=class_weight)), rel=1e-3)
    assert per_example is None  # no pruner asked for the per-example losses


def test_class_weights_combine_with_a_pruner_s_per_example_weights():
    torch.manual_seed(2)
    logits, y = torch.randn(4, 2), torch.tensor([0, 1, 1, 1])
    weight, class_weight = torch.tensor([1.0, 2.0, 1.0, 0.5]), torch.tensor([2.0, 2 / 3])
    loss, per_example = batch_loss(logits, y, weight, class_weight)
    ce = -torch.log_softmax(logits.double(), 1)[torch.arange(4), y]
    assert float(loss) == pytest.approx(float((weight.double() * class_weight.double()[y] * ce).mean()), rel=1e-6)
    torch.testing.assert_close(per_example.double(), ce)  # the pruner records the plain losses, unweighted


def test_no_class_weights_is_the_plain_mean_cross_entropy_to_the_bit():
    torch.manual_seed(3)
    logits, y = torch.randn(8, 4), torch.randint(0, 4, (8,))
    loss, per_example = batch_loss(logits, y, None, None)
    assert torch.equal(loss, F.cross_entropy(logits, y)) and per_example is None
    weight = torch.rand(8)
    loss, per_example = batch_loss(logits, y, weight, None)  # InfoBatch alone: as before
    ce = F.cross_entropy(logits, y, reduction="none")
    assert torch.equal(loss, (ce * weight).mean()) and torch.equal(per_example, ce)


def _captured_class_weight(monkeypatch):
    seen = []
    real = engine.make_step

    def spy(*args, **kwargs):
        seen.append(kwargs.get("class_weight"))
        return real(*args, **kwargs)
    monkeypatch.setattr(engine, "make_step", spy)
    return seen


RECIPE = dict(model="smallcnn", width=0.25, batch_size=4, eval_batch_size=16, steps=2, device="cpu")


def test_the_engine_weighs_by_the_run_s_own_rows(monkeypatch):
    seen = _captured_class_weight(monkeypatch)
    train_set = tiny_dataset(12, classes=3)  # label = id % 3
    splits = make_splits(train_set, tiny_dataset(6, classes=3, split="test"))
    # rows 0, 3, 6, 9 (class 0), 1 (class 1): n = 5, K = 2 present, class 2 absent
    train(TrainConfig(class_weights="balanced", **RECIPE), splits, positions=[0, 3, 6, 9, 1], evaluate_test=False)
    assert seen[-1].tolist() == pytest.approx([5 / 8, 5 / 2, 0.0])
    train(TrainConfig(**RECIPE), splits, positions=[0, 3, 6, 9, 1], evaluate_test=False)
    assert seen[-1] is None  # the default: the plain loss, no weights at all


def test_none_trains_exactly_as_the_default_and_balanced_trains_otherwise():
    splits = learnable_splits(n_train=40, n_test=8)
    rows = [i for i in range(40) if splits.train.labels[i] != 0 or i < 8]  # fewer of class 0
    runs = {name: train(TrainConfig(**RECIPE, **extra), splits, positions=rows, evaluate_test=False).model
            for name, extra in (("default", {}), ("none", {"class_weights": "none"}),
                                ("balanced", {"class_weights": "balanced"}))}
    for a, b in zip(runs["default"].parameters(), runs["none"].parameters()):
        assert torch.equal(a, b)
    assert any(not torch.equal(a, b) for a, b in zip(runs["default"].parameters(), runs["balanced"].parameters()))


def test_class_weights_with_a_dynamic_pruner_train():
    splits = learnable_splits(n_train=32, n_test=8)
    config = TrainConfig(**{**RECIPE, "steps": None}, epochs=2, dynamic="infobatch", class_weights="balanced")
    assert train(config, splits, evaluate_test=False).steps > 0


def test_the_recipe_records_it_and_old_recipes_load_without_it():
    config = TrainConfig(class_weights="balanced")
    assert to_dict(config)["class_weights"] == "balanced"
    assert from_dict(TrainConfig, to_dict(config)) == config
    old = {k: v for k, v in to_dict(TrainConfig()).items() if k != "class_weights"}
    assert from_dict(TrainConfig, old).class_weights == "none"
    with pytest.raises(ConfigError, match="--class-weights must be 'none' or 'balanced', got 'inverse'"):
        TrainConfig(class_weights="inverse")


def test_the_flag_takes_none_or_balanced():
    from datadiet.cli import build_parser

    args = build_parser().parse_args(["train", "--class-weights", "balanced"])
    assert args.class_weights == "balanced"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--class-weights", "inverse"])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_graphed_class_weighted_step_computes_what_the_eager_one_does():
    from datadiet.training.step import GraphedStep

    torch.manual_seed(0)
    models = [torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3)).cuda() for _ in "ab"]
    models[1].load_state_dict(models[0].state_dict())
    class_weight = torch.tensor([0.5, 2.0, 4.0], device="cuda")
    graphed = GraphedStep(models[0], torch.optim.SGD(models[0].parameters(), lr=0.1, momentum=0.9), None,
                          class_weight)
    eager = EagerStep(models[1], torch.optim.SGD(models[1].parameters(), lr=0.1, momentum=0.9),
                      torch.autocast("cuda", enabled=False), class_weight)
    for i in range(5):
        x, y = torch.randn(16, 6, device="cuda"), torch.randint(0, 3, (16,), device="cuda")
        weight = torch.where(torch.rand(16, device="cuda") < 0.5, 2.0, 1.0)  # with a pruner's weights as well
        lr = 0.1 / (1 + i // 2)  # two learning rates: two recorded graphs
        (_, loss_g, per_g), (_, loss_e, per_e) = graphed(x, y, lr, weight), eager(x, y, lr, weight)
        assert torch.allclose(per_g, per_e, atol=1e-5) and torch.allclose(loss_g, loss_e, atol=1e-5)
    for a, b in zip(models[0].parameters(), models[1].parameters()):
        assert torch.allclose(a, b, atol=1e-5)
