"""Dynamic data pruning for your own training loop: which rows to train on each epoch, and with what loss weight.

Static pruning scores the data once and trains on a fixed subset.  Dynamic pruning decides again every
epoch, so no example is lost for good and the saving needs no scoring run:

* :class:`InfoBatch` (Qin et al., ICLR 2024) leaves out a random ``prune_ratio`` of the *well-learned*
  examples (last recorded loss below the mean) each epoch and up-weights the rest of them by
  ``1 / (1 - prune_ratio)``, so the expected gradient stays that of the full data; the last
  ``1 - delta`` of the epochs train on everything.
* :class:`RS2` (Okanovic et al., ICLR 2024) trains each epoch on a fresh random ``fraction`` of the data,
  drawn without replacement across epochs: every example is seen once before any is seen twice.

Both give rows (positions ``0..n-1`` of your dataset), never tensors, so they fit any loop and any device.
Every random draw comes from a generator built from ``(seed, epoch)`` (RS2: ``(seed, cycle)``): nothing
touches numpy's or torch's global generator, different seeds prune differently, and a resumed run needs
only :meth:`state_dict` to continue bit-identically.

A plain PyTorch loop (the loss must be per example, ``reduction="none"``, to be weighted)::

    import torch
    import torch.nn.functional as F
    from datadiet.dynamic import InfoBatch, batches

    torch.manual_seed(0)
    x, y = torch.randn(1000, 20), torch.randint(0, 5, (1000,))
    model = torch.nn.Linear(20, 5)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    epochs = 10
    pruner = InfoBatch(len(x), epochs, prune_ratio=0.5, seed=0)
    trained = 0
    for epoch in range(epochs):
        for rows in batches(pruner.epoch_rows(epoch), 100):    # full batches of 100, remainder dropped
            index = torch.from_numpy(rows)
            loss = F.cross_entropy(model(x[index]), y[index], reduction="none")
            weight = torch.from_numpy(pruner.weights(rows))      # 1/(1 - 0.5) = 2 for kept well-learned rows
            optimizer.zero_grad()
            (loss * weight).mean().backward()
            optimizer.step()
            pruner.update(rows, loss.detach())                  # the losses the next epoch prunes by
        trained += pruner.sample_passes(epoch, batch_size=100)  # examples this epoch trained on
    print(f"trained on {trained} examples, {trained / (epochs * len(x)):.0%} of full training")

``RS2(len(x), fraction=0.3, seed=0)`` drops into the same loop (its weights are all 1).

:data:`PRUNERS` is the registry: a name → the pruner's class and its own frozen parameters dataclass
(:class:`InfoBatchParameters`, :class:`RS2Parameters`).  ``TrainConfig(dynamic=...)`` holds one pruner's
parameters, ``datadiet train --dynamic NAME`` gets one flag per parameter, and
``DynamicMethod(NAME, ...)`` names a pruner as a method: a new pruner is one class (with its parameters
dataclass) and one entry here.

InfoBatch's choices (where the paper's reference code differs, it is on purpose):

* **Never-seen examples are never pruned** and are left out of the mean: with no loss recorded there is no
  evidence that an example is learned (the reference gives every example the loss 3.0 instead).  So epoch 0
  always trains on all the data.
* **The mean** is over every example seen so far, each with its latest recorded loss: the paper's
  threshold, the mean loss of the dataset as best known.
* **Stale losses.** Only a *fresh* loss, recorded in the previous epoch, can get an example pruned.  An
  example left out in epoch ``e`` keeps its old loss, but is trained in ``e + 1`` and its loss refreshed: it
  cannot be pruned two epochs in a row, so a stale low loss never starves it.  The same holds for rows the
  loop did not train (e.g. the dropped remainder of :func:`batches`).  The price: an example that stays
  well-learned is left out at most every other epoch, about ``r / (1 + r)`` of its epochs (a third at
  ``r = 0.5``) rather than ``r``; each epoch's gradient is still unbiased, as only fresh candidates are dropped.
* **How many.** Of ``m`` well-learned candidates, ``floor(prune_ratio * m)`` are left out, drawn uniformly
  without replacement; the kept ``m - floor(prune_ratio * m)`` get the weight ``1 / (1 - prune_ratio)``.
  Rounding down never leaves out more than the ratio; the kept rows then weigh in for at most
  ``1 / (1 - prune_ratio)`` examples more than the ``m`` they stand for, negligible at realistic ``m``.
* **Annealing, with 0-based epochs.** Epochs ``0 .. ceil(epochs * delta) - 1`` may prune; from epoch
  ``ceil(epochs * delta)`` (:attr:`InfoBatch.full_from`) on, every epoch trains on all rows with weight 1.
  For ``epochs=10, delta=0.875``: epochs 0..8 may prune, epoch 9 is full.  (The reference resets weights only
  when ``epoch == epochs * delta + 1``, a float, so for this example it never does.)
* **Resume.** An epoch's rows are drawn at the first ``epoch_rows(epoch)`` call and kept until another epoch
  is asked for; :meth:`InfoBatch.state_dict` carries them with the loss table, so a run killed mid-epoch
  resumes on the same rows and weights.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any, NamedTuple

import numpy as np

from .errors import ConfigError, NonFiniteLossError

_EPS = 1e-9  # products such as 100 * 0.07 = 7.000000000000001 must not round up past a whole number


# ----------------------------------------------------------------------------- batches


def batches(rows, batch_size: int, drop_last: bool = True) -> list[np.ndarray]:
    """``rows`` cut in order into batches of ``batch_size`` (views, no copy).

    With ``drop_last`` (the default, the engine's convention: see ``config.steps_per_epoch``) the last
    partial batch is dropped, so every batch has the same shape (a CUDA-graphed step needs that); the dropped
    rows differ each epoch because the order does.  When ``rows`` holds less than one full batch, it is
    trained as one short batch rather than not at all, as the engine does.
    """
    _check_int("batch_size", batch_size, low=1)
    rows = np.asarray(rows)
    count = len(rows) // batch_size if drop_last and len(rows) >= batch_size else -(-len(rows) // batch_size)
    return [rows[i * batch_size:(i + 1) * batch_size] for i in range(count)]


def _trained(count: int, batch_size: int | None) -> int:
    """How many of ``count`` rows :func:`batches` trains on (all of them without a batch size)."""
    if batch_size is None or count < batch_size:
        return count
    return count // batch_size * batch_size


# ----------------------------------------------------------------------------- InfoBatch


class InfoBatch:
    """InfoBatch's dynamic pruning of ``n`` examples over ``epochs`` epochs (the choices: module docstring).

    Per epoch: ``rows = epoch_rows(epoch)``; per batch: ``weights(batch_rows)`` for the loss and
    ``update(batch_rows, per_example_loss)`` after it.
    """

    learns = True  # the engine weighs each row's loss by weights() and gives the losses to update()

    def __init__(self, n: int, epochs: int, prune_ratio: float = 0.5, delta: float = 0.875, seed: int = 0):
        _check_int("n", n, low=1)
        _check_int("epochs", epochs, low=1)
        _check_real("prune_ratio", prune_ratio, 0.0, 1.0, low_open=False, high_open=True)
        _check_real("delta", delta, 0.0, 1.0, low_open=True, high_open=False)
        _check_int("seed", seed, low=0)
        self.n, self.epochs, self.prune_ratio, self.delta, self.seed = n, epochs, float(prune_ratio), float(delta), seed
        self.full_from = math.ceil(epochs * self.delta - _EPS)  # first epoch trained on all rows, weight 1
        self.loss = np.zeros(n, dtype=np.float64)  # latest recorded loss; meaningful only where last_seen >= 0
        self.last_seen = np.full(n, -1, dtype=np.int64)  # epoch of that loss; -1 = never trained
        self._epoch: int | None = None  # the epoch whose rows and weights are drawn
        self._rows = np.empty(0, dtype=np.int64)
        self._weight = np.ones(n, dtype=np.float32)
        self._drawn: dict[int, int] = {}  # epoch → rows it drew (so sample_passes can answer for past epochs)

    def epoch_rows(self, epoch: int) -> np.ndarray:
        """The rows to train on in ``epoch``, in a random order: drawn from the losses recorded so far at the
        first call for this epoch; later calls for the same epoch return the same rows. Epochs go forward only:
        an earlier epoch's draw depended on losses since overwritten, so it cannot be drawn again."""
        _check_epoch(epoch, self.epochs)
        if self._epoch is not None and epoch < self._epoch:
            raise ConfigError(f"InfoBatch.epoch_rows({epoch}) after epoch {self._epoch}: each epoch is drawn from the "
                              "losses recorded so far, so an earlier epoch cannot be drawn again (and drawing it would "
                              "change what the current epoch prunes).")
        if epoch != self._epoch:
            self._draw(epoch)
        return self._rows.copy()

    def weights(self, rows) -> np.ndarray:
        """float32 loss weight of each row this epoch: ``1 / (1 - prune_ratio)`` for kept well-learned rows."""
        self._require_epoch("weights")
        return self._weight[_as_rows(rows, self.n)]

    def update(self, rows, losses) -> None:
        """Record the per-example losses of ``rows`` just trained on (numpy arrays or tensors)."""
        self._require_epoch("update")
        rows, losses = _as_rows(rows, self.n), _as_numpy(losses).astype(np.float64, copy=False).reshape(-1)
        if len(rows) != len(losses):
            raise ConfigError(f"update() got {len(rows)} rows but {len(losses)} losses; pass one loss per row "
                              "(a loss with reduction='none').")
        if not np.isfinite(losses).all():
            raise NonFiniteLossError("update() got a NaN or infinite loss: training diverged. Lower the learning "
                                     "rate, or check the data for NaNs.")
        self.loss[rows] = losses
        self.last_seen[rows] = self._epoch

    def sample_passes(self, epoch: int, batch_size: int | None = None) -> int:
        """Examples trained on in ``epoch`` (forward + backward); with ``batch_size``, as cut by :func:`batches`.

        A past epoch is answered from what it drew, never drawn again (that would change the pruner's state); a
        later epoch is drawn, as ``epoch_rows`` would."""
        _check_epoch(epoch, self.epochs)
        if epoch in self._drawn and epoch != self._epoch:
            return _trained(self._drawn[epoch], batch_size)
        return _trained(len(self.epoch_rows(epoch)), batch_size)

    def epoch_sizes(self) -> tuple[int, int]:
        """The fewest and the most rows an epoch can hold: of ``m`` well-learned rows ``floor(prune_ratio * m)`` are
        left out (the floor guarded as in :meth:`_draw`), and at most ``n - 1`` rows lie strictly below the mean."""
        return self.n - int(self.prune_ratio * (self.n - 1) + _EPS), self.n

    def well_learned(self, epoch: int) -> np.ndarray:
        """The rows ``epoch`` may leave out: fresh (trained in ``epoch - 1``) with loss below the mean of seen rows."""
        seen = self.last_seen >= 0
        if epoch >= self.full_from or not seen.any():
            return np.empty(0, dtype=np.int64)
        below = self.loss < self.loss[seen].mean()
        return np.flatnonzero(below & seen & (self.last_seen == epoch - 1))

    def _draw(self, epoch: int) -> None:
        rng = np.random.default_rng([self.seed, epoch])
        candidates = self.well_learned(epoch)
        left_out = rng.choice(candidates, size=int(self.prune_ratio * len(candidates) + _EPS), replace=False)
        kept = np.ones(self.n, dtype=bool)
        kept[left_out] = False
        self._weight = np.ones(self.n, dtype=np.float32)
        self._weight[candidates[kept[candidates]]] = 1.0 / (1.0 - self.prune_ratio)
        self._rows = rng.permutation(np.flatnonzero(kept)).astype(np.int64)
        self._epoch = epoch
        self._drawn[epoch] = len(self._rows)

    def _require_epoch(self, method: str) -> None:
        if self._epoch is None:
            raise RuntimeError(f"InfoBatch.{method}() needs the epoch: call epoch_rows(epoch) first.")

    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs (the generators are rebuilt from the seed, so they need no state)."""
        return {**self._config(), "loss": self.loss.copy(), "last_seen": self.last_seen.copy(),
                "epoch": -1 if self._epoch is None else self._epoch, "rows": self._rows.copy(),
                "weight": self._weight.copy()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict` of a run with the same configuration."""
        _check_same_config(self._config(), state)
        self.loss = np.array(state["loss"], dtype=np.float64)
        self.last_seen = np.array(state["last_seen"], dtype=np.int64)
        self._epoch = None if int(state["epoch"]) < 0 else int(state["epoch"])
        self._rows = np.array(state["rows"], dtype=np.int64)
        self._weight = np.array(state["weight"], dtype=np.float32)

    def _config(self) -> dict[str, Any]:
        return {"method": "infobatch", "n": self.n, "epochs": self.epochs, "prune_ratio": self.prune_ratio,
                "delta": self.delta, "seed": self.seed}


# ----------------------------------------------------------------------------- RS2


class RS2:
    """RS2: each epoch a fresh random ``fraction`` of ``n`` examples, without replacement across epochs.

    Think of an endless list of rows made of one permutation of all ``n`` rows per *cycle*; epoch ``e`` takes
    positions ``[e * k, (e + 1) * k)`` with ``k = round(fraction * n)`` (as ``datadiet prune --keep``).  Every
    cycle holds every row once, so every example is seen once before any is seen twice.  An epoch that
    straddles two cycles takes the rest of the old cycle, then the first rows of the new cycle's permutation
    that it does not already hold; the new cycle starts with those rows and goes on with the rest of its
    permutation in order, so it still holds every row once.  The rows of an epoch depend on ``(seed, epoch)``
    alone (each cycle's permutation comes from a generator built from ``(seed, cycle)``).
    """

    learns = False  # ignores losses: every weight is 1

    def __init__(self, n: int, fraction: float, seed: int = 0, *, epochs: int | None = None):
        """``epochs`` is accepted for the registry's one way of building a pruner and unused: RS2's epochs go on
        for as long as the loop asks."""
        _check_int("n", n, low=1)
        _check_real("fraction", fraction, 0.0, 1.0, low_open=True, high_open=False)
        _check_int("seed", seed, low=0)
        self.n, self.fraction, self.seed = n, float(fraction), seed
        self.n_keep = int(round(self.fraction * n))
        if self.n_keep < 1:
            raise ConfigError(f"--fraction: keeping {fraction} of {n} examples keeps none; raise --fraction to at "
                              f"least {1 / n:.3g}.")
        self._cycle = (-1, np.empty(0, dtype=np.int64))  # the latest cycle order built, so epochs walk forward

    def epoch_rows(self, epoch: int) -> np.ndarray:
        """The ``n_keep`` distinct rows of ``epoch``, in a random order."""
        _check_epoch(epoch, None)
        start, end = epoch * self.n_keep, (epoch + 1) * self.n_keep
        first, last = start // self.n, (end - 1) // self.n
        head = self._order(first)[start - first * self.n:end - first * self.n]
        if first == last:
            return head.copy()
        # Not shuffled together: the old cycle's rows come first, so that in training order too every row is
        # seen once before any is seen twice.
        return np.concatenate([head, self._order(last)[:end - last * self.n]])

    def weights(self, rows) -> np.ndarray:
        """All 1: RS2 samples without bias, so it needs no re-weighting."""
        return np.ones(len(_as_rows(rows, self.n)), dtype=np.float32)

    def update(self, rows, losses) -> None:
        """Nothing to record (RS2 ignores losses); here so that a loop can use either pruner."""

    def sample_passes(self, epoch: int, batch_size: int | None = None) -> int:
        """Examples trained on in ``epoch``; with ``batch_size``, as cut by :func:`batches`."""
        _check_epoch(epoch, None)
        return _trained(self.n_keep, batch_size)

    def epoch_sizes(self) -> tuple[int, int]:
        """The fewest and the most rows an epoch holds: ``n_keep`` every time."""
        return self.n_keep, self.n_keep

    def _order(self, cycle: int) -> np.ndarray:
        """Cycle ``cycle``'s order of all rows, built forward from cycle 0 (or the latest built)."""
        built, order = self._cycle
        if built > cycle:  # asked for an earlier cycle (a resumed or replayed run): build again from cycle 0
            built = -1
        while built < cycle:
            built += 1
            order = self._next_order(built, order)
        self._cycle = (built, order)
        return order

    def _next_order(self, cycle: int, previous: np.ndarray) -> np.ndarray:
        permutation = np.random.default_rng([self.seed, cycle]).permutation(self.n).astype(np.int64)
        boundary = cycle * self.n  # the cycle's first position in the endless list
        if cycle == 0 or boundary % self.n_keep == 0:
            return permutation  # no epoch straddles the boundary
        straddle_start = boundary // self.n_keep * self.n_keep
        taken = np.zeros(self.n, dtype=bool)
        taken[previous[straddle_start - (cycle - 1) * self.n:]] = True  # the old cycle's rows in that epoch
        fresh = permutation[~taken[permutation]]
        head = fresh[:self.n_keep - int(taken.sum())]
        in_head = np.zeros(self.n, dtype=bool)
        in_head[head] = True
        return np.concatenate([head, permutation[~in_head[permutation]]])

    def state_dict(self) -> dict[str, Any]:
        """RS2's rows depend only on the seed and the epoch: the state is its configuration."""
        return {"method": "rs2", "n": self.n, "fraction": self.fraction, "seed": self.seed}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Check that ``state`` comes from an RS2 with the same configuration."""
        _check_same_config(self.state_dict(), state)


# ----------------------------------------------------------------------------- the registry
# Each pruner's parameters: a frozen dataclass, checked when built (the message names the flag). Every field is a
# flag of `datadiet train` (the field's comment its help) and a key of TrainConfig's dict form; ``old_name`` in a
# field's metadata is the flat TrainConfig field it was before pruners had their own parameters: its old flag still
# works (with a deprecation line, saying ``why`` it changed), and stored records and run identities keep that spelling.


@dataclass(frozen=True)
class InfoBatchParameters:
    """InfoBatch's parameters (``--dynamic infobatch``)."""

    prune_ratio: float = 0.5  # fraction of the well-learned examples left out each epoch, in [0, 1)
    delta: float = 0.875      # fraction of the epochs that may prune, in (0, 1]; the rest train on all rows

    def __post_init__(self) -> None:
        _check_real("prune_ratio", self.prune_ratio, 0.0, 1.0, low_open=False, high_open=True)
        _check_real("delta", self.delta, 0.0, 1.0, low_open=True, high_open=False)


@dataclass(frozen=True)
class RS2Parameters:
    """RS2's parameters (``--dynamic rs2``)."""

    fraction: float = field(metadata={"old_name": "keep", "why": "--keep is a static subset's fraction"})  # fraction of the run's rows drawn each epoch, in (0, 1]

    def __post_init__(self) -> None:
        _check_real("fraction", self.fraction, 0.0, 1.0, low_open=True, high_open=False)


class Pruner(NamedTuple):
    """A registered pruner: its class and its own parameters dataclass.

    The engine builds the class as ``cls(n, epochs=epochs, seed=seed, **parameters)`` (``n`` rows, ``epochs`` whole
    epochs, every draw seeded by ``seed``) and uses ``epoch_rows(epoch)``, ``epoch_sizes()`` (the fewest and the most
    rows an epoch can hold), ``learns`` (whether it weighs the loss by ``weights(rows)`` and records it with
    ``update(rows, losses)``), ``state_dict()`` / ``load_state_dict(state)`` (resume) and, for loops of your own,
    ``sample_passes(epoch, batch_size)``."""

    cls: type
    parameters: type


# name → pruner: `--dynamic NAME`, TrainConfig.dynamic, DynamicMethod(NAME, ...). A new pruner is one class and one entry.
PRUNERS: dict[str, Pruner] = {
    "infobatch": Pruner(InfoBatch, InfoBatchParameters),  # Qin et al. 2024
    "rs2": Pruner(RS2, RS2Parameters),                    # Okanovic et al. 2024
}


def pruner_name(parameters: Any) -> str:
    """The name of the pruner whose parameters ``parameters`` are (each pruner has its own parameters class)."""
    names = [name for name, pruner in PRUNERS.items() if type(parameters) is pruner.parameters]
    if len(names) != 1:
        problem = (f"{type(parameters).__name__} is the parameters class of {' and '.join(names)}: give each pruner "
                   "its own" if names else f"{parameters!r} is no registered pruner's parameters")
        raise ConfigError(f"--dynamic: {problem} (datadiet.dynamic.PRUNERS: {', '.join(PRUNERS)}).")
    return names[0]


def parameter_values(parameters: Any) -> dict[str, Any]:
    """A pruner's parameters as keyword arguments of its class."""
    return {f.name: getattr(parameters, f.name) for f in fields(parameters)}


def build_pruner(parameters: Any, n: int, epochs: int, seed: int) -> Any:
    """The pruner ``parameters`` belong to, over ``n`` rows and ``epochs`` epochs, every draw seeded by ``seed``."""
    return PRUNERS[pruner_name(parameters)].cls(n, epochs=epochs, seed=seed, **parameter_values(parameters))


# ----------------------------------------------------------------------------- checks

_FLAGS = {"prune_ratio": "--prune-ratio", "delta": "--delta", "fraction": "--fraction", "epochs": "--epochs",
          "seed": "--seed", "batch_size": "--batch-size", "n": "n (the number of examples)", "epoch": "epoch"}


def _check_int(name: str, value: Any, *, low: int) -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
        raise ConfigError(f"{_FLAGS[name]} must be a whole number, got {value!r}.")
    if value < low:
        raise ConfigError(f"{_FLAGS[name]} must be >= {low}, got {value}.")


def _check_real(name: str, value: Any, low: float, high: float, *, low_open: bool, high_open: bool) -> None:
    interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    number = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    inside = number and (value > low if low_open else value >= low) and (value < high if high_open else value <= high)
    if not inside:
        raise ConfigError(f"{_FLAGS[name]} must be a number in {interval}, got {value!r}.")


def _check_epoch(epoch: Any, epochs: int | None) -> None:
    _check_int("epoch", epoch, low=0)
    if epochs is not None and epoch >= epochs:
        raise ConfigError(f"epoch {epoch} is past the last epoch of the schedule, {epochs - 1} (epochs count from "
                          f"0); raise --epochs to train longer.")


def _check_same_config(mine: dict[str, Any], state: dict[str, Any]) -> None:
    theirs = {key: state.get(key) for key in mine}
    if theirs != mine:
        raise ConfigError(f"This state was saved by {theirs}, not by {mine}: resume with the configuration "
                          "that saved it.")


def _as_numpy(values) -> np.ndarray:
    if hasattr(values, "detach"):  # a torch tensor: no torch import needed here
        values = values.detach().cpu().numpy()
    return np.asarray(values)


def _as_rows(rows, n: int) -> np.ndarray:
    rows = _as_numpy(rows).reshape(-1)
    if rows.dtype.kind not in "iu":
        raise ConfigError(f"rows must be integer positions, got dtype {rows.dtype}.")
    if len(rows) and (rows.min() < 0 or rows.max() >= n):  # a negative row would silently wrap around
        raise ConfigError(f"rows must lie in 0..{n - 1}, got {rows.min()}..{rows.max()}.")
    return rows
