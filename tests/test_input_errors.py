"""Bad input gets one clear DataDietError naming the offending thing, never a traceback from deep inside.

Devices, numeric training flags and milestones (TrainConfig, resolve_device); data folders ($DATADIET_DATA,
--data-root); datasets with a file or folder missing; damaged IDX and CIFAR files.
"""
from __future__ import annotations

import argparse
import dataclasses
import gzip
import math
import re
import warnings

import numpy as np
import pytest
import torch
from fakes import write_fake_cifar10, write_fake_cinic10, write_fake_mnist, write_idx

from datadiet.config import TrainConfig, add_arguments, from_arguments
from datadiet.data import cifar, idx, registry
from datadiet.data.registry import ENV_VAR, DataLocationWarning, load_splits, locate
from datadiet.errors import (
    ConfigError,
    CorruptDataError,
    DataDietError,
    DatasetNotFoundError,
)
from datadiet.training.placement import resolve_device

# ----------------------------------------------------------------------------- devices

@pytest.mark.parametrize("name", ["tpu9", "gpu", "cuda:", "cuda:x", "CPU", "cpu:0 ", ""])
def test_unknown_device_is_refused_by_the_config(name):
    with pytest.raises(ConfigError, match=f"Unknown device {re.escape(repr(name))}.*use cpu, cuda, cuda:N"):
        TrainConfig(device=name)


def test_unknown_device_is_refused_when_resolved():
    with pytest.raises(ConfigError, match="Unknown device 'tpu9'"):
        resolve_device("tpu9")


@pytest.mark.parametrize("name", ["auto", "cpu", "cuda", "cuda:0", "cuda:7", "mps"])
def test_known_devices_pass_the_config_without_touching_cuda(name):
    assert TrainConfig(device=name).device == name


def test_cpu_and_auto_resolve():
    assert resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        assert resolve_device("auto") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
@pytest.mark.parametrize("name", ["cuda", "cuda:0", "cuda:3"])
def test_cuda_requested_without_cuda(name):
    with pytest.raises(ConfigError, match=f"--device {name} requested but no CUDA device is available"):
        resolve_device(name)


def test_cuda_index_beyond_the_visible_devices(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ConfigError, match=r"--device cuda:3 requested but only 1 CUDA device is visible \(cuda:0\)"):
        resolve_device("cuda:3")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(ConfigError, match="only 2 CUDA devices are visible"):
        resolve_device("cuda:2")


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="MPS is available here")
def test_mps_requested_where_unavailable():
    with pytest.raises(ConfigError, match="--device mps requested but the MPS"):
        resolve_device("mps")


# ----------------------------------------------------------------------------- numeric flags

@pytest.mark.parametrize("field, value, flag", [
    ("lr", 1e300, "--lr"), ("lr", math.inf, "--lr"), ("lr", math.nan, "--lr"), ("lr", 0.0, "--lr"),
    ("lr", -0.1, "--lr"), ("lr", "0.1", "--lr"),
    ("momentum", 1.0, "--momentum"), ("momentum", -0.1, "--momentum"), ("momentum", math.nan, "--momentum"),
    ("weight_decay", -1e-4, "--weight-decay"), ("weight_decay", math.inf, "--weight-decay"),
    ("weight_decay", 1e300, "--weight-decay"),
    ("lr_decay", -0.2, "--lr-decay"), ("lr_decay", math.nan, "--lr-decay"),
    ("epochs", 0, "--epochs"), ("epochs", -1.0, "--epochs"), ("epochs", math.inf, "--epochs"),
    ("epochs", math.nan, "--epochs"),
    ("steps", -1, "--steps"), ("steps", 1.5, "--steps"),
    ("batch_size", 0, "--batch-size"), ("batch_size", 2.5, "--batch-size"), ("batch_size", True, "--batch-size"),
    ("eval_batch_size", 0, "--eval-batch-size"),
    ("width", 0.0, "--width"), ("width", math.nan, "--width"),
    ("pad", -1, "--pad"), ("pad", 1.5, "--pad"),
    ("seed", -1, "--seed"),
])
def test_bad_numbers_name_their_flag(field, value, flag):
    with pytest.raises(ConfigError, match=re.escape(flag)):
        TrainConfig(**{field: value})


def test_huge_lr_says_why():
    with pytest.raises(ConfigError, match=r"--lr must be <= 3.4e\+38, got 1e\+300 \(larger values overflow"):
        TrainConfig(lr=1e300)


def test_lr_decay_that_overflows_the_schedule():
    with pytest.raises(ConfigError, match="--lr-decay"):
        TrainConfig(lr=1e38, lr_decay=10.0, milestones=(0.5, 0.9))


def test_zero_momentum_needs_plain_sgd():
    with pytest.raises(ConfigError, match="--momentum 0.*--no-nesterov"):
        TrainConfig(momentum=0.0)
    assert TrainConfig(momentum=0.0, nesterov=False).momentum == 0.0


@pytest.mark.parametrize("kwargs", [
    {}, dict(lr=10.0), dict(lr=1e-8), dict(momentum=0.0, nesterov=False), dict(momentum=0.99),
    dict(weight_decay=0.0), dict(lr_decay=0.0), dict(lr_decay=1.0), dict(epochs=0.5), dict(epochs=3),
    dict(steps=0), dict(steps=np.int64(5)), dict(batch_size=1), dict(pad=0), dict(seed=0), dict(width=0.25),
    dict(milestones=()), dict(milestones=(0.0, 1.0)), dict(milestones=(0.5,)),
])
def test_valid_numbers_are_accepted(kwargs):
    TrainConfig(**kwargs)


# ----------------------------------------------------------------------------- milestones

@pytest.mark.parametrize("milestones, message", [
    ((0.6, 0.3), "must be strictly increasing, got 0.6 0.3"),
    ((0.3, 0.8, 0.6), "must be strictly increasing"),
    ((0.3, 0.3), "must be strictly increasing"),
    ((-0.1, 0.5), r"are fractions of training in \[0, 1\].*got -0.1 0.5"),
    ((60, 120, 160), r"are fractions of training in \[0, 1\]"),
    ((0.5, math.nan), r"are fractions of training"),
])
def test_bad_milestones(milestones, message):
    with pytest.raises(ConfigError, match="--milestones " + message):
        TrainConfig(milestones=milestones)


def _parse(*argv: str) -> TrainConfig:
    parser = argparse.ArgumentParser()
    add_arguments(parser, TrainConfig)
    return from_arguments(TrainConfig, parser.parse_args(list(argv)))


def test_flags_from_the_command_line():
    assert _parse("--milestones", "0.3", "0.6").milestones == (0.3, 0.6)
    with pytest.raises(ConfigError, match="--milestones must be strictly increasing"):
        _parse("--milestones", "0.6", "0.3")
    with pytest.raises(ConfigError, match="--lr"):
        _parse("--lr", "1e300")
    with pytest.raises(ConfigError, match="Unknown device 'tpu9'"):
        _parse("--device", "tpu9")


# ----------------------------------------------------------------------------- data folders

def test_data_root_that_does_not_exist(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    missing = tmp_path / "nowhere"
    with pytest.raises(DatasetNotFoundError, match=f"--data-root {re.escape(str(missing))} does not exist"):
        locate("mnist", missing)


def test_data_root_that_is_a_file(tmp_path):
    file = tmp_path / "data.txt"
    file.write_text("not a folder")
    with pytest.raises(DatasetNotFoundError, match=f"--data-root {re.escape(str(file))} is not a folder"):
        load_splits("mnist", file)


def test_env_folder_that_does_not_exist(tmp_path, monkeypatch):
    missing = tmp_path / "typo"
    monkeypatch.setenv(ENV_VAR, str(missing))
    with pytest.raises(DatasetNotFoundError, match=rf"\${ENV_VAR} is set to {re.escape(str(missing))}, which does "
                                                   rf"not exist.*unset {ENV_VAR}"):
        locate("fashion-mnist")


def test_explicit_data_root_wins_over_a_wrong_env(tmp_path, monkeypatch):
    root = write_fake_mnist(tmp_path / "mnist")
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "typo"))
    assert locate("mnist", root) == root


@pytest.fixture
def system_mnist(tmp_path, monkeypatch):
    """A fake 'system copy' of MNIST (as the Debian package provides Fashion-MNIST)."""
    system = write_fake_mnist(tmp_path / "system" / "mnist", n_train=7)
    spec = registry.DATASETS["mnist"]
    monkeypatch.setitem(registry.DATASETS, "mnist", dataclasses.replace(spec, system_dirs=(str(system),)))
    return system


def test_env_without_the_dataset_falls_back_with_a_warning(tmp_path, monkeypatch, system_mnist):
    env = tmp_path / "env"
    env.mkdir()
    monkeypatch.setenv(ENV_VAR, str(env))
    with pytest.warns(DataLocationWarning, match=rf"\${ENV_VAR}={re.escape(str(env))} holds no mnist.*"
                                                 rf"using the copy in {re.escape(str(system_mnist))}"):
        assert locate("mnist") == system_mnist
    with pytest.warns(DataLocationWarning):
        assert len(load_splits("mnist").train) == 7


def test_env_with_an_incomplete_copy_falls_back_naming_the_missing_file(tmp_path, monkeypatch, system_mnist):
    env = tmp_path / "env"
    write_fake_mnist(env / "mnist")
    (env / "mnist" / "t10k-labels-idx1-ubyte.gz").unlink()
    monkeypatch.setenv(ENV_VAR, str(env))
    with pytest.warns(DataLocationWarning, match=r"incomplete mnist .*lacks t10k-labels-idx1-ubyte"):
        assert locate("mnist") == system_mnist


def test_env_with_the_dataset_does_not_warn(tmp_path, monkeypatch, system_mnist):
    env = tmp_path / "env"
    write_fake_mnist(env / "mnist", n_train=9)
    monkeypatch.setenv(ENV_VAR, str(env))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert locate("mnist") == env / "mnist"
        assert len(load_splits("mnist").train) == 9


def test_env_without_the_dataset_and_no_system_copy(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    with pytest.raises(DatasetNotFoundError, match=f"'cifar10' was not found. Looked in: {re.escape(str(tmp_path))}"):
        locate("cifar10")


# ----------------------------------------------------------------------------- a file or folder missing

@pytest.mark.parametrize("gone", ["t10k-labels-idx1-ubyte.gz", "train-images-idx3-ubyte.gz"])
def test_missing_idx_file_is_named(tmp_path, monkeypatch, gone):
    monkeypatch.delenv(ENV_VAR, raising=False)
    root = write_fake_mnist(tmp_path / "fashion-mnist")
    (root / gone).unlink()
    stem = re.escape(gone.removesuffix(".gz"))
    with pytest.raises(DatasetNotFoundError, match=f"incomplete in {re.escape(str(root))}: it lacks {stem}"):
        load_splits("fashion-mnist", tmp_path)
    with pytest.raises(DatasetNotFoundError, match=f"{re.escape(str(root))} lacks {stem}.*3 of the 4"):
        idx.load_idx_splits(root, name="fashion-mnist", classes=tuple("0123456789"))


def test_missing_cifar_batch_is_named(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    root = tmp_path / "cifar-10-batches-py"
    write_fake_cifar10(root, n_per_batch=2, n_test=2)
    (root / "data_batch_3").unlink()
    (root / "test_batch").unlink()
    with pytest.raises(DatasetNotFoundError, match=f"{re.escape(str(root))}: it lacks data_batch_3, test_batch"):
        load_splits("cifar10", tmp_path)
    with pytest.raises(DatasetNotFoundError, match="lacks data_batch_3, test_batch .*cifar-10-python.tar.gz"):
        cifar.load_cifar10(root)


@pytest.fixture(scope="module")
def cinic_template(tmp_path_factory):
    root = tmp_path_factory.mktemp("cinic") / "cinic10"
    write_fake_cinic10(root, n_per_class=1)
    return root


def _copy(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_missing_cinic_split_folder_is_named(tmp_path, cinic_template):
    import shutil

    root = _copy(cinic_template, tmp_path / "cinic10")
    shutil.rmtree(root / "valid")
    with pytest.raises(DatasetNotFoundError, match=f"{re.escape(str(root))}: it lacks valid/\\. "):
        locate("cinic10", tmp_path)
    from datadiet.data import cinic

    with pytest.raises(DatasetNotFoundError, match="lacks the folder.*valid/"):
        cinic.load_cinic10(root)


def test_missing_cinic_class_folder_is_named(tmp_path, cinic_template):
    import shutil

    root = _copy(cinic_template, tmp_path / "cinic10")
    shutil.rmtree(root / "test" / "truck")
    with pytest.raises(DatasetNotFoundError, match="it lacks test/truck/"):
        load_splits("cinic10", tmp_path)


# ----------------------------------------------------------------------------- damaged files

def _damage_idx(path, how):
    good = path.read_bytes()
    if how == "truncated gzip":
        path.write_bytes(good[: len(good) // 2])
    elif how == "bad gzip crc":
        path.write_bytes(good[:-8] + bytes(8))
    elif how == "not gzip":
        path.write_bytes(b"\x1f\x8b" + b"garbage" * 10)
    elif how == "wrong magic":
        write_idx(path, np.zeros((4, 28, 28), np.uint8))  # an image file where labels belong
    elif how == "truncated data":
        raw = gzip.decompress(good)
        path.write_bytes(gzip.compress(raw[:-1]))
    elif how == "empty":
        path.write_bytes(b"")


@pytest.mark.parametrize("how", ["truncated gzip", "bad gzip crc", "not gzip", "wrong magic", "truncated data",
                                 "empty"])
def test_damaged_idx_file_is_named(tmp_path, how):
    root = write_fake_mnist(tmp_path / "mnist")
    _damage_idx(root / "t10k-labels-idx1-ubyte.gz", how)
    with pytest.raises(CorruptDataError, match="t10k-labels-idx1-ubyte.gz"):
        load_splits("mnist", root)


@pytest.mark.parametrize("how", ["truncated", "garbage", "gzipped", "empty"])
def test_damaged_cifar_batch_is_named(tmp_path, how):
    root = tmp_path / "cifar-10-batches-py"
    write_fake_cifar10(root, n_per_batch=2, n_test=2)
    path = root / "data_batch_3"
    good = path.read_bytes()
    path.write_bytes({"truncated": good[: len(good) // 2], "garbage": b"\x80\x02garbage" * 5,
                      "gzipped": gzip.compress(good), "empty": b""}[how])
    with pytest.raises(CorruptDataError, match="data_batch_3"):
        load_splits("cifar10", root)


def test_every_error_here_is_a_datadiet_error():
    for cls in (ConfigError, CorruptDataError, DatasetNotFoundError):
        assert issubclass(cls, DataDietError)
