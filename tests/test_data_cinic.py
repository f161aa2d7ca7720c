"""CINIC-10 reader: canonical order (train + valid, then test), RGB conversion, damaged files."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from datadiet.data import cinic, registry
from datadiet.errors import CorruptDataError, DatasetNotFoundError

try:  # tests/ is on sys.path itself, or is a package below the repository root
    from fakes import CINIC_CLASSES, write_fake_cinic10
except ImportError:  # pragma: no cover
    from tests.fakes import CINIC_CLASSES, write_fake_cinic10


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    root = tmp_path_factory.mktemp("cinic") / "cinic10"
    return root, write_fake_cinic10(root, n_per_class=12)  # > 10: string sort puts -10 before -2


def test_layout_detection(fake, tmp_path):
    root, _ = fake
    assert cinic.has_cinic10(root)
    assert not cinic.has_cinic10(tmp_path)
    (tmp_path / "train").mkdir()
    assert not cinic.has_cinic10(tmp_path)


def test_round_trip_in_canonical_order(fake):
    root, expected = fake
    splits = cinic.load_cinic10(root)
    train, test = splits.train, splits.test
    assert (splits.name, train.split, test.split) == ("cinic10", "train", "test")
    assert train.classes == CINIC_CLASSES
    # TRAIN = train/ then valid/ (2 x 10 classes x 12), TEST = test/ (10 x 12).
    assert train.images.shape == (240, 3, 32, 32)
    assert test.images.shape == (120, 3, 32, 32)
    assert train.images.dtype == torch.uint8
    assert train.labels.dtype == torch.long
    np.testing.assert_array_equal(train.images.numpy(), expected.train_images)
    np.testing.assert_array_equal(train.labels.numpy(), expected.train_labels)
    np.testing.assert_array_equal(test.images.numpy(), expected.test_images)
    np.testing.assert_array_equal(test.labels.numpy(), expected.test_labels)
    assert train.ids.tolist() == list(range(240))
    assert test.ids.tolist() == list(range(120))


def test_order_rules(fake):
    root, expected = fake
    paths, labels = cinic.list_files(root, "train")
    assert paths == expected.train_files
    folders = [p.parent.parent.name for p in paths]
    assert folders == ["train"] * 120 + ["valid"] * 120
    assert labels.tolist() == [c for _ in range(2) for c in range(10) for _ in range(12)]
    airplane = [p.name for p in paths[:12]]
    assert airplane == sorted(airplane)
    assert airplane.index("cifar10-train-10.png") < airplane.index("cifar10-train-2.png")  # plain string sort
    test_paths, _ = cinic.list_files(root, "test")
    assert {p.parent.parent.name for p in test_paths} == {"test"}


def test_grayscale_png_becomes_rgb(fake):
    root, expected = fake
    from PIL import Image

    with Image.open(expected.gray_file) as img:
        assert img.mode == "L"
        gray = np.asarray(img)
    rgb = cinic.read_png(expected.gray_file)
    assert rgb.shape == (3, 32, 32)
    for c in range(3):
        np.testing.assert_array_equal(rgb[c], gray)


def test_pixel_position(tmp_path):
    from PIL import Image

    hwc = np.zeros((32, 32, 3), dtype=np.uint8)
    hwc[5, 7, 2] = 200  # row 5, column 7, blue
    Image.fromarray(hwc).save(tmp_path / "x.png")
    chw = cinic.read_png(tmp_path / "x.png")
    assert chw[2, 5, 7] == 200
    assert int(chw.sum()) == 200


def test_other_files_are_ignored(tmp_path):
    root = tmp_path / "cinic10"
    write_fake_cinic10(root, n_per_class=1)
    (root / "train" / "cat" / ".DS_Store").write_bytes(b"\x00\x01")
    (root / "README.md").write_text("readme")
    splits = cinic.load_cinic10(root)
    assert len(splits.train) == 20
    assert len(splits.test) == 10


def test_undecodable_png_names_the_file(tmp_path):
    root = tmp_path / "cinic10"
    write_fake_cinic10(root, n_per_class=1)
    bad = root / "valid" / "dog" / "zz_broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n this is not really a PNG")
    with pytest.raises(CorruptDataError, match="zz_broken.png"):
        cinic.load_cinic10(root)


def test_truncated_png_names_the_file(tmp_path):
    root = tmp_path / "cinic10"
    write_fake_cinic10(root, n_per_class=1)
    good = next((root / "test" / "ship").glob("*.png"))
    good.write_bytes(good.read_bytes()[:60])
    with pytest.raises(CorruptDataError, match=good.name):
        cinic.load_cinic10(root)


def test_wrong_size_png_names_the_file(tmp_path):
    from PIL import Image

    root = tmp_path / "cinic10"
    write_fake_cinic10(root, n_per_class=1)
    big = root / "test" / "frog" / "big.png"
    Image.fromarray(np.zeros((32, 33, 3), dtype=np.uint8)).save(big)
    with pytest.raises(CorruptDataError, match=r"big.png is 33x32 pixels"):
        cinic.load_cinic10(root)


def test_missing_class_folder(tmp_path):
    root = tmp_path / "cinic10"
    write_fake_cinic10(root, n_per_class=1)
    for p in (root / "valid" / "truck").iterdir():
        p.unlink()
    (root / "valid" / "truck").rmdir()
    assert not cinic.has_cinic10(root)
    with pytest.raises(DatasetNotFoundError, match="truck"):
        cinic.load_cinic10(root)


def test_registry_finds_cinic_subfolder(fake):
    root, expected = fake
    splits = registry.load_splits("cinic10", data_root=root.parent)
    np.testing.assert_array_equal(splits.test.labels.numpy(), expected.test_labels)
    assert registry.locate("cinic10", root.parent) == root
