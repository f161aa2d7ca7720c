"""Sweeps: one result per spec, failures recorded and retried, resume after SIGKILL, Ray equals local."""
import json
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import datadiet.runs.sweep as sweep_mod
from fakes import write_fake_mnist
from gates import blocked, wait_until
from datadiet.config import DataConfig, TrainConfig
from datadiet.errors import ConfigError
from datadiet.runs import digest_ids
from datadiet.runs.sweep import Execution, RunSpec, Task, load_results, run_sweep

TRAIN = TrainConfig(model="smallcnn", width=0.25, batch_size=16, epochs=1, eval_batch_size=64)


def _tasks(root, seeds=(0, 1), keeps=(0.5, 1.0)):
    data = DataConfig(dataset="mnist", data_root=str(root))
    tasks = []
    for seed in seeds:
        for keep in keeps:
            positions = None if keep == 1.0 else np.arange(0, 64, int(1 / keep))
            ids = np.arange(64) if positions is None else positions
            tasks.append(Task(RunSpec(data, replace(TRAIN, seed=seed), "every-other", keep, None, digest_ids(ids)),
                              positions))
    return tasks


@pytest.fixture
def root(tmp_path):
    return write_fake_mnist(tmp_path / "data", n_train=64, n_test=32)


def test_run_id_is_a_content_hash_that_ignores_the_data_location(root, tmp_path):
    a = _tasks(root)[0].spec
    moved = replace(a, data=replace(a.data, data_root="/elsewhere"))
    assert a.run_id == moved.run_id
    assert a.run_id == replace(a, train=replace(a.train, device="cuda:1")).run_id  # nor the device
    ids = {a.run_id, replace(a, keep=0.25).run_id, replace(a, train=replace(a.train, lr=0.05)).run_id,
           replace(a, offset=0.1).run_id, replace(a, subset_digest=digest_ids([1, 2])).run_id}
    assert len(ids) == 5  # everything that changes the numbers changes the id


def test_sweep_writes_one_result_per_run_and_skips_them_next_time(root, tmp_path, monkeypatch):
    out = tmp_path / "sweep"
    first = run_sweep(_tasks(root) + _tasks(root)[:1], out, log=lambda _: None)  # a duplicate spec runs once
    assert first.ran == 4
    assert first.skipped == 0
    assert len(first.results) == 4
    record = json.loads(next((out / "runs").glob("*.json")).read_text())
    assert {"run_id", "train", "data", "method", "keep", "test_accuracy", "steps", "dataset_fingerprint"} <= set(record)
    assert {r["steps"] for r in first.results} == {64 // 16}  # matched budget for every fraction
    monkeypatch.setattr(sweep_mod, "execute_run", lambda *a, **k: pytest.fail("a finished run was run again"))
    again = run_sweep(_tasks(root), out, log=lambda _: None)
    assert again.ran == 0
    assert again.skipped == 4
    assert len(again.results) == 4


def test_a_failed_run_is_recorded_does_not_stop_the_sweep_and_is_retried(root, tmp_path, monkeypatch):
    out = tmp_path / "sweep"
    real = sweep_mod.execute_run
    broken = _tasks(root)[1].spec.run_id

    def flaky(spec, positions, threads=None, **options):
        if spec.run_id == broken:
            raise FloatingPointError("loss is NaN")
        return real(spec, positions, threads, **options)

    monkeypatch.setattr(sweep_mod, "execute_run", flaky)
    outcome = run_sweep(_tasks(root), out, log=lambda _: None)
    assert len(outcome.results) == 3
    assert len(outcome.failures) == 1
    failure = json.loads((out / "failures" / f"{broken}.json").read_text())
    assert failure["error"] == "FloatingPointError: loss is NaN"
    assert failure["keep"] == 1.0
    assert "traceback" in failure
    monkeypatch.setattr(sweep_mod, "execute_run", real)
    retried = run_sweep(_tasks(root), out, log=lambda _: None)
    assert retried.ran == 1
    assert len(retried.results) == 4
    assert not (out / "failures" / f"{broken}.json").exists()


SWEEP_SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
import datadiet.runs.sweep as sweep
from gates import BlockRuns
from test_sweep import _tasks
sweep.execute_run = BlockRuns({gate!r}, finish={finish})
sweep.run_sweep(_tasks({root!r}, seeds=range({n}), keeps=(1.0,)), {out!r}, log=lambda _: None)
"""


def test_a_sweep_killed_with_sigkill_resumes_without_loss_or_duplicates(root, tmp_path):
    """The sweep process trains seeds 0 and 1, then blocks in its third run (gates.BlockRuns): the test kills it
    there, at a known state whatever the machine's speed, and resumes."""
    out, gate, n, finish = tmp_path / "sweep", tmp_path / "gate", 4, 2
    script = SWEEP_SCRIPT.format(tests=str(Path(__file__).parent), root=str(root), out=str(out), gate=str(gate),
                                 finish=finish, n=n)
    with open(tmp_path / "stderr", "wb") as stderr:
        proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        wait_until(lambda: blocked(gate) or proc.poll() is not None, "the sweep to block in its third run")
        assert proc.poll() is None, f"the sweep ended before the kill: {(tmp_path / 'stderr').read_text()}"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    tasks = _tasks(root, seeds=range(n), keeps=(1.0,))
    survivors = {p.name: p.read_bytes() for p in (out / "runs").glob("*.json")}
    assert sorted(survivors) == sorted(f"{t.spec.run_id}.json" for t in tasks[:finish])  # what it finished, no more
    assert sorted(p.name for p in (out / "runs").iterdir()) == sorted(survivors)  # no temporary file left behind
    for content in survivors.values():
        json.loads(content)  # every result on disk is complete
    outcome = run_sweep(tasks, out, log=lambda _: None)
    assert outcome.skipped == finish
    assert outcome.ran == n - finish
    assert not outcome.failures
    results = load_results(out)
    assert sorted(r["run_id"] for r in results) == sorted(t.spec.run_id for t in tasks)  # each run once
    for name, content in survivors.items():  # finished runs were not redone
        assert (out / "runs" / name).read_bytes() == content
    fresh = run_sweep(tasks, tmp_path / "fresh", log=lambda _: None)
    by_id = {r["run_id"]: (r["test_accuracy"], r["test_loss"]) for r in fresh.results}
    assert {r["run_id"]: (r["test_accuracy"], r["test_loss"]) for r in results} == by_id  # resumed = uninterrupted


def test_unknown_executor_is_a_clear_error(root, tmp_path):
    with pytest.raises(ConfigError, match="Unknown --executor 'slurm'"):
        run_sweep(_tasks(root)[:1], tmp_path, Execution(executor="slurm"), log=lambda _: None)


@pytest.mark.integration
def test_ray_executor_gives_the_same_results_as_local(root, tmp_path):
    ray = pytest.importorskip("ray")
    tasks = _tasks(root)
    local = run_sweep(tasks, tmp_path / "local", threads=1, log=lambda _: None)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        remote = run_sweep(tasks, tmp_path / "ray", Execution(executor="ray", cpus_per_run=1), threads=1, log=lambda _: None)
    finally:
        ray.shutdown()
    assert remote.ran == 4
    assert not remote.failures
    by_id = {r["run_id"]: r for r in local.results}
    for r in remote.results:
        assert r["test_accuracy"] == by_id[r["run_id"]]["test_accuracy"]
        assert r["test_loss"] == by_id[r["run_id"]]["test_loss"]


@pytest.fixture(scope="module")
def one_run(tmp_path_factory):
    """A finished sweep of one run: (its data root, its folder). Tests work on copies."""
    tmp = tmp_path_factory.mktemp("one-run")
    root = write_fake_mnist(tmp / "data", n_train=64, n_test=32)
    run_sweep(_tasks(root, seeds=(0,), keeps=(1.0,)), tmp / "sweep", log=lambda _: None)
    return root, tmp / "sweep"


def _copy_of(one_run, tmp_path):
    shutil.copytree(one_run[1], tmp_path / "sweep")
    return one_run[0], tmp_path / "sweep"


@pytest.mark.parametrize("key, value", [("test_accuracy", 0.999), ("test_loss", 0.01), ("wall_seconds", 1e-3),
                                        ("n_train", 1), ("version", "9.9"), ("dataset_fingerprint", "0" * 16)])
def test_a_record_edited_anywhere_is_caught_by_its_checksum(one_run, tmp_path, monkeypatch, key, value):
    root, out = _copy_of(one_run, tmp_path)
    path = next((out / "runs").glob("*.json"))
    record = json.loads(path.read_text())
    assert record[sweep_mod.CHECKSUM_KEY] == sweep_mod.record_checksum(record)
    assert path.stem in sweep_mod.read_run_files(out).records
    path.write_text(json.dumps({**record, key: value}))  # the file name (the identity) still matches
    files = sweep_mod.read_run_files(out)
    assert path.stem not in files.records
    assert files.invalid[path] == "its content does not match its record_sha256 (edited after it was written)"
    trained = []
    monkeypatch.setattr(sweep_mod, "execute_run", lambda spec, *a, **k: trained.append(spec) or record)
    run_sweep(_tasks(root, seeds=(0,), keeps=(1.0,)), out, log=lambda _: None)
    assert len(trained) == 1  # an edited record is trained again, like a damaged one
    assert sweep_mod.read_run_files(out).records[path.stem]["test_accuracy"] == record["test_accuracy"]


def test_a_checksum_survives_key_order_and_formatting(one_run, tmp_path):
    _, out = _copy_of(one_run, tmp_path)
    path = next((out / "runs").glob("*.json"))
    record = json.loads(path.read_text())
    path.write_text(json.dumps(dict(reversed(list(record.items())))))  # one line, keys reversed: the same content
    assert path.stem in sweep_mod.read_run_files(out).records


def test_remaining_time_is_the_mean_per_finished_run_times_the_runs_left():
    from datadiet.runs.sweep import remaining_time

    assert remaining_time(30.0, 3, 9) == "; about 60 s left"        # 10 s per run × 6 left
    assert remaining_time(600.0, 2, 5) == "; about 15 min left"     # 300 s per run × 3 left = 900 s
    assert remaining_time(10.0, 4, 4) == "" and remaining_time(0.0, 0, 4) == ""


def test_a_progress_line_tells_runs_of_one_method_apart_by_their_recipe():
    from dataclasses import replace

    from datadiet.config import DataConfig, TrainConfig
    from datadiet.runs.sweep import RunSpec

    train = TrainConfig(epochs=4, seed=1000)

    def label(method, keep=1.0, **changes):
        return RunSpec(DataConfig(), replace(train, **changes), method, keep, None, "d", "").label

    # analyze compute: full data at fractions of the budget, in bf16, and InfoBatch at two ratios
    assert [label("full", epochs=e) for e in (0.8, 4)] == ["full keep=1 seed=1000 epochs=0.8",
                                                           "full keep=1 seed=1000 epochs=4"]
    assert label("full", precision="bf16") == "full keep=1 seed=1000 epochs=4 bf16"
    assert label("infobatch", dynamic="infobatch") == "infobatch keep=1 seed=1000 prune_ratio=0.5 delta=0.875"
    assert label("el2n@epoch2", 0.5) == "el2n@epoch2 keep=0.5 seed=1000"  # a matched-budget subset: as before
