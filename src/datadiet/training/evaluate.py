"""Evaluation: one eval-mode pass of a model over a set of examples, and the numbers read off it."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..config import TrainConfig
from ..data.dataset import ImageDataset
from ..data.transforms import Normalizer
from ..errors import NonFiniteLossError
from .placement import to_layout


@dataclass(frozen=True)
class Predictions:
    """Per-example results of one pass, on the CPU."""

    correct: torch.Tensor  # bool [n]: the predicted class is the label
    loss: torch.Tensor     # float32 [n]: cross-entropy
    loss_sum: float        # sum of the per-batch cross-entropy sums, see `predict`

    @property
    def accuracy(self) -> float:
        return int(self.correct.sum()) / max(len(self.correct), 1)

    @property
    def mean_loss(self) -> float:
        return self.loss_sum / max(len(self.loss), 1)


@torch.no_grad()
def predict(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, *, batch_size: int = 1024,
            normalize: Normalizer | None = None, layout: TrainConfig | None = None) -> Predictions:
    """Run ``model`` in eval mode over ``inputs`` in batches, on the model's device; its mode is restored after.

    ``inputs`` are uint8 images (or float features ``[N, D]``) when ``normalize`` is given (each batch is
    normalized on the device), else model-ready tensors.  ``layout``: put each batch in that config's memory format first.

    ``loss_sum`` adds, in float64, each batch's ``reduction="sum"`` cross-entropy: summing the per-example
    losses instead could round differently, and mean losses must stay comparable with results saved earlier.

    Raises:
        NonFiniteLossError: some logits are NaN or infinite. ``argmax`` of NaN logits still names a class, so such
            a model would get an accuracy (one in K by chance) and a NaN loss instead of being called diverged.
    """
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    correct, losses, batch_sums, non_finite = [], [], [], []
    for start in range(0, len(inputs), batch_size):
        x = inputs[start:start + batch_size].to(device)
        x = normalize(x) if normalize is not None else x
        x = to_layout(x, layout) if layout is not None else x
        y = labels[start:start + batch_size].to(device)
        logits = model(x).float()
        non_finite.append((~torch.isfinite(logits)).any(1).sum())  # stays on the device: one sync at the end
        correct.append(logits.argmax(1) == y)
        losses.append(F.cross_entropy(logits, y, reduction="none"))
        batch_sums.append(F.cross_entropy(logits, y, reduction="sum"))
    model.train(was_training)
    if not correct:
        return Predictions(torch.zeros(0, dtype=torch.bool), torch.zeros(0), 0.0)
    _raise_if_non_finite(int(torch.stack(non_finite).sum()), len(inputs))
    return Predictions(torch.cat(correct).cpu(), torch.cat(losses).cpu(), sum(float(s) for s in batch_sums))


def _raise_if_non_finite(bad: int, total: int) -> None:
    if bad:
        raise NonFiniteLossError(
            f"The model's outputs (logits) are NaN or infinite for {bad} of {total} evaluated examples: the model "
            "diverged, or it (or its inputs) produce non-finite values in eval mode. Lower the learning rate "
            "(--lr), check the inputs for NaN/inf, or try another seed; no accuracy was recorded for this model.")


def evaluate(model: nn.Module, dataset: ImageDataset, normalize: Normalizer, *, batch_size: int = 1024
             ) -> tuple[float, float]:
    """Accuracy and mean cross-entropy on un-augmented ``dataset`` (eval mode): images or features."""
    result = predict(model, dataset.images, dataset.labels, batch_size=batch_size, normalize=normalize)
    return result.accuracy, result.mean_loss


def correct_per_example(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, normalize: Normalizer,
                        config: TrainConfig, batch_size: int = 1024) -> np.ndarray:
    """bool [n]: the model (eval mode) predicts each example's label."""
    return predict(model, images, labels, batch_size=batch_size, normalize=normalize, layout=config).correct.numpy()


def classification_error(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1024) -> float:
    """Fraction of (already normalized) examples misclassified, model in eval mode."""
    correct = predict(model, x, y, batch_size=batch_size).correct
    return int((~correct).sum()) / len(x)
