"""Pure score functions: a model and tensors in, one float per example out (input order).

None of these trains, stores or plots anything.  Model-based scores put the
model in eval mode for the duration of the call (BatchNorm uses its running
statistics) and restore its mode afterwards; inputs must already be
preprocessed (normalized, un-augmented) as the model expects.

Conventions, following the original Data Diet code (seed 001) and Kirsch (2023):

* **EL2N** is the plain L2 norm ``‖softmax(f(x)) − onehot(y)‖₂``, not its square;
  after averaging over runs the two rank examples differently.
* **GraNd** is ``‖∇_θ CE(f(x;θ), y)‖₂`` over *all* trainable parameters, exactly.
* **Score1–3** (seed 001 App. D), with ``ψ_k = ∇_θ f_k(x)`` and ``p = softmax(f(x))``:
  ``‖Σ_k ψ_k‖₂``, ``‖p‖₂`` and ``‖Σ_k p_k ψ_k‖₂`` (``p`` held constant).
* **Forgetting** counts correct→incorrect transitions; never-learned examples rank highest.
* **Self-confidence** is stored as ``1 − p_y`` (higher = more suspect), cleanlab's label-quality score flipped.

Input checks (:mod:`.inputs`): inputs must be finite tensors (float, or integer indices for models that embed
them; raw ``uint8`` images are refused), labels an integer tensor ``[N]`` of class indices in ``[0, K)`` with
``K`` the model's number of outputs.  Anything else raises :class:`ScoreInputError` (a ``ValueError``) instead
of silently scoring against an all-zero target or returning NaN; so does a model whose forward pass returns
anything but a floating-point tensor of logits ``[N, K]`` (a tuple, a dict, ``[N, K, 1]``), naming what it returned.  The checks cost one reduction over the
inputs and one over the labels per call.
"""
from __future__ import annotations

import warnings
from typing import Callable

import torch
from torch import nn

from ..errors import ConfigError
from .gradnorm import _softmax, cross_entropy_cotangent, per_example_grad_norms, eval_mode, model_device
from .inputs import (ScoreInputError, check_batch_size, check_correctness_history, check_logits,
                     check_score_inputs, explain_forward_errors)

__all__ = ["NeverPresentedWarning", "ScoreInputError", "el2n", "forgetting", "grand", "input_norm", "random_score",
           "score1", "score2", "score3", "self_confidence"]


def grand(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, *, batch_size: int = 256,
          method: str = "auto") -> torch.Tensor:
    """GraNd: the L2 norm of the per-example cross-entropy gradient over all trainable parameters.

    Exact (no last-layer shortcut).  ``method="fast"`` uses layer-wise closed forms
    (Linear, Conv1d/2d, BatchNorm in eval mode, LayerNorm) and raises for any other
    parametrised layer; ``"auto"`` falls back to ``torch.func`` for such models.

    Args:
        model: maps ``inputs [N, ...]`` to logits ``[N, K]``; scored with BatchNorm in eval mode.
        inputs: preprocessed inputs ``[N, ...]``, finite.
        labels: integer class indices ``[N]`` in ``[0, K)``, ``K`` the model's number of outputs.
    Returns:
        ``[N]`` float tensor on the CPU.
    Raises:
        ScoreInputError: bad inputs or labels (see the module docstring), or inputs the model cannot take.
    """
    return per_example_grad_norms(model, inputs, labels, cross_entropy_cotangent,
                                  batch_size=batch_size, method=method)


def el2n(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, *, batch_size: int = 1024) -> torch.Tensor:
    """EL2N: ``‖softmax(f(x)) − onehot(y)‖₂`` (the plain norm, as in the original code).  ``[N]`` on the CPU.

    ``labels`` are integer class indices ``[N]`` in ``[0, K)``; :class:`ScoreInputError` otherwise, and for
    non-finite inputs or inputs the model cannot take.
    """
    label_range = check_score_inputs(inputs, labels, needs_labels=True)

    def error_norm(probs: torch.Tensor, start: int) -> torch.Tensor:
        y = labels[start:start + len(probs)].to(probs.device)
        onehot = torch.arange(probs.shape[1], device=probs.device) == y[:, None]
        return (probs - onehot.to(probs.dtype)).norm(dim=1)

    return _map_probabilities(model, inputs, batch_size, error_norm, label_range.check)


def self_confidence(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, *,
                    batch_size: int = 1024) -> torch.Tensor:
    """Self-confidence as a suspicion score: ``1 − softmax(f(x))_y``, the probability mass off the given label.

    cleanlab's ``self_confidence`` label-quality score is ``p_y`` (low = likely mislabelled); it is flipped here
    so that, like every score in this package, higher means harder (here: more suspect).  Computed as
    ``Σ_{k≠y} p_k`` rather than ``1 − p_y``: for a confident model ``p_y`` rounds to 1 and ``1 − p_y`` to 0,
    while the small off-label probabilities keep their relative precision (so confident examples stay ranked).
    ``[N]`` on the CPU.  ``labels`` are integer class indices ``[N]`` in ``[0, K)``; :class:`ScoreInputError`
    otherwise, and for non-finite inputs or inputs the model cannot take.
    """
    label_range = check_score_inputs(inputs, labels, needs_labels=True)

    def off_label_mass(probs: torch.Tensor, start: int) -> torch.Tensor:
        y = labels[start:start + len(probs)].to(probs.device)
        onehot = torch.arange(probs.shape[1], device=probs.device) == y[:, None]
        return probs.masked_fill(onehot, 0).sum(dim=1)

    return _map_probabilities(model, inputs, batch_size, off_label_mass, label_range.check)


def input_norm(inputs: torch.Tensor) -> torch.Tensor:
    """``‖x‖₂`` of each (normalized) input, the Kirsch (2023) baseline.  ``[N]`` on the CPU.

    :class:`ScoreInputError` for non-tensor, raw ``uint8`` or non-finite inputs.
    """
    check_score_inputs(inputs)
    return inputs.detach().reshape(inputs.shape[0], -1).to(torch.float64).norm(dim=1).to(torch.float32).cpu()


def score1(model: nn.Module, inputs: torch.Tensor, *, batch_size: int = 256, method: str = "auto") -> torch.Tensor:
    """Score1 = ``‖Σ_k ∇_θ f_k(x)‖₂``: the gradient norm of the sum of the logits (label-free).

    :class:`ScoreInputError` for non-tensor, raw ``uint8`` or non-finite inputs, or inputs the model cannot take.
    """
    return per_example_grad_norms(model, inputs, None, _ones_cotangent, batch_size=batch_size, method=method)


def score2(model: nn.Module, inputs: torch.Tensor, *, batch_size: int = 1024) -> torch.Tensor:
    """Score2 = ``‖softmax(f(x))‖₂`` (label-free).  Inputs are checked as for :func:`score1`."""
    check_score_inputs(inputs)
    return _map_probabilities(model, inputs, batch_size, lambda probs, _: probs.norm(dim=1))


def score3(model: nn.Module, inputs: torch.Tensor, *, batch_size: int = 256, method: str = "auto") -> torch.Tensor:
    """Score3 = ``‖Σ_k p_k(x) ∇_θ f_k(x)‖₂`` with ``p = softmax(f(x))`` held constant (label-free).

    Inputs are checked as for :func:`score1`.
    """
    return per_example_grad_norms(model, inputs, None, _prob_cotangent, batch_size=batch_size, method=method)


class NeverPresentedWarning(UserWarning):
    """Some examples were never presented during the run whose forgetting is scored: they count as never learned."""


def forgetting(correct: torch.Tensor) -> torch.Tensor:
    """Forgetting score from a correctness history (Toneva et al., 2019).

    Args:
        correct: ``[N, P]`` with 1 (correct), 0 (wrong) and -1 (not presented, only as
            trailing padding), presentations in time order; a bool tensor is accepted too.
    Returns:
        ``[N]`` float: the number of forgetting events (a correct presentation followed by
        an incorrect one).  Examples never classified correctly get ``P + 1``: they rank
        above every learned example, since none can be forgotten more than ``P // 2``
        times.  (DeepCore gives them 0, ranking them as the easiest: a known bug.)  An example
        never presented (each epoch drops its last partial batch, so a short run on a small
        dataset can miss a few) was never learned either: it gets ``P + 1`` too, with a
        :class:`NeverPresentedWarning` saying how many.
    Raises:
        ScoreInputError: ``correct`` is not a tensor, holds values other than 1, 0 and -1 (e.g. 2 or 0.5),
            or has a -1 before a presentation.
        ConfigError: ``correct`` is not 2-D, or no example was presented at all.
    """
    check_correctness_history(correct)
    history = correct.to(torch.int8)
    if history.dim() != 2:
        raise ConfigError(f"Correctness history must be [N, presentations], got shape {tuple(correct.shape)}.")
    if history.shape[1] == 0 and len(history):
        raise ConfigError(f"None of the {len(history)} examples was presented during training, so there is no "
                          "forgetting score to compute: train for at least one step before scoring forgetting.")
    missing = int((~(history >= 0).any(1)).sum())
    if missing:
        warnings.warn(NeverPresentedWarning(
            f"{missing} of {len(history)} examples were never presented during training (each epoch drops its last "
            f"partial batch); their forgetting score is that of never-learned examples, {history.shape[1] + 1}, the "
            "highest. Train for more epochs, or with a --batch-size that divides the data, to present every one."),
            stacklevel=2)
    was_right, now_wrong = history[:, :-1] == 1, history[:, 1:] == 0
    events = (was_right & now_wrong).sum(1).to(torch.float32)
    never_learned = ~(history == 1).any(1)  # a row of -1 only (never presented) is never learned too
    return torch.where(never_learned, torch.tensor(float(history.shape[1] + 1)), events)


def random_score(n: int, *, seed: int) -> torch.Tensor:
    """A seeded random permutation of ``0..n-1`` as float scores: the random-pruning baseline."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed)).to(torch.float32)


@torch.no_grad()
def _map_probabilities(model: nn.Module, inputs: torch.Tensor, batch_size: int,
                       per_chunk: Callable[[torch.Tensor, int], torch.Tensor],
                       check_classes: Callable[[int], None] | None = None) -> torch.Tensor:
    """Apply ``per_chunk(softmax(f(x)), start)`` chunk by chunk on the model's device; ``[N]`` on the CPU.

    ``check_classes(K)`` runs once, on the first chunk's logits, before any score is computed.
    """
    batch_size = check_batch_size(batch_size)
    device = model_device(model)
    out = []
    with eval_mode(model):
        for s in range(0, len(inputs), batch_size):
            x = inputs[s:s + batch_size].to(device)
            if s == 0:
                with explain_forward_errors(model, inputs):
                    logits = check_logits(model(x), len(x))
                if check_classes is not None:
                    check_classes(logits.shape[-1])
            else:
                logits = check_logits(model(x), len(x))
            out.append(per_chunk(_softmax(logits), s))
    if not out:
        return torch.zeros(0)
    return (out[0] if len(out) == 1 else torch.cat(out)).cpu()  # one copy to the host, not one per chunk


def _ones_cotangent(logits: torch.Tensor, labels) -> torch.Tensor:
    return torch.ones_like(logits)


def _prob_cotangent(logits: torch.Tensor, labels) -> torch.Tensor:
    return _softmax(logits)
