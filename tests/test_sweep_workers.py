"""The local executor with K worker processes: the same results as one worker, and a kill loses nothing."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from datadiet.errors import ConfigError
from datadiet.runs.sweep import default_workers, load_results, run_sweep
from fakes import write_fake_mnist
from test_sweep import _tasks


@pytest.fixture
def root(tmp_path):
    return write_fake_mnist(tmp_path / "data", n_train=64, n_test=32)


def test_two_workers_give_exactly_the_results_of_one(root, tmp_path):
    tasks = _tasks(root, seeds=(0, 1, 2))
    one = run_sweep(tasks, tmp_path / "one", workers=1, threads=1, log=lambda _: None)
    two = run_sweep(tasks, tmp_path / "two", workers=2, threads=1, log=lambda _: None)
    assert two.ran == one.ran == 6
    assert {r["run_id"]: r["test_accuracy"] for r in two.results} == {r["run_id"]: r["test_accuracy"] for r in one.results}
    assert {r["run_id"]: r["test_loss"] for r in two.results} == {r["run_id"]: r["test_loss"] for r in one.results}
    assert sorted(p.name for p in (tmp_path / "two" / "runs").iterdir()) == \
        sorted(p.name for p in (tmp_path / "one" / "runs").iterdir())


def test_a_failure_in_a_worker_is_recorded_and_the_others_finish(root, tmp_path):
    tasks = _tasks(root, seeds=(0, 1))
    bad = tasks[0].spec.train.__class__(**{**tasks[0].spec.train.__dict__, "lr": 1e30})  # diverges
    tasks[0] = type(tasks[0])(type(tasks[0].spec)(**{**tasks[0].spec.__dict__, "train": bad}), tasks[0].positions)
    outcome = run_sweep(tasks, tmp_path / "out", workers=2, threads=1, log=lambda _: None)
    assert len(outcome.failures) == 1
    assert "NonFiniteLossError" in outcome.failures[0]["error"]
    assert outcome.ran == 3
    assert len(list((tmp_path / "out" / "failures").glob("*.json"))) == 1


def test_default_is_one_worker_on_the_cpu_and_zero_is_refused(root, tmp_path):
    assert default_workers(_tasks(root)) == 1
    with pytest.raises(ConfigError, match="at least 1"):
        run_sweep(_tasks(root), tmp_path, workers=0, log=lambda _: None)


SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
from pathlib import Path
from test_sweep import _tasks
from datadiet.runs.sweep import run_sweep
run_sweep(_tasks(Path({root!r}), seeds=range(8), keeps=(1.0,)), Path({out!r}), workers=2, threads=1, log=lambda _: None)
"""


def test_a_concurrent_sweep_killed_with_sigkill_resumes_without_loss_or_duplicates(root, tmp_path):
    out = tmp_path / "sweep"
    script = SCRIPT.format(tests=str(Path(__file__).parent), root=str(root), out=str(out))
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 180
    while len(list((out / "runs").glob("*.json"))) < 2 and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the sweep and its workers, all at once
    proc.wait()
    survivors = {p.name: p.read_bytes() for p in (out / "runs").glob("*.json")}
    assert 2 <= len(survivors) < 8, "the kill should land mid-sweep"
    for content in survivors.values():
        json.loads(content)
    outcome = run_sweep(_tasks(root, seeds=range(8), keeps=(1.0,)), out, workers=2, threads=1, log=lambda _: None)
    assert outcome.skipped == len(survivors)
    assert outcome.ran == 8 - len(survivors)
    results = load_results(out)
    assert len({r["run_id"] for r in results}) == len(results) == 8
    for name, content in survivors.items():
        assert (out / "runs" / name).read_bytes() == content
