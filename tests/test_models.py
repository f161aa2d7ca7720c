import pytest
import torch
from torch import nn

from datadiet.errors import ConfigError, UnknownNameError
from datadiet.models import MODELS, build_model


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_every_model_maps_images_to_logits(name, shape):
    torch.manual_seed(0)
    model = build_model(name, num_classes=7, in_channels=shape[0], width=0.125, input_shape=shape)
    out = model(torch.randn(2, *shape))
    assert out.shape == (2, 7)
    assert torch.isfinite(out).all()


def test_resnet18_has_the_low_resolution_stem_and_cifar_size():
    model = build_model("resnet18", num_classes=10, in_channels=3)
    first = model.stem[0]
    assert isinstance(first, nn.Conv2d)
    assert first.kernel_size == (3, 3)
    assert first.stride == (1, 1)
    assert not any(isinstance(m, nn.MaxPool2d) for m in model.modules())
    # The standard CIFAR ResNet18 (3x3 stem, no max-pool) has 11,173,962 parameters.
    assert sum(p.numel() for p in model.parameters()) == 11_173_962


def test_resnet50_has_the_standard_cifar_size():
    model = build_model("resnet50", num_classes=10, in_channels=3)
    assert sum(p.numel() for p in model.parameters()) == 23_520_842


def test_width_multiplier_scales_channels():
    narrow = build_model("resnet18", num_classes=10, in_channels=3, width=0.25)
    assert narrow.stem[0].out_channels == 16
    assert narrow.fc.in_features == 128


def test_unknown_model_and_bad_width_are_clear_errors():
    with pytest.raises(UnknownNameError, match="Unknown model 'resnet19'. Choose one of: mlp, resnet18, resnet50"):
        build_model("resnet19", num_classes=10, in_channels=3)
    with pytest.raises(ConfigError, match="positive"):
        build_model("smallcnn", num_classes=10, in_channels=1, width=0)
