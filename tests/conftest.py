"""Shared fixtures. Helpers (fake datasets, tiny datasets, markers) live in fakes.py."""
from __future__ import annotations

from pathlib import Path

import pytest

from fakes import write_fake_mnist


@pytest.fixture
def fake_mnist_root(tmp_path: Path) -> Path:
    return write_fake_mnist(tmp_path / "fake-mnist")
