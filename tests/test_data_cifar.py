"""CIFAR-10/100 reader: official layout and order, and refusal of unsafe or damaged pickles."""
from __future__ import annotations

import os
import pickle
import shlex

import numpy as np
import pytest
import torch

from datadiet.data import cifar, registry
from datadiet.errors import CorruptDataError, DatasetNotFoundError

try:  # tests/ is on sys.path itself, or is a package below the repository root
    from fakes import cifar_batch, py2_pickle_bytes, write_fake_cifar10, write_fake_cifar100, write_py2_pickle
except ImportError:  # pragma: no cover
    from tests.fakes import cifar_batch, py2_pickle_bytes, write_fake_cifar10, write_fake_cifar100, write_py2_pickle


@pytest.fixture
def c10(tmp_path):
    root = tmp_path / "cifar-10-batches-py"
    return root, write_fake_cifar10(root, n_per_batch=3, n_test=4)


def test_cifar10_round_trip(c10):
    root, fake = c10
    assert cifar.has_cifar10(root)
    splits = cifar.load_cifar10(root)
    train, test = splits.train, splits.test
    assert (train.name, train.split, test.split) == ("cifar10", "train", "test")
    assert train.images.dtype == torch.uint8
    assert train.images.shape == (15, 3, 32, 32)
    assert test.images.shape == (4, 3, 32, 32)
    # Official order: data_batch_1..5 concatenated, then rows reshape to [3, 32, 32].
    np.testing.assert_array_equal(train.images.reshape(15, 3072).numpy(), fake.train_rows)
    np.testing.assert_array_equal(test.images.reshape(4, 3072).numpy(), fake.test_rows)
    assert train.labels.dtype == torch.long
    np.testing.assert_array_equal(train.labels.numpy(), fake.train_labels)
    np.testing.assert_array_equal(test.labels.numpy(), fake.test_labels)
    assert train.ids.tolist() == list(range(15))
    assert test.ids.tolist() == list(range(4))
    assert train.classes == fake.classes
    assert len(train.classes) == 10


def test_cifar10_batches_are_concatenated_in_numeric_order(c10):
    root, _ = c10
    # Mark the first example of each batch with a pixel value equal to its batch number.
    for b in range(1, 6):
        rows = np.zeros((2, 3072), dtype=np.uint8)
        rows[0, 0] = b
        write_py2_pickle(root / f"data_batch_{b}", cifar_batch(rows, [b, b]))
    train = cifar.load_cifar10(root).train
    assert train.images[::2, 0, 0, 0].tolist() == [1, 2, 3, 4, 5]
    assert train.labels.tolist() == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]


@pytest.mark.parametrize("c,r,col", [(0, 0, 0), (1, 5, 7), (2, 31, 30), (2, 0, 31)])
def test_pixel_layout_is_planar_rgb_row_major(c10, c, r, col):
    root, _ = c10
    rows = np.zeros((3, 3072), dtype=np.uint8)
    rows[1, c * 1024 + r * 32 + col] = 201  # official layout: 1024 R, 1024 G, 1024 B, row-major
    write_py2_pickle(root / "test_batch", cifar_batch(rows, [0, 1, 2]))
    images = cifar.load_cifar10(root).test.images
    assert images[1, c, r, col] == 201
    assert int(images.sum()) == 201


def test_cifar100_fine_labels_and_names(tmp_path):
    fake = write_fake_cifar100(tmp_path, n_train=12, n_test=6)
    assert cifar.has_cifar100(tmp_path)
    assert not cifar.has_cifar10(tmp_path)
    splits = cifar.load_cifar100(tmp_path)
    assert splits.name == "cifar100"
    assert len(splits.train.classes) == 100
    assert splits.train.classes == fake.classes
    np.testing.assert_array_equal(splits.train.labels.numpy(), fake.train_labels)
    np.testing.assert_array_equal(splits.test.labels.numpy(), fake.test_labels)
    np.testing.assert_array_equal(splits.train.images.reshape(12, 3072).numpy(), fake.train_rows)
    assert splits.train.labels.max() == 99
    assert splits.test.ids.tolist() == list(range(6))


def test_str_keys_are_accepted(c10):
    root, _ = c10
    rows = np.full((2, 3072), 9, dtype=np.uint8)
    batch = {"data": rows, "labels": [3, 4], "batch_label": "testing batch 1 of 1"}
    write_py2_pickle(root / "test_batch", batch, str_as_bytes=False)
    test = cifar.load_cifar10(root).test
    assert test.labels.tolist() == [3, 4]
    assert int(test.images[0, 2, 31, 31]) == 9


def test_registry_finds_cifar_in_subfolders(tmp_path):
    fake10 = write_fake_cifar10(tmp_path / "cifar-10-batches-py", n_per_batch=2, n_test=2)
    write_fake_cifar100(tmp_path / "cifar100" / "cifar-100-python")
    splits = registry.load_splits("cifar10", data_root=tmp_path)
    assert len(splits.train) == 10
    np.testing.assert_array_equal(splits.train.labels.numpy(), fake10.train_labels)
    assert registry.locate("cifar100", tmp_path) == tmp_path / "cifar100" / "cifar-100-python"
    assert len(registry.load_splits("cifar100", data_root=tmp_path).test) == 6


# --- unsafe pickles -------------------------------------------------------------------------


class _RunsCode:
    """Unpickling this calls ``func(*args)``: what a malicious pickle does."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _evil_payloads(marker):
    return {
        "os.system": _RunsCode(os.system, f"touch {shlex.quote(str(marker))}"),
        "builtins.open": _RunsCode(open, str(marker), "w"),
        "eval": _RunsCode(eval, f"open({str(marker)!r}, 'w')"),
    }


@pytest.mark.parametrize("payload", ["os.system", "builtins.open", "eval"])
@pytest.mark.parametrize("where", ["top", "inside_labels"])
def test_forbidden_global_is_refused_and_not_run(c10, tmp_path, payload, where):
    root, _ = c10
    marker = tmp_path / "pwned"
    evil = _evil_payloads(marker)[payload]
    obj = evil if where == "top" else cifar_batch(np.zeros((1, 3072), np.uint8), [0]) | {b"labels": [evil]}
    (root / "data_batch_2").write_bytes(py2_pickle_bytes(obj, str_as_bytes=False))
    with pytest.raises(CorruptDataError, match="Refused to load") as info:
        cifar.load_cifar10(root)
    assert not marker.exists(), "the pickle's code ran"
    message = str(info.value)
    assert "data_batch_2" in message
    assert "arbitrary code" in message
    assert "official archive" in message
    assert payload.split(".")[-1] in message  # names the refused global


@pytest.mark.parametrize("payload", ["os.system", "builtins.open", "eval"])
def test_evil_payloads_would_run_under_plain_pickle(tmp_path, payload):
    # Proves the test above is meaningful: the same bytes do create the marker when trusted.
    marker = tmp_path / "pwned"
    result = pickle.loads(py2_pickle_bytes(_evil_payloads(marker)[payload], str_as_bytes=False), encoding="bytes")
    if hasattr(result, "close"):  # open() returned a file object
        result.close()
    assert marker.exists()


def test_numpy_functions_other_than_reconstruct_are_refused(tmp_path):
    path = tmp_path / "batch"
    path.write_bytes(pickle.dumps(_RunsCode(np.load, str(tmp_path / "x.npy")), protocol=2))
    with pytest.raises(CorruptDataError, match="numpy.load"):
        cifar.read_cifar_pickle(path)


def test_python3_protocol2_pickle_is_refused_for_its_codecs_global(tmp_path):
    # Python 3 writes bytes in protocol 2 through _codecs.encode; official files never do.
    path = tmp_path / "batch"
    path.write_bytes(pickle.dumps(cifar_batch(np.zeros((1, 3072), np.uint8), [0]), protocol=2))
    with pytest.raises(CorruptDataError, match="_codecs.encode"):
        cifar.read_cifar_pickle(path)


# --- damaged files --------------------------------------------------------------------------


def test_truncated_pickle(c10):
    root, _ = c10
    path = root / "data_batch_3"
    path.write_bytes(path.read_bytes()[:1500])
    with pytest.raises(CorruptDataError, match="data_batch_3.*truncated or damaged"):
        cifar.load_cifar10(root)


@pytest.mark.parametrize("garbage", [b"", b"not a pickle at all", b"\x80\x02}q\x00(U\x04data"])
def test_garbled_pickle(c10, garbage):
    root, _ = c10
    (root / "test_batch").write_bytes(garbage)
    with pytest.raises(CorruptDataError, match="test_batch"):
        cifar.load_cifar10(root)


@pytest.mark.parametrize(
    "batch, pattern",
    [
        ([1, 2, 3], "holds a list"),
        ({b"data": np.zeros((2, 3072), np.uint8)}, "lacks the key.*labels"),
        ({b"labels": [0, 1]}, "lacks the key.*data"),
        (cifar_batch(np.zeros((2, 3000), np.uint8), [0, 1]), r"uint8 array of shape \[n, 3072\]"),
        (cifar_batch(np.zeros((2, 3072), np.float32), [0, 1]), "found float32"),
        (cifar_batch(np.zeros(3072, np.uint8), [0]), r"found uint8 \(3072,\)"),
        ({**cifar_batch(np.zeros((2, 3072), np.uint8), [0]), b"data": [[0] * 3072]}, "found list"),
        (cifar_batch(np.zeros((2, 3072), np.uint8), [0, 1, 2]), "2 images but 3 entries"),
        (cifar_batch(np.zeros((2, 3072), np.uint8), [0, 10]), r"\[0, 10\), found \[0, 10\]"),
        (cifar_batch(np.zeros((2, 3072), np.uint8), [-1, 0]), r"found \[-1, 0\]"),
        ({**cifar_batch(np.zeros((1, 3072), np.uint8), [0]), b"labels": [b"cat"]}, "integer class indices"),
    ],
)
def test_invalid_batch_contents(c10, batch, pattern):
    root, _ = c10
    write_py2_pickle(root / "data_batch_4", batch)
    with pytest.raises(CorruptDataError, match=pattern) as info:
        cifar.load_cifar10(root)
    assert "data_batch_4" in str(info.value)


def test_cifar100_label_range_is_100(tmp_path):
    write_fake_cifar100(tmp_path)
    write_py2_pickle(tmp_path / "test", cifar_batch(np.zeros((1, 3072), np.uint8), [100], label_key=b"fine_labels"))
    with pytest.raises(CorruptDataError, match=r"\[0, 100\)"):
        cifar.load_cifar100(tmp_path)


def test_cifar100_files_are_not_cifar10(tmp_path):
    # A CIFAR-100 batch has fine_labels, not labels: the message must point at the key.
    root = tmp_path / "c10"
    write_fake_cifar10(root)
    write_py2_pickle(root / "test_batch", cifar_batch(np.zeros((1, 3072), np.uint8), [0], label_key=b"fine_labels"))
    with pytest.raises(CorruptDataError, match="lacks the key.*labels.*fine_labels"):
        cifar.load_cifar10(root)


def test_bad_meta_file(c10):
    root, _ = c10
    write_py2_pickle(root / "batches.meta", {b"label_names": [b"a", b"b"]})
    with pytest.raises(CorruptDataError, match="list of 10 class names"):
        cifar.load_cifar10(root)


def test_missing_file(c10):
    root, _ = c10
    (root / "data_batch_5").unlink()
    assert not cifar.has_cifar10(root)
    with pytest.raises(DatasetNotFoundError, match="data_batch_5"):
        cifar.load_cifar10(root)


def test_missing_dataset_in_registry(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="cifar10"):
        registry.load_splits("cifar10", data_root=tmp_path)


def test_fake_pickles_look_like_python2(tmp_path):
    # Guard the fake itself: no Python-3-only globals, so the reader is tested on the real format.
    data = py2_pickle_bytes(cifar_batch(np.zeros((1, 3072), np.uint8), [0]))
    assert data[:2] == b"\x80\x02"
    assert b"numpy.core.multiarray\n_reconstruct" in data
    assert b"_codecs" not in data
