"""Integration: the real Fashion-MNIST files, end to end (skipped when the Debian package is absent)."""
import pytest

from fakes import requires_fashion
from datadiet.config import DataConfig, TrainConfig
from datadiet.data import load_data
from datadiet.training import train

pytestmark = [pytest.mark.integration, requires_fashion]


def test_small_cnn_learns_real_fashion_mnist_in_a_few_seconds():
    splits = load_data(DataConfig(subset=4000, subset_mode="balanced", test_subset=2000))
    result = train(TrainConfig(epochs=6, width=0.5), splits, progress=False, log=lambda _: None)
    assert result.steps == 6 * (4000 // 128)
    assert result.test_accuracy > 0.75  # chance is 0.10; 6 short epochs reach ~0.8
