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
from datadiet.runs.sweep import Execution, default_workers, load_results, run_sweep
from fakes import write_fake_mnist
from test_sweep import _tasks


@pytest.fixture
def root(tmp_path):
    return write_fake_mnist(tmp_path / "data", n_train=64, n_test=32)


def test_two_workers_give_exactly_the_results_of_one(root, tmp_path):
    tasks = _tasks(root, seeds=(0, 1, 2))
    one = run_sweep(tasks, tmp_path / "one", Execution(workers=1), threads=1, log=lambda _: None)
    two = run_sweep(tasks, tmp_path / "two", Execution(workers=2), threads=1, log=lambda _: None)
    assert two.ran == one.ran == 6
    assert {r["run_id"]: r["test_accuracy"] for r in two.results} == {r["run_id"]: r["test_accuracy"] for r in one.results}
    assert {r["run_id"]: r["test_loss"] for r in two.results} == {r["run_id"]: r["test_loss"] for r in one.results}
    assert sorted(p.name for p in (tmp_path / "two" / "runs").iterdir()) == \
        sorted(p.name for p in (tmp_path / "one" / "runs").iterdir())


def test_a_failure_in_a_worker_is_recorded_and_the_others_finish(root, tmp_path):
    tasks = _tasks(root, seeds=(0, 1))
    bad = tasks[0].spec.train.__class__(**{**tasks[0].spec.train.__dict__, "lr": 1e30})  # diverges
    tasks[0] = type(tasks[0])(type(tasks[0].spec)(**{**tasks[0].spec.__dict__, "train": bad}), tasks[0].positions)
    outcome = run_sweep(tasks, tmp_path / "out", Execution(workers=2), threads=1, log=lambda _: None)
    assert len(outcome.failures) == 1
    assert "NonFiniteLossError" in outcome.failures[0]["error"]
    assert outcome.ran == 3
    assert len(list((tmp_path / "out" / "failures").glob("*.json"))) == 1


def test_default_is_one_worker_on_the_cpu_and_zero_is_refused(root, tmp_path):
    assert default_workers(_tasks(root)) == 1
    with pytest.raises(ConfigError, match="at least 1"):
        run_sweep(_tasks(root), tmp_path, Execution(workers=0), log=lambda _: None)


SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
from pathlib import Path
from test_sweep import _tasks
from datadiet.runs.sweep import Execution, run_sweep
run_sweep(_tasks(Path({root!r}), seeds=range(8), keeps=(1.0,)), Path({out!r}), Execution(workers=2), threads=1, log=lambda _: None)
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
    outcome = run_sweep(_tasks(root, seeds=range(8), keeps=(1.0,)), out, Execution(workers=2), threads=1, log=lambda _: None)
    assert outcome.skipped == len(survivors)
    assert outcome.ran == 8 - len(survivors)
    results = load_results(out)
    assert len({r["run_id"] for r in results}) == len(results) == 8
    for name, content in survivors.items():
        assert (out / "runs" / name).read_bytes() == content


ORPHAN_SCRIPT = """
import os, sys, time
from pathlib import Path
from datadiet.runs.sweep import worker_pool

def hold(flag):
    Path(flag).write_text(str(os.getpid()))
    time.sleep(120)  # a run that outlives its parent

if __name__ == "__main__":
    folder = Path(sys.argv[1])
    pool = worker_pool(2)  # the pool of `--workers 2`
    for i in range(2):
        pool.submit(hold, str(folder / f"worker-{i}"))
    while len(list(folder.glob("worker-*"))) < 2:
        time.sleep(0.05)
    print("running", flush=True)
    time.sleep(120)
"""


def _alive(pid: int) -> bool:
    """Running, and not a zombie (an orphan's zombie lingers where the container's init does not reap it)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_workers_die_with_a_sigkilled_parent(tmp_path):
    script = tmp_path / "orphans.py"  # a file: spawned workers import the task function from it
    script.write_text(ORPHAN_SCRIPT)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    parent = subprocess.Popen([sys.executable, str(script), str(tmp_path)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert parent.stdout.readline().strip() == "running"
        workers = [int((tmp_path / f"worker-{i}").read_text()) for i in range(2)]
        assert all(_alive(pid) for pid in workers)
        parent.kill()  # SIGKILL: no cleanup runs in the parent
        parent.wait()
        deadline = time.monotonic() + 10
        while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(_alive(pid) for pid in workers), "workers outlived their parent"
    finally:
        parent.kill()
        for pid in workers if "workers" in locals() else ():
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


POLLING_CHILD = """
import sys, time
import datadiet.runs.sweep as sweep
sweep._kernel_kills_on_parent_death = lambda: False  # as where prctl is missing (macOS, BSD)
import os
sweep.die_with_parent(os.getppid())
print("watching", flush=True)
time.sleep(120)
"""
POLLING_PARENT = """
import subprocess, sys
child = subprocess.Popen([sys.executable, "-c", sys.argv[1]], stdout=subprocess.PIPE, text=True)
assert child.stdout.readline().strip() == "watching"
print(child.pid, flush=True)
import time; time.sleep(120)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_without_prctl_a_worker_polls_for_its_parent_and_exits(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    parent = subprocess.Popen([sys.executable, "-c", POLLING_PARENT, POLLING_CHILD], stdout=subprocess.PIPE, text=True,
                              env=env)
    child = None
    try:
        child = int(parent.stdout.readline())
        assert _alive(child)
        parent.kill()
        parent.wait()
        deadline = time.monotonic() + 10
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(child), "the polling worker outlived its parent"
    finally:
        parent.kill()
        if child is not None and _alive(child):
            os.kill(child, signal.SIGKILL)
