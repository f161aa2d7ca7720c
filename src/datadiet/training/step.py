"""One SGD step: forward, loss, backward and update, either eager or replayed from a CUDA graph.

At the papers' batch of 128 a GPU spends most of a step waiting for the CPU to launch its few hundred
kernels.  :class:`GraphedStep` records the whole step once into a CUDA graph and then launches it as one
unit (measured in benchmarks/bench_gpu.py).  It computes exactly what :class:`EagerStep` computes; only
the launch differs.  The learning rate is a constant of a recorded graph, so one graph is recorded per
learning rate of the schedule (four for the papers' three milestones).
"""
from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import nn


class EagerStep:
    """The step as plain PyTorch calls (every device)."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, autocast: torch.autocast):
        self.model, self.optimizer, self.autocast = model, optimizer, autocast

    def __call__(self, x: torch.Tensor, y: torch.Tensor, lr: float) -> tuple[torch.Tensor, torch.Tensor]:
        """One step at learning rate ``lr``; returns the batch's logits and loss (detached)."""
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        with self.autocast:
            logits = self.model(x)
            loss = F.cross_entropy(logits.float(), y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return logits.detach(), loss.detach()


class GraphedStep:
    """The step recorded once per learning rate into a CUDA graph and replayed (CUDA only).

    Recording needs a few warm-up steps on a side stream; they run on the current batch and are then undone
    (parameters, buffers and momentum restored), so training sees exactly the steps it asked for.  The
    logits returned live in the graph's static memory and the next step overwrites them: read them at once
    (stream order makes any kernel already launched safe).  The loss is a copy.
    """

    WARMUP = 3

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, autocast_dtype: torch.dtype | None):
        self.model, self.optimizer, self.autocast_dtype = model, optimizer, autocast_dtype
        self.graphs: dict[float, tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor]] = {}
        self.x: torch.Tensor | None = None
        self.y: torch.Tensor | None = None
        self.eager: EagerStep | None = None  # set when a model cannot be recorded: every later step is eager
        self.before = None  # the state before the warm-up, until the first graph is recorded

    def __call__(self, x: torch.Tensor, y: torch.Tensor, lr: float) -> tuple[torch.Tensor, torch.Tensor]:
        if self.eager is not None:
            return self.eager(x, y, lr)
        if self.x is None:
            self.x, self.y = x.clone(), y.clone()
        self.x.copy_(x)
        self.y.copy_(y)
        if lr not in self.graphs:
            try:
                self.graphs[lr] = self._record(lr)
            except RuntimeError as exc:  # a layer that cannot be captured (host sync, dynamic shapes, ...)
                return self._fall_back(exc, x, y, lr)
        graph, logits, loss = self.graphs[lr]
        graph.replay()
        return logits, loss.clone()  # the caller keeps the loss; the logits are read at once

    def _fall_back(self, exc: Exception, x: torch.Tensor, y: torch.Tensor, lr: float):
        warnings.warn(f"datadiet: this model's training step cannot be recorded as a CUDA graph ({exc}); training "
                      "goes on eagerly (same numbers, slower). Pass --no-cuda-graph to skip the attempt.",
                      RuntimeWarning, stacklevel=3)
        if self.before is not None:  # the warm-up ran: undo it (recording itself computes nothing)
            self._restore(self.before)
        self.graphs.clear()
        self.eager = EagerStep(self.model, self.optimizer, torch.autocast(
            "cuda", dtype=self.autocast_dtype or torch.float32, enabled=self.autocast_dtype is not None))
        return self.eager(x, y, lr)

    def _forward_backward_update(self) -> tuple[torch.Tensor, torch.Tensor]:
        # cache_enabled=False: autocast's weight cache must not outlive a recorded graph
        with torch.autocast("cuda", dtype=self.autocast_dtype or torch.float32, enabled=self.autocast_dtype is not None,
                            cache_enabled=False):
            logits = self.model(self.x)
            loss = F.cross_entropy(logits.float(), self.y)
        loss.backward()
        self.optimizer.step()
        return logits.detach(), loss.detach()

    def _record(self, lr: float):
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        if not self.graphs:
            self.before = self._snapshot()
            self._warm_up()
        graph = torch.cuda.CUDAGraph()
        self.optimizer.zero_grad(set_to_none=True)  # gradients are allocated inside the graph's memory
        with torch.cuda.graph(graph):  # its own memory pool: safe to replay in any order
            logits, loss = self._forward_backward_update()
        self.before = None
        return graph, logits, loss

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
              cuda_graph: bool):
    """The step for this device: graphed on CUDA when asked, eager everywhere else."""
    amp_dtype = torch.bfloat16 if device.type == "cuda" and amp else None
    if device.type == "cuda" and cuda_graph:
        return GraphedStep(model, optimizer, amp_dtype)
    return EagerStep(model, optimizer, torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp_dtype is not None))
