"""ResNet18 and ResNet50 (v1) with the low-resolution stem of Data Diet (App. B.2).

The ImageNet stem (7×7 stride-2 conv + 3×3 max-pool) is replaced by a single
3×3 stride-1 conv, as for 32×32 CIFAR images.  "v1" places the stride of a
bottleneck on its 3×3 conv (as torchvision and Flax do) and uses a projection
shortcut (1×1 conv + BN) whenever shape changes.  ``width`` scales every
channel count, so ``width=0.25`` gives the CPU-sized variant.
"""
from __future__ import annotations

from torch import nn


def _conv_bn(cin: int, cout: int, kernel: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=False), nn.BatchNorm2d(cout)]


def _shortcut(cin: int, cout: int, stride: int) -> nn.Module:
    if stride == 1 and cin == cout:
        return nn.Identity()
    return nn.Sequential(*_conv_bn(cin, cout, 1, stride))


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int = 1):
        super().__init__()
        cout = planes * self.expansion
        self.residual = nn.Sequential(*_conv_bn(cin, planes, 3, stride), nn.ReLU(),
                                      *_conv_bn(planes, cout, 3))
        self.shortcut = _shortcut(cin, cout, stride)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.residual(x) + self.shortcut(x))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int = 1):
        super().__init__()
        cout = planes * self.expansion
        self.residual = nn.Sequential(
            *_conv_bn(cin, planes, 1), nn.ReLU(),
            *_conv_bn(planes, planes, 3, stride), nn.ReLU(),
            *_conv_bn(planes, cout, 1),
        )
        self.shortcut = _shortcut(cin, cout, stride)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.residual(x) + self.shortcut(x))


class ResNet(nn.Module):
    def __init__(self, block: type, depths: tuple[int, ...], num_classes: int = 10, in_channels: int = 3,
                 width: float = 1.0):
        super().__init__()
        widths = [max(1, round(64 * width * 2**i)) for i in range(len(depths))]
        self.stem = nn.Sequential(*_conv_bn(in_channels, widths[0], 3), nn.ReLU())
        stages, cin = [], widths[0]
        for i, (planes, depth) in enumerate(zip(widths, depths)):
            blocks = []
            for j in range(depth):
                blocks.append(block(cin, planes, stride=2 if (i > 0 and j == 0) else 1))
                cin = planes * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        return self.fc(self.pool(self.stages(self.stem(x))))


def resnet18(num_classes: int = 10, in_channels: int = 3, width: float = 1.0) -> ResNet:
    return ResNet(BasicBlock, (2, 2, 2, 2), num_classes, in_channels, width)


def resnet50(num_classes: int = 10, in_channels: int = 3, width: float = 1.0) -> ResNet:
    return ResNet(Bottleneck, (3, 4, 6, 3), num_classes, in_channels, width)
