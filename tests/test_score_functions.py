"""EL2N, input norm, Score2, forgetting and random on hand-computed cases; the registry."""
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from datadiet.errors import ConfigError, UnknownNameError
from datadiet.scores import SCORES, el2n, forgetting, input_norm, random_score, score2, score_spec
from datadiet.scores.functions import NeverPresentedWarning


class FixedLogits(nn.Module):
    """Returns the logits stored for each input index (inputs are indices)."""

    def __init__(self, logits):
        super().__init__()
        self.logits = nn.Parameter(torch.as_tensor(logits, dtype=torch.float64))

    def forward(self, x):
        return self.logits[x.long().flatten()]


def test_el2n_is_the_plain_l2_norm_of_the_error():
    logits = [[0.0, 0.0], [np.log(3.0), 0.0]]  # p = [.5, .5] and [.75, .25]
    model = FixedLogits(logits)
    scores = el2n(model, torch.tensor([[0], [1]]), torch.tensor([0, 1]))
    expected = [np.sqrt(0.5**2 + 0.5**2), np.sqrt(0.75**2 + 0.75**2)]
    np.testing.assert_allclose(scores.numpy(), expected, rtol=1e-12)  # not squared


def test_score2_is_the_norm_of_the_probabilities():
    model = FixedLogits([[0.0, 0.0, 0.0], [10.0, -10.0, -10.0]])
    np.testing.assert_allclose(score2(model, torch.tensor([[0], [1]])).numpy(), [np.sqrt(1 / 3), 1.0], rtol=1e-6)


def test_input_norm():
    x = torch.tensor([[[3.0, 4.0]], [[0.0, 0.0]]])
    assert input_norm(x).tolist() == [5.0, 0.0]


def test_forgetting_counts_correct_to_incorrect_transitions():
    history = torch.tensor([
        [1, 1, 1, 1, -1],   # learned, never forgotten
        [1, 0, 1, 0, 1],    # forgotten twice
        [0, 0, 1, 1, 1],    # learned late: incorrect -> correct is not a forgetting event
        [0, 0, 0, 0, 0],    # never learned: ranks above all
        [0, 1, -1, -1, -1], # short history
    ])
    assert forgetting(history).tolist() == [0, 2, 0, 6, 0]


def test_never_learned_outranks_the_most_forgotten_possible():
    p = 7
    most = torch.tensor([[1, 0] * 3 + [1]])  # 3 forgetting events, the maximum for 7 presentations
    never = torch.zeros(1, p, dtype=torch.long)
    assert forgetting(torch.cat([most, never]))[1] > forgetting(torch.cat([most, never]))[0]


def test_forgetting_accepts_bool_and_scores_unpresented_examples_as_never_learned():
    assert forgetting(torch.tensor([[True, False]])).tolist() == [1]
    # P = 2 presentations at most: forgotten once, never presented (P + 1 = 3, as never learned), never forgotten
    with pytest.warns(NeverPresentedWarning, match="1 of 3 examples were never presented"):
        assert forgetting(torch.tensor([[1, 0], [-1, -1], [1, 1]])).tolist() == [1, 3, 0]
    with pytest.raises(ConfigError, match="None of the 2 examples was presented"):
        forgetting(torch.zeros(2, 0, dtype=torch.int8))
    with pytest.raises(ConfigError, match=r"\[N, presentations\]"):
        forgetting(torch.tensor([1, 0]))


def test_forgetting_warns_only_when_an_example_was_never_presented():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every example presented: no warning, the values as ever
        assert forgetting(torch.tensor([[1, 0, 1], [0, -1, -1]])).tolist() == [1, 4]


def test_random_score_is_a_seeded_permutation():
    a, b, c = random_score(10, seed=1), random_score(10, seed=1), random_score(10, seed=2)
    assert sorted(a.tolist()) == list(range(10))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_registry_covers_every_score_and_names_unknown_ones():
    assert set(SCORES) == {"el2n", "grand", "score1", "score2", "score3", "self_confidence", "forgetting", "input_norm",
                           "random"}
    assert score_spec("input-norm").name == "input_norm"
    with pytest.raises(UnknownNameError, match="Unknown score 'grad'"):
        score_spec("grad")


# ----------------------------------------------------------------------------- models whose output is no logits

class Outputs(nn.Module):
    """A linear model whose forward returns ``shape_of(logits)``: a tuple, a dict, an extra dimension, ..."""

    def __init__(self, shape_of):
        super().__init__()
        self.linear, self.shape_of = nn.Linear(4, 3), shape_of

    def forward(self, x):
        return self.shape_of(self.linear(x))


def _every_model_score(model, x, y):
    from datadiet.scores import grand, score1, score3, self_confidence

    yield "el2n", lambda: el2n(model, x, y)
    yield "self_confidence", lambda: self_confidence(model, x, y)
    yield "score2", lambda: score2(model, x)
    for method in ("fast", "vmap", "loop", "auto"):
        yield f"grand-{method}", lambda m=method: grand(model, x, y, method=m)
        yield f"score1-{method}", lambda m=method: score1(model, x, method=m)
        yield f"score3-{method}", lambda m=method: score3(model, x, method=m)


# (what the model returns, the words of the refusal, whether a model run on one example at a time shows it too)
NO_LOGITS = {
    "tuple": (lambda logits: (logits, logits), r"returned a tuple from its forward pass", True),
    "dict": (lambda logits: {"logits": logits}, r"returned a dict from its forward pass", True),
    "extra-dimension": (lambda logits: logits.unsqueeze(-1), r"returned a tensor of shape \[\d, 3, 1\] for \d inputs?",
                        True),
    # pooled over the batch: the vmap and loop paths run one example at a time, where that changes nothing
    "batch-pooled": (lambda logits: logits.sum(0, keepdim=True), r"returned a tensor of shape \[1, 3\] for 5 inputs",
                     False),
    "integers": (lambda logits: logits.argmax(1, keepdim=True).expand(-1, 3), r"dtype torch.int64", True),
}


@pytest.mark.parametrize("case", NO_LOGITS)
def test_every_model_score_refuses_an_output_that_is_no_logits_tensor_and_says_what_it_expects(case):
    """Before, a tuple gave a raw AttributeError ('tuple' object has no attribute 'shape' / 'detach'), and an
    output [N, 3, 1] a broadcast of the wrong numbers or a raw shape error."""
    from datadiet.errors import DataDietError
    from datadiet.scores.inputs import ScoreInputError

    shape_of, words, per_example_too = NO_LOGITS[case]
    torch.manual_seed(0)
    model = Outputs(shape_of)
    x, y = torch.randn(5, 4), torch.tensor([0, 1, 2, 0, 1])
    for name, call in _every_model_score(model, x, y):
        if not per_example_too and name.endswith(("-vmap", "-loop")):
            continue
        with pytest.raises(ScoreInputError, match=words) as info:
            call()
        assert isinstance(info.value, DataDietError), name
        assert "a tensor of logits [N, classes]" in str(info.value), (name, str(info.value))
    assert model.training  # the eval mode of scoring was undone on the way out


def test_a_right_model_still_scores_after_the_output_check():
    torch.manual_seed(0)
    model = Outputs(lambda logits: logits)
    x, y = torch.randn(5, 4), torch.tensor([0, 1, 2, 0, 1])
    probs = torch.softmax(model(x), 1).detach()
    expected = (probs - torch.nn.functional.one_hot(y, 3)).norm(dim=1)
    torch.testing.assert_close(el2n(model, x, y, batch_size=2), expected)
