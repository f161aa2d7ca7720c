"""The local executor with K worker processes: the same results as one worker, and a kill loses nothing."""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from datadiet.errors import ConfigError
from datadiet.runs.sweep import Execution, default_workers, load_results, run_sweep
from fakes import write_fake_mnist
from gates import blocked, wait_until
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
sys.path.insert(0, {tests!r})  # spawned workers get this path too: they unpickle gates.BlockRuns
from pathlib import Path
import datadiet.runs.sweep as sweep
from gates import BlockRuns
from test_sweep import _tasks
sweep.execute_run = BlockRuns({gate!r}, finish={finish})
sweep.run_sweep(_tasks(Path({root!r}), seeds=range({n}), keeps=(1.0,)), Path({out!r}), sweep.Execution(workers=2),
                threads=1, log=lambda _: None)
"""


def test_a_concurrent_sweep_killed_with_sigkill_resumes_without_loss_or_duplicates(root, tmp_path):
    """Two workers train seeds 0 and 1, then each blocks in a later run (gates.BlockRuns): the test kills the sweep
    and its workers there, with exactly those two records written, whatever the machine's speed, and resumes."""
    out, gate, n, finish = tmp_path / "sweep", tmp_path / "gate", 6, 2
    script = SCRIPT.format(tests=str(Path(__file__).parent), root=str(root), out=str(out), gate=str(gate),
                           finish=finish, n=n)
    tasks = _tasks(root, seeds=range(n), keeps=(1.0,))
    finished = sorted(f"{t.spec.run_id}.json" for t in tasks[:finish])
    with open(tmp_path / "stderr", "wb") as stderr:
        proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.DEVNULL, stderr=stderr,
                                start_new_session=True)
    try:
        wait_until(lambda: (len(blocked(gate)) == 2 and _names(out / "runs") == finished) or proc.poll() is not None,
                   "both workers to block with the first two records written")
        assert proc.poll() is None, f"the sweep ended before the kill: {(tmp_path / 'stderr').read_text()}"
        os.killpg(proc.pid, signal.SIGKILL)  # the sweep and its workers, all at once
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    survivors = {p.name: p.read_bytes() for p in (out / "runs").glob("*.json")}
    assert sorted(survivors) == finished  # a blocked run never returns, so nothing was written after the wait
    for content in survivors.values():
        json.loads(content)
    outcome = run_sweep(tasks, out, Execution(workers=2), threads=1, log=lambda _: None)
    assert outcome.skipped == finish
    assert outcome.ran == n - finish
    assert not outcome.failures
    results = load_results(out)
    assert sorted(r["run_id"] for r in results) == sorted(t.spec.run_id for t in tasks)  # each run once
    for name, content in survivors.items():
        assert (out / "runs" / name).read_bytes() == content
    fresh = run_sweep(tasks, tmp_path / "fresh", Execution(workers=1), threads=1, log=lambda _: None)
    by_id = {r["run_id"]: (r["test_accuracy"], r["test_loss"]) for r in fresh.results}
    assert {r["run_id"]: (r["test_accuracy"], r["test_loss"]) for r in results} == by_id  # resumed = uninterrupted


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*.json"))


ORPHAN_SCRIPT = """
import os, sys, time
from pathlib import Path
from datadiet.runs.sweep import worker_pool

SAFETY_LIMIT = 600  # seconds: only ends processes that a failed test left behind

def hold(flag):
    hidden = Path(flag).with_name("." + Path(flag).name)
    hidden.write_text(str(os.getpid()))
    os.replace(hidden, flag)  # whole: the test reads the pid as soon as the name appears
    time.sleep(SAFETY_LIMIT)  # a run that outlives its parent; held until killed

if __name__ == "__main__":
    folder = Path(sys.argv[1])
    pool = worker_pool(2)  # the pool of `--workers 2`
    runs = [pool.submit(hold, str(folder / f"worker-{i}")) for i in range(2)]
    give_up = time.monotonic() + SAFETY_LIMIT
    while len(list(folder.glob("worker-*"))) < 2:
        if any(run.done() for run in runs) or time.monotonic() > give_up:  # hold() never returns: a worker failed
            print("workers did not start:", [run.exception() for run in runs if run.done()], flush=True)
            os._exit(1)
        time.sleep(0.02)
    print("running", flush=True)
    sys.stdin.read()  # held until the test kills this process (or dies itself: end of input)
    os._exit(0)
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
    parent = subprocess.Popen([sys.executable, str(script), str(tmp_path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env=env)
    workers = []
    try:
        assert parent.stdout.readline().strip() == "running"
        workers = [int((tmp_path / f"worker-{i}").read_text()) for i in range(2)]
        assert all(_alive(pid) for pid in workers)  # held in hold(): they end only if something kills them
        parent.kill()  # SIGKILL: no cleanup runs in the parent
        parent.wait()
        wait_until(lambda: not any(_alive(pid) for pid in workers), "the workers to die with their parent", limit=60)
    finally:
        parent.kill()
        parent.wait()
        for pid in workers:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


POLLING_CHILD = """
import sys, time
import datadiet.runs.sweep as sweep
sweep._kernel_kills_on_parent_death = lambda: False  # as where prctl is missing (macOS, BSD)
import os
sweep.die_with_parent(os.getppid())
print("watching", flush=True)
time.sleep(600)  # held until the watcher ends this process; the limit only ends one a failed test left behind
"""
POLLING_PARENT = """
import os, subprocess, sys
child = subprocess.Popen([sys.executable, "-c", sys.argv[1]], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         text=True)
assert child.stdout.readline().strip() == "watching"
print(child.pid, flush=True)
sys.stdin.read()  # held until the test kills this process (or dies itself: end of input)
os._exit(0)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_without_prctl_a_worker_polls_for_its_parent_and_exits(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    parent = subprocess.Popen([sys.executable, "-c", POLLING_PARENT, POLLING_CHILD], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env=env)
    child = None
    try:
        line = parent.stdout.readline().strip()
        assert line.isdigit(), "the parent did not start its watching child"
        child = int(line)
        assert _alive(child)  # held in its sleep: it ends only when its watcher sees the parent gone
        parent.kill()
        parent.wait()
        wait_until(lambda: not _alive(child), "the polling worker to exit after its parent died", limit=60)
    finally:
        parent.kill()
        parent.wait()
        if child is not None and _alive(child):
            os.kill(child, signal.SIGKILL)
