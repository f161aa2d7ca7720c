"""Test support for killing a sweep at a known point: gated on files and events, never on elapsed time.

A test that kills a sweep "after a while" races the clock: on a slow or busy machine the kill lands before the
first result or after the last. Here the sweep's runs themselves stop at a chosen point (:class:`BlockRuns`) and
say so with a file, and the test waits for that file (:func:`wait_until`) before it kills: whatever the machine's
speed, the sweep is then certainly blocked with a known set of records on disk.

Limits in this module are safety nets only: they turn a broken test into a failure (or end a process a failed
test left behind) instead of a hang; no passing test ever reaches one.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from datadiet.runs.sweep import execute_run  # bound at import: the real one, before a test replaces the module's

SAFETY_LIMIT = 600.0  # seconds; far beyond any of these tests


@dataclass(frozen=True)
class BlockRuns:
    """A stand-in for ``datadiet.runs.sweep.execute_run``: a run whose training seed is below ``finish`` trains
    and returns as usual; any other run writes ``<folder>/blocked-<run id>`` and then waits until its process is
    killed. So a sweep of seeds 0..n-1 writes exactly the records of seeds 0..finish-1 and blocks: one blocked file
    per process (the sweep's own, or each worker's) says it is there.

    Picklable (a frozen dataclass of strings and ints, importable from ``gates``): workers of ``--workers K``
    receive it like the real function, and run the real ``execute_run`` of their own import.
    """

    folder: str
    finish: int

    def __call__(self, spec, positions, threads=None, **options) -> dict:
        if spec.train.seed < self.finish:
            return execute_run(spec, positions, threads, **options)
        mark(Path(self.folder) / f"blocked-{spec.run_id}")
        time.sleep(SAFETY_LIMIT)  # held here until the test kills the process
        os._exit(1)  # never reached by a passing test: end a process that a failed test left behind


def mark(path: Path) -> None:
    """Create ``path`` atomically (written under a hidden name, then renamed): whoever sees it sees it whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    hidden = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    hidden.write_text(str(os.getpid()))
    os.replace(hidden, path)


def blocked(folder: Path) -> list[Path]:
    """The blocked files that :class:`BlockRuns` wrote in ``folder``: one per run that is held."""
    return sorted(Path(folder).glob("blocked-*"))


def wait_until(condition: Callable[[], bool], what: str, limit: float = SAFETY_LIMIT) -> None:
    """Return as soon as ``condition()`` holds; fail (naming ``what``) if it still does not after ``limit``
    seconds, a safety net that keeps a broken test from hanging, not a deadline the behaviour must meet."""
    give_up = time.monotonic() + limit
    while not condition():
        if time.monotonic() > give_up:
            raise AssertionError(f"gave up after {limit:g} s waiting for {what}")
        time.sleep(0.02)
