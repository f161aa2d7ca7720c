"""GPU speed, side by side in one process: graphed vs eager steps, the loop vs the bare step, sweep throughput
with K concurrent runs against one, GraNd against fwd+bwd / vmap / loop, EL2N against inference.

Every table compares numbers measured in this process on this device, and reports ratios (issue 11):

1. ``step``: the bare SGD step (forward, loss, backward, update on one reused batch) eager and replayed from a
   CUDA graph, and datadiet's training loop (augmentation, normalization, schedule, divergence check) eager and
   graphed; loop / bare (target >= 0.9) and graphed / eager.
2. ``sweep``: aggregate training images per second of a sweep of short runs through ``run_sweep`` (local
   executor, K worker processes), eager K = 1 (the pre-graph sequential loop) against graphed K = 1, 2, 4.
3. ``scores``: datadiet's GraNd against one plain forward+backward, ``torch.func.vmap`` and a per-example
   loop, and EL2N against plain inference, at the score runner's chunk size.

    PYTHONPATH=src python3 benchmarks/bench_gpu.py [--sections step sweep scores] [--quick]

Fashion-MNIST (from $DATADIET_DATA or the system folder) is used for the sweep; the other sections use
random data of the same shapes.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_scores import reference_passes, timed  # noqa: E402

from datadiet.config import DataConfig, TrainConfig  # noqa: E402
from datadiet.data.dataset import ImageDataset, make_splits  # noqa: E402
from datadiet.data.transforms import Normalizer  # noqa: E402
from datadiet.models import build_model  # noqa: E402
from datadiet.runs.identity import digest_ids  # noqa: E402
from datadiet.runs.sweep import Execution, RunSpec, Task, run_sweep  # noqa: E402
from datadiet.scores.functions import el2n, grand  # noqa: E402
from datadiet.training import init_model, place_model, resolve_device, to_layout, train  # noqa: E402
from datadiet.training.step import make_step  # noqa: E402

MODELS = [  # (label, model, width, image shape): ResNet18 on Fashion-MNIST is the `gpu` preset
    ("resnet18, 1x28x28", "resnet18", 1.0, (1, 28, 28)),
    ("resnet18, 3x32x32", "resnet18", 1.0, (3, 32, 32)),
    ("smallcnn, 1x28x28", "smallcnn", 1.0, (1, 28, 28)),
]


def synthetic_splits(shape, n: int):
    gen = torch.Generator().manual_seed(0)

    def split(name):
        return ImageDataset("bench", name, torch.randint(0, 256, (n, *shape), generator=gen, dtype=torch.uint8),
                            torch.randint(0, 10, (n,), generator=gen), torch.arange(n), tuple("0123456789"))
    return make_splits(split("train"), split("test"))


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def bare_rate(cfg: TrainConfig, splits, device, steps: int, batch: int, graphed: bool) -> float:
    """Images per second of the bare step on one reused, already normalized batch."""
    model = place_model(init_model(cfg, splits.train), cfg, device).train()
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, nesterov=True,
                          weight_decay=cfg.weight_decay)
    step = make_step(model, opt, device, amp=cfg.amp, cuda_graph=graphed)
    x = to_layout(Normalizer(splits.mean, splits.std, device)(splits.train.images[:batch].to(device)), cfg)
    y = splits.train.labels[:batch].to(device)
    for _ in range(5):
        step(x, y, cfg.lr)
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step(x, y, cfg.lr)
    sync(device)
    return steps * batch / (time.perf_counter() - start)


def loop_rate(cfg: TrainConfig, splits, device, steps: int) -> float:
    """Images per second of datadiet's training loop between two hooks (set-up and evaluation excluded)."""
    stamps = {}

    def stamp(model, s):
        sync(device)
        stamps[s] = time.perf_counter()

    train(replace(cfg, steps=steps + 10), splits, hooks={10: stamp, 10 + steps: stamp}, evaluate_test=False,
          progress=False, log=lambda _: None)
    return steps * cfg.batch_size / (stamps[10 + steps] - stamps[10])


def section_step(device, quick: bool) -> list[str]:
    steps, repeats = (20, 1) if quick else (150, 2)
    out = ["| model | bare eager | bare graphed | bare eager, batch 512 | loop eager | loop graphed | "
           "loop/bare eager | loop/bare graphed | graphed loop / eager loop |", "|---|---|---|---|---|---|---|---|---|"]
    for label, name, width, shape in MODELS:
        splits = synthetic_splits(shape, 4096 if quick else 60000)
        cfg = TrainConfig(model=name, width=width, device=str(device))
        rates = {k: [] for k in ("be", "bg", "b512", "le", "lg")}
        for _ in range(repeats):
            rates["be"].append(bare_rate(cfg, splits, device, steps, 128, graphed=False))
            rates["bg"].append(bare_rate(cfg, splits, device, steps, 128, graphed=True))
            rates["b512"].append(bare_rate(cfg, splits, device, max(5, steps // 4), 512, graphed=False))
            rates["le"].append(loop_rate(replace(cfg, cuda_graph=False), splits, device, steps))
            rates["lg"].append(loop_rate(cfg, splits, device, steps))
        m = {k: statistics.median(v) for k, v in rates.items()}
        out.append(f"| {label} | {m['be']:,.0f} | {m['bg']:,.0f} | {m['b512']:,.0f} | {m['le']:,.0f} | {m['lg']:,.0f} | "
                   f"{m['le'] / m['be']:.2f} | {m['lg'] / m['bg']:.2f} | {m['lg'] / m['le']:.2f}× |")
        print(out[-1], flush=True)
    return out


def sweep_tasks(cfg: TrainConfig, data: DataConfig, runs: int, train_size: int) -> list[Task]:
    ids = np.arange(train_size)
    return [Task(RunSpec(data, replace(cfg, seed=5000 + r), "full", 1.0, None, digest_ids(ids))) for r in range(runs)]


def section_sweep(device, quick: bool, data_root: str | None) -> list[str]:
    """Aggregate throughput of whole runs (start-up, training, test evaluation) through the local executor."""
    data = DataConfig(dataset="fashion-mnist", data_root=data_root, subset=2048 if quick else None)
    runs, steps = (4, 20) if quick else (6, 468)
    cfg = TrainConfig(model="resnet18" if not quick else "smallcnn", steps=steps, device=str(device))
    configs = [("eager, K = 1 (the sequential loop before graphs)", False, 1), ("graphed, K = 1", True, 1),
               ("graphed, K = 2", True, 2), ("graphed, K = 4", True, 4), ("eager, K = 4", False, 4)]
    out = [f"{runs} runs of {cfg.model} × {steps} steps at batch {cfg.batch_size} on Fashion-MNIST, each with its "
           "set-up and test evaluation", "", "| sweep | wall s | aggregate img/s | vs eager K = 1 |", "|---|---|---|---|"]
    base = None
    for label, graphed, k in configs:
        with tempfile.TemporaryDirectory() as folder:
            tasks = sweep_tasks(replace(cfg, cuda_graph=graphed), data, runs, 0 if quick else 60000)
            start = time.perf_counter()
            outcome = run_sweep(tasks, folder, Execution(workers=k), log=lambda _: None)
            wall = time.perf_counter() - start
        if outcome.failures:
            out.append(f"| {label} | failed: {outcome.failures[0]['error'][:200]} | | |")
            continue
        rate = runs * steps * cfg.batch_size / wall
        base = base or rate
        out.append(f"| {label} | {wall:.1f} | {rate:,.0f} | {rate / base:.2f}× |")
        print(out[-1], flush=True)
    return out


def section_scores(device, quick: bool) -> list[str]:
    out = ["| model | chunk | fwd+bwd ms | GraNd / fwd+bwd | vmap / fwd+bwd | loop / fwd+bwd | GraNd vs vmap | "
           "GraNd vs loop | inference ms | EL2N / inference throughput |", "|---|---|---|---|---|---|---|---|---|---|"]
    for label, name, width, shape in MODELS:
        for batch in ((64,) if quick else (1024, 256)):
            out.append(score_row(label, name, width, shape, batch, device, repeats=1 if quick else 3,
                                 loop_n=16 if quick else 64))
            print(out[-1], flush=True)
            if device.type == "cuda":
                torch.cuda.empty_cache()
    return out


def score_row(label, name, width, shape, batch, device, *, repeats: int, loop_n: int) -> str:
    """One table row: every candidate timed alternately with its reference pass, medians of the ratios."""
    torch.manual_seed(0)
    model = build_model(name, num_classes=10, in_channels=shape[0], width=width).to(device).eval()
    x = torch.randn(batch, *shape, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    fwd_bwd, inference = reference_passes(model, x, y)
    vmap_n = min(batch, 256)  # vmap's per-example gradients of ResNet18 fill the memory beyond this
    cands = {"grand": (lambda: grand(model, x, y, method="fast", batch_size=batch), fwd_bwd, 1.0),
             "vmap": (lambda: grand(model, x[:vmap_n], y[:vmap_n], method="vmap", batch_size=vmap_n), fwd_bwd,
                      batch / vmap_n),
             "loop": (lambda: grand(model, x[:loop_n], y[:loop_n], method="loop"), fwd_bwd, batch / loop_n),
             "el2n": (lambda: el2n(model, x, y, batch_size=batch), inference, 1.0)}
    for fn, ref, _ in cands.values():
        fn(), ref()
    ratios, base = {k: [] for k in cands}, {k: [] for k in cands}
    for _ in range(repeats):
        for key, (fn, ref, scale) in cands.items():
            t_ref = timed(ref, device)
            ratios[key].append(timed(fn, device) * scale / t_ref)
            base[key].append(t_ref)
    m = {k: statistics.median(v) for k, v in ratios.items()}
    return (f"| {label} | {batch} | {statistics.median(base['grand']) * 1000:.1f} | {m['grand']:.2f}× | "
            f"{m['vmap']:.2f}× | {m['loop']:.2f}× | {m['vmap'] / m['grand']:.1f}× | {m['loop'] / m['grand']:.1f}× | "
            f"{statistics.median(base['el2n']) * 1000:.1f} | {1 / m['el2n']:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sections", nargs="+", default=["step", "sweep", "scores"])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, to check the script on a CPU")
    parser.add_argument("--json", help="also write the tables to this JSON file")
    parser.add_argument("--models", nargs="+", help="only these rows of MODELS (by model name, e.g. smallcnn)")
    args = parser.parse_args()
    if args.models:
        MODELS[:] = [m for m in MODELS if m[1] in args.models]
    device = resolve_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    header = f"device: {name}; torch {torch.__version__}; bf16 autocast and channels_last (the engine's defaults)"
    print(header, flush=True)
    tables = {"device": header}
    sections = {"step": lambda: section_step(device, args.quick),
                "sweep": lambda: section_sweep(device, args.quick, args.data_root),
                "scores": lambda: section_scores(device, args.quick)}
    for section in args.sections:
        print(f"\n## {section}\n", flush=True)
        try:
            tables[section] = sections[section]()
        except Exception as exc:  # noqa: BLE001 - one broken section must not lose the others' numbers
            tables[section] = [f"failed: {type(exc).__name__}: {exc}"]
            print(tables[section][0], flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps(tables, indent=2))


if __name__ == "__main__":
    main()
