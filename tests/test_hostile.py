"""Hostile input through the command line: every case ends with status 2, one paragraph naming the offending
thing (a file, flag, value or name), no traceback, and nothing half-written.

Each case builds its own damage in a fresh tmp folder (copies of module-wide tiny fixtures: a fake Fashion-MNIST,
a finished reduced `reproduce --preset smoke` folder, its score files and a subset manifest), runs
``datadiet.cli.main(argv)`` in-process and checks:

* the exit status is 2 (``main``'s return value, or ``SystemExit.code`` for argparse usage errors);
* "Traceback" appears neither in stdout nor in stderr;
* every regex of the case matches stderr (whitespace-normalised: messages are wrapped at 100 columns);
* no ``*.tmp`` file is left anywhere under the case's tmp folder, every output path the case names does not
  exist (or holds nothing but lock files), and every file or folder it guards is byte-for-byte unchanged.

A few cases run in real subprocesses (``python -m datadiet``) to check the real exit status and stderr.
"""
from __future__ import annotations

import errno
import gzip
import io
import json
import os
import pickle
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from fakes import runs_dir, score_dirs, study_dir, write_fake_mnist, write_idx

from datadiet import cli
from datadiet.cli import main

SRC = Path(__file__).resolve().parents[1] / "src"
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
LOCK = ".datadiet.lock"

# The smallest reproduction that still has a score run cache: one score run of GraNd at init (no training), one
# evaluation seed, three evaluation runs (full, random, grand@init at keep 0.5) on the smoke preset's 384 examples.
SMOKE = ["--preset", "smoke", "--methods", "grand@init", "--eval-seeds", "1", "--score-runs", "1", "--device", "cpu"]
# The training data of that reproduction, which its score files and the manifest pruned from them describe.
SMOKE_DATA = ["--subset", "384", "--subset-mode", "balanced"]
TINY = ["--width", "0.25", "--batch-size", "16", "--steps", "2", "--device", "cpu"]
IDX_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
             "t10k-labels-idx1-ubyte.gz")


def run_cli(argv) -> int:
    try:
        return main([str(a) for a in argv])
    except SystemExit as exc:  # argparse usage errors
        return exc.code if isinstance(exc.code, int) else 1


# ----------------------------------------------------------------------------- shared tiny fixtures

@dataclass
class World:
    root: Path         # tmp folder of the fixtures
    data: Path         # --data-root: holds fashion-mnist/ (480 train, 240 test)
    other: Path        # --data-root of another fake Fashion-MNIST (other pixels, same sizes)
    results: Path      # a finished reduced smoke reproduction
    scores: Path       # its one score draw's folder, results/scores/<identity>
    score: Path        # results/scores/<identity>/grand-init.npz
    manifest: Path     # `prune --keep 0.5` of that score file


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    root = tmp_path_factory.mktemp("hostile-world")
    data, other = root / "data", root / "other"
    write_fake_mnist(data / "fashion-mnist", n_train=480, n_test=240)
    write_fake_mnist(other / "fashion-mnist", n_train=480, n_test=240, seed=7)
    results = root / "results"
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("DATADIET_DATA", raising=False)
        mp.delenv("DATADIET_DEBUG", raising=False)
        assert run_cli(["reproduce", *SMOKE, "--data-root", data, "--out", results]) == 0
        (scores,) = score_dirs(results)  # one evaluation seed: one score draw
        score = scores / "grand-init.npz"
        manifest = root / "subset.json"
        assert run_cli(["prune", "--score-file", score, "--keep", "0.5", "--out", manifest]) == 0
    assert len(list((scores / ".runs").glob("run-seed0-*.npz"))) == 1
    assert len(list(runs_dir(results).glob("*.json"))) == 3
    return World(root, data, other, results, scores, score, manifest)


_PARSER = []


def _built_once():
    """``cli.build_parser`` once per module: building it (reading every config's source for the help texts)
    takes ~0.15 s, which would be most of this file's time. The subprocess cases build it for real."""
    if not _PARSER:
        _PARSER.append(_real_build_parser())
    return _PARSER[0]


_real_build_parser = cli.build_parser


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    monkeypatch.delenv("DATADIET_DATA", raising=False)
    monkeypatch.delenv("DATADIET_DEBUG", raising=False)
    monkeypatch.setattr(cli, "build_parser", _built_once)


# ----------------------------------------------------------------------------- one case

class Ctx:
    """What a case builder gets: the fixtures, its own tmp folder, monkeypatch, and the paths to check."""

    def __init__(self, world: World, tmp: Path, monkeypatch):
        self.w, self.tmp, self.mp = world, tmp, monkeypatch
        self.outputs: list[Path] = []   # must not exist afterwards (or hold nothing but lock files)
        self.guarded: list[Path] = []   # must be byte-for-byte unchanged
        self._results = None

    @property
    def data(self) -> Path:
        return self.w.data

    def out(self, name: str) -> Path:
        path = self.tmp / name
        self.outputs.append(path)
        return path

    def keep(self, *paths: Path) -> None:
        self.guarded.extend(paths)

    def file(self, name: str, content: bytes | str) -> Path:
        path = self.tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        return path

    def results(self) -> Path:
        """A private copy of the finished reproduction (guard it after damaging it)."""
        if self._results is None:
            self._results = self.tmp / "results"
            shutil.copytree(self.w.results, self._results)
        return self._results

    def scores(self) -> Path:
        """The score folder of the private copy of the finished reproduction."""
        return self.results() / self.w.scores.relative_to(self.w.results)

    def data_copy(self) -> tuple[Path, Path]:
        """A private copy of the fake data: (--data-root, its fashion-mnist folder)."""
        root = self.tmp / "data"
        shutil.copytree(self.w.data, root)
        return root, root / "fashion-mnist"

    def manifest(self, edit: Callable[[dict], None], name: str = "subset.json") -> Path:
        """A copy of the fixture's manifest, edited in place by ``edit``."""
        record = json.loads(self.w.manifest.read_text())
        edit(record)
        return self.file(name, json.dumps(record))

    def score_arrays(self) -> dict:
        with np.load(self.w.score, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}

    def npz(self, name: str, **arrays) -> Path:
        path = self.tmp / name
        with open(path, "wb") as fh:
            np.savez(fh, **arrays)
        return path


@dataclass
class Case:
    id: str
    build: Callable[[Ctx], list]
    expect: tuple[str, ...]
    root_ok: bool = True   # False: the case needs file permissions to bite (skipped as root)


CASES: list[Case] = []


def case(id: str, *expect: str):
    """Register ``build(ctx) -> argv`` as a case whose stderr must match every regex in ``expect``."""
    def register(build):
        CASES.append(Case(id, build, expect))
        return build
    return register


def simple(id: str, build: Callable[[Ctx], list], *expect: str) -> None:
    CASES.append(Case(id, build, expect))


def snapshot(path: Path):
    if not exists(path):
        return None
    if path.is_file():
        return path.read_bytes()
    return {p.relative_to(path).as_posix(): (p.read_bytes() if p.is_file() else "<dir>")
            for p in sorted(path.rglob("*")) if p.name != LOCK}


def exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError as exc:  # a name too long for the file system cannot exist
        if exc.errno == errno.ENAMETOOLONG:
            return False
        raise


def only_locks(path: Path) -> bool:
    return not exists(path) or (path.is_dir() and all(p.is_dir() or p.name == LOCK for p in path.rglob("*")))


def norm(text: str) -> str:
    return " ".join(text.split())


# ----------------------------------------------------------------------------- argv builders

def train(c: Ctx, *extra, out: bool = True) -> list:
    return ["train", "--data-root", c.data, "--subset", "64", "--test-subset", "20", *TINY, *extra,
            *(["--out", c.out("train-out")] if out else [])]


def train_on_manifest(c: Ctx, manifest: Path, *extra) -> list:
    return ["train", "--data-root", c.data, *SMOKE_DATA, "--test-subset", "20", *TINY, "--subset-file", manifest,
            *extra, "--out", c.out("train-out")]


def score(c: Ctx, *extra, out: bool = True) -> list:
    return ["score", "--data-root", c.data, "--subset", "64", "--test-subset", "20", "--runs", "1",
            "--scores", "input_norm", "--width", "0.25", "--epochs", "1", "--device", "cpu", *extra,
            *(["--out", c.out("score-out")] if out else [])]


def prune(c: Ctx, score_file=None, *extra, keep: str = "0.5") -> list:
    return ["prune", "--score-file", score_file or c.w.score, "--keep", keep, *extra,
            "--out", c.out("subset-out.json")]


def reproduce(c: Ctx, *extra, out=None) -> list:
    return ["reproduce", *SMOKE, "--data-root", c.data, *extra, "--out", out or c.out("reproduce-out")]


def resume(c: Ctx, *extra) -> list:
    """Re-run the fixture's reproduction (same options) in a private copy of its folder."""
    return ["reproduce", *SMOKE, "--data-root", c.data, *extra, "--out", c.results()]


def analyze(c: Ctx, *extra, out=None, name: str = "grand_vs_norm") -> list:
    return ["analyze", name, "--preset", "smoke", "--data-root", c.data, "--device", "cpu", *extra,
            "--out", out or c.out("analyze-out")]


# ============================================================================= 1. the operating system

def _taken(c: Ctx) -> Path:
    path = c.file("taken", "a regular file where a folder belongs\n")
    c.keep(path)
    return path


simple("train-out-is-a-file", lambda c: train(c, "--out", _taken(c), out=False), r"taken\b")
simple("score-out-is-a-file", lambda c: score(c, "--out", _taken(c), out=False), r"taken\b")
simple("reproduce-out-is-a-file", lambda c: reproduce(c, out=_taken(c)), r"taken\b")
simple("analyze-out-is-a-file", lambda c: analyze(c, out=_taken(c)), r"taken\b")
simple("train-out-below-a-file", lambda c: train(c, "--out", _taken(c) / "run", out=False), r"taken\b")
simple("prune-out-below-a-file", lambda c: ["prune", "--score-file", c.w.score, "--keep", "0.5",
                                            "--out", _taken(c) / "subset.json"], r"taken\b")
simple("reproduce-out-below-a-file", lambda c: reproduce(c, out=_taken(c) / "results"), r"taken\b")


@case("prune-out-is-a-folder", r"already-a-folder\.json", r"folder")
def _(c):
    folder = c.tmp / "already-a-folder.json"
    (folder / "inside").mkdir(parents=True)
    (folder / "inside" / "keep.txt").write_text("mine\n")
    c.keep(folder)
    return ["prune", "--score-file", c.w.score, "--keep", "0.5", "--out", folder]


def _read_only(c: Ctx, name: str) -> Path:
    folder = c.tmp / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    return folder / name


for _id, _build in [
    ("train-out-read-only", lambda c: train(c, "--out", _read_only(c, "run"), out=False)),
    ("score-out-read-only", lambda c: score(c, "--out", _read_only(c, "scores"), out=False)),
    ("reproduce-out-read-only", lambda c: reproduce(c, out=_read_only(c, "results"))),
    ("analyze-out-read-only", lambda c: analyze(c, out=_read_only(c, "ws"))),
    ("prune-out-read-only", lambda c: ["prune", "--score-file", c.w.score, "--keep", "0.5",
                                       "--out", _read_only(c, "subset.json")]),
]:
    CASES.append(Case(_id, _build, (r"read-only", r"Permission denied"), root_ok=False))


def _deny_mkdir(c: Ctx, name: str) -> Path:
    """Creating ``name`` (or anything below it) fails with EACCES, as in a folder the user may not write; works
    as root too, unlike chmod."""
    folder, real = c.tmp / name, os.mkdir

    def mkdir(path, *args, **kwargs):
        if Path(path) == folder or folder in Path(path).parents:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return real(path, *args, **kwargs)
    c.mp.setattr(os, "mkdir", mkdir)
    c.outputs.append(folder)
    return folder


for _id, _build in [
    ("train-out-permission-denied", lambda c: train(c, "--out", _deny_mkdir(c, "locked"), out=False)),
    ("score-out-permission-denied", lambda c: score(c, "--out", _deny_mkdir(c, "locked"), out=False)),
    ("reproduce-out-permission-denied", lambda c: reproduce(c, out=_deny_mkdir(c, "locked"))),
    ("analyze-out-permission-denied", lambda c: analyze(c, out=_deny_mkdir(c, "locked"))),
    ("prune-out-permission-denied", lambda c: ["prune", "--score-file", c.w.score, "--keep", "0.5",
                                               "--out", _deny_mkdir(c, "locked") / "subset.json"]),
]:
    CASES.append(Case(_id, _build, (r"locked\b", r"Permission denied")))

LONG = "x" * 300
for _id, _build in [
    ("train-out-name-too-long", lambda c: train(c, "--out", c.out(LONG) / "run", out=False)),
    ("score-out-name-too-long", lambda c: score(c, "--out", c.out(LONG), out=False)),
    ("reproduce-out-name-too-long", lambda c: reproduce(c, out=c.out(LONG) / "results")),
    ("analyze-out-name-too-long", lambda c: analyze(c, out=c.out(LONG))),
    ("prune-out-name-too-long", lambda c: ["prune", "--score-file", c.w.score, "--keep", "0.5",
                                           "--out", c.out(LONG + ".json")]),
]:
    CASES.append(Case(_id, _build, (r"x{300}", r"too long")))


def _folder_made_a_file(c, name: str):
    """A copy of the finished results whose ``name`` sub-folder is replaced by a regular file."""
    results = c.results()
    shutil.rmtree(results / name)
    (results / name).write_text("not a folder\n")
    c.keep(results)
    return results


for _id, _name, _command, _pattern in [
    ("reproduce-runs-is-a-file", "sweep/runs", lambda c, results: resume(c), r"results/sweep/runs\b"),
    ("reproduce-sweep-is-a-file", "sweep", lambda c, results: resume(c), r"results/sweep\b"),
    ("reproduce-scores-is-a-file", "scores", lambda c, results: resume(c), r"results/scores\b"),
    ("reproduce-study-folder-is-a-file", "reproduce", lambda c, results: resume(c), r"results/reproduce\b"),
    ("report-runs-is-a-file", "sweep/runs", lambda c, results: ["report", results], r"results\b.*\bruns\b"),
]:
    CASES.append(Case(_id, lambda c, n=_name, f=_command: f(c, _folder_made_a_file(c, n)), (_pattern,)))


# Disk full, quota exhausted, read-only file system and no permission, simulated where the bytes hit the disk.

def _fail_fsync(c: Ctx, code: int = errno.ENOSPC) -> None:
    def fsync(fd):
        raise OSError(code, os.strerror(code), os.readlink(f"/proc/self/fd/{fd}"))
    c.mp.setattr(os, "fsync", fsync)


def _fail_replace(c: Ctx, code: int = errno.ENOSPC) -> None:
    def replace(src, dst, *args, **kwargs):
        raise OSError(code, os.strerror(code), str(src))
    c.mp.setattr(os, "replace", replace)


def _fail_write_half(c: Ctx) -> None:
    """Path.write_text writes half of the text into the temporary file, then the disk is full."""
    real = Path.write_text

    def write_text(self, text, *args, **kwargs):
        real(self, text[: len(text) // 2], *args, **kwargs)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))
    c.mp.setattr(Path, "write_text", write_text)


FULL = (r"disk is full|No space left",)


@case("prune-disk-full-on-fsync", *FULL, r"subset-out\.json")
def _(c):
    _fail_fsync(c)
    return prune(c)


@case("prune-disk-full-on-rename", *FULL, r"subset-out\.json")
def _(c):
    _fail_replace(c)
    return prune(c)


@case("prune-disk-full-mid-write", *FULL, r"subset-out\.json")
def _(c):
    _fail_write_half(c)
    return prune(c)


@case("prune-quota-exceeded", r"quota", r"subset-out\.json")
def _(c):
    _fail_fsync(c, errno.EDQUOT)
    return prune(c)


@case("prune-read-only-file-system", r"read-only", r"subset-out\.json")
def _(c):
    _fail_replace(c, errno.EROFS)
    return prune(c)


@case("prune-permission-denied-on-rename", r"Permission denied", r"subset-out\.json")
def _(c):
    _fail_replace(c, errno.EACCES)
    return prune(c)


@case("train-disk-full", *FULL, r"config\.json")
def _(c):
    _fail_fsync(c)
    return train(c)


@case("score-disk-full", *FULL, r"score-out")
def _(c):
    _fail_fsync(c)
    return score(c)


@case("reproduce-disk-full", *FULL, r"results/\.?workspace\.json")  # the first file a resume writes
def _(c):
    c.keep(c.results())
    _fail_fsync(c)
    return resume(c)


@case("reproduce-disk-full-mid-write", *FULL, r"results/\.?workspace\.json")  # the first file a resume writes
def _(c):
    c.keep(c.results())
    _fail_write_half(c)
    return resume(c)


@case("report-disk-full", *FULL, r"results/")
def _(c):
    c.keep(c.results())
    _fail_fsync(c)
    return ["report", c.results()]


@case("analyze-disk-full", *FULL, r"analyze-out")
def _(c):
    _fail_fsync(c)
    return analyze(c)


# ============================================================================= 2. damaged results folders, bad recipes

DAMAGED_JSON = {"not-json": "{this is not json", "a-list": "[1, 2, 3]\n", "empty": ""}

for _how, _text in DAMAGED_JSON.items():
    def _report_config(c, text=_text):
        results = c.results()
        (study_dir(results) / "config.json").write_text(text)
        c.keep(results)
        return ["report", results]

    def _resume_config(c, text=_text):
        results = c.results()
        (study_dir(results) / "config.json").write_text(text)
        c.keep(results)
        return resume(c)

    def _report_plan(c, text=_text):
        results = c.results()
        (study_dir(results) / "plan.json").write_text(text)
        c.keep(results)
        return ["report", results]

    CASES.append(Case(f"report-config-json-{_how}", _report_config, (r"results/reproduce/config\.json",)))
    CASES.append(Case(f"reproduce-resume-config-json-{_how}", _resume_config, (r"results/reproduce/config\.json",)))
    CASES.append(Case(f"report-plan-json-{_how}", _report_plan, (r"results/reproduce/plan\.json",)))


@case("report-not-a-results-folder", r"just-a-folder", r"no finished study", r"section\.md")
def _(c):
    folder = c.tmp / "just-a-folder"
    folder.mkdir()
    (folder / "notes.txt").write_text("hello\n")
    c.keep(folder)
    return ["report", folder]


simple("report-missing-folder", lambda c: ["report", c.out("no-such-results")], r"no-such-results")
simple("migrate-missing-folder", lambda c: ["migrate", c.out("no-such-results")], r"no-such-results")


@case("migrate-a-file", r"taken\b")
def _(c):
    return ["migrate", _taken(c)]


@case("reproduce-resume-another-experiment", r"results\b", r"score_runs")
def _(c):
    c.keep(c.results())
    return ["reproduce", "--preset", "smoke", "--methods", "grand@init", "--eval-seeds", "1", "--score-runs", "2",
            "--device", "cpu", "--data-root", c.data, "--out", c.results()]


CACHE_DAMAGE = {
    "garbage": lambda raw: b"garbage bytes, no zip archive\n" * 3,
    "truncated": lambda raw: raw[: len(raw) // 2],
    "empty": lambda raw: b"",
}

for _how, _damage in CACHE_DAMAGE.items():
    def _cache(c, damage=_damage):
        results, scores = c.results(), c.scores()
        (cached,) = (scores / ".runs").glob("run-seed0-*.npz")
        cached.write_bytes(damage(cached.read_bytes()))
        (scores / "grand-init.npz").unlink()  # so the score table is rebuilt from the run cache
        c.keep(scores / ".runs", runs_dir(results))
        return resume(c)

    def _report_table(c, damage=_damage):
        results = c.results()
        table = c.scores() / "grand-init.npz"
        table.write_bytes(damage(table.read_bytes()))
        c.keep(results)
        return ["report", results]

    CASES.append(Case(f"reproduce-score-run-cache-{_how}", _cache, (r"scores/\w+/\.runs/run-seed0-\w+\.npz",)))
    CASES.append(Case(f"report-score-table-{_how}", _report_table, (r"scores/\w+/grand-init\.npz",)))


# Recipes: every bad training flag of train and score (and the devices of reproduce and analyze).
BAD_RECIPE = [
    ("device-tpu9", ["--device", "tpu9"], (r"tpu9",)),
    ("lr-1e300", ["--lr", "1e300"], (r"--lr", r"1e\+?300")),
    ("lr-minus-1", ["--lr", "-1"], (r"--lr", r"-1")),
    ("lr-nan", ["--lr", "nan"], (r"--lr", r"nan")),
    ("lr-inf", ["--lr", "inf"], (r"--lr", r"inf")),
    ("lr-0", ["--lr", "0"], (r"--lr",)),
    ("milestones-decreasing", ["--milestones", "5", "2"], (r"--milestones",)),
    ("milestones-not-fractions", ["--milestones", "0.5", "2"], (r"--milestones",)),
    ("epochs-0", ["--epochs", "0"], (r"--epochs",)),
    ("epochs-nan", ["--epochs", "nan", "--steps", "-1"], (r"--epochs|--steps",)),
    ("steps-minus-1", ["--steps", "-1"], (r"--steps",)),
    ("batch-size-0", ["--batch-size", "0"], (r"--batch-size",)),
    ("eval-batch-size-0", ["--eval-batch-size", "0"], (r"--eval-batch-size",)),
    ("momentum-1", ["--momentum", "1"], (r"--momentum",)),
    ("weight-decay-negative", ["--weight-decay=-1e-4"], (r"--weight-decay", r"-0\.0001|-1e-0?4")),
    ("lr-decay-negative", ["--lr-decay", "-0.2"], (r"--lr-decay",)),
    ("width-0", ["--width", "0"], (r"--width",)),
    ("pad-negative", ["--pad", "-1"], (r"--pad",)),
    ("model-foo", ["--model", "foo"], (r"'foo'", r"model")),
    ("budget-foo", ["--budget", "foo"], (r"foo", r"budget")),
    ("dataset-foo", ["--dataset", "foo"], (r"'foo'", r"dataset")),
    ("subset-0", ["--subset", "0"], (r"--subset",)),
    ("subset-larger-than-data", ["--subset", "100000"], (r"100000",)),
    ("subset-mode-foo", ["--subset-mode", "foo"], (r"foo", r"subset-mode|subset_mode")),
    ("test-subset-0", ["--test-subset", "0"], (r"--test-subset",)),
    ("label-noise-1.5", ["--label-noise", "1.5"], (r"--label-noise", r"1\.5")),
]
for _id, _flags, _expect in BAD_RECIPE:
    CASES.append(Case(f"train-{_id}", lambda c, f=_flags: train(c, *f), _expect))
for _id, _flags, _expect in BAD_RECIPE:
    if _id in ("device-tpu9", "lr-1e300", "lr-nan", "milestones-decreasing", "epochs-0", "batch-size-0",
               "model-foo", "dataset-foo", "label-noise-1.5"):
        CASES.append(Case(f"score-{_id}", lambda c, f=_flags: score(c, *f), _expect))

BAD_SCORING = [
    ("scores-foo", ["--scores", "foo"], (r"'foo'", r"score")),
    ("scores-bad-time", ["--scores", "el2n@epochX"], (r"el2n@epochX",)),
    ("score-epochs-negative", ["--scores", "el2n", "--score-epochs", "-1"], (r"--score-epochs", r"-1")),
    ("runs-0", ["--runs", "0"], (r"--runs",)),
    ("score-batch-size-0", ["--score-batch-size", "0"], (r"--score-batch-size",)),
    ("method-foo", ["--scores", "grand", "--method", "foo"], (r"foo", r"method")),
]
for _id, _flags, _expect in BAD_SCORING:
    CASES.append(Case(f"score-{_id}", lambda c, f=_flags: score(c, *f), _expect))

simple("reproduce-device-tpu9", lambda c: reproduce(c, "--device", "tpu9"), r"tpu9")
simple("analyze-device-tpu9", lambda c: analyze(c, "--device", "tpu9"), r"tpu9")
simple("reproduce-executor-foo", lambda c: reproduce(c, "--executor", "foo"), r"foo", r"executor")
simple("reproduce-workers-0", lambda c: reproduce(c, "--workers", "0"), r"--workers")


# ============================================================================= 3. score files given to prune

def _folder(c: Ctx, name: str) -> Path:
    folder = c.tmp / name
    folder.mkdir()
    c.keep(folder)
    return folder


def _npy_bytes(array) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def _pruned(c: Ctx, name: str, content: bytes | str) -> list:
    return prune(c, c.file(name, content))


simple("prune-score-file-is-text", lambda c: _pruned(c, "notes.txt", "id,score\n1,0.5\n"), r"notes\.txt")
simple("prune-score-file-is-text-named-npz", lambda c: _pruned(c, "scores.npz", "id,score\n1,0.5\n"),
       r"scores\.npz")
simple("prune-score-file-empty", lambda c: _pruned(c, "empty.npz", b""), r"empty\.npz", r"empty")
simple("prune-score-file-truncated",
       lambda c: _pruned(c, "half.npz", c.w.score.read_bytes()[: c.w.score.stat().st_size // 2]), r"half\.npz")
simple("prune-score-file-four-bytes", lambda c: _pruned(c, "stub.npz", b"PK\x03\x04"), r"stub\.npz")
simple("prune-score-file-missing", lambda c: prune(c, c.tmp / "absent.npz"), r"absent\.npz")
simple("prune-score-file-is-a-folder", lambda c: prune(c, _folder(c, "folder.npz")), r"folder\.npz", r"directory")
simple("prune-score-file-pickle", lambda c: _pruned(c, "pickled.npz", pickle.dumps({"ids": [1, 2], "runs": [1.0]})),
       r"pickled\.npz")
simple("prune-score-file-npy", lambda c: _pruned(c, "single.npz", _npy_bytes(np.arange(5.0))), r"single\.npz")
simple("prune-score-file-gzip", lambda c: _pruned(c, "zipped.npz", gzip.compress(c.w.score.read_bytes())),
       r"zipped\.npz")


@case("prune-score-file-missing-arrays", r"only-ids\.npz", r"meta|runs")
def _(c):
    return prune(c, c.npz("only-ids.npz", ids=c.score_arrays()["ids"]))


@case("prune-score-file-foreign-zip", r"other\.zip\.npz")
def _(c):
    path = c.tmp / "other.zip.npz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("readme.txt", "not arrays\n")
    return prune(c, path)


@case("prune-score-file-object-array", r"objects\.npz", r"pickle|objects")
def _(c):
    a = c.score_arrays()
    return prune(c, c.npz("objects.npz", ids=a["ids"], runs=a["runs"], meta=np.array([{"x": 1}], dtype=object)))


@case("prune-score-file-meta-not-json", r"meta\.npz", r"meta")
def _(c):
    a = c.score_arrays()
    return prune(c, c.npz("meta.npz", ids=a["ids"], runs=a["runs"], meta=np.array("{oops")))


@case("prune-score-file-wrong-format", r"format\.npz", r"format")
def _(c):
    a = c.score_arrays()
    meta = {**json.loads(str(a["meta"])), "format": "something-else/9"}
    return prune(c, c.npz("format.npz", ids=a["ids"], runs=a["runs"], meta=np.array(json.dumps(meta))))


@case("prune-score-file-shapes-disagree", r"shapes\.npz")
def _(c):
    a = c.score_arrays()
    return prune(c, c.npz("shapes.npz", ids=a["ids"][:-3], runs=a["runs"], meta=a["meta"]))


@case("prune-score-file-nan", r"nan\.npz", r"NaN")
def _(c):
    a = c.score_arrays()
    runs = a["runs"].copy()
    runs[0, 5] = np.nan
    return prune(c, c.npz("nan.npz", ids=a["ids"], runs=runs, meta=a["meta"]))


@case("prune-score-file-inf", r"inf\.npz", r"not finite|infinite|non-finite")
def _(c):
    a = c.score_arrays()
    runs = a["runs"].copy()
    runs[0, 7] = np.inf
    return prune(c, c.npz("inf.npz", ids=a["ids"], runs=runs, meta=a["meta"]))


@case("prune-score-file-duplicate-ids", r"dupes\.npz", r"twice|duplicate|more than once")
def _(c):
    a = c.score_arrays()
    ids = a["ids"].copy()
    ids[1] = ids[0]
    return prune(c, c.npz("dupes.npz", ids=ids, runs=a["runs"], meta=a["meta"]))


@case("prune-score-file-string-runs", r"strings\.npz")
def _(c):
    a = c.score_arrays()
    return prune(c, c.npz("strings.npz", ids=a["ids"], runs=a["runs"].astype(str), meta=a["meta"]))


simple("prune-score-file-other-dataset", lambda c: prune(c, None, "--data-root", c.w.other),
       r"grand-init\.npz", r"fingerprint")
simple("prune-data-root-missing", lambda c: prune(c, None, "--data-root", "/nonexistent"), r"/nonexistent")


# ============================================================================= 4. fractions out of range

for _id, _keep, _extra, _expect in [
    ("keep-0", "0", [], (r"--keep", r"\b0\b")),
    ("keep-1.5", "1.5", [], (r"--keep", r"1\.5")),
    ("keep-negative", "-0.1", [], (r"--keep", r"-0\.1")),
    ("keep-nan", "nan", [], (r"--keep", r"nan")),
    ("keep-inf", "inf", [], (r"--keep", r"inf")),
    ("offset-1", "0.5", ["--offset", "1"], (r"--offset", r"\b1\b")),
    ("offset-negative", "0.5", ["--offset", "-0.2"], (r"--offset", r"-0\.2")),
    ("offset-nan", "0.5", ["--offset", "nan"], (r"--offset", r"nan")),
    ("window-past-the-top", "0.6", ["--offset", "0.6"], (r"--offset", r"0\.6")),
    ("keep-too-few-per-class", "0.001", ["--class-balanced"], (r"--keep|class",)),
    ("ccs-beta-1", "0.5", ["--rule", "ccs", "--beta", "1"], (r"--beta", r"\b1\b")),
    ("ccs-beta-negative", "0.5", ["--rule", "ccs", "--beta", "-0.5"], (r"--beta", r"-0\.5")),
    ("ccs-beta-nan", "0.5", ["--rule", "ccs", "--beta", "nan"], (r"--beta", r"nan")),
    ("ccs-bins-0", "0.5", ["--rule", "ccs", "--bins", "0"], (r"--bins", r"\b0\b")),
    ("ccs-seed-negative", "0.5", ["--rule", "ccs", "--sample-seed", "-1"], (r"--sample-seed", r"-1")),
    ("ccs-keep-beyond-beta", "0.9", ["--rule", "ccs", "--beta", "0.5"], (r"--beta|--keep",)),
    ("rule-sideways", "0.5", ["--rule", "sideways"], (r"--rule", r"sideways")),
]:
    CASES.append(Case(f"prune-{_id}", lambda c, k=_keep, e=_extra: prune(c, None, *e, keep=k), _expect))

for _id, _flags, _expect in [
    ("keeps-0", ["--keeps", "0"], (r"--keeps", r"\b0\b")),
    ("keeps-2", ["--keeps", "2"], (r"--keeps", r"\b2\b")),
    ("keeps-nan", ["--keeps", "nan"], (r"--keeps", r"nan")),
    ("offsets-1.5", ["--offsets", "1.5"], (r"--offsets", r"1\.5")),
    ("offsets-negative", ["--offsets", "-0.1"], (r"--offsets", r"-0\.1")),
    ("eval-seeds-0", ["--eval-seeds", "0"], (r"--eval-seeds", r"\b0\b")),
    ("eval-seeds-negative", ["--eval-seeds", "-3"], (r"--eval-seeds", r"-3")),
    ("score-runs-0", ["--score-runs", "0"], (r"--score-runs", r"\b0\b")),
    ("methods-foo", ["--methods", "foo"], (r"'?foo'?",)),
    ("methods-bad-rule", ["--methods", "el2n@epoch1+sideways"], (r"sideways",)),
]:
    CASES.append(Case(f"reproduce-{_id}", lambda c, f=_flags: reproduce(c, *f), _expect))


# ============================================================================= 5. subset manifests for train

def _set_id(i: int, value: Callable[[list], object]):
    def edit(record):
        record["ids"][i] = value(record["ids"])
    return edit


def _set(key: str, value):
    def edit(record):
        record[key] = value
    return edit


def _drop(key: str):
    def edit(record):
        del record[key]
    return edit


def _drop_last_id(record):
    record["ids"].pop()


def _fingerprint(record):
    record["dataset"]["fingerprint"] = "0" * 32


MANIFESTS = [
    ("duplicate-ids", _set_id(1, lambda ids: ids[0]), (r"more than once",)),
    ("float-id", _set_id(0, lambda ids: ids[0] + 0.5), (r"ids\[0\]", r"integers")),
    ("float-id-integral", _set_id(0, lambda ids: float(ids[0])), (r"ids\[0\]",)),
    ("true-id", _set_id(2, lambda ids: True), (r"ids\[2\] = true",)),
    ("string-id", _set_id(3, lambda ids: "7"), (r'ids\[3\] = "7"',)),
    ("null-id", _set_id(0, lambda ids: None), (r"ids\[0\] = null",)),
    ("missing-ids", _drop("ids"), (r'"ids"',)),
    ("ids-not-a-list", _set("ids", {"0": 1}), (r'"ids"', r"object")),
    ("empty-ids", _set("ids", []), (r"no ids",)),
    ("id-2-to-the-70", _set_id(0, lambda ids: 2 ** 70), (str(2 ** 70),)),
    ("negative-id", _set_id(0, lambda ids: -4), (r"negative", r"-4")),
    ("out-of-range-id", _set_id(0, lambda ids: 10 ** 6), (str(10 ** 6),)),
    ("edited-ids", _drop_last_id, (r"digest|ids_sha256",)),
    ("no-format", _drop("format"), (r"not a datadiet subset manifest",)),
    ("edited-fingerprint", _fingerprint, (r"0{32}",)),
    ("no-dataset", _drop("dataset"), (r"dataset",)),
]
for _id, _edit, _expect in MANIFESTS:
    CASES.append(Case(f"manifest-{_id}", lambda c, e=_edit: train_on_manifest(c, c.manifest(e)),
                      (r"subset\.json", *_expect)))

simple("manifest-a-json-list", lambda c: train_on_manifest(c, c.file("subset.json", "[1, 2, 3]")),
       r"subset\.json", r"list")
simple("manifest-not-json", lambda c: train_on_manifest(c, c.file("subset.json", "{'ids': [1, 2]}")),
       r"subset\.json", r"JSON")
simple("manifest-empty-file", lambda c: train_on_manifest(c, c.file("subset.json", "")), r"subset\.json")
simple("manifest-binary", lambda c: train_on_manifest(c, c.file("subset.json", b"\xff\xfe\x00garbage")),
       r"subset\.json")
simple("manifest-missing-file", lambda c: train_on_manifest(c, c.tmp / "subset.json"), r"subset\.json",
       r"does not exist")
simple("manifest-is-a-folder", lambda c: train_on_manifest(c, c.tmp), r"directory|folder")
simple("manifest-of-another-dataset",
       lambda c: ["train", "--data-root", c.w.other, *SMOKE_DATA, "--test-subset", "20", *TINY,
                  "--subset-file", c.w.manifest, "--out", c.out("train-out")],
       r"subset\.json", r"fingerprint")
simple("manifest-of-another-subset",  # the manifest records its data: the contradicting flag is named
       lambda c: ["train", "--data-root", c.data, "--subset", "200", "--test-subset", "20", *TINY,
                  "--subset-file", c.w.manifest, "--out", c.out("train-out")],
       r"subset\.json", r"--subset 200 contradicts", r"--subset 384")


# ============================================================================= 6. data

simple("train-data-root-nonexistent", lambda c: train(c, "--data-root", "/nonexistent"), r"/nonexistent")
simple("score-data-root-nonexistent", lambda c: score(c, "--data-root", "/nonexistent"), r"/nonexistent")
simple("data-data-root-nonexistent", lambda c: ["data", "--data-root", "/nonexistent"], r"/nonexistent")
simple("reproduce-data-root-nonexistent", lambda c: reproduce(c, "--data-root", "/nonexistent"), r"/nonexistent")
simple("analyze-data-root-nonexistent", lambda c: analyze(c, "--data-root", "/nonexistent"), r"/nonexistent")


@case("data-data-root-is-a-file", r"taken\b")
def _(c):
    return ["data", "--data-root", _taken(c)]


def _env_typo(c: Ctx) -> None:
    c.mp.setenv("DATADIET_DATA", str(c.tmp / "typo-data"))


for _id, _build in [
    ("data-env-missing", lambda c: (_env_typo(c), ["data"])[1]),
    ("train-env-missing", lambda c: (_env_typo(c), ["train", "--subset", "64", *TINY, "--out", c.out("t")])[1]),
    ("score-env-missing", lambda c: (_env_typo(c), ["score", "--runs", "1", "--scores", "input_norm",
                                                    "--out", c.out("s")])[1]),
    ("reproduce-env-missing", lambda c: (_env_typo(c), ["reproduce", *SMOKE, "--out", c.out("r")])[1]),
]:
    CASES.append(Case(_id, _build, (r"DATADIET_DATA", r"typo-data")))


def _without(name: str):
    def build(c):
        root, folder = c.data_copy()
        (folder / name).unlink()
        return ["data", "--data-root", root]
    return build


for _name in IDX_FILES:
    CASES.append(Case(f"data-lacks-{_name.split('-idx')[0]}", _without(_name), (re.escape(_name.removesuffix(".gz")),)))


@case("train-lacks-train-labels", r"train-labels-idx1-ubyte")
def _(c):
    root, folder = c.data_copy()
    (folder / "train-labels-idx1-ubyte.gz").unlink()
    return train(c, "--data-root", root)


def _damaged_idx(name: str, damage: Callable[[Path], None]):
    def build(c):
        root, folder = c.data_copy()
        damage(folder / name)
        c.keep(folder)
        return ["data", "--data-root", root]
    return build


IDX_DAMAGE = {
    "truncated-gzip": lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),
    "not-gzip": lambda p: p.write_bytes(b"plain text, not gzip\n"),
    "empty": lambda p: p.write_bytes(b""),
    "truncated-payload": lambda p: p.write_bytes(gzip.compress(gzip.decompress(p.read_bytes())[:-10])),
    "wrong-magic": lambda p: write_idx(p, np.zeros((480,), np.uint8), magic=0x0803),
    "images-for-labels": lambda p: write_idx(p, np.zeros((480, 28, 28), np.uint8)),
}
for _how, _damage in IDX_DAMAGE.items():
    CASES.append(Case(f"data-idx-{_how}", _damaged_idx("train-labels-idx1-ubyte.gz", _damage),
                      (r"train-labels-idx1-ubyte\.gz",)))
CASES.append(Case("data-idx-images-truncated-gzip", _damaged_idx("t10k-images-idx3-ubyte.gz",
                                                                 IDX_DAMAGE["truncated-gzip"]),
                  (r"t10k-images-idx3-ubyte\.gz",)))


@case("data-idx-label-count-mismatch", r"train-(labels|images)-idx")
def _(c):
    root, folder = c.data_copy()
    write_idx(folder / "train-labels-idx1-ubyte.gz", np.arange(470) % 10)
    return ["data", "--data-root", root]


@case("data-idx-label-out-of-range", r"train-labels-idx1-ubyte", r"\b42\b|label")
def _(c):
    root, folder = c.data_copy()
    write_idx(folder / "train-labels-idx1-ubyte.gz", np.where(np.arange(480) == 3, 42, np.arange(480) % 10))
    return ["data", "--data-root", root]


simple("data-dataset-foo", lambda c: ["data", "--dataset", "foo", "--data-root", c.data], r"'foo'", r"dataset")
simple("reproduce-preset-foo", lambda c: reproduce(c, "--preset", "foo"), r"'foo'", r"preset")
simple("analyze-preset-foo", lambda c: analyze(c, "--preset", "foo"), r"foo", r"preset")


# ============================================================================= 7. external values, usage errors

def _external(c: Ctx, values: Path, *extra) -> list:
    out = c.tmp / "ws"
    c.outputs.append(out / "external")
    return analyze(c, "--values", values, *extra, out=out, name="external")


EXTERNAL_CSV = [
    ("empty", "", (r"values\.csv", r"empty")),
    ("header-only", "id,mem\n", (r"values\.csv", r"no rows")),
    ("no-id-column", "example,mem\n1,0.5\n", (r"values\.csv", r"'id'")),
    ("no-value-column", "id,mem,other\n1,0.5,3\n", (r"values\.csv",)),
    ("id-not-integer", "id,mem\n1,0.5\n2.5,0.1\n", (r"values\.csv, line 3", r"2\.5")),
    ("id-text", "id,mem\n1,0.5\n2,0.1\nseven,0.3\n", (r"values\.csv, line 4", r"seven")),
    ("value-not-a-number", "id,mem\n1,0.5\n2,0.1\n3,high\n", (r"values\.csv, line 4", r"high")),
    ("value-empty", "id,mem\n1,0.5\n2,\n", (r"values\.csv, line 3", r"empty")),
    ("too-many-fields", "id,mem\n1,0.5,9\n", (r"values\.csv, line 2",)),
    ("value-nan", "id,mem\n1,0.5\n2,nan\n", (r"values\.csv", r"NaN")),
    ("value-inf", "id,mem\n1,0.5\n2,inf\n", (r"values\.csv", r"infinite")),
    ("duplicate-ids", "id,mem\n1,0.5\n1,0.6\n", (r"values\.csv", r"more than once")),
    ("json", '{"ids": [1, 2], "values": [0.5, 0.6]}\n', (r"values\.csv",)),
    ("ids-not-in-dataset", "id,mem\n" + "".join(f"{i},0.5\n" for i in range(10 ** 6, 10 ** 6 + 20)),
     (r"values\.csv|1000000",)),
    ("too-few-matches", "id,mem\n0,0.5\n1,0.4\n", (r"values file", r"at least 10")),
]
for _id, _text, _expect in EXTERNAL_CSV:
    CASES.append(Case(f"external-csv-{_id}", lambda c, t=_text: _external(c, c.file("values.csv", t)), _expect))

simple("external-csv-binary", lambda c: _external(c, c.file("values.csv", b"\xff\xfe\x00\x81binary")),
       r"values\.csv", r"UTF-8")
simple("external-values-missing", lambda c: _external(c, c.tmp / "values.csv"), r"values\.csv", r"does not exist")
simple("external-npy-as-values", lambda c: _external(c, c.file("values.npy", _npy_bytes(np.arange(5.0)))),
       r"values\.npy")
simple("external-npz-garbage", lambda c: _external(c, c.file("values.npz", b"garbage")), r"values\.npz")
simple("external-npz-no-values", lambda c: _external(c, c.npz("values.npz", ids=np.arange(20))),
       r"values\.npz", r"'values'")
simple("external-npz-object-values",
       lambda c: _external(c, c.npz("values.npz", ids=np.arange(3), values=np.array([{}, 1, 2], dtype=object))),
       r"values\.npz")
simple("external-npz-text-values",
       lambda c: _external(c, c.npz("values.npz", ids=np.arange(3), values=np.array(["a", "b", "c"]))),
       r"values\.npz", r"not numbers")
simple("external-npz-matrix-values",
       lambda c: _external(c, c.npz("values.npz", ids=np.arange(3), values=np.ones((3, 2)))),
       r"values\.npz", r"vectors")
simple("external-npz-float-ids",
       lambda c: _external(c, c.npz("values.npz", ids=np.arange(3) + 0.5, values=np.ones(3))),
       r"values\.npz", r"integer")
simple("external-value-column-absent",
       lambda c: _external(c, c.file("values.csv", "id,mem\n1,0.5\n"), "--value-column", "score"),
       r"values\.csv", r"'score'")

USAGE = [
    ("no-command", lambda c: [], (r"required|command",)),
    ("unknown-command", lambda c: ["frobnicate"], (r"frobnicate",)),
    ("train-unknown-flag", lambda c: train(c, "--bogus"), (r"--bogus",)),
    ("prune-misspelt-flag", lambda c: prune(c, None, "--ofset", "0.1"), (r"--ofset\b",)),
    ("prune-without-score-file", lambda c: ["prune", "--keep", "0.5", "--out", c.out("m.json")], (r"--score-file",)),
    ("prune-without-keep", lambda c: ["prune", "--score-file", c.w.score, "--out", c.out("m.json")], (r"--keep",)),
    ("prune-keep-not-a-number", lambda c: prune(c, None, keep="half"), (r"--keep", r"half")),
    ("prune-order-sideways", lambda c: prune(c, None, "--order", "sideways"), (r"--order", r"sideways")),
    ("score-without-out", lambda c: score(c, out=False), (r"--out",)),
    ("score-runs-not-a-number", lambda c: score(c, "--runs", "many"), (r"--runs", r"many")),
    ("train-epochs-without-value", lambda c: train(c, "--epochs"), (r"--epochs",)),
    ("report-without-folder", lambda c: ["report"], (r"folder",)),
    ("report-extra-seeds-foo", lambda c: ["report", c.results(), "--extra-seeds", "foo"], (r"--extra-seeds", r"foo")),
    ("analyze-unknown-analysis", lambda c: ["analyze", "foo", "--out", c.out("ws")], (r"'foo'",)),
    ("analyze-without-analysis", lambda c: ["analyze"], (r"ANALYSIS|analysis",)),
    ("reproduce-workers-not-a-number", lambda c: reproduce(c, "--workers", "two"), (r"--workers", r"two")),
]
for _id, _build, _expect in USAGE:
    CASES.append(Case(f"usage-{_id}", _build, _expect))


# ============================================================================= 8. training that diverges

@case("train-diverges", r"diverged", r"train-out", r"config\.json", r"no result\.json")
def _(c):
    out = c.tmp / "train-out"
    c.diverged_out = out
    return ["train", "--data-root", c.data, "--subset", "64", "--test-subset", "20", "--width", "0.25",
            "--batch-size", "16", "--steps", "4", "--lr", "1e30", "--device", "cpu", "--out", out]


@case("score-diverges", r"NaN|diverge", r"--lr")
def _(c):
    return score(c, "--scores", "el2n", "--score-epochs", "1", "--batch-size", "16", "--lr", "1e30")


# ----------------------------------------------------------------------------- the test

# Cases where datadiet misbehaves today (kept strict: a fix turns them into failures until the mark goes).
KNOWN_BUGS: dict[str, str] = {}


def _params():
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    params = []
    for c in CASES:
        marks = []
        reason = KNOWN_BUGS.get(c.id)
        if reason:
            marks.append(pytest.mark.xfail(strict=True, reason=reason))
        if not c.root_ok:
            marks.append(pytest.mark.skipif(IS_ROOT, reason="root ignores file permissions"))
        params.append(pytest.param(c, id=c.id, marks=marks))
    return params


@pytest.mark.parametrize("case", _params())
def test_hostile_input_ends_in_one_paragraph_with_status_2(case: Case, world, processes, tmp_path, monkeypatch,
                                                           capsys):
    ctx = Ctx(world, tmp_path, monkeypatch)
    try:
        argv = case.build(ctx)
        before = {p: snapshot(p) for p in ctx.guarded}
        assert all(not exists(p) for p in ctx.outputs), "a case's output path exists before the run"
        status = run_cli(argv)
        monkeypatch.undo()  # os.fsync, os.replace, Path.write_text, $DATADIET_DATA: back to normal for the checks
        out, err = capsys.readouterr()
        assert "Traceback" not in out + err, err
        assert status == 2, f"exit status {status}; stderr:\n{err}"
        for pattern in case.expect:
            assert re.search(pattern, norm(err)), f"{pattern!r} not in stderr:\n{err}"
        left = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.tmp"))
        assert left == [], f"temporary files left behind: {left}"
        for path in ctx.outputs:
            assert only_locks(path), f"{path} was written: {sorted(p.name for p in path.rglob('*'))}"
        for path, snap in before.items():
            assert snapshot(path) == snap, f"{path} was changed"
        diverged = getattr(ctx, "diverged_out", None)
        if diverged is not None:  # the folder keeps the recipe that diverged and no result
            assert (diverged / "config.json").is_file()
            assert not (diverged / "result.json").exists()
    finally:
        ro = tmp_path / "read-only"
        if ro.exists():
            ro.chmod(0o755)


def test_there_are_enough_cases():
    assert len(CASES) >= 110


# ----------------------------------------------------------------------------- damaged run files: report keeps going

RUN_DAMAGE = {
    "a-list": lambda record, text: "[1, 2, 3]\n",
    "lacks-a-key": lambda record, text: json.dumps({k: v for k, v in record.items() if k != "method"}),
    "truncated": lambda record, text: text[: len(text) // 2],
    "empty": lambda record, text: "",
    "not-utf8": lambda record, text: "\udcff",
}


@pytest.mark.parametrize("how", list(RUN_DAMAGE))
def test_report_names_a_damaged_run_file_and_goes_on(how, world, tmp_path, capsys):
    results = tmp_path / "results"
    shutil.copytree(world.results, results)
    victim = min(runs_dir(results).glob("*.json"))
    text = victim.read_text()
    damaged = RUN_DAMAGE[how](json.loads(text), text)
    victim.write_bytes(damaged.encode("utf-8", "surrogateescape"))
    status = run_cli(["report", results])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err, err
    assert status == 0, f"exit status {status}; stderr:\n{err}"
    assert victim.name in out, out
    assert victim.read_bytes() == damaged.encode("utf-8", "surrogateescape")  # named, not deleted or rewritten
    assert not list(tmp_path.rglob("*.tmp"))


@pytest.mark.parametrize("how", ["garbage", "truncated"])
def test_resume_rebuilds_a_damaged_score_table_from_the_run_cache(how, world, tmp_path, capsys):
    """Not an error: a damaged score table is recomputed from the score run cache (training nothing)."""
    results = tmp_path / "results"
    shutil.copytree(world.results, results)
    table = results / world.score.relative_to(world.results)
    table.write_bytes(CACHE_DAMAGE[how](table.read_bytes()))
    status = run_cli(["reproduce", *SMOKE, "--data-root", world.data, "--out", results])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err, err
    assert status == 0, f"exit status {status}; stderr:\n{err}"
    assert table.read_bytes() == world.score.read_bytes()
    assert not list(tmp_path.rglob("*.tmp"))


# ----------------------------------------------------------------------------- a few real processes

SUBPROCESS_CASES = {
    "prune-text-score-file": (lambda w, tmp: ["prune", "--score-file", _write(tmp / "notes.txt", "a,b\n1,2\n"),
                                              "--keep", "0.5", "--out", tmp / "m.json"], (r"notes\.txt",)),
    "train-lr-nan": (lambda w, tmp: ["train", "--data-root", w.data, "--subset", "64", *TINY, "--lr", "nan",
                                     "--out", tmp / "t"], (r"--lr", r"nan")),
    "report-corrupt-config": (lambda w, tmp: ["report", _damaged_copy(w, tmp)], (r"reproduce/config\.json",)),
    "prune-unknown-flag": (lambda w, tmp: ["prune", "--score-file", w.score, "--keep", "0.5", "--ofset", "0.1",
                                           "--out", tmp / "m.json"], (r"--ofset\b",)),
}


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _damaged_copy(w: World, tmp: Path) -> Path:
    results = tmp / "results"
    shutil.copytree(w.results, results)
    (study_dir(results) / "config.json").write_text("{not json")
    return results


@pytest.fixture(scope="module")
def processes(world, tmp_path_factory):
    """Start every subprocess case at once, when the first in-process case runs (they mostly import torch and
    build the parser, on the core the in-process cases leave idle); collected by the tests at the end."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATADIET_DATA", "DATADIET_DEBUG")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
    env["OMP_NUM_THREADS"] = "1"
    started = {}
    for name, (build, _) in SUBPROCESS_CASES.items():
        tmp = tmp_path_factory.mktemp(f"proc-{name}")
        argv = [sys.executable, "-m", "datadiet", *map(str, build(world, tmp))]
        started[name] = (tmp, subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                               text=True))
    yield started
    for _, proc in started.values():
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


@pytest.mark.parametrize("name", list(SUBPROCESS_CASES))
def test_real_process_exits_2_with_one_paragraph(name, processes):
    tmp, proc = processes[name]
    out, err = proc.communicate(timeout=120)
    status = proc.returncode
    assert "Traceback" not in out + err, err
    assert status == 2, f"exit status {status}; stderr:\n{err}"
    for pattern in SUBPROCESS_CASES[name][1]:
        assert re.search(pattern, norm(err)), f"{pattern!r} not in stderr:\n{err}"
    assert not list(tmp.rglob("*.tmp"))
    assert not (tmp / "m.json").exists() and not (tmp / "t").exists()


# ----------------------------------------------------------------------------- the Python API: select

@pytest.mark.parametrize("scores, dtype", [
    (np.array(["0.3", "0.1", "0.2", "0.4"]), r"<U3 \(text"),  # numbers as text: numpy would have converted them
    (np.array(["high", "low", "mid", "low"]), r"<U4 \(text"),
    (np.array([b"1", b"2", b"3", b"4"]), r"\|S1 \(bytes"),
    (np.array([0.3, None, 0.2, 0.4], dtype=object), r"object \(Python objects"),
    (np.array([0.3, 0.1, 0.2, 0.4], dtype=object), r"object \(Python objects"),
    (np.array([1 + 2j, 0.1, 0.2, 0.4]), r"complex128 \(complex numbers"),
    (["0.3", 0.1, 0.2, 0.4], r"<U32 \(text"),
])
def test_select_refuses_scores_that_are_no_numbers_naming_the_dtype(scores, dtype):
    from datadiet.errors import ConfigError
    from datadiet.selection import select

    with pytest.raises(ConfigError, match=r"Scores must be numbers .*dtype " + dtype):
        select(scores, keep=0.5, rule="hardest")


def test_select_refuses_ragged_scores_and_still_takes_numbers_of_any_kind():
    from datadiet.errors import ConfigError
    from datadiet.selection import select

    with pytest.raises(ConfigError, match=r"1-D array of numbers; the list given"):
        select([[0.1, 0.2], [0.3]], keep=0.5)
    for scores in ([0.3, 0.1, 0.2, 0.4], np.array([3, 1, 2, 4], dtype=np.uint8), np.float16([0.3, 0.1, 0.2, 0.4])):
        assert select(scores, keep=0.5, rule="hardest").tolist() == [0, 3]
