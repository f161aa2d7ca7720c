"""Methods: a score label, the rule that chooses from its ranking, and how the classes share the budget.

A method is written ``SCORE[+RULE][+balanced|+equal]``, the one string form used by ``reproduce --methods``, the
studies, run records and reports:

* ``el2n@epoch2`` keeps the highest scores (Data Diet's window; the rule ``hardest`` is never written);
* ``el2n@epoch2+easiest`` keeps the lowest; ``+ccs`` samples by coverage (Zheng et al., 2023) and ``+moderate``
  keeps the scores nearest the median (Xia et al., 2023);
* ``+balanced`` applies the rule inside every class, each keeping its proportional share of the budget
  (``el2n@epoch2+balanced``, ``el2n@epoch2+ccs+balanced``): an imbalanced dataset stays as imbalanced;
* ``+equal`` applies it inside every class too, with the same count from every class (a smaller class whole, the
  rest spread over the larger ones: ``selection.class_quotas``), evening the classes out; one of the two at most;
* ``/TAG`` (last) names where the scores came from when a study has several of the same label: one score run
  (``el2n@epoch2/run3``), a hyperparameter grid (``/hp-grid``), another architecture (``/from-vgg13``).

``Method.parse(text)`` reads that form and ``str(method)`` writes it back, so a method's name in a run record is
its parse.

The other kind of method prunes while it trains (:class:`DynamicMethod`: InfoBatch, RS2): it needs no score, and
is a change of the training recipe (``TrainConfig.dynamic``: the pruner and its parameters) on the full data.
"""
from __future__ import annotations

import re
import typing
from dataclasses import dataclass, fields, replace

import numpy as np

from .config import TrainConfig, pruner_parameters
from .dynamic import PRUNERS, parameter_values
from .errors import ConfigError
from .scores.registry import ScoreLabel
from .selection import RULES as SELECTION_RULES, select

# The rules a method can name: those of the selection registry that read the scores whole (not the window, whose
# offset the B.3 sweep sets, nor random, which ignores the score).
RULES = tuple(name for name, rule in SELECTION_RULES.items() if rule.by_method)
BALANCED = "balanced"
EQUAL = "equal"
QUOTA_OF = {BALANCED: "proportional", EQUAL: "equal"}  # a method's modifier → the class quota it selects with
_FORM = (f"SCORE[+RULE][+balanced|+equal][/TAG], RULE one of {', '.join(r for r in RULES if r != 'hardest')} "
         "(e.g. el2n@epoch2+ccs+balanced)")
_TAG = re.compile(r"[^\s/]+")


@dataclass(frozen=True)
class Method:
    """A score label (``ScoreLabel`` text), a rule of ``RULES``, the class quota (``balanced``: every class its
    proportional share; ``equal``: the same count from every class; neither: no quota) and a tag (where the scores
    came from, when that is not the study's standard score runs)."""

    label: str
    rule: str = "hardest"
    balanced: bool = False
    tag: str = ""
    equal: bool = False  # last, so that positional Method(label, rule, balanced, tag) keeps its meaning

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise ConfigError(f"Unknown selection rule {self.rule!r}; a method is {_FORM}.")
        for name in ("balanced", "equal"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"Method.{name} is True or False, got {getattr(self, name)!r}.")
        if self.balanced and self.equal:
            raise ConfigError(f"Method {self.label}: +balanced and +equal exclude each other; {_QUOTA_CHOICE}.")
        ScoreLabel.parse(self.label)  # an unknown score is named here, not when its file is missing
        if self.tag and not _TAG.fullmatch(self.tag):
            raise ConfigError(f"Method tag {self.tag!r}: no spaces and no '/'; a method is {_FORM}.")

    @classmethod
    def parse(cls, text: str) -> "Method":
        """Read ``SCORE[+RULE][+balanced|+equal][/TAG]``; a ConfigError names the method and what is wrong with it."""
        body, slash, tag = str(text).partition("/")
        if slash and not tag:
            raise ConfigError(f"Cannot read method {text!r}: an empty tag after '/'; a method is {_FORM}.")
        label, *suffixes = body.split("+")
        if not label or "" in suffixes:
            raise ConfigError(f"Cannot read method {text!r}: an empty part between '+' signs; a method is {_FORM}.")
        modifier = _modifier(text, suffixes)
        rules = [s for s in suffixes if s not in QUOTA_OF]
        if len(rules) > 1:
            raise ConfigError(f"Cannot read method {text!r}: one rule at most (found {', '.join(rules)}); a method "
                              f"is {_FORM}.")
        balanced, equal = modifier == BALANCED, modifier == EQUAL
        if rules == ["hardest"]:
            plain = str(cls(label, "hardest", balanced, tag, equal))
            raise ConfigError(f"Write {plain!r}, not {text!r}: keeping the hardest is what a bare score label does "
                              "(the two would train the same subset twice under two names).")
        if rules and rules[0] not in RULES:
            raise ConfigError(f"Unknown selection rule {rules[0]!r} in method {text!r}; a method is {_FORM}.")
        return cls(label, rules[0] if rules else "hardest", balanced, tag, equal)

    @classmethod
    def coerce(cls, value: "Method | str") -> "Method":
        """``value`` as a Method: a Method as it is, its string form parsed (configs accept either; the boundary
        parses once, and everything after it holds Methods)."""
        return value if isinstance(value, cls) else cls.parse(value)

    @classmethod
    def of(cls, label: str, how: str) -> "Method":
        """The method of ``label`` chosen ``how``: a rule, optionally ``+balanced`` or ``+equal`` (``"hardest"``,
        ``"ccs+balanced"``, ``"hardest+equal"``).

        The scaling study names its rules this way, apart from the score (which differs between sizes).
        """
        rule, plus, rest = how.partition("+")
        if rule == "hardest":  # the bare form of the hardest: el2n@epoch2, el2n@epoch2+balanced
            return cls.parse(label + plus + rest)
        return cls.parse(f"{label}+{how}")

    def __str__(self) -> str:
        rule = "" if self.rule == "hardest" else f"+{self.rule}"
        return self.label + rule + self._modifier_text + (f"/{self.tag}" if self.tag else "")

    @property
    def how(self) -> str:
        """The method without its score: ``"hardest"``, ``"easiest"``, ``"ccs+balanced"``, ``"hardest+equal"``, ..."""
        return self.rule + self._modifier_text

    @property
    def class_quota(self) -> str | None:
        """The class quota it selects with (``selection.class_quotas``): "proportional" (``+balanced``), "equal"
        (``+equal``), or None (the rule ranks all examples at once)."""
        return QUOTA_OF[BALANCED] if self.balanced else QUOTA_OF[EQUAL] if self.equal else None

    @property
    def _modifier_text(self) -> str:
        return f"+{BALANCED}" if self.balanced else f"+{EQUAL}" if self.equal else ""

    @property
    def seeded(self) -> bool:
        """Whether the subset depends on the seed (CCS draws a fresh sample per evaluation seed, like random)."""
        return SELECTION_RULES[self.rule].seeded

    def select(self, scores, *, keep: float, seed: int = 0, labels=None, num_classes: int | None = None,
               offset: float | None = None, tie_seed: int = 0, ids=None) -> np.ndarray:
        """The ids this method keeps from ``scores`` (a ScoreTable, or ``[N]`` scores of the examples ``ids``,
        default ``0..N-1``).

        ``seed`` draws CCS's sample; ``labels`` (and ``num_classes``, so that an absent class is an error) are
        needed when the method has a class quota (``+balanced``, ``+equal``). ``offset`` moves the window of the
        hardest rule (Data Diet B.3).
        """
        if offset is not None and self.rule != "hardest":
            raise ConfigError(f"Method {self}: an offset window applies to the hardest rule only (a bare score "
                              f"label), not to +{self.rule}.")
        rule = "window" if offset is not None else self.rule  # the B.3 sweep moves the hardest window
        quota = self.class_quota
        return select(scores, keep=keep, rule=rule, labels=labels if quota else None, class_quota=quota,
                      num_classes=num_classes if quota else None, seed=seed if self.seeded else 0,
                      tie_seed=tie_seed, offset=offset, ids=ids)


_QUOTA_CHOICE = ("+balanced keeps every class's proportional share (so the imbalance), +equal the same count from "
                 "every class; give one")


def _modifier(text: str, suffixes: list[str]) -> str | None:
    """The class-quota modifier of a method's ``+`` parts (``balanced``, ``equal`` or None): one at most, last."""
    given = [s for s in suffixes if s in QUOTA_OF]
    if not given:
        return None
    if len(set(given)) > 1:
        problem = f"'+{BALANCED}' and '+{EQUAL}' exclude each other ({_QUOTA_CHOICE})"
    elif len(given) > 1:
        problem = f"'+{given[0]}' given twice"
    elif suffixes[-1] != given[0]:
        problem = f"'+{given[0]}' comes last, after the rule"
    else:
        return given[0]
    raise ConfigError(f"Cannot read method {text!r}: {problem}; a method is {_FORM}.")


_DYNAMIC_FORM = "NAME[:VALUE] or NAME:PARAMETER=VALUE[,PARAMETER=VALUE...] (e.g. infobatch:0.3, infobatch:delta=0.75)"


@dataclass(frozen=True, init=False)
class DynamicMethod:
    """A method that prunes while it trains: a pruner of ``datadiet.dynamic.PRUNERS`` and its parameters. It trains on
    the full data; its recipe says how.

    ``DynamicMethod("infobatch", 0.3)`` gives the pruner's first parameter (InfoBatch's prune ratio, RS2's fraction),
    any parameter goes by name (``DynamicMethod("infobatch", 0.3, delta=0.75)``, ``DynamicMethod("rs2",
    fraction=0.5)``); the rest keep their defaults. ``str`` is the pruner's name, the run records' method (the
    parameters are in the recipe, so in the run's identity); :attr:`text` writes every parameter, and :meth:`parse`
    reads it back (``infobatch:prune_ratio=0.3,delta=0.75``; ``infobatch:0.3`` gives the first)."""

    name: str
    parameters: object  # the pruner's parameters dataclass

    def __init__(self, name: str, value: float | None = None, **parameters) -> None:
        if name not in PRUNERS:
            raise ConfigError(f"Unknown dynamic method {name!r}; one of {', '.join(PRUNERS)} "
                              "(datadiet.dynamic.PRUNERS).")
        if value is not None:
            first = _first_parameter(name)
            if first is None:
                raise ConfigError(f"Dynamic method {name} has no parameters: give no value.")
            if first in parameters:
                raise ConfigError(f"Dynamic method {name}: {first} given twice (as the value and by name).")
            parameters = {first: value, **parameters}
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "parameters", pruner_parameters({"name": name, **parameters}))

    @classmethod
    def parse(cls, text: str) -> "DynamicMethod":
        """Read ``NAME``, ``NAME:VALUE`` (the first parameter) or ``NAME:PARAMETER=VALUE,...``."""
        name, colon, rest = str(text).partition(":")
        if colon and not rest:
            raise ConfigError(f"Cannot read dynamic method {text!r}: nothing after ':'; a dynamic method is "
                              f"{_DYNAMIC_FORM}.")
        if not rest:
            return cls(name)
        if "=" not in rest:
            return cls(name, _number(rest, text, name, _first_parameter(name) if name in PRUNERS else None))
        given = {}
        for item in rest.split(","):
            key, equals, value = item.partition("=")
            if not (key and equals and value) or key in given:
                raise ConfigError(f"Cannot read dynamic method {text!r}: {item!r} is not one PARAMETER=VALUE; a "
                                  f"dynamic method is {_DYNAMIC_FORM}.")
            given[key] = _number(value, text, name, key)
        return cls(name, **given)

    @property
    def text(self) -> str:
        """Every parameter written out: ``infobatch:prune_ratio=0.3,delta=0.875`` (``parse`` reads it back)."""
        values = parameter_values(self.parameters)
        return self.name + (":" + ",".join(f"{k}={v!r}" for k, v in values.items()) if values else "")

    @property
    def value(self):
        """The pruner's first parameter (InfoBatch's prune ratio, RS2's fraction): the value a study varies."""
        first = _first_parameter(self.name)
        return None if first is None else getattr(self.parameters, first)

    def __str__(self) -> str:
        return self.name  # the run records' method: the parameters are in the recipe, so in the run's identity

    def recipe(self, train: TrainConfig) -> TrainConfig:
        """``train`` pruned dynamically by this method."""
        return replace(train, dynamic=self.parameters)


def _first_parameter(name: str) -> str | None:
    names = [f.name for f in fields(PRUNERS[name].parameters)]
    return names[0] if names else None


def _number(text: str, method: str, name: str, key: str | None):
    """A parameter's value as written in a method: a whole number for an ``int`` parameter, else a real one (so that
    ``rs2:1`` is the fraction 1.0 that ``DynamicMethod("rs2", 1.0)`` holds)."""
    hints = typing.get_type_hints(PRUNERS[name].parameters) if name in PRUNERS else {}
    try:
        return int(text) if hints.get(key) is int else float(text)
    except ValueError:
        raise ConfigError(f"Cannot read dynamic method {method!r}: {text!r} is not a number; a dynamic method is "
                          f"{_DYNAMIC_FORM}.") from None
