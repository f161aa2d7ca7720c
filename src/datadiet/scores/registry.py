"""One registry from score names to functions, and the one label type for "a score at a time".

Kinds of score:

* ``model``: computed from a model at some training step (``el2n``, ``grand``, ``score1..3``,
  ``self_confidence``); labelled ``name@init`` or ``name@epochT``;
* ``history``: computed from the correctness log of a whole training run (``forgetting``); labelled
  ``name@end``;
* ``static``: needs no model (``input_norm``, ``random``); labelled by the bare name.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from typing import Callable

from ..errors import ConfigError, unknown_name
from . import functions as fn


class ScoreKind(str, Enum):
    """What a score is computed from (module docstring); a ``str`` so that files and messages hold its value."""

    MODEL = "model"
    HISTORY = "history"
    STATIC = "static"


@dataclass(frozen=True)
class ScoreSpec:
    name: str
    kind: ScoreKind
    function: Callable
    uses_labels: bool

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", ScoreKind(self.kind))  # a kind not in ScoreKind is an error here


SCORES: dict[str, ScoreSpec] = {s.name: s for s in (
    ScoreSpec("el2n", ScoreKind.MODEL, fn.el2n, True),             # ‖softmax(f(x)) − onehot(y)‖₂ (plain norm)
    ScoreSpec("grand", ScoreKind.MODEL, fn.grand, True),           # ‖∇_θ CE(f(x), y)‖₂ over all parameters, exact
    ScoreSpec("score1", ScoreKind.MODEL, fn.score1, False),        # ‖Σ_k ∇_θ f_k(x)‖₂ (label-free)
    ScoreSpec("score2", ScoreKind.MODEL, fn.score2, False),        # ‖softmax(f(x))‖₂ (label-free)
    ScoreSpec("score3", ScoreKind.MODEL, fn.score3, False),        # ‖Σ_k p_k ∇_θ f_k(x)‖₂ (label-free)
    ScoreSpec("self_confidence", ScoreKind.MODEL, fn.self_confidence, True),  # 1 − softmax(f(x))_y (cleanlab, flipped)
    ScoreSpec("forgetting", ScoreKind.HISTORY, fn.forgetting, True),  # correct→incorrect transitions; never learned = top
    ScoreSpec("input_norm", ScoreKind.STATIC, fn.input_norm, False),  # ‖x‖₂ of the normalized input (Kirsch 2023)
    ScoreSpec("random", ScoreKind.STATIC, fn.random_score, False),     # seeded random permutation
)}

# Gradient-norm scores accept the `method=` option of the fast engine.
GRADIENT_SCORES = ("grand", "score1", "score3")


def score_spec(name: str) -> ScoreSpec:
    key = name.lower().replace("-", "_")
    if key not in SCORES:
        raise unknown_name("score", name, tuple(SCORES))
    return SCORES[key]


@dataclass(frozen=True)
class ScoreLabel:
    """A score at a time of training: ``el2n@epoch2``, ``grand@init``, ``forgetting@end``, ``input_norm``.

    ``epoch`` is the scoring time in epochs for model scores (0 = initialization) and ``None`` for history
    and static scores.  ``str(label)`` is the canonical text, :meth:`parse` reads it back, and
    :attr:`file_stem` is the one file-name form (``el2n-epoch2``).
    """

    name: str
    epoch: float | None = None

    def __post_init__(self) -> None:
        spec = score_spec(self.name)
        object.__setattr__(self, "name", spec.name)
        if spec.kind is ScoreKind.MODEL:
            if self.epoch is None or not math.isfinite(self.epoch) or self.epoch < 0:
                raise ConfigError(f"Score {spec.name!r} is computed from a model at some time; give it as "
                                  f"{spec.name}@init or {spec.name}@epochT with T >= 0 (got epoch {self.epoch}).")
            object.__setattr__(self, "epoch", float(self.epoch))
        elif self.epoch is not None:
            raise ConfigError(f"Score {spec.name!r} has no scoring time; write {ScoreLabel(spec.name)}.")

    @property
    def kind(self) -> ScoreKind:
        return SCORES[self.name].kind

    @property
    def when(self) -> str:
        """``init``, ``epoch2``, ``end`` (history) or ``static``: the time as stored in score files."""
        if self.kind is ScoreKind.STATIC:
            return "static"
        if self.kind is ScoreKind.HISTORY:
            return "end"
        return "init" if self.epoch == 0 else f"epoch{self.epoch:g}"

    def __str__(self) -> str:
        return self.name if self.kind is ScoreKind.STATIC else f"{self.name}@{self.when}"

    @property
    def file_stem(self) -> str:
        """File-name form: ``el2n-epoch2``, ``forgetting-end``, ``input_norm`` (no ``@``, reversible)."""
        return str(self).replace("@", "-")

    @classmethod
    def parse(cls, text: "str | ScoreLabel") -> "ScoreLabel":
        """Read ``name``, ``name@init``, ``name@epochT`` or ``name@end`` (also the file-stem form ``name-when``)."""
        if isinstance(text, ScoreLabel):
            return text
        name, sep, when = str(text).partition("@")
        if not sep and "-" in name:  # the file-stem form
            name, _, when = name.rpartition("-")
        spec = score_spec(name)
        if spec.kind is ScoreKind.MODEL:
            return cls(spec.name, _parse_epoch(text, when))
        if when not in ("", "end" if spec.kind is ScoreKind.HISTORY else "static"):
            raise ConfigError(f"Cannot read score label {text!r}: {spec.name} has no scoring time; write "
                              f"{ScoreLabel(spec.name)}.")
        return cls(spec.name)

    @classmethod
    def at(cls, name: str, epoch: float | None) -> "ScoreLabel":
        """The label of ``name`` scored at ``epoch`` (ignored for history and static scores)."""
        return cls(name, epoch if score_spec(name).kind is ScoreKind.MODEL else None)


def _parse_epoch(text, when: str) -> float:
    if when == "init":
        return 0.0
    if when.startswith("epoch"):
        try:
            return float(when[len("epoch"):])
        except ValueError:
            pass
    raise ConfigError(f"Cannot read the scoring time of {text!r}; write NAME@init or NAME@epochT (e.g. el2n@epoch2).")
