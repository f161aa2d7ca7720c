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


# --- stored records: every kind of run keeps its identity ----------------------------------------------------------
# The `train` part of run records as this version's sweep wrote them (flat dynamic fields: `dynamic`, `prune_ratio`,
# `delta`, and RS2's per-epoch fraction under `keep`), each with the run id it was stored under. Computed once, with
# the code of the time, and never recomputed: a change that moves any of these ids orphans finished runs.
_STORED_DATA = {"channels": None, "data_root": None, "dataset": "fashion-mnist", "label_noise": 0.0, "noise_seed": 0,
                "resize": None, "split_seed": 0, "subset": 8000, "subset_mode": "first", "subset_seed": 0,
                "test_fraction": 0.2, "test_subset": None}
_STORED_TRAIN = {"amp": True, "augment": True, "batch_size": 64, "budget": "matched", "channels_last": True,
                 "cuda_graph": True, "delta": 0.875, "device": "auto", "dynamic": "none", "epochs": 4.0,
                 "eval_batch_size": 1024, "flip": None, "keep": None, "lr": 0.1, "lr_decay": 0.2,
                 "milestones": [0.3, 0.6, 0.8], "model": "smallcnn", "momentum": 0.9, "nesterov": True, "pad": None,
                 "precision": "fp32", "prune_ratio": 0.5, "seed": 0, "steps": None, "weight_decay": 0.0005, "width": 0.5}
# kind → (run id, changes to the stored train dict, method, keep, subset digest)
STORED_RUNS = {
    "full": ("3c873c48da93b2026339", {}, "full", 1.0, ""),
    "static": ("2126f7a6db6d60164861", {"budget": "epochs"}, "el2n@epoch2", 0.5, "0123456789abcdef0123"),
    "infobatch": ("51bdf2e12093038a6979", {"dynamic": "infobatch"}, "infobatch", 1.0, ""),
    "infobatch-ratio": ("f3563439ec0594924400", {"dynamic": "infobatch", "prune_ratio": 0.3}, "infobatch", 1.0, ""),
    "infobatch-delta": ("7ef92d135a7860a3cae4", {"dynamic": "infobatch", "prune_ratio": 0.7, "delta": 0.5},
                        "infobatch", 1.0, ""),
    "rs2": ("f43cd0ff24caed386372", {"dynamic": "rs2", "keep": 0.5}, "rs2", 1.0, ""),
    # class weights (added after 0.2.0): records of "none" hold the key and keep the ids above; "balanced" is hashed
    "class-weighted": ("4a0543fbfd405e53e02c", {"class_weights": "balanced"}, "full", 1.0, ""),
    "class-weighted-equal": ("758156fe93b59276158c", {"class_weights": "balanced", "budget": "epochs"},
                             "el2n@epoch2+equal", 0.5, "0123456789abcdef0123"),
}
_BEFORE_DYNAMIC = ("dynamic", "prune_ratio", "delta", "keep", "precision")  # keys records of 0.2.0 do not have


def _stored_record(kind: str) -> dict:
    run_id, changes, method, keep, digest = STORED_RUNS[kind]
    return {"run_id": run_id, "data": dict(_STORED_DATA), "train": {**_STORED_TRAIN, **changes}, "method": method,
            "keep": keep, "offset": None, "subset_digest": digest, "data_fingerprint": ""}


def _spec_of(record: dict) -> dict:
    return {k: record[k] for k in ("data", "train", "method", "keep", "offset", "subset_digest", "data_fingerprint")}


@pytest.mark.parametrize("kind", sorted(STORED_RUNS))
def test_a_stored_record_of_every_kind_keeps_its_run_id(kind):
    record = _stored_record(kind)
    assert identity(_spec_of(record)) == record["run_id"]  # how read_run_files checks a record's name


@pytest.mark.parametrize("kind", sorted(STORED_RUNS))
def test_a_stored_record_loads_into_a_spec_with_its_run_id(kind):
    from datadiet.config import from_dict

    record = _stored_record(kind)
    spec = RunSpec(from_dict(DataConfig, record["data"]), from_dict(TrainConfig, record["train"]), record["method"],
                   record["keep"], None, record["subset_digest"])
    assert spec.run_id == record["run_id"]


def test_a_full_data_record_from_before_dynamic_pruning_keeps_its_run_id():
    record = _stored_record("full")
    record["train"] = {k: v for k, v in record["train"].items() if k not in _BEFORE_DYNAMIC}
    assert identity(_spec_of(record)) == record["run_id"]


def _recipe_today(kind: str) -> TrainConfig:
    """The recipe of each stored kind, built with today's API (the pruner and its parameters in one field)."""
    from datadiet.methods import DynamicMethod

    base = TrainConfig(model="smallcnn", width=0.5, epochs=4.0, batch_size=64)
    return {"full": base, "static": replace(base, budget="epochs"), "infobatch": replace(base, dynamic="infobatch"),
            "infobatch-ratio": DynamicMethod("infobatch", 0.3).recipe(base),
            "infobatch-delta": DynamicMethod.parse("infobatch:prune_ratio=0.7,delta=0.5").recipe(base),
            "rs2": DynamicMethod("rs2", 0.5).recipe(base),
            "class-weighted": replace(base, class_weights="balanced"),
            "class-weighted-equal": replace(base, class_weights="balanced", budget="epochs")}[kind]


@pytest.mark.parametrize("kind", sorted(STORED_RUNS))
def test_a_run_specified_today_has_its_stored_run_id_and_so_does_its_record(kind):
    import json

    run_id, _, method, keep, digest = STORED_RUNS[kind]
    spec = RunSpec(DataConfig(dataset="fashion-mnist", subset=8000), _recipe_today(kind), method, keep, None, digest)
    assert spec.run_id == run_id
    written = json.loads(json.dumps(spec.describe()))  # the record as it lies on disk
    assert identity(_spec_of(written)) == run_id
    assert "prune_ratio" not in written["train"] and "keep" not in written["train"]  # the pruner's own dict instead


@pytest.mark.parametrize("kind", ["full", "static", "infobatch", "rs2"])
def test_class_weights_none_written_into_a_record_keeps_its_run_id(kind):
    record = _stored_record(kind)
    record["train"]["class_weights"] = "none"  # what records written today hold
    assert identity(_spec_of(record)) == record["run_id"]
    record["train"]["class_weights"] = "balanced"
    assert identity(_spec_of(record)) != record["run_id"]


def test_a_run_specified_today_writes_class_weights_into_its_record():
    spec = RunSpec(DataConfig(dataset="fashion-mnist", subset=8000), _recipe_today("full"), "full", 1.0, None, "")
    assert spec.describe()["train"]["class_weights"] == "none" and spec.run_id == STORED_RUNS["full"][0]
