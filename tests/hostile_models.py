"""Model factories that are wrong for their data in one way each (``--model hostile_models:NAME``); tests/ is on
sys.path. Each builds a tiny flatten → linear model for inputs of ``input_shape``; each takes (and ignores) ``width``,
so that a preset's width reaches it without being refused."""
from __future__ import annotations

import math
import sys
import threading

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


class TrainModeColumn(nn.Module):
    """Logits [N, C] in eval mode but [N, C, 1] in train mode: the one-example eval-mode check used to pass it and
    training then failed with a raw shape error."""

    def __init__(self, num_classes, in_channels, input_shape, width=1.0):
        super().__init__()
        self.body = _linear(num_classes, input_shape)

    def forward(self, x):
        logits = self.body(x)
        return logits.unsqueeze(-1) if self.training else logits


class PoolsOverTheBatch(nn.Module):
    """Pools over the batch dimension where a feature dimension was meant (``sum(0)``): a batch of one gives
    [1, C], as it should, and so does a batch of two."""

    def __init__(self, num_classes, in_channels, input_shape, width=1.0):
        super().__init__()
        self.body = _linear(num_classes, input_shape)

    def forward(self, x):
        return self.body(x).sum(0, keepdim=True)


class CountsItsCalls(nn.Module):
    """A BatchNorm (running statistics and a batch counter, updated in train mode), a non-persistent buffer that
    every forward pass bumps in place, and one that it replaces: the fit check must leave all of them as they were."""

    def __init__(self, num_classes, in_channels, input_shape, width=1.0):
        super().__init__()
        self.body = _linear(num_classes, input_shape)
        self.norm = nn.BatchNorm1d(num_classes)
        self.register_buffer("calls", torch.zeros((), dtype=torch.int64), persistent=False)
        self.register_buffer("last", torch.zeros(1))

    def forward(self, x):
        self.calls += 1
        self.last = x.detach().flatten(1)[:1, :1].sum().reshape(1) + 1  # a new tensor, not an in-place update
        return self.norm(self.body(x))


def interrupted(num_classes, in_channels, input_shape, width=1.0):
    """What Ctrl-C during a slow factory (downloading weights, say) looks like from inside it."""
    raise KeyboardInterrupt


# Released by the in-process test only: the command line must end although the thread never does.
RELEASE = threading.Event()


def starts_a_thread(num_classes, in_channels, input_shape, width=1.0):
    """Starts a non-daemon thread that waits forever (a watcher, a prefetcher), as some research code does."""
    threading.Thread(target=RELEASE.wait, name="hostile-model-watcher", daemon=False).start()
    return _linear(num_classes, input_shape)


# Eval-mode passes of one score run at one scoring time: the score's and the run's training fit
# (runs.scoring.training_fit). The second run's first pass is pass PASSES_PER_RUN + 1.
PASSES_PER_RUN = 2


class TupleOnSecondScoring(nn.Module):
    """Logits while training and for the fit check; from the second score run's passes on (a forward in eval mode
    over more than the check's two examples, counted for the class: each score run builds its own instance) it
    returns (logits, features), so that the second score run fails after the first one was cached."""

    scorings = 0

    def __init__(self, num_classes, in_channels, input_shape, width=1.0):
        super().__init__()
        self.body = _linear(num_classes, input_shape)

    def forward(self, x):
        logits = self.body(x)
        if self.training or len(x) <= 2:
            return logits
        type(self).scorings += 1
        return logits if type(self).scorings <= PASSES_PER_RUN else (logits, x.flatten(1))


class OutOfMemoryOnSecondScoring(TupleOnSecondScoring):
    """Runs out of memory in the second score run's first eval pass, as a scoring chunk too big for the device does."""

    scorings = 0

    def forward(self, x):
        if not self.training and len(x) > 2:
            type(self).scorings += 1
            if type(self).scorings == PASSES_PER_RUN + 1:
                raise MemoryError("cannot allocate 8589934592 bytes")
        return self.body(x)
