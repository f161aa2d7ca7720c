"""A multilayer perceptron for feature arrays ``[N, D]`` (and, flattened, for images).

Two hidden layers of ``round(256 * width)`` units with ReLU, then a linear layer to the logits.  The input
dimension is the product of ``input_shape`` when given (the training engine passes the dataset's per-example
shape), else ``in_channels`` (for features ``in_channels`` is ``D``).  Only Linear layers hold parameters, so
GraNd's fast path covers it.
"""
from __future__ import annotations

import math
from typing import Sequence

from torch import nn

from ..errors import ConfigError


class MLP(nn.Module):
    def __init__(self, num_classes: int = 10, in_channels: int = 1, width: float = 1.0,
                 input_shape: Sequence[int] | None = None):
        super().__init__()
        self.in_features = math.prod(int(d) for d in input_shape) if input_shape else int(in_channels)
        hidden = max(1, round(256 * width))
        self.net = nn.Sequential(
            nn.Flatten(),
            nn.Linear(self.in_features, hidden), nn.ReLU(),
            nn.Linear(hidden, hidden), nn.ReLU(),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x):
        if math.prod(x.shape[1:]) != self.in_features:
            raise ConfigError(f"The mlp model was built for {self.in_features} input values per example but got "
                              f"examples of shape {tuple(x.shape[1:])}; build it with input_shape= (the training "
                              "engine passes the dataset's shape).")
        return self.net(x)


def mlp(num_classes: int = 10, in_channels: int = 1, width: float = 1.0,
        input_shape: Sequence[int] | None = None) -> MLP:
    return MLP(num_classes=num_classes, in_channels=in_channels, width=width, input_shape=input_shape)
