import gzip

import numpy as np
import pytest
import torch

from fakes import FASHION_DIR, requires_fashion, write_fake_mnist, write_idx
from datadiet.data import load_data, load_splits
from datadiet.data.idx import IMAGES_MAGIC, LABELS_MAGIC, read_idx
from datadiet.data.registry import ENV_VAR, locate
from datadiet.config import DataConfig
from datadiet.errors import CorruptDataError, DatasetNotFoundError, UnknownNameError


def test_idx_round_trip_keeps_pixels_labels_and_order(tmp_path):
    root = write_fake_mnist(tmp_path, n_train=30, n_test=10)
    splits = load_splits("fashion-mnist", root)
    raw = np.frombuffer(gzip.decompress((root / "train-images-idx3-ubyte.gz").read_bytes())[16:], np.uint8)
    assert torch.equal(splits.train.images.flatten(), torch.from_numpy(raw.copy()))
    assert splits.train.images.shape == (30, 1, 28, 28)
    assert splits.train.labels.tolist() == [i % 10 for i in range(30)]
    assert splits.train.ids.tolist() == list(range(30))
    assert len(splits.test) == 10


def test_plain_uncompressed_idx_is_accepted(tmp_path):
    arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    path = write_idx(tmp_path / "x-idx3-ubyte", arr, compress=False)
    assert np.array_equal(read_idx(path, expected_magic=IMAGES_MAGIC), arr)


def test_wrong_magic_number_is_a_clear_error(tmp_path):
    path = write_idx(tmp_path / "labels.gz", np.zeros(5, np.uint8))
    with pytest.raises(CorruptDataError, match="magic number 0x00000801, expected 0x00000803"):
        read_idx(path, expected_magic=IMAGES_MAGIC)


def test_truncated_gzip_is_a_clear_error(tmp_path):
    path = write_idx(tmp_path / "img.gz", np.zeros((10, 28, 28), np.uint8))
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(CorruptDataError, match="damaged gzip"):
        read_idx(path, expected_magic=IMAGES_MAGIC)


def test_size_mismatch_with_header_is_a_clear_error(tmp_path):
    raw = (IMAGES_MAGIC).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in (3, 2, 2)) + bytes(11)
    path = tmp_path / "short"
    path.write_bytes(raw)
    with pytest.raises(CorruptDataError, match="promises 12 bytes .* found 11"):
        read_idx(path, expected_magic=IMAGES_MAGIC)


def test_image_and_label_count_mismatch(tmp_path):
    root = write_fake_mnist(tmp_path, n_train=10)
    write_idx(root / "train-labels-idx1-ubyte.gz", np.zeros(9, np.uint8), magic=LABELS_MAGIC)
    with pytest.raises(CorruptDataError, match="same number of examples"):
        load_splits("mnist", root)


def test_label_out_of_range_is_rejected(tmp_path):
    root = write_fake_mnist(tmp_path, n_train=10)
    write_idx(root / "train-labels-idx1-ubyte.gz", np.full(10, 12, np.uint8))
    with pytest.raises(CorruptDataError, match=r"train-labels-idx1-ubyte.gz holds labels up to 12, but mnist has 10 classes"):
        load_splits("mnist", root)


def test_missing_dataset_names_the_fix(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    with pytest.raises(DatasetNotFoundError, match="apt-get install dataset-fashion-mnist"):
        locate("fashion-mnist", tmp_path / "nowhere")


def test_search_order_explicit_then_env_then_subfolder(tmp_path, monkeypatch):
    explicit = write_fake_mnist(tmp_path / "explicit", n_train=11)
    env_root = tmp_path / "env"
    write_fake_mnist(env_root / "mnist", n_train=12)  # found through the dataset-named subfolder
    monkeypatch.setenv(ENV_VAR, str(env_root))
    assert len(load_splits("mnist").train) == 12
    assert len(load_splits("mnist", explicit).train) == 11


def test_unknown_dataset_lists_the_choices():
    with pytest.raises(UnknownNameError, match="Unknown dataset 'imagenet'. Choose one of: .*cifar10"):
        load_splits("imagenet")


def test_fingerprint_tracks_content_and_order(tmp_path):
    root = write_fake_mnist(tmp_path)
    a, b = load_splits("mnist", root).train, load_splits("mnist", root).train
    assert a.fingerprint == b.fingerprint
    assert a.take(torch.arange(len(a)).flip(0)).fingerprint != a.fingerprint
    assert a.with_labels((a.labels + 1) % 10).fingerprint != a.fingerprint


def test_load_data_applies_subset_and_noise_but_keeps_full_stats(tmp_path):
    root = write_fake_mnist(tmp_path, n_train=40)
    full = load_splits("mnist", root)
    cut = load_data(DataConfig(dataset="mnist", data_root=str(root), subset=20, subset_mode="balanced",
                               label_noise=0.5, test_subset=5))
    assert len(cut.train) == 20
    assert len(cut.test) == 5
    assert cut.mean == full.mean
    assert cut.std == full.std
    assert cut.train.notes["label_noise"]["n_chosen"] == 10
    assert torch.equal(cut.train.images, full.train.images[cut.train.ids])


@pytest.mark.integration
@requires_fashion
def test_real_fashion_mnist_loads_in_official_order():
    splits = load_splits("fashion-mnist", FASHION_DIR)
    assert len(splits.train) == 60000
    assert len(splits.test) == 10000
    assert torch.bincount(splits.train.labels).tolist() == [6000] * 10
    assert splits.train.labels[:5].tolist() == [9, 0, 0, 3, 0]  # first labels of the official file
    assert abs(splits.mean[0] - 0.2860) < 1e-3
    assert abs(splits.std[0] - 0.3530) < 1e-3


def test_a_pipe_in_place_of_an_idx_file_is_refused_not_read(tmp_path):
    import os

    from datadiet.data.idx import read_idx
    from datadiet.errors import DatasetNotFoundError

    pipe = tmp_path / "train-images-idx3-ubyte"
    os.mkfifo(pipe)  # opened naively, this blocks until a writer comes
    with pytest.raises(DatasetNotFoundError, match=r"train-images-idx3-ubyte: it is a named pipe \(FIFO\)"):
        read_idx(pipe, expected_magic=2051)
