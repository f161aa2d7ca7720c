"""Per-presentation correctness, recorded while training, for forgetting scores.

Each time an example is presented in a training batch we store whether the
model (in its training-mode forward pass on the augmented input, as Toneva et
al. do) classified it correctly.  The log keeps presentation order.
"""
from __future__ import annotations

import torch


class CorrectnessLog:
    """Accumulates ``(example id, correct)`` for every presentation, in order."""

    def __init__(self) -> None:
        self._ids: list[torch.Tensor] = []
        self._correct: list[torch.Tensor] = []

    def record(self, ids: torch.Tensor, correct: torch.Tensor) -> None:
        self._ids.append(ids.detach())
        self._correct.append(correct.detach())

    def events(self) -> tuple[torch.Tensor, torch.Tensor]:
        """All presentations as flat CPU tensors ``ids [P]`` (int64) and ``correct [P]`` (bool)."""
        if not self._ids:
            return torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.bool)
        return torch.cat(self._ids).cpu(), torch.cat(self._correct).cpu()

    def history(self, ids: torch.Tensor) -> torch.Tensor:
        """Matrix ``[len(ids), P_max]`` of int8: 1 correct, 0 wrong, -1 not presented (padding at the end).

        Row ``i`` lists the presentations of example ``ids[i]`` in the order they happened.
        """
        event_ids, correct = self.events()
        sorted_ids, perm = torch.sort(ids)
        rows = perm[torch.searchsorted(sorted_ids, event_ids).clamp(max=max(len(ids) - 1, 0))]
        if len(rows) and not bool((ids[rows] == event_ids).all()):
            raise ValueError("the log holds presentations of ids that are not in `ids`")
        counts = torch.bincount(rows, minlength=len(ids)) if len(rows) else torch.zeros(len(ids), dtype=torch.long)
        out = torch.full((len(ids), int(counts.max()) if len(rows) else 0), -1, dtype=torch.int8)
        # Column of each event = how many earlier events the same row had (stable sort keeps time order).
        order = torch.sort(rows, stable=True).indices
        starts = torch.cumsum(counts, 0) - counts
        cols = torch.empty_like(rows)
        cols[order] = torch.arange(len(rows)) - starts[rows[order]]
        out[rows, cols] = correct.to(torch.int8)
        return out
