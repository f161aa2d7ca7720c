"""How long `datadiet` takes to answer before it does any work: --version, --help, a command's --help and two
error paths, each in a fresh process (what a user waits for), best of N runs.

    python benchmarks/bench_startup.py                       # this checkout
    python benchmarks/bench_startup.py --against /tmp/old/src  # side by side with another source tree

`--against` runs the same commands with PYTHONPATH pointing at another copy of ``src/`` (e.g. ``git archive HEAD
src | tar -x -C /tmp/old``), so a change can be measured against the code before it on the same machine.
The error paths: a flag refused by the config (``train --lr nan``, no data is read) and data that is not there
(``data --dataset folder:/nonexistent``, which imports the data loaders and so torch).
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
CASES = [["--version"], ["--help"], ["reproduce", "--help"], ["train", "--lr", "nan"],
         ["data", "--dataset", "folder:/nonexistent/datadiet-bench"]]


def seconds(src: Path, argv: list[str], repeats: int) -> tuple[float, int]:
    """Best wall time of ``python -m datadiet ARGV`` over ``repeats`` fresh processes, and its exit status."""
    env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "1"}
    best, status = float("inf"), 0
    for _ in range(repeats):
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "datadiet", *argv], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, check=False)
        best, status = min(best, time.perf_counter() - started), done.returncode
    return best, status


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="fresh processes per command (best is kept)")
    parser.add_argument("--against", type=Path, help="another src/ folder to time side by side")
    args = parser.parse_args()
    trees = {"this checkout": SRC, **({"--against": args.against} if args.against else {})}
    print(f"python {platform.python_version()}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs; best of {args.repeats} fresh processes, seconds (exit status)")
    print("| command | " + " | ".join(trees) + " |")
    print("|---|" + "---:|" * len(trees))
    for argv in CASES:
        cells = [f"{t:.2f} ({s})" for t, s in (seconds(src, argv, args.repeats) for src in trees.values())]
        print(f"| `datadiet {' '.join(argv)}` | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
