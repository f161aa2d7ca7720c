"""One registry from score names to functions, used by the Python API and the command line.

Kinds of score:

* ``model``: computed from a model at some training step (``el2n``, ``grand``, ``score1..3``,
  ``self_confidence``);
* ``history``: computed from the correctness log of a whole training run (``forgetting``);
* ``static``: needs no model (``input_norm``, ``random``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..errors import unknown_name
from . import functions as fn


@dataclass(frozen=True)
class ScoreSpec:
    name: str
    kind: str                 # "model", "history" or "static"
    function: Callable
    uses_labels: bool
    summary: str


SCORES: dict[str, ScoreSpec] = {s.name: s for s in (
    ScoreSpec("el2n", "model", fn.el2n, True, "‖softmax(f(x)) − onehot(y)‖₂ (plain norm)"),
    ScoreSpec("grand", "model", fn.grand, True, "‖∇_θ CE(f(x), y)‖₂ over all parameters, exact"),
    ScoreSpec("score1", "model", fn.score1, False, "‖Σ_k ∇_θ f_k(x)‖₂ (label-free)"),
    ScoreSpec("score2", "model", fn.score2, False, "‖softmax(f(x))‖₂ (label-free)"),
    ScoreSpec("score3", "model", fn.score3, False, "‖Σ_k p_k ∇_θ f_k(x)‖₂ (label-free)"),
    ScoreSpec("self_confidence", "model", fn.self_confidence, True,
              "1 − softmax(f(x))_y: cleanlab's self-confidence, flipped so higher = more suspect"),
    ScoreSpec("forgetting", "history", fn.forgetting, True, "correct→incorrect transitions; never learned = highest"),
    ScoreSpec("input_norm", "static", fn.input_norm, False, "‖x‖₂ of the normalized input (Kirsch 2023)"),
    ScoreSpec("random", "static", fn.random_score, False, "seeded random permutation"),
)}

# Gradient-norm scores accept the `method=` option of the fast engine.
GRADIENT_SCORES = ("grand", "score1", "score3")


def score_spec(name: str) -> ScoreSpec:
    key = name.lower().replace("-", "_")
    if key not in SCORES:
        raise unknown_name("score", name, tuple(SCORES))
    return SCORES[key]
