"""Tiny model factories named by import path in tests (``--model user_models:tiny``); tests/ is on sys.path."""
from __future__ import annotations

import math

from torch import nn

CALLS: list[dict] = []  # the keyword arguments of every call to `recording`


def tiny(num_classes, in_channels, width=1.0, input_shape=None):
    """Flatten → Linear → ReLU → Linear; hidden units scale with width."""
    d = math.prod(input_shape) if input_shape else in_channels
    hidden = max(1, round(8 * width))
    return nn.Sequential(nn.Flatten(), nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))


def no_width(num_classes, in_channels):
    """A small conv net for images; takes neither width nor input_shape."""
    return nn.Sequential(nn.Conv2d(in_channels, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                         nn.Linear(16, num_classes))


def recording(**kwargs):
    CALLS.append(kwargs)
    return tiny(kwargs["num_classes"], kwargs["in_channels"], input_shape=kwargs.get("input_shape"))


class GroupNet(nn.Module):
    """A conv net with a GroupNorm, which GraNd's fast path does not cover."""

    def __init__(self, num_classes, in_channels, width=1.0):
        super().__init__()
        c = max(2, round(4 * width))
        self.body = nn.Sequential(nn.Conv2d(in_channels, c, 3, padding=1), nn.GroupNorm(2, c), nn.ReLU(),
                                  nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(4 * c, num_classes))

    def forward(self, x):
        return self.body(x)


class Builders:
    @staticmethod
    def build(num_classes, in_channels):
        return tiny(num_classes, in_channels)


NOT_CALLABLE = 42


def returns_list(num_classes, in_channels):
    return [nn.Linear(in_channels, num_classes)]


def raises(num_classes, in_channels):
    raise TypeError("hidden must be an int")


def wrong_signature(classes, channels):
    return nn.Linear(channels, classes)
