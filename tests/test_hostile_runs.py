"""Hostile models, run records and results folders through the command line (the second and third hostile probes:
the third put pipes, devices, deep or huge JSON and read-only folders where datadiet reads and writes).

Each refused case checks what tests/test_hostile.py checks: exit status 2, no traceback, a message naming the
offending thing, no temporary file left, no output written (nothing but lock files) and guarded files unchanged.
The cases that are not errors (an edited run record is named and left out, not fatal) check the report instead.
"""
from __future__ import annotations

import errno
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from fakes import PipeGuard, runs_dir, score_dirs, study_dir, write_fake_mnist

from datadiet import io as dd_io
from datadiet.cli import main
from datadiet.data import save_arrays
from datadiet.report.tables import read_csv
from datadiet.runs.sweep import CHECKSUM_KEY, read_run_files
from datadiet.scores import ScoreTable, load_scores, save_scores

LOCK = ".datadiet.lock"
SMOKE = ["--preset", "smoke", "--methods", "grand@init", "--eval-seeds", "1", "--score-runs", "1", "--device", "cpu"]
TINY = ["--batch-size", "16", "--steps", "2", "--device", "cpu"]  # no --width: the hostile factories ignore it


def run_cli(argv) -> int:
    try:
        return main([str(a) for a in argv])
    except SystemExit as exc:  # argparse usage errors, or a SystemExit that escaped
        return exc.code if isinstance(exc.code, int) else 1


def norm(text: str) -> str:
    return " ".join(text.split())


def snapshot(path: Path):
    if path.is_file():
        return path.read_bytes()
    return {p.relative_to(path).as_posix(): (p.read_bytes() if p.is_file() else "<dir>")
            for p in sorted(path.rglob("*"))}


def only_locks(path: Path) -> bool:
    return not path.exists() or (path.is_dir() and all(p.is_dir() or p.name == LOCK for p in path.rglob("*")))


def strict_json(path: Path):
    """Parse as strict JSON: a bare NaN or Infinity fails."""
    def refuse(token):
        raise ValueError(f"{token} in {path}")
    return json.loads(path.read_text(), parse_constant=refuse)


@dataclass
class World:
    data: Path      # --data-root with a fake Fashion-MNIST (480 train, 240 test, 10 classes)
    results: Path   # a finished reduced smoke reproduction (3 runs)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    root = tmp_path_factory.mktemp("hostile-runs")
    data = root / "data"
    write_fake_mnist(data / "fashion-mnist", n_train=480, n_test=240)
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("DATADIET_DATA", raising=False)
        assert run_cli(["reproduce", *SMOKE, "--data-root", data, "--out", root / "results"]) == 0
    assert len(list(runs_dir(root / "results").glob("*.json"))) == 3
    return World(data, root / "results")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    monkeypatch.delenv("DATADIET_DATA", raising=False)
    monkeypatch.delenv("DATADIET_DEBUG", raising=False)


# ----------------------------------------------------------------------------- refused: status 2, nothing written

class Ctx:
    def __init__(self, world: World, tmp: Path, monkeypatch):
        self.w, self.tmp, self.mp = world, tmp, monkeypatch
        self.outputs: list[Path] = []   # nothing but lock files afterwards
        self.guarded: list[Path] = []   # byte-for-byte unchanged, lock files included
        self.after: list[Callable[[], None]] = []  # further checks
        self.cleanups: list[Callable[[], None]] = []  # run whatever happened (a pipe's guard stopped)

    def out(self, name: str) -> Path:
        self.outputs.append(self.tmp / name)
        return self.tmp / name

    def results(self) -> Path:
        copy = self.tmp / "results"
        shutil.copytree(self.w.results, copy)
        return copy


@dataclass
class Case:
    id: str
    build: Callable[[Ctx], list]
    expect: tuple[str, ...]
    absent: tuple[str, ...] = ()  # must not match stderr


CASES: list[Case] = []


def case(id: str, *expect: str, absent: tuple[str, ...] = ()):
    def register(build):
        CASES.append(Case(id, build, expect, absent))
        return build
    return register


def train(c: Ctx, model: str, *, out: Path | None = None) -> list:
    """``train`` of ``hostile_models:MODEL`` (or of the full import path ``MODEL``)."""
    model = model if ":" in model else f"hostile_models:{model}"
    return ["train", "--data-root", c.w.data, "--subset", "64", "--test-subset", "20", *TINY,
            "--model", model, "--out", out or c.out("train-out")]


def score(c: Ctx, model: str) -> list:
    return ["score", "--data-root", c.w.data, "--subset", "64", "--test-subset", "20", "--runs", "1",
            "--scores", "el2n", "--device", "cpu", "--model", f"hostile_models:{model}", "--out", c.out("score-out")]


# Models that do not fit the data are refused before training, scoring or writing: checked once with one example.
MODEL_CASES = {
    "more_outputs": (r"hostile_models:more_outputs", r"12 outputs per example", r"10 classes"),
    "fewer_outputs": (r"hostile_models:fewer_outputs", r"9 outputs per example", r"10 classes"),
    "TupleOutput": (r"hostile_models:TupleOutput", r"a tuple", r"return only the logits"),
    "NoParameters": (r"hostile_models:NoParameters", r"without trainable parameters"),
    "on_meta": (r"hostile_models:on_meta", r"meta device"),
    "exits": (r"hostile_models:exits", r"sys\.exit\(0\)", r"building the model"),
}
for _model, _expect in MODEL_CASES.items():
    CASES.append(Case(f"train-model-{_model}", lambda c, m=_model: train(c, m), _expect))
CASES.append(Case("score-model-more_outputs", lambda c: score(c, "more_outputs"), MODEL_CASES["more_outputs"]))
CASES.append(Case("reproduce-model-more_outputs",
                  lambda c: ["reproduce", *SMOKE, "--data-root", c.w.data, "--model", "hostile_models:more_outputs",
                             "--out", c.out("reproduce-out")], MODEL_CASES["more_outputs"]))


@case("train-model-module-exits-on-import", r"hostile_models_exit", r"sys\.exit\(0\)", r"imported")
def _(c):
    return train(c, "hostile_models_exit:right")


@case("train-model-nan-logits-in-eval", r"NaN or infinite", r"no result\.json")
def _(c):
    out = c.tmp / "train-out"  # keeps config.json (the recipe), as after any divergence

    def kept_the_recipe_only():
        assert sorted(p.name for p in out.iterdir() if p.name != LOCK) == ["config.json"]
    c.after.append(kept_the_recipe_only)
    return train(c, "NanInEval", out=out)


@case("train-out-of-memory-in-training", r"out of memory while training", r"--batch-size",
      absent=(r"loading the dataset",))
def _(c):
    out = c.tmp / "train-out"
    c.after.append(lambda: assert_no_result(out))
    return train(c, "OutOfMemoryInTraining", out=out)


def assert_no_result(out: Path) -> None:
    assert not (out / "result.json").exists()


@case("train-out-of-memory-loading-arrays", r"out of memory while loading the dataset", r"big\.npz|--dataset",
      absent=(r"--batch-size", r"--score-batch-size"))
def _(c):
    rng = np.random.default_rng(0)
    path = c.tmp / "big.npz"
    save_arrays(path, rng.integers(0, 255, (40, 4, 4, 1), dtype=np.uint8), np.arange(40) % 4,
                rng.integers(0, 255, (20, 4, 4, 1), dtype=np.uint8), np.arange(20) % 4)

    def decompression_bomb(*args, **kwargs):  # what a 10 GB member of a small .npz does to np.load
        raise MemoryError("Unable to allocate 9.31 GiB for an array with shape (10000000000,)")
    c.mp.setattr(np, "load", decompression_bomb)
    return ["train", "--dataset", f"arrays:{path}", *TINY, "--model", "mlp", "--out", c.out("train-out")]


@case("migrate-a-folder-that-holds-no-results", r"not a datadiet results folder", r"someones-files")
def _(c):
    folder = c.tmp / "someones-files"
    (folder / "photos").mkdir(parents=True)
    (folder / "notes.txt").write_text("mine\n")
    (folder / "photos" / "runs.json").write_text("{}\n")
    c.guarded.append(folder)  # no .datadiet.lock either
    return ["migrate", folder]


@case("report-while-another-report-is-written", r"writing the report of", r"results\b", r"datadiet report")
def _(c):
    results = c.results()
    c.guarded.append(results)
    c.mp.setattr(dd_io, "REPORT_WAIT_SECONDS", 0.2)  # how long the report waits; the holder holds until killed
    c.holder = hold_report_lock(results)
    return ["report", results]


HOLD_REPORT = textwrap.dedent("""
    import os, sys
    from datadiet.io import report_lock
    with report_lock(sys.argv[1]):
        print("held", flush=True)
        sys.stdin.readline()  # the test says when: no clock
        for path in sys.argv[2:]:  # what this build "wrote" before it let go
            os.remove(path)
""")


def hold_report_lock(folder: Path, *removes: Path) -> subprocess.Popen:
    """A real second process building (holding the report lock of) ``folder`` until a line arrives on its stdin
    (or it is killed); it then removes ``removes`` and lets go."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD_REPORT, str(folder), *map(str, removes)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert proc.stdout.readline().strip() == "held"
    return proc


# ----------------------------------------------------------------------------- files that are no file, or no JSON

def pipe_in_place_of(c: Ctx, path: Path) -> Path:
    path.unlink(missing_ok=True)
    c.cleanups.append(PipeGuard(path, c.tmp / f"{path.name}.pipe").stop)
    return path


NESTED = "[" * 100_000 + "]" * 100_000


def prune_args(c: Ctx, score_file: Path) -> list:
    return ["prune", "--score-file", score_file, "--keep", "0.5", "--data-root", c.w.data,
            "--out", c.out("prune-out") / "subset.json"]


def rewritten_score_file(c: Ctx, name: str, change: Callable[[ScoreTable], ScoreTable]) -> Path:
    """A copy of the reproduction's first score file, changed by ``change``."""
    source = sorted(score_dirs(c.w.results)[0].glob("*.npz"))[0]
    return save_scores(c.tmp / name, change(load_scores(source)))


def train_on(c: Ctx, subset_file: Path) -> list:
    return ["train", "--data-root", c.w.data, "--subset", "64", "--test-subset", "20", *TINY, "--model", "mlp",
            "--subset-file", subset_file, "--out", c.out("train-out")]


@case("train-subset-file-is-a-pipe", r"subset\.json", r"named pipe \(FIFO\), not a regular file")
def _(c):
    return train_on(c, pipe_in_place_of(c, c.tmp / "subset.json"))


@case("train-subset-file-holds-a-5001-digit-integer", r"huge\.json", r"5,001 digits", absent=(r"int_max_str_digits",))
def _(c):
    path = c.tmp / "huge.json"
    path.write_text('{"format": "datadiet-subset/1", "ids": [' + "7" * 5001 + "]}")
    return train_on(c, path)


@case("report-plan-is-a-pipe", r"plan\.json", r"named pipe \(FIFO\), not a regular file")
def _(c):
    results = c.results()
    pipe_in_place_of(c, study_dir(results) / "plan.json")
    return ["report", results]


@case("report-plan-nested-100000-deep", r"plan\.json", r"nested more than 100 levels deep")
def _(c):
    results = c.results()
    (study_dir(results) / "plan.json").write_text(NESTED)
    return ["report", results]


@case("report-plan-larger-than-the-limit", r"plan\.json", r"larger than 4\.1 kB")
def _(c):
    results = c.results()
    plan = study_dir(results) / "plan.json"
    plan.write_text(plan.read_text() + " " * 5000)  # valid JSON, only too large
    c.mp.setattr(dd_io, "MAX_JSON_BYTES", 4096)
    return ["report", results]


@case("report-config-nested-100000-deep", r"reproduce/config\.json", r"nested more than 100 levels deep")
def _(c):
    results = c.results()
    (study_dir(results) / "config.json").write_text(NESTED)
    return ["report", results]


@case("prune-score-file-is-a-pipe", r"scores\.npz", r"named pipe \(FIFO\), not a regular file",
      absent=(r"does not exist",))
def _(c):
    return prune_args(c, pipe_in_place_of(c, c.tmp / "scores.npz"))


@case("prune-score-meta-nested-100000-deep", r"deep\.npz", r"meta array", r"nested more than 100 levels deep")
def _(c):
    path = rewritten_score_file(c, "deep.npz", lambda t: t)
    with np.load(path) as stored:
        arrays = dict(stored)
    arrays["meta"] = np.array(str(arrays["meta"])[:-1] + ', "deep": ' + NESTED + "}")
    np.savez(path, **arrays)
    return prune_args(c, path)


@case("prune-score-meta-subset-is-not-whole", r"half\.npz", r"'data\.subset'", r"384\.5", r"whole number")
def _(c):
    def half(table):
        return ScoreTable(table.score, table.ids, table.runs, {**table.meta, "data": {**table.meta["data"],
                                                                                        "subset": 384.5}})
    return prune_args(c, rewritten_score_file(c, "half.npz", half))


@case("prune-score-file-holds-some-ids", r"some\.npz", r"hold 300 example ids", r"has 384 examples",
      r"first missing id: \d+", r"cut short or edited", absent=(r"computed on .* not on",))
def _(c):
    def some(table):  # the reproduction scored a subset of 384 of the 480 examples
        assert len(table.ids) == 384
        return ScoreTable(table.score, table.ids[:300], table.runs[:, :300], table.meta)
    return prune_args(c, rewritten_score_file(c, "some.npz", some))


def read_only(c: Ctx, folder: Path) -> None:
    """Make ``folder`` unwritable: by its permissions, and for root, whom they do not stop, as a read-only file
    system does (creating a file in it fails with EROFS)."""
    folder.chmod(0o555)
    c.cleanups.append(lambda: folder.chmod(0o755))
    if os.geteuid() == 0:
        mkstemp = tempfile.mkstemp

        def refuse(*args, dir=None, **kwargs):
            if dir is not None and Path(dir).resolve() == folder.resolve():
                raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(dir))
            return mkstemp(*args, dir=dir, **kwargs)
        c.mp.setattr(tempfile, "mkstemp", refuse)


@case("migrate-a-read-only-folder", r"results cannot be written", r"make it writable", r"copy the folder",
      r"migrate the copy", absent=(r"--out",))
def _(c):
    results = c.results()
    c.guarded.append(results)
    read_only(c, results)
    return ["migrate", results]


@case("report-a-read-only-folder", r"results cannot be written", r"make it writable", r"copy the folder",
      r"`datadiet report` on the copy", absent=(r"--out",))
def _(c):
    results = c.results()
    c.guarded.append(results)
    read_only(c, results)
    return ["report", results]


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in CASES])
def test_hostile_run_input_ends_in_one_paragraph_with_status_2(case, world, tmp_path, monkeypatch, capsys):
    ctx = Ctx(world, tmp_path, monkeypatch)
    try:
        argv = case.build(ctx)
        before = {p: snapshot(p) for p in ctx.guarded}
        status = run_cli(argv)
    finally:
        holder = getattr(ctx, "holder", None)
        if holder is not None:
            holder.kill()
            holder.wait()
        for cleanup in ctx.cleanups:
            cleanup()
    monkeypatch.undo()
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err, err
    assert status == 2, f"exit status {status}; stderr:\n{err}"
    for pattern in case.expect:
        assert re.search(pattern, norm(err)), f"{pattern!r} not in stderr:\n{err}"
    for pattern in case.absent:
        assert not re.search(pattern, norm(err)), f"{pattern!r} in stderr:\n{err}"
    assert len(norm(err).split("datadiet: error:")) == 2, err  # one paragraph
    assert not list(tmp_path.rglob("*.tmp"))
    for path in ctx.outputs:
        assert only_locks(path), f"{path} was written: {sorted(p.name for p in path.rglob('*'))}"
    for path, snap in before.items():
        assert snapshot(path) == snap, f"{path} was changed"
    for check in ctx.after:
        check()


# ----------------------------------------------------------------------------- edited run records: named, left out

def _victim(results: Path) -> Path:
    """A planned run that is not the full-data one (its accuracy is what an edit would change)."""
    return next(p for p in sorted(runs_dir(results).glob("*.json")) if json.loads(p.read_text())["method"] != "full")


@pytest.mark.parametrize("accuracy", [0.999, 7.5, float("nan")], ids=["0.999", "7.5", "NaN"])
def test_an_edited_accuracy_is_named_and_left_out_of_the_report(accuracy, world, tmp_path, capsys):
    results = tmp_path / "results"
    shutil.copytree(world.results, results)
    victim = _victim(results)
    record = json.loads(victim.read_text())
    record["test_accuracy"] = accuracy  # a NaN is written as Python's bare NaN token
    victim.write_text(json.dumps(record))
    edited = victim.read_bytes()

    assert run_cli(["report", results]) == 0
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    assert victim.name in out and "damaged run files left out" in out, out
    reason = "not valid JSON" if accuracy != accuracy else CHECKSUM_KEY
    assert reason in out, out
    assert victim.stem not in {row["run_id"] for row in read_csv(study_dir(results) / "results.csv")}
    assert strict_json(study_dir(results) / "summary.json")["runs"]["aggregated"] == 2
    assert victim.read_bytes() == edited  # named, never rewritten or deleted


def _strip_checksums(results: Path) -> None:
    """What a folder written before run records carried a checksum looks like."""
    for path in runs_dir(results).glob("*.json"):
        record = json.loads(path.read_text())
        del record[CHECKSUM_KEY]
        path.write_text(json.dumps(record, indent=2))


def test_records_without_a_checksum_are_counted_and_named_unchecked(world, tmp_path, capsys):
    results = tmp_path / "results"
    shutil.copytree(world.results, results)
    _strip_checksums(results)
    assert run_cli(["report", results]) == 0
    out = capsys.readouterr().out
    assert "3 run files predate run-record checksums: used unchecked" in norm(out), out
    summary = strict_json(study_dir(results) / "summary.json")
    assert summary["runs"]["aggregated"] == 3 and len(summary["runs"]["unchecked"]) == 3


@pytest.mark.parametrize("key, value, why", [("test_accuracy", 7.5, "test_accuracy is 7.5"),
                                             ("test_accuracy", -0.1, "test_accuracy is -0.1"),
                                             ("test_loss", None, "test_loss is null"),
                                             ("steps", 0, "steps is 0")])
def test_an_unchecked_record_out_of_range_is_left_out(key, value, why, world, tmp_path):
    results = tmp_path / "results"
    shutil.copytree(world.results, results)
    _strip_checksums(results)
    victim = _victim(results)
    record = json.loads(victim.read_text())
    record[key] = value
    victim.write_text(json.dumps(record))
    files = read_run_files(results / "sweep")
    assert victim.stem not in files.records
    assert why in files.invalid[victim]


def test_resume_trains_an_edited_record_again(world, tmp_path, capsys):
    results = tmp_path / "results"
    shutil.copytree(world.results, results)
    victim = _victim(results)
    good = json.loads(victim.read_text())
    victim.write_text(json.dumps({**good, "test_accuracy": 0.999}))
    assert run_cli(["reproduce", *SMOKE, "--data-root", world.data, "--out", results]) == 0
    out = capsys.readouterr().out
    assert "1 to run" in out and f"damaged result files are run again ({victim.name})" in out, out
    again = strict_json(victim)
    assert again["test_accuracy"] == good["test_accuracy"]  # the same run, trained again
    assert victim.stem in read_run_files(results / "sweep").records


# ----------------------------------------------------------------------------- two report builds never interleave

def test_a_report_waits_for_a_report_being_written_then_reads_the_newest_runs(world, tmp_path, capsys, monkeypatch):
    """Gated on events, not on the clock: the report is seen to find the lock held (its flock fails) before the
    other build changes the runs and lets go, so what it reads can only be what the other build left."""
    results = tmp_path / "results"
    shutil.copytree(world.results, results)
    victim = _victim(results)
    holder = hold_report_lock(results, victim)  # the other build removes a run, then lets go
    blocked, found_held, status = threading.Event(), [], []
    flock = dd_io.fcntl.flock

    def observed_flock(fd, operation):
        try:
            return flock(fd, operation)
        except BlockingIOError:
            found_held.append(True)
            blocked.set()
            raise
    monkeypatch.setattr(dd_io.fcntl, "flock", observed_flock)

    def report():
        try:
            status.append(run_cli(["report", results]))
        finally:
            blocked.set()  # also when it never found the lock held (the defect): the test then fails, never hangs
    thread = threading.Thread(target=report)
    try:
        thread.start()
        blocked.wait()
        assert found_held, "the report did not find the other build's lock held"
        holder.stdin.write("go\n")
        holder.stdin.flush()
        thread.join()
    finally:
        holder.kill()
        holder.wait()
        thread.join()
    assert status == [0]
    assert "Traceback" not in capsys.readouterr().err
    summary = strict_json(study_dir(results) / "summary.json")
    assert summary["runs"]["aggregated"] == 2 and summary["runs"]["missing"] == [victim.stem], summary["runs"]


# ----------------------------------------------------------------------------- run records that are no file, or no JSON

def _damage(results: Path, how: str, guards: list) -> Path:
    """Put a run record of ``results`` out of use as ``how`` says; returns it. A pipe's guard joins ``guards``."""
    victim = _victim(results)
    if how == "pipe":
        victim.unlink()
        guards.append(PipeGuard(victim, results.parent / "spare.pipe"))
    elif how == "dev-zero":  # read to the end, it would fill the memory
        victim.unlink()
        victim.symlink_to("/dev/zero")
    elif how == "nested":
        victim.write_text('{"run_id": ' + NESTED + "}")
    elif how == "huge-integer":
        record = {**json.loads(victim.read_text()), "steps": "HUGE"}
        victim.write_text(json.dumps(record).replace('"HUGE"', "9" * 5001))
    return victim


DAMAGES = {"pipe": "named pipe (FIFO), not a regular file", "dev-zero": "character device",
           "nested": "nested more than 100 levels deep", "huge-integer": "5,001 digits"}


@pytest.mark.parametrize("how", DAMAGES)
def test_a_run_record_that_is_no_file_or_no_json_is_named_damaged(how, world, tmp_path, capsys):
    results = tmp_path / "results"
    shutil.copytree(world.results, results)
    guards: list[PipeGuard] = []
    try:
        victim = _damage(results, how, guards)
        assert run_cli(["report", results]) == 0
    finally:
        for guard in guards:
            guard.stop()
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err, err
    assert victim.name in out and "damaged run files left out" in out and DAMAGES[how] in norm(out), out
    summary = strict_json(study_dir(results) / "summary.json")
    assert summary["runs"]["aggregated"] == 2 and summary["runs"]["missing"] == [victim.stem], summary["runs"]


def test_resume_trains_records_that_are_no_file_or_no_json_again(world, tmp_path, capsys):
    """A damaged record of any kind is counted as damaged and its run trained again, as an edited one is."""
    results = tmp_path / "results"
    shutil.copytree(world.results, results)
    records = sorted(runs_dir(results).glob("*.json"))
    good = {p.name: json.loads(p.read_text()) for p in records}
    guards: list[PipeGuard] = []
    try:
        records[0].unlink()
        guards.append(PipeGuard(records[0], tmp_path / "spare.pipe"))
        records[1].unlink()
        records[1].symlink_to("/dev/zero")
        records[2].write_text('{"run_id": ' + NESTED + "}")
        assert run_cli(["reproduce", *SMOKE, "--data-root", world.data, "--out", results]) == 0
    finally:
        for guard in guards:
            guard.stop()
    out = norm(capsys.readouterr().out)
    assert "3 to run" in out and "damaged result files are run again" in out, out
    for path in records:
        assert path.is_file() and not path.is_symlink()
        assert strict_json(path)["test_accuracy"] == good[path.name]["test_accuracy"]  # the same run, again
    assert set(read_run_files(results / "sweep").records) == {p.stem for p in records}
