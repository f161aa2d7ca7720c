import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fakes import learnable_splits
from datadiet.config import TrainConfig
from datadiet.data.transforms import Normalizer
from datadiet.errors import NonFiniteLossError
from datadiet.training import classification_error, correct_per_example, evaluate, predict, to_layout


def _tiny_model():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 10 * 10, 4))
    with torch.no_grad():  # non-trivial BN running statistics, so that eval and train mode differ
        for _ in range(3):
            model(torch.randn(8, 1, 12, 12) * 2 + 1)
    return model


def _by_hand(model, x, y):
    """Correctness and cross-entropy of each example, one example at a time, in eval mode."""
    model.eval()
    with torch.no_grad():
        logits = [model(x[i:i + 1]).float() for i in range(len(x))]
    correct = np.array([bool(lg.argmax(1) == y[i]) for i, lg in enumerate(logits)])
    loss = np.array([float(F.cross_entropy(lg, y[i:i + 1])) for i, lg in enumerate(logits)])
    return correct, loss


@pytest.fixture
def data():
    splits = learnable_splits(n_test=70)
    normalize = Normalizer(splits.mean, splits.std)
    return splits.test, normalize


@pytest.mark.parametrize("channels_last", [True, False])
def test_the_three_evaluations_agree_with_a_per_example_loop(data, channels_last):
    test, normalize = data
    config = TrainConfig(channels_last=channels_last)
    model = _tiny_model()
    x = to_layout(normalize(test.images), config)
    correct, loss = _by_hand(model, x, test.labels)
    model.train()

    assert np.array_equal(correct_per_example(model, test.images, test.labels, normalize, config, batch_size=32),
                          correct)
    assert classification_error(model, x, test.labels, batch_size=32) == pytest.approx(1 - correct.mean())
    accuracy, mean_loss = evaluate(model, test, normalize, batch_size=32)
    assert accuracy == pytest.approx(correct.mean()) and mean_loss == pytest.approx(loss.mean(), rel=1e-5)
    predictions = predict(model, x, test.labels, batch_size=32)
    assert np.allclose(predictions.loss.numpy(), loss, rtol=1e-5, atol=1e-6)
    assert model.training  # the caller's mode is restored


def test_evaluate_sums_per_batch_losses_in_float64_as_it_always_did(data):
    # Mean test losses saved by earlier runs must stay bit-for-bit comparable.
    test, normalize = data
    model = _tiny_model().eval()
    loss_sum, correct = 0.0, 0
    with torch.no_grad():
        for s in range(0, len(test), 32):
            logits = model(normalize(test.images[s:s + 32])).float()
            loss_sum += float(F.cross_entropy(logits, test.labels[s:s + 32], reduction="sum"))
            correct += int((logits.argmax(1) == test.labels[s:s + 32]).sum())
    assert evaluate(model, test, normalize, batch_size=32) == (correct / len(test), loss_sum / len(test))


def test_evaluate_split_reads_the_per_class_numbers_off_its_one_pass(data):
    from datadiet.training.evaluate import evaluate_split

    test, normalize = data
    model = _tiny_model()
    calls = []
    model.register_forward_hook(lambda *_: calls.append(1))
    result = evaluate_split(model, test, normalize, batch_size=32)
    assert len(calls) == 3  # 70 examples in batches of 32: one pass, no second one for the classes
    correct, loss = _by_hand(model, normalize(test.images), test.labels)
    labels = test.labels.numpy()
    recall = [correct[labels == c].mean() if (labels == c).any() else None for c in range(test.num_classes)]
    assert result.accuracy == pytest.approx(correct.mean()) and result.mean_loss == pytest.approx(loss.mean(), rel=1e-5)
    assert list(result.classes.recall) == pytest.approx(recall)
    assert result.classes.balanced_accuracy == pytest.approx(np.mean(recall))
    assert result.classes.worst_class_accuracy == pytest.approx(min(recall))
    assert result.classes.majority_rate == pytest.approx(np.bincount(labels).max() / len(labels))


def test_evaluating_nothing_gives_empty_results(data):
    test, normalize = data
    model = _tiny_model()
    empty = test.images[:0]
    assert correct_per_example(model, empty, test.labels[:0], normalize, TrainConfig()).shape == (0,)
    assert predict(model, empty, test.labels[:0], normalize=normalize).mean_loss == 0.0


class _NonFiniteIn(nn.Module):
    """``_tiny_model`` whose logits are ``value`` for the examples ``rows`` (indices into the whole input)."""

    def __init__(self, rows, value):
        super().__init__()
        self.body, self.rows, self.value, self.seen = _tiny_model(), set(rows), value, 0

    def forward(self, x):
        logits = self.body(x)
        hit = [i for i in range(len(x)) if self.seen + i in self.rows]
        self.seen += len(x)
        logits[hit, 0] = self.value
        return logits


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")], ids=["nan", "inf", "-inf"])
def test_non_finite_logits_are_a_diverged_model_not_an_accuracy(data, value):
    test, normalize = data
    model = _NonFiniteIn(rows=[3, 40, 41], value=value)  # batches of 32: one bad row in the first, two in the second
    with pytest.raises(NonFiniteLossError, match=r"NaN or infinite for 3 of 70 evaluated examples"):
        evaluate(model, test, normalize, batch_size=32)
    assert model.training  # the caller's mode is restored even then


@pytest.mark.parametrize("call", ["correct_per_example", "classification_error"])
def test_every_evaluation_refuses_non_finite_logits(data, call):
    test, normalize = data
    model = _NonFiniteIn(rows=[0], value=float("nan"))
    with pytest.raises(NonFiniteLossError):
        if call == "correct_per_example":
            correct_per_example(model, test.images, test.labels, normalize, TrainConfig(channels_last=False))
        else:
            classification_error(model, normalize(test.images), test.labels)
