"""Evaluation: one eval-mode pass of a model over a set of examples, and the numbers read off it.

Overall accuracy hides a useless model on imbalanced data (always predicting the majority class scores that class's
share), so every evaluation also reads per-class numbers off the same pass (:class:`ClassMetrics`): each class's
recall, their mean (balanced accuracy), the smallest (worst-class accuracy) and the majority-class rate of the
evaluated labels, the accuracy of always predicting the most common class.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..config import TrainConfig
from ..data.dataset import ImageDataset
from ..data.transforms import Normalizer
from ..errors import ConfigError, NonFiniteLossError
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


def _logits(output, n: int) -> torch.Tensor:
    """The model's output if it is a floating-point tensor ``[n, K]``; otherwise a ConfigError naming what it
    returned (a user model that returns a tuple would else fail with a raw AttributeError here)."""
    if not isinstance(output, torch.Tensor):
        raise ConfigError(f"The model returned a {type(output).__name__} from its forward pass, but evaluation "
                          "expects a tensor of logits [N, classes]. Return only the logits (e.g. `return logits`, "
                          "not `return logits, features`).")
    if output.dim() != 2 or output.shape[0] != n or not output.is_floating_point():
        raise ConfigError(f"The model returned a {output.dtype} tensor of shape {list(output.shape)} for {n} inputs, "
                          f"but evaluation expects floating-point logits [N, classes], here [{n}, K].")
    return output


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
        logits = _logits(model(x), len(x)).float()
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


@dataclass(frozen=True)
class ClassMetrics:
    """Per-class numbers of one evaluation (:func:`class_metrics`).

    ``recall[c]``: the fraction of the evaluated examples labelled ``c`` that the model predicts as ``c`` (class
    order; ``None`` for a class with no evaluated example, whose recall is unknown, not 0). ``balanced_accuracy``
    and ``worst_class_accuracy`` are the mean and the minimum over the classes present only, and
    ``majority_rate`` the share of the most common evaluated label; each is ``None`` when nothing was evaluated.
    """

    recall: tuple[float | None, ...]
    balanced_accuracy: float | None
    worst_class_accuracy: float | None
    majority_rate: float | None


def class_recall(labels, correct, num_classes: int) -> list[float | None]:
    """Per-class recall, a list of ``num_classes`` in class order: ``correct`` among the examples of each label.

    ``labels``: int [n] in ``0..num_classes-1``; ``correct``: bool [n], the prediction is the label (so recall needs
    no predicted classes: a class never predicted has recall 0). A class with no example gets ``None``.
    """
    labels, correct = _labels_and_correct(labels, correct, num_classes)
    examples = np.bincount(labels, minlength=num_classes)
    hits = np.bincount(labels[correct], minlength=num_classes)
    return [None if n == 0 else float(h) / float(n) for h, n in zip(hits.tolist(), examples.tolist())]


def balanced_accuracy(recall: Sequence[float | None]) -> float | None:
    """The mean per-class recall over the classes present (``None`` entries left out); ``None`` if none is."""
    present = _present(recall)
    return math.fsum(present) / len(present) if present else None


def worst_class_accuracy(recall: Sequence[float | None]) -> float | None:
    """The smallest per-class recall over the classes present (``None`` entries left out); ``None`` if none is."""
    present = _present(recall)
    return min(present) if present else None


def majority_rate(labels, num_classes: int) -> float | None:
    """The share of the most common label in ``labels`` (int [n]): the accuracy of always predicting that class.
    ``None`` for no labels."""
    labels, _ = _labels_and_correct(labels, np.zeros(len(labels), dtype=bool), num_classes)
    if len(labels) == 0:
        return None
    return float(np.bincount(labels, minlength=num_classes).max()) / len(labels)


def class_metrics(labels, correct, num_classes: int) -> ClassMetrics:
    """Every per-class number of one evaluation pass, from its labels (int [n]) and correctness (bool [n])."""
    recall = class_recall(labels, correct, num_classes)
    return ClassMetrics(tuple(recall), balanced_accuracy(recall), worst_class_accuracy(recall),
                        majority_rate(labels, num_classes))


def _present(recall: Sequence[float | None]) -> list[float]:
    return [float(r) for r in recall if r is not None and not math.isnan(r)]


def _labels_and_correct(labels, correct, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    correct = np.asarray(correct, dtype=bool).reshape(-1)
    if len(labels) != len(correct):
        raise ValueError(f"{len(labels)} labels but {len(correct)} correctness values")
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels must lie in 0..{num_classes - 1}, got {labels.min()}..{labels.max()}")
    return labels, correct


@dataclass(frozen=True)
class Evaluation:
    """What one pass over a labelled set gives: accuracy, mean cross-entropy and the per-class numbers."""

    accuracy: float
    mean_loss: float
    classes: ClassMetrics


def evaluate_split(model: nn.Module, dataset: ImageDataset, normalize: Normalizer, *, batch_size: int = 1024
                   ) -> Evaluation:
    """Accuracy, mean cross-entropy and per-class numbers on un-augmented ``dataset`` (eval mode), in one pass."""
    result = predict(model, dataset.images, dataset.labels, batch_size=batch_size, normalize=normalize)
    classes = class_metrics(dataset.labels.cpu().numpy(), result.correct.numpy(), dataset.num_classes)
    return Evaluation(result.accuracy, result.mean_loss, classes)


def evaluate(model: nn.Module, dataset: ImageDataset, normalize: Normalizer, *, batch_size: int = 1024
             ) -> tuple[float, float]:
    """Accuracy and mean cross-entropy on un-augmented ``dataset`` (eval mode): images or features."""
    result = evaluate_split(model, dataset, normalize, batch_size=batch_size)
    return result.accuracy, result.mean_loss


def correct_per_example(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, normalize: Normalizer,
                        config: TrainConfig, batch_size: int = 1024) -> np.ndarray:
    """bool [n]: the model (eval mode) predicts each example's label."""
    return predict(model, images, labels, batch_size=batch_size, normalize=normalize, layout=config).correct.numpy()


def classification_error(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1024) -> float:
    """Fraction of (already normalized) examples misclassified, model in eval mode."""
    correct = predict(model, x, y, batch_size=batch_size).correct
    return int((~correct).sum()) / len(x)
