"""Model factories that are wrong for their data in one way each (``--model hostile_models:NAME``); tests/ is on
sys.path. Each builds a tiny flatten → linear model for inputs of ``input_shape``; each takes (and ignores) ``width``,
so that a preset's width reaches it without being refused."""
from __future__ import annotations

import math
import sys

import torch
from torch import nn


def _linear(num_classes, input_shape, outputs=None):
    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), outputs or num_classes))


def right(num_classes, in_channels, input_shape, width=1.0):
    """The control: one output per class."""
    return _linear(num_classes, input_shape)


def more_outputs(num_classes, in_channels, input_shape, width=1.0):
    """Two outputs more than classes: trains and scores without any error, with wrong numbers."""
    return _linear(num_classes, input_shape, num_classes + 2)


def fewer_outputs(num_classes, in_channels, input_shape, width=1.0):
    return _linear(num_classes, input_shape, num_classes - 1)


class TupleOutput(nn.Module):
    """Returns (logits, features), as many research models do."""

    def __init__(self, num_classes, in_channels, input_shape, width=1.0):
        super().__init__()
        self.body = _linear(num_classes, input_shape)

    def forward(self, x):
        return self.body(x), x.flatten(1)


class NoParameters(nn.Module):
    """The first num_classes input values as logits: nothing to train."""

    def __init__(self, num_classes, in_channels, input_shape, width=1.0):
        super().__init__()
        self.k = num_classes

    def forward(self, x):
        return x.flatten(1)[:, :self.k]


def on_meta(num_classes, in_channels, input_shape, width=1.0):
    """Built under the meta device (as for sharded loading), never materialised."""
    with torch.device("meta"):
        return _linear(num_classes, input_shape)


def exits(num_classes, in_channels, input_shape, width=1.0):
    sys.exit(0)


class NanInEval(nn.Module):
    """Finite logits while training, NaN in eval mode: training looks fine, evaluation is garbage."""

    def __init__(self, num_classes, in_channels, input_shape, width=1.0):
        super().__init__()
        self.body = _linear(num_classes, input_shape)

    def forward(self, x):
        logits = self.body(x)
        return logits if self.training else logits * float("nan")


class OutOfMemoryInTraining(nn.Module):
    """Runs out of memory in training mode only, as a model too big for its batch does."""

    def __init__(self, num_classes, in_channels, input_shape, width=1.0):
        super().__init__()
        self.body = _linear(num_classes, input_shape)

    def forward(self, x):
        if self.training:
            raise MemoryError("cannot allocate 8589934592 bytes")
        return self.body(x)
