"""Hostile models, run records and results folders through the command line (the second hostile probe).

Each refused case checks what tests/test_hostile.py checks: exit status 2, no traceback, a message naming the
offending thing, no temporary file left, no output written (nothing but lock files) and guarded files unchanged.
The cases that are not errors (an edited run record is named and left out, not fatal) check the report instead.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from fakes import runs_dir, study_dir, write_fake_mnist

from datadiet import io as dd_io
from datadiet.cli import main
from datadiet.data import save_arrays
from datadiet.report.tables import read_csv
from datadiet.runs.sweep import CHECKSUM_KEY, read_run_files

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
    c.mp.setattr(dd_io, "REPORT_WAIT_SECONDS", 0.2)
    c.holder = hold_report_lock(results, seconds=30)
    return ["report", results]


HOLD_REPORT = textwrap.dedent("""
    import sys, time
    from datadiet.io import report_lock
    with report_lock(sys.argv[1]):
        print("held", flush=True)
        time.sleep(float(sys.argv[2]))
""")


def hold_report_lock(folder: Path, seconds: float) -> subprocess.Popen:
    """A real second process building (holding the report lock of) ``folder`` for ``seconds``."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD_REPORT, str(folder), str(seconds)], stdout=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert proc.stdout.readline().strip() == "held"
    return proc


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

def test_a_report_waits_for_a_report_being_written_then_reads_the_newest_runs(world, tmp_path, capsys):
    results = tmp_path / "results"
    shutil.copytree(world.results, results)
    holder = hold_report_lock(results, seconds=1.5)
    try:
        started = time.monotonic()
        assert run_cli(["report", results]) == 0
        waited = time.monotonic() - started
    finally:
        holder.kill()
        holder.wait()
    assert waited >= 1.0, waited  # it read the runs only after the other build had written
    assert "Traceback" not in capsys.readouterr().err
