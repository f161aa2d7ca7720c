"""Sweeps of training runs: identified by content hashes, written atomically, resumable, local or Ray.

A :class:`RunSpec` says everything that determines one evaluation run: data, training recipe
(with its seed), which subset (method, kept fraction, offset and a digest of the exact ids).
Its ``run_id`` is a hash of that spec.  A finished run is written to ``OUT/runs/<run_id>.json``
atomically the moment it finishes, so:

* re-running the same sweep skips finished runs, and trains again a record that was edited (each record carries
  a checksum of its whole content, ``record_sha256``);
* a sweep killed at any moment (SIGKILL included) loses at most the runs in flight, and never
  leaves a half-written result behind;
* a failed run is recorded in ``OUT/failures/<run_id>.json`` with its spec and error, does not
  stop the sweep, and is retried on the next invocation.

Executors: ``local`` runs tasks in this process, one after another; ``ray`` submits each task to a
Ray cluster (``pip install 'datadiet[ray]'``), requesting ``cpus``/``gpus`` per task, and collects
results as they finish.  Both call the same :func:`execute_run`, so the same seeds give the same
numbers (with the same number of threads per run).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import json
import math
import multiprocessing
import os
import signal
import sys
import threading
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ..version import __version__
from ..dynamic import parameter_values
from ..config import DataConfig, TrainConfig, to_dict
from ..data import load_data
from ..data.registry import parse_source
from ..errors import ConfigError, DataDietError
from ..io import UnreadableFileError, json_text, load_json, write_json_atomic
from ..models import check_model, model_factory
from ..training import resolve_device, train
from .identity import digest_ids, identity


@dataclass(frozen=True)
class RunSpec:
    """One evaluation run of a pruning sweep."""

    data: DataConfig
    train: TrainConfig
    method: str                 # "full", "random", or a score label such as "el2n@epoch1"
    keep: float                 # fraction of the training set kept (1.0 for "full")
    offset: float | None = None
    subset_digest: str = ""     # sha256 of the kept ids: ties the run to the exact subset
    # The training split's fingerprint, for data the user brings (folder:, arrays:): its files can change under the
    # same name, and a run of the old content must not count for the new. Built-in datasets never change, and
    # leaving it empty for them keeps their run identities as they were.
    data_fingerprint: str = ""

    @property
    def run_id(self) -> str:
        return identity(self)

    def describe(self) -> dict:
        return {"run_id": self.run_id, **to_dict(self)}

    @property
    def label(self) -> str:
        """The run in a progress line: method, kept fraction, seed, and what of its recipe sets it apart from the
        study's other runs of that method (epochs, pruner, precision), so that the full-data runs of a compute
        study's budgets do not read alike: ``full keep=1 seed=1000 epochs=8``."""
        train = self.train
        extra = f" epochs={train.epochs:g}" if self.method in ("full", "random") or train.budget != "matched" else ""
        if train.dynamic is not None:  # the pruner and its parameters: InfoBatch at 0.3 and at 0.7 must differ
            extra += ("" if self.method == train.pruner_name else " " + train.pruner_name) + "".join(f" {k}={v:g}" if isinstance(v, float) else f" {k}={v}"
                                                       for k, v in parameter_values(train.dynamic).items())
        extra += f" {train.precision}" if train.precision != "fp32" else ""
        return f"{self.method} keep={self.keep:g} seed={train.seed}{extra}"


@dataclass(frozen=True)
class Task:
    """A spec plus the row positions it trains on (``None`` = all)."""

    spec: RunSpec
    positions: np.ndarray | None = field(default=None, compare=False)


@dataclass
class SweepOutcome:
    results: list[dict]
    failures: list[dict]
    skipped: int
    ran: int


def task_for(data: DataConfig, train: TrainConfig, method: str, keep: float, kept_ids, train_set,
             offset: float | None = None) -> Task:
    """A task training ``train`` on the examples ``kept_ids`` of ``train_set`` (the split ``data`` loads)."""
    positions = train_set.positions_of(kept_ids).numpy()
    spec = RunSpec(data, train, method, keep, offset, digest_ids(kept_ids), data_fingerprint_of(data, train_set))
    return Task(spec, positions)


def data_fingerprint_of(data: DataConfig, train_set) -> str:
    """``RunSpec.data_fingerprint``: the training split's fingerprint for user data, empty for built-in datasets."""
    return train_set.fingerprint if parse_source(data.dataset) else ""


def execute_run(spec: RunSpec, positions: np.ndarray | None, threads: int | None = None, *,
                load: Callable[[DataConfig], Any] | None = None) -> dict:
    """Train one model for ``spec`` and return its result record (final-step test accuracy). ``load`` gives the data
    (the caller's already loaded splits, in its own process); default :func:`load_cached`, a worker's cache."""
    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        splits = (load or load_cached)(spec.data)
        started = time.perf_counter()
        result = train(spec.train, splits, positions=None if positions is None else torch.from_numpy(positions),
                       evaluate_test=True, progress=False, log=lambda _: None)
    finally:
        torch.set_num_threads(previous)
    n_train = len(splits.train) if positions is None else len(positions)
    # The per-class keys (test_balanced_accuracy, test_worst_class_accuracy, test_class_recall, test_majority_rate)
    # are results, not identity: records written before them still verify and keep their names.
    return {**spec.describe(), "test_accuracy": result.test_accuracy, "test_loss": result.test_loss,
            **result.class_fields(), "steps": result.steps, "n_train": n_train,
            "wall_seconds": round(time.perf_counter() - started, 3),
            "cost": result.cost.to_dict(), "passes_per_epoch": result.passes_per_epoch,  # training only: no scoring
            "dataset_fingerprint": splits.train.fingerprint, "version": __version__}


@lru_cache(maxsize=4)
def load_cached(data: DataConfig):
    """A worker process's data (worker processes and Ray tasks): loaded once per process, not once per run. The
    process that plans the runs holds its own (``Workspace.splits``) and hands it to the runs it executes itself."""
    return load_data(data)


EXECUTORS = ("local", "ray")


def check_execution(executor: str, workers: int | None) -> None:
    """Refuse an unknown executor or a worker count below one, before anything is trained or written."""
    if executor not in EXECUTORS:
        raise ConfigError(f"Unknown --executor {executor!r}; use 'local' or 'ray'.")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ConfigError(f"--workers must be a whole number of at least 1, got {workers!r}.")


@dataclass(frozen=True)
class Execution:
    """Where the data lies and where runs execute: the one set of execution options, for `reproduce`, every study
    and every sweep. None of them changes a result (see runs.identity)."""

    data_root: str | None = None   # dataset folder; None: $DATADIET_DATA, then system locations
    device: str | None = None      # cpu, cuda, cuda:1 ...; None: the recipe's (auto)
    executor: str = "local"        # local (this process) or ray
    address: str | None = None     # Ray cluster address; None: start a local Ray instance
    cpus_per_run: float = 1        # Ray: CPUs requested per run
    gpus_per_run: float = 0        # Ray: GPUs requested per run (e.g. 0.25)
    workers: int | None = None     # local: runs at once in worker processes; None: 1 (see runs.sweep.default_workers)

    def __post_init__(self) -> None:
        check_execution(self.executor, self.workers)


def run_sweep(tasks: Sequence[Task], out_dir: str | Path, execution: Execution = Execution(), *,
              threads: int | None = None, log: Callable[[str], None] = print,
              load: Callable[[DataConfig], Any] | None = None) -> SweepOutcome:
    """Run every task not finished yet; write each result the moment it finishes.

    ``execution.workers`` runs that many tasks at once in worker processes of the local executor (default
    :func:`default_workers`); with ``threads`` unset each run gets an equal share of the CPU threads.
    Results, files and resume behave exactly as with one worker: only this process writes them. ``load`` gives
    the data to the runs this process executes itself (default :func:`load_cached`).
    """
    out_dir = Path(out_dir)
    (out_dir / "runs").mkdir(parents=True, exist_ok=True)
    unique = {t.spec.run_id: t for t in tasks}  # the same spec twice is one run
    found = read_run_files(out_dir)
    todo = [t for rid, t in unique.items() if rid not in found.records]
    redo = [p.name for p in found.invalid if p.stem in unique]
    log(f"sweep: {len(unique)} runs, {len(unique) - len(todo)} already finished, {len(todo)} to run "
        f"({execution.executor} executor)" + (f"; {len(redo)} damaged result files are run again "
                                              f"({', '.join(redo[:3])})" if redo else ""))
    failures: list[dict] = []
    on_result = _recorder(out_dir, failures, len(todo), log)
    if execution.executor == "local":
        k = default_workers(tasks) if execution.workers is None else execution.workers
        if k == 1 or len(todo) < 2:
            _run_local(todo, threads, on_result, load)
        else:
            _run_workers(todo, min(k, len(todo)), threads or max(1, torch.get_num_threads() // k), on_result)
    else:
        _run_ray(todo, execution.address, execution.cpus_per_run, execution.gpus_per_run, threads, on_result)
    results = load_results(out_dir)
    wanted = set(unique)
    return SweepOutcome(results=[r for r in results if r["run_id"] in wanted], failures=failures,
                        skipped=len(unique) - len(todo), ran=len(todo) - len(failures))


def check_recipe(train: TrainConfig, train_set=None) -> None:
    """Refuse a device that is not there or a model that cannot be built, before anything is written; given the
    training split, also a user model that does not fit its data (see :func:`~datadiet.models.check_model`)."""
    resolve_device(train.device)
    model_factory(train.model)
    if train_set is not None:
        check_model(train.model, num_classes=train_set.num_classes, input_shape=train_set.shape, width=train.width)


def load_results(out_dir: str | Path) -> list[dict]:
    """The finished run records of a sweep folder (unreadable or edited files are left out: see
    :func:`read_run_files`)."""
    return list(read_run_files(out_dir).records.values())


RECORD_KEYS = ("run_id", "data", "train", "method", "keep", "test_accuracy", "test_loss", "steps", "n_train",
               "wall_seconds")
CHECKSUM_KEY = "record_sha256"


def seal_record(record: dict) -> dict:
    """``record`` as it is written: plain JSON values, plus its checksum (:data:`CHECKSUM_KEY`).

    The file name hashes only what identifies a run; the checksum covers everything else too (the accuracy
    above all), so that an edited number is caught, not averaged into a report.
    """
    plain = json.loads(json_text({k: v for k, v in record.items() if k != CHECKSUM_KEY}))
    return {**plain, CHECKSUM_KEY: record_checksum(plain)}


def record_checksum(record: dict) -> str:
    """sha256 of the record's canonical JSON (sorted keys, no spaces), its own checksum left out."""
    body = {k: v for k, v in record.items() if k != CHECKSUM_KEY}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False, ensure_ascii=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass
class RunFiles:
    """What ``OUT/runs`` holds: valid records by run id, the files that are not (path → why), and the run ids of
    records written before records carried a checksum (counted, but an edit to their numbers cannot be seen)."""

    records: dict[str, dict]
    invalid: dict[Path, str]
    unchecked: list[str] = field(default_factory=list)


def read_run_files(out_dir: str | Path) -> RunFiles:
    """Read every ``runs/*.json``; a record counts only if it is complete, its values are in range, its identity
    hashes to its name and its whole content to its checksum.

    Atomic writes make a truncated file impossible for datadiet itself; one copied in by hand, edited or cut short
    is reported (and retrained by the sweep), never counted. A record without a checksum predates it: it is
    counted (its identity still matches its name) and listed in ``unchecked``.
    """
    files = RunFiles({}, {})
    runs = Path(out_dir) / "runs"
    if runs.exists() and not runs.is_dir():
        raise DataDietError(f"{runs} is a file, but datadiet keeps its run records in a folder of that name. Move "
                            "the file away (or use another --out folder).")
    for path in sorted(runs.glob("*.json")):
        record = _read_record(path)
        if isinstance(record, str):
            files.invalid[path] = record
            continue
        files.records[path.stem] = record
        if CHECKSUM_KEY not in record:
            files.unchecked.append(path.stem)
    return files


def _read_record(path: Path) -> dict | str:
    """The finished run record in ``path``, or why it is not one (a short phrase for the report)."""
    try:  # strict JSON (NaN, deep nesting, huge integers refused) from a regular file of bounded size
        record = load_json(path)
    except UnreadableFileError as exc:
        return exc.why
    if not isinstance(record, dict):
        return f"not a run record (a JSON {type(record).__name__})"
    missing = [k for k in RECORD_KEYS if k not in record]
    if missing:
        return f"incomplete (no {', '.join(missing)})"
    if not isinstance(record["train"], dict) or not isinstance(record["data"], dict):
        return "not a run record (train/data are not objects)"
    spec = {k: record.get(k) for k in ("data", "train", "method", "keep", "offset", "subset_digest")}
    spec["data_fingerprint"] = record.get("data_fingerprint", "")
    if record["run_id"] != path.stem or identity(spec) != path.stem:
        return "its content does not match its name (edited or copied from another run)"
    if CHECKSUM_KEY in record and record[CHECKSUM_KEY] != record_checksum(record):
        return f"its content does not match its {CHECKSUM_KEY} (edited after it was written)"
    return _out_of_range(record) or record


# A run record's numbers → (lowest, highest, whether the lowest itself is allowed).
RECORD_RANGES = {"test_accuracy": (0.0, 1.0, True), "test_loss": (0.0, math.inf, True),
                 "keep": (0.0, 1.0, False), "wall_seconds": (0.0, math.inf, True)}
RECORD_COUNTS = ("steps", "n_train")


def _out_of_range(record: dict) -> str | None:
    """Why a value of ``record`` cannot be a real run's, or ``None``. Checked for records without a checksum too."""
    for key, (low, high, low_ok) in RECORD_RANGES.items():
        value = record[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or not (low <= value <= high) or (value == low and not low_ok):
            return f"{key} is {json.dumps(value)}, not a finite number in {'[' if low_ok else '('}{low:g}, {high:g}]"
    for key in RECORD_COUNTS:
        value = record[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            return f"{key} is {json.dumps(value)}, not a whole number of at least 1"
    return None


def _recorder(out_dir: Path, failures: list[dict], total: int, log: Callable[[str], None]):
    count = {"n": 0}
    started = time.monotonic()

    def record(task: Task, result: dict | None, error: BaseException | None, tb: str = "") -> None:
        count["n"] += 1
        eta = remaining_time(time.monotonic() - started, count["n"], total)
        rid = task.spec.run_id
        failure_path = out_dir / "failures" / f"{rid}.json"
        if error is None:
            write_json_atomic(out_dir / "runs" / f"{rid}.json", seal_record(result))
            failure_path.unlink(missing_ok=True)
            log(f"[{count['n']}/{total}] {task.spec.label}: "
                f"test accuracy {result['test_accuracy']:.4f} ({result['wall_seconds']:.1f}s){eta}")
        else:
            record_ = {**task.spec.describe(), "error": f"{type(error).__name__}: {error}", "traceback": tb}
            write_json_atomic(failure_path, record_)
            failures.append(record_)
            log(f"[{count['n']}/{total}] FAILED {task.spec.label}: {type(error).__name__}: {error} (see {failure_path}; "
                "it is retried on the next run)")
    return record


def remaining_time(elapsed: float, done: int, total: int) -> str:
    """``"; about 3 min left"``: the mean time per finished run so far times the runs left ("" when none are left).

    Runs of one sweep differ in size (kept fractions, budgets), so this is a rough guide, not a promise."""
    left = total - done
    if left <= 0 or done <= 0:
        return ""
    seconds = elapsed / done * left
    return f"; about {seconds / 60:.0f} min left" if seconds >= 90 else f"; about {seconds:.0f} s left"


def _run_local(todo: Sequence[Task], threads: int | None, record, load=None) -> None:
    for task in todo:
        try:
            result = execute_run(task.spec, task.positions, threads, load=load)
        except Exception as exc:  # noqa: BLE001 - one failed run must not abort the sweep
            record(task, None, exc, traceback.format_exc())
        else:
            record(task, result, None)


# Measured with benchmarks/bench_gpu.py (see benchmarks/RESULTS.md): with the training step replayed from a CUDA
# graph, one run keeps a GPU busy, and concurrent runs add little; on the CPU, runs share the cores either way.
GPU_WORKERS = 1


def default_workers(tasks: Sequence[Task]) -> int:
    """Concurrent runs of the local executor when none is asked for: :data:`GPU_WORKERS` when the runs train on
    a GPU, one on the CPU (K runs of T/K threads are no faster than one run of T threads on a small machine)."""
    on_gpu = any(resolve_device(t.spec.train.device).type == "cuda" for t in tasks[:1])
    return GPU_WORKERS if on_gpu else 1


def _run_workers(todo: Sequence[Task], workers: int, threads: int, record) -> None:
    """Run tasks in ``workers`` spawned processes (each its own CUDA context); record each as it finishes."""
    with worker_pool(workers) as pool:
        pending = {pool.submit(execute_run, t.spec, t.positions, threads): t for t in todo}
        for future in as_completed(pending):
            task = pending[future]
            try:
                result = future.result()
            except Exception as exc:  # noqa: BLE001 - one failed run must not abort the sweep
                record(task, None, exc, "".join(traceback.format_exception(exc)))
            else:
                record(task, result, None)


def worker_pool(workers: int) -> ProcessPoolExecutor:
    """``workers`` spawned processes that end when this process dies, however it dies."""
    context = multiprocessing.get_context("spawn")  # fork is unsafe once torch (or CUDA) is initialised
    return ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=die_with_parent,
                               initargs=(os.getpid(),))


def die_with_parent(parent: int) -> None:
    """Worker start: end this worker when ``parent`` (the command) dies.

    A SIGKILLed command runs no cleanup, and its workers would train on for hours, holding their memory (and GPU)
    for results nobody writes. On Linux the kernel kills the worker (``PR_SET_PDEATHSIG``); elsewhere a thread
    polls the parent pid once a second.
    """
    if not _kernel_kills_on_parent_death():
        threading.Thread(target=_exit_when_orphaned, args=(parent,), daemon=True, name="parent-watch").start()
    if os.getppid() != parent:  # the parent died before this worker got here
        os._exit(1)


PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def _kernel_kills_on_parent_death() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    except (OSError, AttributeError):  # no libc or no prctl: poll instead
        return False


def _exit_when_orphaned(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)


def _run_ray(todo: Sequence[Task], address: str | None, cpus: float, gpus: float, threads: int | None,
             record) -> None:
    try:
        import ray
    except ImportError:
        raise ConfigError("The ray executor needs Ray: pip install 'datadiet[ray]'.") from None
    if not ray.is_initialized():
        ray.init(address=address, ignore_reinit_error=True, log_to_driver=False,
                 **({} if address else {"include_dashboard": False}))
    remote = ray.remote(num_cpus=cpus, num_gpus=gpus, max_retries=0)(_ray_task)
    pending = {remote.remote(t.spec, t.positions, threads or max(1, int(cpus))): t for t in todo}
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        task = pending.pop(ready[0])
        try:
            result = ray.get(ready[0])
        except Exception as exc:  # noqa: BLE001 - a task error is a failed run, not a failed sweep
            cause = getattr(exc, "cause", None) or exc
            record(task, None, cause, str(exc))
        else:
            record(task, result, None)


def _ray_task(spec: RunSpec, positions, threads: int) -> dict:
    return execute_run(spec, positions, threads)
