"""One SGD step: forward, loss, backward and update, either eager or replayed from a CUDA graph.

At the papers' batch of 128 a GPU spends most of a step waiting for the CPU to launch its few hundred
kernels.  :class:`GraphedStep` records the whole step once into a CUDA graph and then launches it as one
unit (measured in benchmarks/bench_gpu.py).  It computes exactly what :class:`EagerStep` computes; only
the launch differs.  The learning rate is a constant of a recorded graph, so one graph is recorded per
learning rate of the schedule (four for the papers' three milestones).

The loss is the batch's mean cross-entropy.  A dynamically pruned run (InfoBatch) passes a per-example
``weight`` and gets the mean of ``weight × loss``, plus the per-example losses its pruner records; a run with
class weights (``TrainConfig.class_weights``) multiplies each example's loss by its class's weight as well (one
weighted mean, :func:`batch_loss`); a run with neither computes exactly what it always did.  On the CPU,
``precision="bf16"`` autocasts the forward pass and the loss to bfloat16 (on CUDA the ``amp`` flag does the same).
"""
from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import nn

from .placement import cpu_bf16_support


class EagerStep:
    """The step as plain PyTorch calls (every device)."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, autocast: torch.autocast,
                 class_weight: torch.Tensor | None = None):
        self.model, self.optimizer, self.autocast, self.class_weight = model, optimizer, autocast, class_weight

    def __call__(self, x: torch.Tensor, y: torch.Tensor, lr: float, weight: torch.Tensor | None = None):
        """One step at learning rate ``lr``; returns the batch's logits, loss and, with ``weight``, per-example
        losses (None without), all detached."""
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        with self.autocast:
            logits = self.model(x)
            loss, per_example = batch_loss(logits, y, weight, self.class_weight)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return logits.detach(), loss.detach(), _detached(per_example)


def batch_loss(logits: torch.Tensor, y: torch.Tensor, weight: torch.Tensor | None,
               class_weight: torch.Tensor | None = None):
    """The loss to minimize and the per-example losses behind it (None without ``weight``).

    Without weights this is the papers' mean cross-entropy, computed as it always was, so that unweighted runs
    keep their numbers to the bit.  With weights: the mean over the batch of ``weight × class_weight[y] × loss``
    (either factor 1 when absent): the mean of the weighted per-example losses, divided by the batch size, not by
    the sum of the batch's weights (which PyTorch's ``cross_entropy(weight=...)`` divides by).  For InfoBatch that
    is what keeps its rescaled loss unbiased.  For class weights (:func:`balanced_class_weights`, whose mean over
    the run's rows is 1) it keeps the loss, and so the learning rate, on the scale of the unweighted run, and an
    example's pull on the model the same whatever classes its batch happens to hold (dividing by the batch's sum
    of weights would shrink a rare class's step in a batch that holds several of it).  The per-example losses
    returned (for the pruner) are the plain cross-entropies, unweighted.
    """
    if weight is None and class_weight is None:
        return F.cross_entropy(logits.float(), y), None
    per_example = F.cross_entropy(logits.float(), y, reduction="none")
    factor = weight
    if class_weight is not None:
        factor = class_weight[y] if weight is None else weight * class_weight[y]
    return (per_example * factor).mean(), None if weight is None else per_example


def balanced_class_weights(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """The "balanced" loss weight of each class: ``w_c = n / (K · n_c)`` for the ``n`` rows ``labels`` (the run's
    training rows), ``n_c`` of class ``c`` and ``K`` the classes present among them (scikit-learn's
    ``class_weight="balanced"`` convention).  A class absent from the rows gets 0: no example of it is ever
    weighted, and counting it in ``K`` would shrink every other weight.  float32, on the labels' device; the
    weights' mean over the rows is exactly 1 (``Σ_c n_c · n / (K n_c) = n``)."""
    counts = torch.bincount(labels.long(), minlength=num_classes)[:num_classes].double()
    present = counts > 0
    weights = torch.zeros(num_classes, dtype=torch.float64, device=labels.device)
    weights[present] = len(labels) / (int(present.sum()) * counts[present])
    return weights.float()


def _detached(tensor: torch.Tensor | None) -> torch.Tensor | None:
    return None if tensor is None else tensor.detach()


class GraphedStep:
    """The step recorded once per learning rate into a CUDA graph and replayed (CUDA only).

    Recording needs a few warm-up steps on a side stream; they run on the current batch and are then undone
    (parameters, buffers and momentum restored), so training sees exactly the steps it asked for.  The
    logits returned live in the graph's static memory and the next step overwrites them: read them at once
    (stream order makes any kernel already launched safe).  The losses are copies.
    """

    WARMUP = 3

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, autocast_dtype: torch.dtype | None,
                 class_weight: torch.Tensor | None = None):
        self.model, self.optimizer, self.autocast_dtype = model, optimizer, autocast_dtype
        self.class_weight = class_weight  # on the device already: indexed by the static labels inside the graph
        self.graphs: dict[float, tuple] = {}  # lr → (graph, logits, loss, per-example losses or None)
        self.x: torch.Tensor | None = None
        self.y: torch.Tensor | None = None
        self.w: torch.Tensor | None = None  # the static per-example weights, when the run weighs its loss
        self.eager: EagerStep | None = None  # set when a model cannot be recorded: every later step is eager
        self.before = None  # the state before the warm-up, until the first graph is recorded

    def __call__(self, x: torch.Tensor, y: torch.Tensor, lr: float, weight: torch.Tensor | None = None):
        if self.eager is not None:
            return self.eager(x, y, lr, weight)
        if self.x is None:  # the first call fixes the shapes, and whether the loss is weighted, for every graph
            self.x, self.y = x.clone(), y.clone()
            self.w = None if weight is None else weight.clone()
        if (weight is None) != (self.w is None):
            raise ValueError("GraphedStep: pass a weight on every step of a weighted run, and on none otherwise.")
        self.x.copy_(x)
        self.y.copy_(y)
        if weight is not None:
            self.w.copy_(weight)
        if lr not in self.graphs:
            try:
                self.graphs[lr] = self._record(lr)
            except RuntimeError as exc:  # a layer that cannot be captured (host sync, dynamic shapes, ...)
                return self._fall_back(exc, x, y, lr, weight)
        graph, logits, loss, per_example = self.graphs[lr]
        graph.replay()
        # The caller keeps the losses (a weighted run sums them up over an epoch): copies; the logits are read at once.
        return logits, loss.clone(), None if per_example is None else per_example.clone()

    def _fall_back(self, exc: Exception, x: torch.Tensor, y: torch.Tensor, lr: float, weight: torch.Tensor | None):
        warnings.warn(f"datadiet: this model's training step cannot be recorded as a CUDA graph ({exc}); training "
                      "goes on eagerly (same numbers, slower). Pass --no-cuda-graph to skip the attempt.",
                      RuntimeWarning, stacklevel=3)
        if self.before is not None:  # the warm-up ran: undo it (recording itself computes nothing)
            self._restore(self.before)
        self.graphs.clear()
        self.eager = EagerStep(self.model, self.optimizer, torch.autocast(
            "cuda", dtype=self.autocast_dtype or torch.float32, enabled=self.autocast_dtype is not None),
            self.class_weight)
        return self.eager(x, y, lr, weight)

    def _forward_backward_update(self):
        # cache_enabled=False: autocast's weight cache must not outlive a recorded graph
        with torch.autocast("cuda", dtype=self.autocast_dtype or torch.float32, enabled=self.autocast_dtype is not None,
                            cache_enabled=False):
            logits = self.model(self.x)
            loss, per_example = batch_loss(logits, self.y, self.w, self.class_weight)
        loss.backward()
        self.optimizer.step()
        return logits.detach(), loss.detach(), _detached(per_example)

    def _record(self, lr: float):
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        if not self.graphs:
            self.before = self._snapshot()
            self._warm_up()
        graph = torch.cuda.CUDAGraph()
        self.optimizer.zero_grad(set_to_none=True)  # gradients are allocated inside the graph's memory
        with torch.cuda.graph(graph):  # its own memory pool: safe to replay in any order
            outputs = self._forward_backward_update()
        self.before = None
        return (graph, *outputs)

    def _warm_up(self) -> None:
        """Run a few real steps on a side stream (the libraries pick their kernels and workspaces), then undo
        them.  Momentum buffers exist from then on; restored to zero they give the same first update as no
        buffer at all (SGD's first step sets the buffer to the gradient, and 0.9·0 + g = g)."""
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(self.WARMUP):
                self.optimizer.zero_grad(set_to_none=True)
                self._forward_backward_update()
        torch.cuda.current_stream().wait_stream(side)
        self._restore(self.before)

    def _snapshot(self) -> tuple[set[int], list[tuple[torch.Tensor, torch.Tensor]]]:
        """Which momentum buffers exist, and a copy of every tensor the step changes."""
        return {id(t) for t in self._state()}, [(t, t.detach().clone()) for t in self._state()]

    @torch.no_grad()
    def _restore(self, snapshot) -> None:
        existing, saved = snapshot
        for tensor, value in saved:
            tensor.copy_(value)
        for state in self.optimizer.state.values():
            buffer = state.get("momentum_buffer")
            if buffer is not None and id(buffer) not in existing:
                buffer.zero_()

    def _state(self) -> list[torch.Tensor]:
        """Parameters, buffers (BatchNorm statistics) and the momentum buffers that existed before warm-up."""
        tensors = [*self.model.parameters(), *self.model.buffers()]
        tensors += [s["momentum_buffer"] for s in self.optimizer.state.values() if s.get("momentum_buffer") is not None]
        return tensors


def make_step(model: nn.Module, optimizer: torch.optim.Optimizer, device: torch.device, *, amp: bool,
              cuda_graph: bool, precision: str = "fp32", class_weight: torch.Tensor | None = None):
    """The step for this device: graphed on CUDA when asked, eager everywhere else.

    One rule for the arithmetic: ``amp`` decides on CUDA (bfloat16 autocast), ``precision`` on the CPU ("bf16":
    bfloat16 autocast); each is ignored on the other device, and MPS always computes in float32.
    ``class_weight``: each class's loss weight (``[num_classes]``, on ``device``), or None for the plain loss.
    """
    if device.type == "cpu" and precision == "bf16":
        warn_if_bf16_is_slow()
        return EagerStep(model, optimizer, torch.autocast("cpu", dtype=torch.bfloat16), class_weight)
    amp_dtype = torch.bfloat16 if device.type == "cuda" and amp else None
    if device.type == "cuda" and cuda_graph:
        return GraphedStep(model, optimizer, amp_dtype, class_weight)
    return EagerStep(model, optimizer, torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp_dtype is not None),
                     class_weight)


_WARNED: set[str] = set()  # warnings already given in this process


def warn_if_bf16_is_slow() -> None:
    """Once per process: warn that bfloat16 on a CPU without native bfloat16 arithmetic is emulated, usually
    slower than float32.  Even with it the gain depends on the model (benchmarks/bench_bf16.py on a Xeon with
    AMX, under load: 1.3× faster for the small CNN ×0.5, 0.79× for ResNet-18 ×0.25), so fp32 stays the default."""
    support = cpu_bf16_support()
    if support or "bf16" in _WARNED:
        return
    _WARNED.add("bf16")
    why = ("this CPU lacks native bfloat16 arithmetic (no avx512_bf16 or amx_bf16 flag in /proc/cpuinfo)"
           if support is False else "datadiet cannot tell whether this CPU computes bfloat16 natively (it reads "
           "the avx512_bf16 and amx_bf16 flags of /proc/cpuinfo, which only Linux has)")
    warnings.warn(f"datadiet: --precision bf16: {why}; without it bfloat16 is emulated and training is likely "
                  "slower than with --precision fp32.", RuntimeWarning, stacklevel=3)
