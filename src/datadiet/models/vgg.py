"""VGG13 with BatchNorm, sized for 32×32 (and 28×28) inputs.

Max-pools use ``ceil_mode=True`` so 28×28 inputs shrink 28→14→7→4→2→1 instead
of vanishing at the fifth pool; for 32×32 this is identical to the usual VGG.
"""
from __future__ import annotations

from torch import nn

VGG13_LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")


class VGG(nn.Module):
    def __init__(self, layout: tuple = VGG13_LAYOUT, num_classes: int = 10, in_channels: int = 3, width: float = 1.0):
        super().__init__()
        layers: list[nn.Module] = []
        cin = in_channels
        for item in layout:
            if item == "M":
                layers.append(nn.MaxPool2d(2, ceil_mode=True))
                continue
            cout = max(1, round(item * width))
            layers += [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]
            cin = cout
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, num_classes))

    def forward(self, x):
        return self.classifier(self.features(x))


def vgg13(num_classes: int = 10, in_channels: int = 3, width: float = 1.0) -> VGG:
    return VGG(VGG13_LAYOUT, num_classes, in_channels, width)
