"""GraNd and EL2N cost against plain passes, all methods in one process on the same batches.

Rows (per model, batch of 128, eval-mode BatchNorm everywhere):

* ``fwd+bwd``   one plain forward + backward of the mean loss (parameter gradients), the reference cost;
* ``grand fast`` datadiet's layer-wise exact GraNd;
* ``grand vmap`` ``torch.func.vmap(grad(...))`` per-example gradients, then norms;
* ``grand loop`` one backward per example (timed on 32 examples, scaled to the batch);
* ``inference`` a plain no-grad forward, the reference for EL2N;
* ``el2n``      datadiet's EL2N.

Every model is measured in both memory formats: NCHW, and channels_last (the training engine's
default, in which scoring hooks receive the model).  Each candidate is timed alternately with its reference, ``--repeats`` times; we report medians
of per-repeat time ratios.  Targets (issue 3): GraNd ≤ 1.5× fwd+bwd; GraNd ≥ 2.5× faster than vmap
and than the loop; EL2N ≥ 0.9× inference throughput.

    .venv/bin/python benchmarks/bench_scores.py [--repeats 5] [--device cpu|cuda] [--full-resnet]
"""
from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch
import torch.nn.functional as F

from datadiet.models import build_model
from datadiet.scores.functions import el2n, grand


def timed(fn, device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def reference_passes(model, x, y):
    """The plain passes the scores are measured against: forward+backward of the mean loss, and inference."""
    def fwd_bwd():
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()

    def inference():
        with torch.no_grad():
            model(x).softmax(1).cpu()

    return fwd_bwd, inference


def cases(full_resnet: bool):
    models = [("smallcnn, 1x28x28", "smallcnn", 1.0, (1, 28, 28)),
              ("resnet18 w=0.25, 3x32x32", "resnet18", 0.25, (3, 32, 32))]
    if full_resnet:
        models.append(("resnet18 w=1, 3x32x32", "resnet18", 1.0, (3, 32, 32)))
    for label, name, width, shape in models:
        for layout in ("NCHW", "channels_last"):
            yield f"{label}, {layout}", name, width, shape, layout == "channels_last"


def bench(label, name, width, shape, channels_last, device, repeats, batch=128, loop_n=32):
    torch.manual_seed(0)
    model = build_model(name, num_classes=10, in_channels=shape[0], width=width).to(device).eval()
    x = torch.randn(batch, *shape, device=device)
    if channels_last:  # the model and batch as datadiet's training engine leaves them
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,), device=device)

    fwd_bwd, inference = reference_passes(model, x, y)
    runs = {
        "grand fast": (lambda: grand(model, x, y, method="fast", batch_size=batch), fwd_bwd, 1.0),
        "grand vmap": (lambda: grand(model, x, y, method="vmap", batch_size=batch), fwd_bwd, 1.0),
        "grand loop": (lambda: grand(model, x[:loop_n], y[:loop_n], method="loop"), fwd_bwd, batch / loop_n),
        "el2n": (lambda: el2n(model, x, y, batch_size=batch), inference, 1.0),
    }
    for fn, ref, _ in runs.values():  # warm-up
        fn(), ref()
    ratios = {k: [] for k in runs}
    base = {k: [] for k in runs}
    for _ in range(repeats):
        for key, (fn, ref, scale) in runs.items():
            t_ref = timed(ref, device)
            t = timed(fn, device) * scale
            ratios[key].append(t / t_ref)
            base[key].append(t_ref)
    med = {k: statistics.median(v) for k, v in ratios.items()}
    fb = statistics.median(base["grand fast"]) * 1000
    inf = statistics.median(base["el2n"]) * 1000
    print(f"| {label} | {fb:.1f} ms | {med['grand fast']:.2f}× | {med['grand vmap']:.2f}× | {med['grand loop']:.2f}× | "
          f"{med['grand vmap'] / med['grand fast']:.1f}× | {med['grand loop'] / med['grand fast']:.1f}× | "
          f"{inf:.1f} ms | {1 / med['el2n']:.2f} |", flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--full-resnet", action="store_true", help="add full-width ResNet18 (GPU)")
    args = parser.parse_args()
    device = torch.device(args.device)
    name = torch.cuda.get_device_name() if device.type == "cuda" else (platform.processor() or platform.machine())
    print(f"device: {device} ({name}), {torch.get_num_threads()} threads, torch {torch.__version__}, batch 128")
    print("| model | fwd+bwd | GraNd fast / fwd+bwd | vmap / fwd+bwd | loop / fwd+bwd | fast vs vmap | fast vs loop "
          "| inference | EL2N / inference throughput |")
    print("|---|---|---|---|---|---|---|---|---|")
    for case in cases(args.full_resnet or device.type == "cuda"):
        bench(*case, device=device, repeats=args.repeats)


if __name__ == "__main__":
    main()
