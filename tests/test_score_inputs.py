"""Bad labels, inputs and correctness histories are refused with a ScoreInputError that names the problem."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from datadiet.errors import ConfigError, DataDietError
from datadiet.scores.functions import (
    ScoreInputError,
    el2n,
    forgetting,
    grand,
    input_norm,
    score1,
    score2,
    score3,
    self_confidence,
)
from datadiet.scores.gradnorm import cross_entropy_cotangent, per_example_grad_norms
from datadiet.scores.inputs import ScoreInputError as InputsScoreInputError

N, K = 5, 10


def make_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, K))


def make_inputs(n: int = N) -> torch.Tensor:
    return torch.randn(n, 1, 8, 8, generator=torch.Generator().manual_seed(1))


GOOD_LABELS = torch.tensor([0, 3, 9, 1, 5])

# Every function that takes labels: (model, inputs, labels) -> scores.
LABELLED = {
    "grand-fast": lambda m, x, y: grand(m, x, y, method="fast"),
    "grand-vmap": lambda m, x, y: grand(m, x, y, method="vmap"),
    "grand-loop": lambda m, x, y: grand(m, x, y, method="loop"),
    "grand-auto-chunked": lambda m, x, y: grand(m, x, y, batch_size=2),
    "per_example_grad_norms": lambda m, x, y: per_example_grad_norms(m, x, y, cross_entropy_cotangent),
    "el2n": lambda m, x, y: el2n(m, x, y),
    "el2n-chunked": lambda m, x, y: el2n(m, x, y, batch_size=2),
    "self_confidence": lambda m, x, y: self_confidence(m, x, y),
}



def with_good_labels(fn):
    """``fn(model, inputs, labels)`` as ``(model, inputs) -> scores`` with valid labels."""
    return lambda model, inputs: fn(model, inputs, GOOD_LABELS)


# Every model-based function, labelled or not: (model, inputs) -> scores.
ALL_SCORES = {
    **{name: with_good_labels(fn) for name, fn in LABELLED.items()},
    "score1-fast": lambda m, x: score1(m, x, method="fast"),
    "score1-vmap": lambda m, x: score1(m, x, method="vmap"),
    "score1-loop": lambda m, x: score1(m, x, method="loop"),
    "score2": lambda m, x: score2(m, x),
    "score3-fast": lambda m, x: score3(m, x, method="fast"),
    "score3-vmap": lambda m, x: score3(m, x, method="vmap"),
}


def with_label(i: int, value) -> torch.Tensor:
    labels = GOOD_LABELS.clone()
    labels[i] = value
    return labels


BAD_LABELS = {
    "minus-one": (with_label(2, -1), (r"labels must lie in \[0, 10\) for a model with 10 outputs; got value -1 "
                                      r"\(1 of 5 labels\)")),
    "ten": (with_label(4, 10), r"\[0, 10\).*got value 10 \(1 of 5 labels\)"),
    "ninety-nine": (with_label(0, 99), r"\[0, 10\).*got value 99 "),
    "several": (torch.tensor([0, -1, 99, 3, -1]), r"must lie in \[0, 10\) .*got values -1, 99 \(3 of 5 labels\)"),
    "fractional": (torch.tensor([0.0, 3.0, 0.4, 1.0, 5.0]), r"integer tensor.*torch\.float32.*e\.g\. 0\.4 \(1 of 5"),
    "whole-floats": (GOOD_LABELS.float(), r"integer tensor.*got dtype torch\.float32.*labels\.long\(\)"),
    "bool": (torch.tensor([True, False, True, True, False]), r"got dtype torch\.bool"),
    "too-few": (GOOD_LABELS[:4], r"one label per input: 5 inputs, labels of shape \(4,\)"),
    "2-d": (GOOD_LABELS[:, None], r"one label per input: 5 inputs, labels of shape \(5, 1\)"),
    "numpy": (GOOD_LABELS.numpy(), r"labels must be a torch\.Tensor.*numpy\.ndarray"),
    "list": (GOOD_LABELS.tolist(), r"labels must be a torch\.Tensor.*got a list"),
}


@pytest.mark.parametrize("bad", BAD_LABELS, ids=list(BAD_LABELS))
@pytest.mark.parametrize("fn", LABELLED, ids=list(LABELLED))
def test_bad_labels_are_refused(fn, bad):
    labels, message = BAD_LABELS[bad]
    with pytest.raises(ScoreInputError, match=message):
        LABELLED[fn](make_model(), make_inputs(), labels)


def with_value(i: int, value: float) -> torch.Tensor:
    x = make_inputs()
    x[i, 0, 3, 4] = value
    return x


BAD_INPUTS = {
    "nan": (lambda: with_value(2, float("nan")), r"inputs must be finite; got NaN in 1 of 5 examples \(index 2\)"),
    "inf": (lambda: with_value(4, float("inf")), r"inputs must be finite; got inf in 1 of 5 examples \(index 4\)"),
    "minus-inf": (lambda: with_value(0, -float("inf")), r"got inf in 1 of 5 examples \(index 0\)"),
    "uint8": (lambda: (make_inputs() * 40 + 128).clamp(0, 255).to(torch.uint8), r"dtype torch\.uint8.*normalize"),
    "numpy": (lambda: make_inputs().numpy(), r"inputs must be a torch\.Tensor.*numpy\.ndarray.*torch\.from_numpy"),
    "rgb": (lambda: torch.randn(N, 3, 8, 8),
            (r"inputs of shape \[5, 3, 8, 8\].*first layer, 0 \(Conv2d\), expects inputs \[N, 1, H, W\] "
             r"\(1 channel, but the inputs have 3\)")),
    "image-size": (lambda: torch.randn(N, 1, 9, 9), r"inputs of shape \[5, 1, 9, 9\].*image size.*shapes cannot be"),
    "float64": (lambda: make_inputs().double(), r"dtype torch\.float64: its parameters are torch\.float32"),
}


@pytest.mark.parametrize("bad", BAD_INPUTS, ids=list(BAD_INPUTS))
@pytest.mark.parametrize("fn", ALL_SCORES, ids=list(ALL_SCORES))
def test_bad_inputs_are_refused(fn, bad):
    make_bad, message = BAD_INPUTS[bad]
    with pytest.raises(ScoreInputError, match=message) as caught:
        ALL_SCORES[fn](make_model(), make_bad())
    if bad in ("rgb", "image-size", "float64"):
        assert isinstance(caught.value.__cause__, RuntimeError)  # torch's own error stays attached


@pytest.mark.parametrize("bad", ["nan", "uint8", "numpy"])
def test_input_norm_checks_its_inputs(bad):
    make_bad, message = BAD_INPUTS[bad]
    with pytest.raises(ScoreInputError, match=message):
        input_norm(make_bad())


def test_a_bad_label_in_a_later_chunk_is_caught_before_scoring():
    labels = with_label(4, 10)  # only in the last chunk of size 2
    for method in ("fast", "vmap", "loop"):
        with pytest.raises(ScoreInputError, match=r"got value 10 "):
            grand(make_model(), make_inputs(), labels, batch_size=2, method=method)


def test_the_error_is_a_value_error_and_a_datadiet_error():
    assert ScoreInputError is InputsScoreInputError
    assert issubclass(ScoreInputError, DataDietError)
    assert issubclass(ScoreInputError, ValueError)
    assert issubclass(ScoreInputError, ConfigError)  # the label-count check raised ConfigError before
    from datadiet.scores import gradnorm
    assert gradnorm.ScoreInputError is ScoreInputError


def test_scores_needing_labels_say_so():
    for fn in (el2n, self_confidence):
        with pytest.raises(ScoreInputError, match="needs labels"):
            fn(make_model(), make_inputs(), None)


# ----------------------------------------------------------------------------- valid input, unchanged results

def reference_grand(model, x, y):
    """‖∇_θ CE(f(x_i), y_i)‖ with one autograd backward per example."""
    model.eval()
    params = [p for p in model.parameters() if p.requires_grad]
    out = []
    for i in range(len(x)):
        loss = F.cross_entropy(model(x[i:i + 1]), y[i:i + 1])
        grads = torch.autograd.grad(loss, params)
        out.append(torch.sqrt(sum(g.pow(2).sum() for g in grads)))
    return torch.stack(out).detach()


@pytest.mark.parametrize("method", ["fast", "vmap", "loop"])
def test_valid_labels_give_the_reference_grand(method):
    model, x = make_model(), make_inputs()
    got = grand(model, x, GOOD_LABELS, method=method, batch_size=3)
    torch.testing.assert_close(got, reference_grand(model, x, GOOD_LABELS), rtol=1e-5, atol=1e-6)
    for dtype in (torch.int32, torch.int16, torch.uint8):  # any integer dtype, same numbers
        assert torch.equal(grand(model, x, GOOD_LABELS.to(dtype), method=method, batch_size=3), got)


def test_the_issue_example_label_nine_differs_from_refused_ones():
    model, x = make_model(), make_inputs(1)
    nine = grand(model, x, torch.tensor([9]))
    torch.testing.assert_close(nine, reference_grand(model, x, torch.tensor([9])), rtol=1e-5, atol=1e-6)
    for bad in (-1, 10, 99):
        with pytest.raises(ScoreInputError, match=f"got value {bad} "):
            grand(model, x, torch.tensor([bad]))


def test_valid_labels_give_the_reference_el2n_and_self_confidence():
    model, x = make_model(), make_inputs()
    with torch.no_grad():
        probs = torch.softmax(model.eval()(x), 1)
    onehot = F.one_hot(GOOD_LABELS, K).float()
    torch.testing.assert_close(el2n(model, x, GOOD_LABELS, batch_size=2), (probs - onehot).norm(dim=1))
    torch.testing.assert_close(self_confidence(model, x, GOOD_LABELS), 1 - probs[torch.arange(N), GOOD_LABELS])


def test_empty_inputs_and_integer_index_inputs_are_still_accepted():
    model = make_model()
    assert grand(model, torch.zeros(0, 1, 8, 8), torch.zeros(0, dtype=torch.long)).shape == (0,)
    assert el2n(model, torch.zeros(0, 1, 8, 8), torch.zeros(0, dtype=torch.long)).shape == (0,)

    class Lookup(nn.Module):  # inputs are indices into a table of logits
        def __init__(self):
            super().__init__()
            self.logits = nn.Parameter(torch.tensor([[0.0, 1.0], [2.0, 0.0]], dtype=torch.float64))

        def forward(self, x):
            return self.logits[x.long().flatten()]

    scores = el2n(Lookup(), torch.tensor([[0], [1]]), torch.tensor([1, 0]))
    assert scores.shape == (2,) and bool(torch.isfinite(scores).all())
    with pytest.raises(ScoreInputError, match=r"\[0, 2\).*got value 2 "):
        el2n(Lookup(), torch.tensor([[0], [1]]), torch.tensor([1, 2]))


# ----------------------------------------------------------------------------- forgetting

@pytest.mark.parametrize("bad, dtype, shown", [(2, torch.long, "2"), (-2, torch.int8, "-2"), (2, torch.float32, "2.0"),
                                              (0.5, torch.float32, "0.5"), (float("nan"), torch.float64, "nan")])
def test_forgetting_refuses_values_other_than_one_zero_and_minus_one(bad, dtype, shown):
    history = torch.tensor([[1, 0, 1], [0, 1, 1]], dtype=dtype)
    history[1, 1] = bad
    with pytest.raises(ScoreInputError, match=rf"only 1 \(correct\), 0 \(wrong\) and -1 .*got value {shown} "
                                              r"\(1 of 6 entries\)"):
        forgetting(history)


def test_forgetting_accepts_zero_one_bool_and_trailing_padding():
    ints = torch.tensor([[1, 0, 1, -1], [0, 0, 0, 0], [1, 1, 0, 1]])
    expected = [1.0, 5.0, 1.0]
    assert forgetting(ints).tolist() == expected
    assert forgetting(ints.to(torch.int8)).tolist() == expected
    assert forgetting(ints.float()).tolist() == expected
    assert forgetting(torch.tensor([[True, False, True], [False, True, True]])).tolist() == [1.0, 0.0]


def test_forgetting_refuses_gaps_and_non_tensors():
    with pytest.raises(ScoreInputError, match=r"-1 \(not presented\) may only pad the end of a row; row\(s\) 1 "):
        forgetting(torch.tensor([[1, 0, 1], [1, -1, 0]]))
    with pytest.raises(ScoreInputError, match=r"must be a torch\.Tensor.*numpy\.ndarray"):
        forgetting(np.array([[1, 0]]))


# ----------------------------------------------------------------------------- batch sizes and the meta device

# Every model-based function with a batch size: (model, inputs, batch_size) -> scores.
BATCHED = {
    "grand": lambda m, x, b: grand(m, x, GOOD_LABELS, batch_size=b),
    "el2n": lambda m, x, b: el2n(m, x, GOOD_LABELS, batch_size=b),
    "self_confidence": lambda m, x, b: self_confidence(m, x, GOOD_LABELS, batch_size=b),
    "score1": lambda m, x, b: score1(m, x, batch_size=b),
    "score2": lambda m, x, b: score2(m, x, batch_size=b),
    "score3": lambda m, x, b: score3(m, x, batch_size=b),
}


@pytest.mark.parametrize("size", [0, -1, 2.5, True, None, "8"], ids=["0", "-1", "2.5", "True", "None", "str"])
@pytest.mark.parametrize("fn", BATCHED, ids=list(BATCHED))
def test_every_score_function_refuses_a_bad_batch_size_alike(fn, size):
    with pytest.raises(ScoreInputError, match=rf"batch_size must be a whole number of at least 1 .*got {size!r}"):
        BATCHED[fn](make_model(), make_inputs(), size)


@pytest.mark.parametrize("fn", BATCHED, ids=list(BATCHED))
def test_a_numpy_integer_batch_size_is_a_batch_size(fn):
    assert BATCHED[fn](make_model(), make_inputs(), np.int64(2)).shape == (N,)


@pytest.mark.parametrize("fn", ALL_SCORES, ids=list(ALL_SCORES))
def test_inputs_on_the_meta_device_are_refused(fn):
    with pytest.raises(ScoreInputError, match=r"inputs are on the meta device"):
        ALL_SCORES[fn](make_model(), make_inputs().to("meta"))


@pytest.mark.parametrize("fn", LABELLED, ids=list(LABELLED))
def test_labels_on_the_meta_device_are_refused(fn):
    with pytest.raises(ScoreInputError, match=r"labels are on the meta device"):
        LABELLED[fn](make_model(), make_inputs(), GOOD_LABELS.to("meta"))


@pytest.mark.parametrize("fn", ALL_SCORES, ids=list(ALL_SCORES))
def test_a_model_on_the_meta_device_is_refused(fn):
    with pytest.raises(ScoreInputError, match=r"model's parameters are on the meta device"):
        ALL_SCORES[fn](make_model().to("meta"), make_inputs())
