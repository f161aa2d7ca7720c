"""Compute accounting (datadiet.training.accounting): Cost sums and JSON, FLOPs per example by hand."""
import json
import math
import warnings

import pytest
import torch
from torch import nn

from datadiet.errors import ConfigError
from datadiet.models import build_model
from datadiet.training.accounting import Cost, cost, flops_per_example

# ----------------------------------------------------------------------------- Cost


def test_costs_add_field_by_field_and_an_unknown_flop_count_stays_unknown():
    a, b = Cost(10, 2, 100, 1.5), Cost(5, 0, 40, 0.25)
    assert a + b == Cost(15, 2, 140, 1.75)
    assert (a + Cost(1, 1, None, 0.0)).flops is None
    assert sum([a, b, b]) == Cost(20, 2, 180, 2.0) and sum([], Cost()) == Cost(0, 0, 0, 0.0)
    with pytest.raises(TypeError):
        a + 1


def test_a_cost_goes_to_json_and_back_with_null_for_unknown_flops():
    for original in (Cost(128, 64, 12_345_678_901_234, 3.5), Cost(1, 2, None, 0.5)):
        text = json.dumps(original.to_dict())
        assert Cost.from_dict(json.loads(text)) == original
    assert json.loads(json.dumps(Cost(1, 2, None, 0.5).to_dict()))["flops"] is None
    with pytest.raises(ConfigError, match="flopz"):
        Cost.from_dict({"flopz": 1})
    unknown_wall = Cost(3, 0, None, math.nan).to_dict()  # an unknown wall time is null too, and stays unknown
    assert unknown_wall["wall_seconds"] is None and math.isnan(Cost.from_dict(unknown_wall).wall_seconds)


def test_cost_from_per_example_counts():
    assert cost(10, 4, 2.0, per_example=(300, 100)) == Cost(10, 4, 10 * 300 + 4 * 100, 2.0)
    assert cost(10, 4).flops is None


# ----------------------------------------------------------------------------- FLOPs, against hand counts


def test_linear_flops_are_2_in_out_forward_and_twice_that_to_train():
    # Forward: a [1, 20] x [20, 7] product = 2 * 20 * 7 multiply-adds counted as 2 FLOPs each.  Backward: the
    # weight gradient, the same product again; the input needs no gradient, so none is computed for it.
    assert flops_per_example(nn.Linear(20, 7), (20,), 7) == (4 * 20 * 7, 2 * 20 * 7)


def test_a_hidden_layer_also_pays_for_its_input_gradient():
    model = nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3))
    forward = 2 * (5 * 4 + 4 * 3)
    backward = 2 * 4 * 3 + 2 * 4 * 3 + 2 * 5 * 4  # layer 2: weight and input gradients; layer 1: weight only
    assert flops_per_example(model, (5,), 3) == (forward + backward, forward)


def test_convolution_flops_by_hand():
    model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1, bias=False), nn.Flatten())
    forward = 2 * (3 * 5 * 5) * (2 * 3 * 3)  # every output value: a 2x3x3 dot product
    assert flops_per_example(model, (2, 5, 5), 75) == (2 * forward, forward)


def test_the_model_is_left_untouched():
    torch.manual_seed(0)
    model = build_model("smallcnn", num_classes=10, in_channels=1, width=0.25).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    train, inference = flops_per_example(model, (1, 28, 28), 10)
    assert train > 2 * inference > 0
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # BatchNorm statistics too
    assert all(p.grad is None for p in model.parameters()) and model.training


class Counting(nn.Module):
    calls = 0

    def __init__(self, width=4):
        super().__init__()
        self.layer = nn.Linear(6, width)

    def forward(self, x):
        Counting.calls += 1
        return self.layer(x)


def test_each_architecture_and_input_shape_is_measured_once():
    first = flops_per_example(Counting(), (6,), 4)
    calls = Counting.calls
    assert flops_per_example(Counting(), (6,), 4) == first and Counting.calls == calls  # another instance: cached
    assert flops_per_example(Counting(width=8), (6,), 8) == (2 * first[0], 2 * first[1])  # the width is in the key
    assert Counting.calls > calls


class NeedsValues(nn.Module):
    """Data-dependent code: cannot run on the meta device."""

    def __init__(self):
        super().__init__()
        self.layer = nn.Linear(3, 2)

    def forward(self, x):
        return self.layer(x) * (1.0 if x.abs().sum().item() >= 0 else 2.0)


class Broken(nn.Module):
    def forward(self, x):
        raise RuntimeError("no")


def test_a_model_that_needs_values_is_counted_on_the_cpu_and_a_broken_one_is_unknown():
    assert flops_per_example(NeedsValues(), (3,), 2) == (4 * 3 * 2, 2 * 3 * 2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert flops_per_example(Broken(), (3,), 2) is None
    assert any("unknown" in str(w.message) for w in caught)
