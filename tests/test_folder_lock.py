"""One command per results folder: a lock held by a live process stops a second one; a dead holder does not."""
import json
import os
import subprocess
import sys
import textwrap
import threading

import pytest

from datadiet.errors import DataDietError, FolderBusyError
from datadiet.io import LOCK_NAME, folder_lock, remove_orphan_temporaries, write_json_atomic

HOLD = textwrap.dedent("""
    import sys, time
    from datadiet.io import folder_lock
    with folder_lock(sys.argv[1], "datadiet reproduce"):
        print("held", flush=True)
        time.sleep(60)
""")


@pytest.fixture
def holder(tmp_path):
    """A real second process holding ``tmp_path/out``."""
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert proc.stdout.readline().strip() == "held"
    yield out, proc
    proc.kill()
    proc.wait()


def test_second_process_is_refused_with_the_holders_name(holder):
    out, proc = holder
    with pytest.raises(FolderBusyError, match=rf"in use by datadiet reproduce \(pid {proc.pid} on "):
        with folder_lock(out, "datadiet reproduce"):
            pass


def test_killed_holder_leaves_no_stale_lock(holder):
    out, proc = holder
    proc.kill()
    proc.wait()
    with folder_lock(out, "datadiet report"):
        holder_info = json.loads((out / LOCK_NAME).read_text())
        assert holder_info["pid"] == os.getpid() and holder_info["command"] == "datadiet report"


def test_cli_second_reproduce_exits_2_and_writes_nothing(holder, capsys):
    from datadiet.cli import main
    out, proc = holder
    assert main(["reproduce", "--preset", "smoke", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert str(out) in err and f"pid {proc.pid}" in err and "Traceback" not in err
    assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME]


def within(seconds: float, body) -> None:
    """Run ``body`` and fail if it takes longer than ``seconds``: a lock that blocks instead of answering would
    otherwise hang the test run instead of failing it (the thread is a daemon, so a hung one is left behind)."""
    outcome = []

    def run():
        try:
            body()
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the test below
            outcome.append(exc)
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert outcome, f"still waiting after {seconds} s: the lock blocks instead of answering"
    if outcome[0] is not None:
        raise outcome[0]


def refused_elsewhere(folder) -> bool:
    """Whether a second process is refused ``folder`` right now (it exits 3 when refused, 0 when it got it)."""
    probe = ("import sys\nfrom datadiet.errors import FolderBusyError\nfrom datadiet.io import folder_lock\n"
             "try:\n    with folder_lock(sys.argv[1]): pass\nexcept FolderBusyError: sys.exit(3)\n")
    done = subprocess.run([sys.executable, "-c", probe, str(folder)], timeout=60,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    return done.returncode == 3


def test_lock_is_reentrant_in_one_process(tmp_path):
    a = tmp_path / "a"

    def nested():
        with folder_lock(a, "datadiet reproduce"):
            with folder_lock(a, "datadiet report"):  # the same process again: no wait, no error
                assert json.loads((a / LOCK_NAME).read_text())["command"] == "datadiet reproduce"
            with folder_lock(a / "scores"):  # a sub-folder is its own lock
                pass
            assert refused_elsewhere(a)  # leaving the inner holds did not release the outer one
        with folder_lock(a):  # released
            pass
    within(30, nested)
    assert not refused_elsewhere(a)


def test_taking_the_lock_removes_orphan_temporaries(tmp_path):
    write_json_atomic(tmp_path / "config.json", {"a": 1})
    write_json_atomic(tmp_path / "sweep" / "runs" / "kept.json", {"a": 1})
    orphan = tmp_path / "sweep" / "runs" / ".abc.json.x1y2z3w4.tmp"  # what a SIGKILL during a write leaves
    orphan.write_text('{"a"')
    with folder_lock(tmp_path):
        assert not orphan.exists()
        assert (tmp_path / "sweep" / "runs" / "kept.json").is_file()
    assert remove_orphan_temporaries(tmp_path) == 0


def test_only_datadiets_own_temporaries_in_a_results_folder_are_removed(tmp_path):
    mine = tmp_path / "notes" / ".vim-session.tmp"  # a user's file beside the results
    mine.parent.mkdir()
    mine.write_text("keep")
    lookalike = tmp_path / ".x.json.abc.tmp"  # not mkstemp's 8 characters
    lookalike.write_text("keep")
    orphan = tmp_path / ".result.json.k2j4h_9z.tmp"
    orphan.write_text("{")
    with folder_lock(tmp_path):  # not a results folder yet: nothing is touched
        pass
    assert orphan.exists()
    write_json_atomic(tmp_path / "config.json", {"a": 1})
    with folder_lock(tmp_path):
        pass
    assert not orphan.exists() and mine.read_text() == "keep" and lookalike.read_text() == "keep"


def test_a_refused_study_leaves_no_workspace_it_made_but_keeps_any_result(tmp_path):
    """A study writes workspace.json, its own <study>/config.json and <study>/plan.json before its first result:
    a folder the lock made that holds nothing else, at any depth, is removed when the command fails."""
    def fail(folder, *files):
        with pytest.raises(DataDietError, match="refused"):
            with folder_lock(folder, "datadiet reproduce"):
                for name in files:
                    write_json_atomic(folder / name, {})
                (folder / "scores" / "abc").mkdir(parents=True)  # an empty score folder
                raise DataDietError("refused")

    fail(tmp_path / "made" / "ws", "workspace.json", "reproduce/config.json", "reproduce/plan.json")
    assert not (tmp_path / "made").exists()
    fail(tmp_path / "ran", "workspace.json", "reproduce/config.json", "sweep/runs/0123.json")
    assert (tmp_path / "ran" / "sweep" / "runs" / "0123.json").is_file()  # a result: the folder stays
    assert (tmp_path / "ran" / "reproduce" / "config.json").is_file()
