"""Checks on what the score functions are given: inputs, labels and correctness histories.

A wrong label (``-1``, ``K`` or ``0.4`` for a ``K``-class model) or a NaN input does not make the
score functions fail by itself: a label outside ``[0, K)`` simply matches no output and scores against
an all-zero target, and a NaN input gives a NaN score.  Everything here turns such input into a
:class:`ScoreInputError` that says what is wrong and how to fix it.

Cost: the value checks are one reduction over the whole input tensor (its min and max, which carry any
NaN or inf) and one over the labels, read back to the host together (one sync), once per call.  The
labels are checked against the model's number of outputs ``K`` with plain Python integers once ``K`` is
known from the first chunk's logits, so nothing is synchronised per chunk.
"""
from __future__ import annotations

import numbers
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import ConfigError

_SHOWN = 5  # offending values / indices quoted in a message


class ScoreInputError(ConfigError):
    """Inputs, labels or a correctness history that a score function cannot score correctly.

    A :class:`~datadiet.errors.DataDietError` and a ``ValueError`` (through ``ConfigError``, which the
    label-count check raised before this class existed, so code catching ``ConfigError`` still works).
    """


@dataclass(frozen=True)
class LabelRange:
    """The smallest and largest label, read once; :meth:`check` compares them with ``K`` on the host."""

    labels: torch.Tensor
    low: int
    high: int

    def check(self, num_classes: int) -> None:
        """Raise :class:`ScoreInputError` unless every label lies in ``[0, num_classes)``."""
        if self.low < 0 or self.high >= num_classes:
            raise _label_range_error(self.labels, num_classes)


_META = ("The {what} are on the meta device: a meta tensor has a shape but no values, so there is nothing to score. "
         "Pass {fix}.")


def check_batch_size(batch_size) -> int:
    """``batch_size`` (examples per chunk) as an int; one rule for every score function, checked before any work."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise ScoreInputError(f"batch_size must be a whole number of at least 1 (examples per chunk), got "
                              f"{batch_size!r}.")
    return int(batch_size)


def check_model_values(model: nn.Module) -> None:
    """A model whose parameters live on the meta device has no weights to score with."""
    if any(p.is_meta for p in model.parameters()):
        raise ScoreInputError("The model's parameters are on the meta device: they have shapes but no values. "
                              "Materialise it (model.to_empty(device='cpu'), then load or initialise its weights) "
                              "before scoring.")


def check_score_inputs(inputs, labels=None, *, needs_labels: bool = False) -> LabelRange | None:
    """Validate ``inputs [N, ...]`` and, if given, ``labels [N]``; return the labels' range (``None`` without labels).

    Raises :class:`ScoreInputError` for: a non-tensor (numpy array, list); ``uint8``/bool/complex inputs;
    NaN or infinite inputs; labels that are not an integer tensor (float, bool) or not one per input.
    Labels outside ``[0, K)`` are caught by :meth:`LabelRange.check` of the result, once the model's
    number of outputs ``K`` is known from the first logits.
    """
    _check_inputs_type(inputs)
    if labels is None and needs_labels:
        raise ScoreInputError("This score needs labels: pass a tensor [N] of integer class indices, one per input.")
    if labels is not None:
        _check_labels_type(labels, inputs.shape[0])
    if inputs.shape[0] == 0:
        return LabelRange(labels, 0, -1) if labels is not None else None
    # All value reductions stay on the device and come back to the host in one transfer.
    pending: list[torch.Tensor] = []
    floating = inputs.is_floating_point()
    if floating:
        low, high = inputs.detach().aminmax()  # NaN propagates through both, inf shows in one
        pending.append((torch.isfinite(low) & torch.isfinite(high)).to(torch.int64))
    if labels is not None:
        lab_low, lab_high = labels.detach().aminmax()
        pending += [lab_low.to(torch.int64), lab_high.to(torch.int64)]
    if not pending:
        return None
    if len({t.device for t in pending}) == 1:
        values = torch.stack(pending).tolist()
    else:
        values = [int(t.item()) for t in pending]
    if floating:
        finite, values = values[0], values[1:]
        if not finite:
            raise _non_finite_error(inputs)
    if labels is None:
        return None
    # A negative label is wrong whatever the model, but the message names K, so it waits for the first logits.
    return LabelRange(labels, int(values[0]), int(values[1]))


def _type_name(value) -> str:
    kind = type(value)
    return kind.__name__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"


def _check_inputs_type(inputs) -> None:
    if not isinstance(inputs, torch.Tensor):
        hint = ("convert it with torch.from_numpy(x)" if _type_name(inputs).startswith("numpy")
                else "convert them with torch.as_tensor(x)")
        raise ScoreInputError(f"inputs must be a torch.Tensor [N, ...]; got a {_type_name(inputs)}: {hint}, "
                              "preprocessed (normalized, un-augmented) as for training.")
    if inputs.dim() == 0:
        raise ScoreInputError("inputs must be a tensor [N, ...] with one row per example; got a 0-d tensor.")
    if inputs.is_meta:
        raise ScoreInputError(_META.format(what="inputs", fix="inputs.to('cpu') after filling them with data"))
    if inputs.dtype == torch.uint8:
        raise ScoreInputError("inputs have dtype torch.uint8: raw image bytes, not model inputs. Preprocess them "
                              "as for training first: convert to float and normalize, e.g. "
                              "(x.float() / 255 - mean) / std with the training set's mean and std.")
    if inputs.dtype == torch.bool or inputs.is_complex():
        raise ScoreInputError(f"inputs have dtype {inputs.dtype}; the score functions take real-valued inputs "
                              "preprocessed as for training (a float tensor, or integer indices for models that "
                              "embed them).")


def _check_labels_type(labels, n: int) -> None:
    if not isinstance(labels, torch.Tensor):
        raise ScoreInputError(f"labels must be a torch.Tensor of class indices; got a {_type_name(labels)}. "
                              "Convert with torch.as_tensor(labels, dtype=torch.long).")
    if labels.is_meta:
        raise ScoreInputError(_META.format(what="labels", fix="the real labels, e.g. torch.as_tensor(labels)"))
    if labels.dtype == torch.bool:
        raise ScoreInputError("labels must be an integer tensor of class indices; got dtype torch.bool. A bool "
                              "is not a class label: if the labels really are the classes 0 and 1, pass "
                              "labels.long().")
    if labels.is_floating_point() or labels.is_complex():
        raise ScoreInputError(_float_labels_message(labels))
    if labels.dim() != 1 or labels.shape[0] != n:
        raise ScoreInputError(f"Expected one label per input: {n} inputs, labels of shape {tuple(labels.shape)}. "
                              "Pass labels [N] in the same order as the inputs.")


def _float_labels_message(labels: torch.Tensor) -> str:
    start = f"labels must be an integer tensor of class indices (e.g. torch.int64); got dtype {labels.dtype}"
    values = labels.detach().flatten()
    if labels.is_complex():
        return f"{start}. Pass integer class indices."
    fractional = values[values != values.round()]  # NaN is never equal to itself: counted as not whole
    if len(fractional) == 0:
        return f"{start}. The values are whole numbers: pass labels.long()."
    return (f"{start} with values that are not class indices, e.g. {_list(fractional)} "
            f"({len(fractional)} of {len(values)} labels). Pass the integer class of each example.")


def _label_range_error(labels: torch.Tensor, num_classes: int) -> ScoreInputError:
    values = labels.detach().cpu()
    bad = (values < 0) | (values >= num_classes)
    return ScoreInputError(
        f"labels must lie in [0, {num_classes}) for a model with {num_classes} outputs; got "
        f"{_values(torch.unique(values[bad]))} ({int(bad.sum())} of {len(values)} labels). Labels are class indices "
        f"0..{num_classes - 1}: check the label encoding (no -1 for 'unknown', 0-based classes) and that the model "
        "was built for this dataset's number of classes.")


def _non_finite_error(inputs: torch.Tensor) -> ScoreInputError:
    x = inputs.detach()
    nan, inf = bool(torch.isnan(x).any()), bool(torch.isinf(x).any())
    what = " and ".join(w for w, present in (("NaN", nan), ("inf", inf)) if present)
    rows = (~torch.isfinite(x)).reshape(x.shape[0], -1).any(1).nonzero().flatten()
    return ScoreInputError(
        f"inputs must be finite; got {what} in {len(rows)} of {x.shape[0]} examples (index "
        f"{_list(rows)}). A non-finite input gives a NaN score: check the data and its preprocessing "
        "(e.g. a channel with zero standard deviation in the normalization).")


def _values(values: torch.Tensor) -> str:
    """``value 10`` or ``values -1, 99``."""
    return f"value{'s' if values.numel() > 1 else ''} {_list(values)}"


def _list(values: torch.Tensor) -> str:
    items = values.flatten()[:_SHOWN + 1].tolist()
    shown = ", ".join(_format(v) for v in items[:_SHOWN])
    return shown + (", ..." if len(items) > _SHOWN else "")


def _format(value) -> str:
    if isinstance(value, float) and value.is_integer():
        return f"{value:.1f}"
    return f"{value:g}" if isinstance(value, float) else str(value)


def check_logits(output, n: int) -> torch.Tensor:
    """``output``, the model's forward pass on ``n`` inputs, if it is a tensor of logits ``[n, K]``; otherwise a
    :class:`ScoreInputError` naming what the model returned. Host metadata only (type, shape, dtype): no sync."""
    expected = "a tensor of logits [N, classes] (one row of class scores per input)"
    if not isinstance(output, torch.Tensor):
        raise ScoreInputError(
            f"The model returned a {_type_name(output)} from its forward pass, but the score functions expect "
            f"{expected}. Return only the logits (e.g. `return logits`, not `return logits, features`), or score a "
            "wrapper module whose forward picks them out.")
    if output.dim() != 2 or output.shape[0] != n:
        raise ScoreInputError(
            f"The model returned a tensor of shape {list(output.shape)} for {n} input{'s' if n != 1 else ''}, but "
            f"the score functions expect {expected}, here [{n}, K].")
    if not output.is_floating_point():
        raise ScoreInputError(f"The model returned a tensor of dtype {output.dtype}, but the score functions expect "
                              f"{expected} of floating-point values.")
    return output


# ----------------------------------------------------------------------------- forward errors

# RuntimeError texts of a model that is handed inputs of the wrong shape or dtype (conv, linear, norms, matmul).
_SHAPE_ERRORS = re.compile(
    r"to have \d+ channels|shapes cannot be multiplied|size mismatch|must match the size|"
    r"Expected \d+D .*input|Expected .*-dimensional input|Given normalized_shape|running_mean should contain|"
    r"Kernel size can't be greater|should be the same|expected scalar type|must have the same dtype",
    re.IGNORECASE)


@contextmanager
def explain_forward_errors(model: nn.Module, inputs: torch.Tensor) -> Iterator[None]:
    """Turn a forward pass's RuntimeError about input shape or dtype into a :class:`ScoreInputError`.

    The message names the input shape and dtype and, where the model tells, what its first layer
    expects; PyTorch's own message follows, and the original error is chained.
    """
    try:
        yield
    except RuntimeError as err:
        if isinstance(err, torch.cuda.OutOfMemoryError) or not _SHAPE_ERRORS.search(str(err)):
            raise
        raise ScoreInputError(_forward_message(model, inputs, err)) from err


def _first_layer(model: nn.Module) -> tuple[str, nn.Module] | None:
    for name, module in model.named_modules():
        if isinstance(module, (nn.modules.conv._ConvNd, nn.Linear)) or any(True for _ in module.parameters(False)):
            return name or "<root>", module
    return None


def _forward_message(model: nn.Module, inputs: torch.Tensor, err: RuntimeError) -> str:
    shape = list(inputs.shape)
    hints = []
    first = _first_layer(model)
    lazy = first is not None and isinstance(first[1], nn.modules.lazy.LazyModuleMixin)
    if first is not None and not lazy:
        name, layer = first
        kind = type(layer).__name__
        if isinstance(layer, nn.modules.conv._ConvNd):
            c, spatial = layer.in_channels, len(layer.kernel_size)
            dims = ", ".join("HW"[i] for i in range(spatial)) if spatial <= 2 else ", ".join("DHW")
            if len(shape) != spatial + 2 or shape[1] != c:
                got = f", but the inputs have {shape[1]}" if len(shape) == spatial + 2 else ""
                hints.append(f"its first layer, {name} ({kind}), expects inputs [N, {c}, {dims}] "
                             f"({c} channel{'s' if c != 1 else ''}{got})")
        elif isinstance(layer, nn.Linear) and shape[-1] != layer.in_features:
            hints.append(f"its first layer, {name} ({kind}), expects {layer.in_features} input features in the "
                         f"last dimension, but the inputs have {shape[-1]}")
    param = next(model.parameters(), None)
    if param is not None and inputs.is_floating_point() and inputs.dtype != param.dtype:
        hints.append(f"its parameters are {param.dtype} (convert the inputs with inputs.to({param.dtype}))")
    return (f"The model cannot run on inputs of shape {shape} and dtype {inputs.dtype}"
            + (": " + "; ".join(hints) if hints else "")
            + ". Pass inputs shaped and typed as the model was built for (number of channels, e.g. grayscale vs "
            f"RGB, and image size), preprocessed as for training. PyTorch said: {err}")


# ----------------------------------------------------------------------------- correctness histories

def check_correctness_history(correct) -> None:
    """``correct`` must be a tensor of 1 (correct), 0 (wrong) and -1 (not presented, trailing only), or bool."""
    if not isinstance(correct, torch.Tensor):
        raise ScoreInputError(f"The correctness history must be a torch.Tensor [N, presentations]; got a "
                              f"{_type_name(correct)}. Convert with torch.as_tensor(history, dtype=torch.int8).")
    if correct.dtype == torch.bool or correct.numel() == 0:
        return
    if correct.is_complex():
        raise ScoreInputError(f"The correctness history must hold 1 (correct), 0 (wrong) and -1 (not presented); "
                              f"got dtype {correct.dtype}.")
    c = correct.detach()
    allowed = (c == 1) | (c == 0) | (c == -1)
    if not bool(allowed.all()):
        bad = c[~allowed]
        raise ScoreInputError(
            f"The correctness history must hold only 1 (correct), 0 (wrong) and -1 (not presented); got "
            f"{_values(torch.unique(bad))} ({bad.numel()} of {c.numel()} entries). Pass one entry per presentation, "
            "e.g. (predictions == labels).to(torch.int8), or a bool tensor.")
    if c.dim() == 2 and c.shape[1] > 1:
        resumed = (c[:, 1:] != -1) & (c[:, :-1] == -1)
        if bool(resumed.any()):
            rows = resumed.any(1).nonzero().flatten()
            raise ScoreInputError(
                f"In the correctness history, -1 (not presented) may only pad the end of a row; row(s) "
                f"{_list(rows)} ({len(rows)} of {c.shape[0]}) have presentations after a -1. List each "
                "example's presentations in time order, then pad with -1.")
