"""The one run identity: what it ignores, what it does not, and that every cache uses it."""
from dataclasses import replace

import numpy as np
import pytest

from datadiet.config import DataConfig, TrainConfig
from datadiet.runs.identity import DIGEST_LENGTH, canonical, digest_ids, identity
from datadiet.runs.sweep import RunSpec
from datadiet.runs import Execution, Workspace


def test_identity_ignores_location_device_and_version_at_any_depth():
    base = {"data": {"dataset": "x", "data_root": "/a"}, "train": {"lr": 0.1, "device": "cpu"}, "version": "0.1"}
    moved = {"version": "9", "train": {"device": "cuda:3", "lr": 0.1}, "data": {"data_root": "/b", "dataset": "x"}}
    assert identity(base) == identity(moved)
    assert canonical(base) == {"data": {"dataset": "x"}, "train": {"lr": 0.1}}
    assert len(identity(base)) == DIGEST_LENGTH


def test_identity_changes_with_anything_that_determines_results():
    base = {"train": {"lr": 0.1, "seed": 0}, "keep": 0.5}
    assert identity(base) != identity({"train": {"lr": 0.2, "seed": 0}, "keep": 0.5})
    assert identity(base) != identity({"train": {"lr": 0.1, "seed": 1}, "keep": 0.5})
    assert identity(base) != identity({"train": {"lr": 0.1, "seed": 0}, "keep": 0.7})


def test_tuples_and_lists_are_one_thing_as_stored_json_makes_them():
    assert identity({"keeps": (0.3, 0.5)}) == identity({"keeps": [0.3, 0.5]})


def test_run_id_is_the_identity_of_the_spec_and_ignores_the_device():
    spec = RunSpec(DataConfig(subset=10), TrainConfig(device="cpu"), "random", 0.5, None, "abc")
    on_gpu = RunSpec(replace(spec.data, data_root="/elsewhere"), replace(spec.train, device="cuda"), "random", 0.5,
                     None, "abc")
    assert spec.run_id == on_gpu.run_id == identity(spec)
    assert spec.run_id != replace(spec, subset_digest="abd").run_id


def test_digest_of_ids_depends_on_order_and_content():
    assert digest_ids([1, 2, 3]) == digest_ids(np.array([1, 2, 3], dtype=np.int32))
    assert digest_ids([1, 2, 3]) != digest_ids([1, 3, 2])
    assert len(digest_ids([])) == DIGEST_LENGTH


def test_workspace_caches_are_keyed_by_the_same_identity_whatever_the_device(tmp_path):
    data, train = DataConfig(subset=10), TrainConfig()
    cpu = Workspace(tmp_path, Execution(device="cpu")).run_cache("x", data, Workspace(tmp_path, Execution(device="cpu")).train(train))
    gpu = Workspace(tmp_path, Execution(device="cuda")).run_cache("x", data, Workspace(tmp_path, Execution(device="cuda")).train(train))
    assert cpu == gpu == tmp_path / "x" / "cache" / identity({"data": data, "train": train})


@pytest.mark.parametrize("value", [{"a": float("nan")}, {"a": None}, {"a": [1, {"device": 2}]}])
def test_canonical_round_trips_json(value):
    assert canonical(canonical(value)) == canonical(value)
