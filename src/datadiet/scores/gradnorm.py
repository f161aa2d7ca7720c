"""Exact per-example gradient norms over all parameters, without per-example gradients.

For a batch, we run one forward pass that records every parametrised layer's
input ``a`` and output ``z``, then ONE ``torch.autograd.grad`` of the logits
with respect to all the ``z`` (given per-example logit cotangents ``v``).
Weight gradients are never formed.  Each layer's per-example squared gradient
norm then has a closed form:

* Linear / Conv (unfolded input ``U [d, T]``, output grad ``G [p, T]``):
  the per-example weight gradient is ``G Uᵀ``.  Its squared norm is either
  ``‖G Uᵀ‖²`` built explicitly (cost ``T·d·p``) or the "ghost norm"
  ``⟨UᵀU, GᵀG⟩`` (cost ``T²·(d+p)``); we pick the cheaper per layer.  With
  ``T = 1`` (a plain Linear) this is Goodfellow's ``‖a‖²·‖g‖²``.  Bias: ``‖Σ_t G‖²``.
* BatchNorm in eval mode (running statistics): ``∂γ = Σ g·x̂``, ``∂β = Σ g``.
* LayerNorm: the same with per-example statistics.

The squared norms of all layers are summed and square-rooted.  BatchNorm is
put in eval mode for scoring (per-example gradients of a batch-statistics
layer are not defined), as the original Data Diet code does.
"""
from __future__ import annotations

import warnings
from contextlib import contextmanager, nullcontext
from functools import partial
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .inputs import (LabelRange, ScoreInputError, check_batch_size, check_logits,  # noqa: F401 (re-export)
                     check_model_values, check_score_inputs, explain_forward_errors)

# Logit cotangent: (logits [B, K], labels [B] or None) -> v [B, K].  The result is ‖∇_θ (v·f(x;θ))‖ per example.
Cotangent = Callable[[torch.Tensor, "torch.Tensor | None"], torch.Tensor]

_BN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
SUPPORTED_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, *_BN, nn.LayerNorm)
_EXPLICIT_CHUNK_ELEMENTS = 1 << 24  # bound on B·p·d floats materialised by the explicit path


class UnsupportedLayerError(ConfigError):
    """A layer with trainable parameters that the fast path cannot handle exactly."""


class ExactPathWarning(UserWarning):
    """``method="auto"`` scores a model with the exact ``torch.func.vmap`` path because the fast path does not
    cover some of its layers (issued once per model class per process)."""


_WARNED: set[type] = set()  # model classes already warned about in this process


@dataclass
class _Record:
    module: nn.Module
    input: torch.Tensor
    output: torch.Tensor
    version: int  # autograd version counter when recorded, to detect later in-place changes


def cross_entropy_cotangent(logits: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
    """∂CE/∂logits = softmax(f) − onehot(y): GraNd's cotangent."""
    if labels is None:
        raise ConfigError("GraNd needs labels.")
    v = _softmax(logits)
    # arange == label instead of F.one_hot, which torch.func.vmap cannot batch.
    onehot = torch.arange(logits.shape[1], device=logits.device) == labels[:, None]
    return v - onehot.to(logits.dtype)


def _softmax(logits: torch.Tensor) -> torch.Tensor:
    """Softmax in at least float32 (bf16 logits under autocast), in float64 for float64 models."""
    return torch.softmax(logits, dim=1, dtype=torch.promote_types(logits.dtype, torch.float32)).to(logits.dtype)


def per_example_grad_norms(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor | None,
                           cotangent: Cotangent, *, batch_size: int = 256, method: str = "auto") -> torch.Tensor:
    """‖∇_θ (v(x)·f(x;θ))‖₂ for every example, over all trainable parameters of ``model``.

    Args:
        model: any ``nn.Module`` mapping ``inputs`` to logits ``[B, K]``.  Scored in eval mode.
        inputs: ``[N, ...]`` already-preprocessed inputs (moved to the model's device per chunk): a finite
            float tensor (or integer indices for a model that embeds them; not raw ``uint8`` images).
        labels: ``[N]`` integer class indices in ``[0, K)``, or ``None`` for label-free cotangents.
        cotangent: builds ``v`` from the logits (see :func:`cross_entropy_cotangent`).
        batch_size: examples per chunk; memory is bounded by the chunk, not by N.
        method: ``"fast"`` (layer-wise closed forms), ``"vmap"`` (``torch.func``), ``"loop"``
            (one backward per example) or ``"auto"`` (fast when every layer is supported, else vmap, with one
            :class:`ExactPathWarning` per model class per process naming the layers).
    Returns:
        float tensor ``[N]`` on the CPU, in input order, in the model's parameter dtype.
    Raises:
        ScoreInputError: (a ``ValueError``) for inputs or labels that are not tensors, ``uint8`` inputs, NaN or
            infinite inputs, labels that are not integers, not one per input or outside ``[0, K)``, and inputs
            whose shape or dtype the model cannot take.  Checked with one reduction over the inputs and one
            over the labels per call, read back together.
    """
    auto = method == "auto"
    if auto:
        method = _auto_method(model)
    impl = {"fast": _fast_chunk, "vmap": _vmap_chunk, "loop": _loop_chunk}.get(method)
    if impl is None:
        raise ConfigError(f"Unknown gradient-norm method {method!r}; use auto, fast, vmap or loop.")
    if method == "fast":
        _check_supported(model)
    batch_size = check_batch_size(batch_size)
    label_range = check_score_inputs(inputs, labels)
    if label_range is not None:
        cotangent = _with_label_check(cotangent, label_range)
    device = model_device(model)
    out = []
    with eval_mode(model):
        if method == "fast" and len(inputs):
            with explain_forward_errors(model, inputs):
                try:
                    clone_ids = _inplace_targets(model, inputs[:1].to(device))
                except UnsupportedLayerError:  # a layer called twice per forward (weight sharing)
                    if not auto:
                        raise
                    _warn_exact_path(model, "layers called more than once per forward pass (weight sharing)")
                    method, impl = "vmap", _vmap_chunk
            if method == "fast":
                impl = partial(_fast_chunk, clone_ids=clone_ids)
        for start in range(0, len(inputs), batch_size):
            x = inputs[start:start + batch_size].to(device)
            y = None if labels is None else labels[start:start + batch_size].to(device)
            with explain_forward_errors(model, inputs) if start == 0 and method != "fast" else nullcontext():
                norms = impl(model, x, y, cotangent)
            out.append(norms.detach())  # stays on the device: one copy at the end
    dtype = next(model.parameters()).dtype
    return torch.cat(out).cpu() if out else torch.zeros(0, dtype=dtype)


def _with_label_check(cotangent: Cotangent, label_range: LabelRange) -> Cotangent:
    """``cotangent`` that first checks the labels against the logits' width ``K`` (host integers, no sync)."""
    def checked(logits: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        label_range.check(logits.shape[-1])
        return cotangent(logits, labels)
    return checked


def unsupported_layers(model: nn.Module) -> list[str]:
    """Names of modules holding trainable parameters the fast path cannot handle."""
    return [f"{name or '<root>'} ({type(module).__name__})" for name, module in _unsupported_modules(model)]


def _unsupported_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(name, module) for name, module in model.named_modules()
            if _has_trainable(module) and not _is_supported(module)]


def _shares_parameters(model: nn.Module) -> bool:
    owned = [id(p) for m in model.modules() for p in m.parameters(recurse=False) if p.requires_grad]
    return len(owned) != len(set(owned))


def _auto_method(model: nn.Module) -> str:
    """``"fast"`` when the fast path covers every layer of ``model``, else ``"vmap"`` (exact, slower), saying so
    once per model class per process."""
    bad = sorted({type(module).__name__ for _, module in _unsupported_modules(model)})
    if bad:
        _warn_exact_path(model, f"layers the fast path does not cover ({', '.join(bad)})")
        return "vmap"
    if _shares_parameters(model):
        _warn_exact_path(model, "parameters shared between layers (tied weights)")
        return "vmap"
    return "fast"


def _warn_exact_path(model: nn.Module, why: str) -> None:
    cls = type(model)
    if cls in _WARNED:
        return
    _WARNED.add(cls)
    warnings.warn(f"GraNd: {cls.__name__} has {why}: using the exact torch.func.vmap path (slower, same values).",
                  ExactPathWarning, stacklevel=4)


# ----------------------------------------------------------------------------- fast path

def _fast_chunk(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None, cotangent: Cotangent,
                clone_ids: set[int] | None = None) -> torch.Tensor:
    clone_ids = set() if clone_ids is None else clone_ids
    records: list[_Record] = []
    with _recording(model, records, clone_ids), torch.enable_grad():
        logits = check_logits(model(x), len(x))
    if not records:
        raise UnsupportedLayerError("The model has no trainable parameters to take a gradient norm over.")
    modified = {id(r.module) for r in records if r.output._version != r.version}
    if modified:
        # A later in-place op (e.g. ReLU(inplace=True)) rewrote a recorded output, so its history now
        # belongs to that op.  Redo this chunk handing the network clones of exactly those outputs.
        return _fast_chunk(model, x, y, cotangent, clone_ids | modified)
    v = cotangent(logits.detach(), y)
    grads = torch.autograd.grad(logits, [r.output for r in records], grad_outputs=v, allow_unused=True)
    total = torch.zeros(x.shape[0], dtype=logits.dtype, device=x.device)
    for record, g in zip(records, grads):
        if g is not None:  # a layer whose output does not reach the logits has zero gradient
            total += _layer_sq_norm(record.module, record.input.detach(), g)
    return total.sqrt()


@torch.no_grad()
def _inplace_targets(model: nn.Module, probe: torch.Tensor) -> set[int]:
    """Ids of layers whose output a later op modifies in place, found with a one-example forward."""
    records: list[_Record] = []
    with _recording(model, records, set()):
        model(probe)
    return {id(r.module) for r in records if r.output._version != r.version}


@contextmanager
def _recording(model: nn.Module, records: list[_Record], clone_ids: set[int]) -> Iterator[None]:
    seen: set[int] = set()

    def hook(module, args, output):
        if id(module) in seen:
            raise UnsupportedLayerError(
                f"{type(module).__name__} is called twice in one forward pass (weight sharing); its per-example "
                "gradient is a sum the fast path cannot split. Use method='vmap'.")
        seen.add(id(module))
        records.append(_Record(module, args[0], output, output._version))
        # For outputs that a later op modifies in place, hand the network a clone so the recorded tensor
        # keeps its own autograd history.
        return output.clone() if id(module) in clone_ids else None

    handles = [m.register_forward_hook(hook) for m in model.modules() if _has_trainable(m)]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def _layer_sq_norm(module: nn.Module, a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    if isinstance(module, nn.Linear):
        return _linear_sq_norm(module, a, g)
    if isinstance(module, (nn.Conv1d, nn.Conv2d)):
        return _conv_sq_norm(module, a, g)
    if isinstance(module, _BN):
        return _batchnorm_sq_norm(module, a, g)
    return _layernorm_sq_norm(module, a, g)


def _linear_sq_norm(module: nn.Linear, a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    b = a.shape[0]
    # Any leading "token" dims between batch and features act like conv positions T.
    u = a.reshape(b, -1, a.shape[-1]).transpose(1, 2)   # [B, d, T]
    gg = g.reshape(b, -1, g.shape[-1]).transpose(1, 2)  # [B, p, T]
    sq = _weight_sq_norm(u.unsqueeze(1), gg.unsqueeze(1)) if module.weight.requires_grad else 0.0
    if module.bias is not None and module.bias.requires_grad:
        sq = sq + gg.sum(2).pow(2).sum(1)
    return sq


def _conv_sq_norm(module: nn.Conv1d | nn.Conv2d, a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    one_d = isinstance(module, nn.Conv1d)
    if one_d:  # treat as a 2D conv over a height-1 image
        a, g = a.unsqueeze(2), g.unsqueeze(2)
    kernel, stride, dilation = (tuple((1, *v)) if one_d else tuple(v)
                                for v in (module.kernel_size, module.stride, module.dilation))
    padding = _padding_2d(module, one_d=one_d)
    if len(padding) == 4:  # asymmetric "same" padding: pad explicitly
        a, padding = F.pad(a, padding), (0, 0)
    sq = torch.zeros(a.shape[0], dtype=g.dtype, device=g.device)
    if module.weight.requires_grad:
        groups = module.groups
        t = g.shape[2] * g.shape[3]
        d = a.shape[1] // groups * kernel[0] * kernel[1]
        p = g.shape[1] // groups
        def weight_sq_norm(how: str) -> torch.Tensor:
            if how == "grouped":
                return _conv_explicit_sq_norm(a, g, kernel, stride, padding, dilation, groups)
            u = _unfold(a, kernel, dilation, padding, stride).view(a.shape[0], groups, d, t)
            gg = g.reshape(a.shape[0], groups, p, t)
            return _ghost_sq_norm(u, gg) if how == "ghost" else _bmm_sq_norm(u, gg)

        if a.is_cuda:
            key = (tuple(a.shape), tuple(g.shape), kernel, stride, padding, dilation, groups, a.dtype, a.device)
            how = _fastest_on_device(key, weight_sq_norm)
        else:
            how = _conv_method(t, d, p)
        sq = sq + weight_sq_norm(how)
    if module.bias is not None and module.bias.requires_grad:
        sq = sq + g.sum((2, 3)).pow(2).sum(1)
    return sq


def _conv_explicit_sq_norm(a, g, kernel, stride, padding, dilation, groups) -> torch.Tensor:
    """‖per-example weight gradient‖² by building it: the batch becomes groups of one weight-gradient conv.

    Folding the batch into the channel axis (``[1, B·C, H, W]``, ``groups = B·groups``) lets the
    library's own weight-gradient kernel produce all ``B`` per-example gradients at the cost
    ``B·T·d·p`` of an ordinary weight gradient, without an unfolded copy of the input.
    """
    b, c = a.shape[:2]
    o = g.shape[1]
    per_example = o * (c // groups) * kernel[0] * kernel[1]
    step = max(1, _EXPLICIT_CHUNK_ELEMENTS // per_example)  # bound the [b·O, C/groups, kh, kw] result
    out = []
    for s in range(0, b, step):
        aa, gg = a[s:s + step], g[s:s + step]
        n = aa.shape[0]
        w = torch.nn.grad.conv2d_weight(
            aa.reshape(1, n * c, *aa.shape[2:]), (n * o, c // groups, *kernel), gg.reshape(1, n * o, *gg.shape[2:]),
            stride=stride, padding=padding, dilation=dilation, groups=n * groups)
        out.append(w.view(n, -1).pow(2).sum(1))
    return torch.cat(out)


def _unfold(a: torch.Tensor, kernel, dilation, padding, stride) -> torch.Tensor:
    """Same result as ``F.unfold`` (rows ordered C, kh, kw; columns Ho, Wo), built from strided views.

    About 3× faster than ``F.unfold`` on CPU: one padded copy and one reshape copy, no im2col loop.
    """
    (ph, pw), (kh, kw), (dh, dw), (sh, sw) = padding, kernel, dilation, stride
    if ph or pw:
        a = F.pad(a, (pw, pw, ph, ph))
    windows = a.unfold(2, (kh - 1) * dh + 1, sh).unfold(3, (kw - 1) * dw + 1, sw)  # [B, C, Ho, Wo, span_h, span_w]
    windows = windows[..., ::dh, ::dw]                                           # [B, C, Ho, Wo, kh, kw]
    b, c, ho, wo = windows.shape[:4]
    return windows.permute(0, 1, 4, 5, 2, 3).reshape(b, c * kh * kw, ho * wo)


def _padding_2d(module, *, one_d: bool):
    """Zero padding as unfold wants it; resolves the string forms 'valid' and 'same'."""
    if module.padding == "valid":
        return (0, 0)
    if module.padding == "same":
        kernel = (1, *module.kernel_size) if one_d else module.kernel_size
        dilation = (1, *module.dilation) if one_d else module.dilation
        total = [d * (k - 1) for k, d in zip(kernel, dilation)]
        if all(p % 2 == 0 for p in total):
            return tuple(p // 2 for p in total)
        # PyTorch puts the extra pixel on the right/bottom: (left, right, top, bottom) for F.pad.
        (th, tw) = total
        return (tw // 2, tw - tw // 2, th // 2, th - th // 2)
    return (0, *module.padding) if one_d else tuple(module.padding)


def _conv_method(t: int, d: int, p: int) -> str:
    """Cheapest exact way to get ‖per-example weight gradient‖² for T positions, fan-in d, fan-out p.

    Flop counts: ghost ``T²(d+p)``, explicit ``T·d·p``.  Measured on CPU (benchmarks/bench_scores.py),
    the explicit kernels run at about half the efficiency of the ghost's plain matmuls, so ghost wins up
    to twice its flop count; among explicit ones, an unfolded batched matmul beats the batch-as-groups
    weight-gradient conv only for tiny fan-in (the first layer of a grayscale model).
    """
    if t * t * (d + p) < 2 * t * d * p:
        return "ghost"
    return "unfold" if d < 64 else "grouped"


_DEVICE_CHOICE: dict[tuple, str] = {}  # conv layer and chunk shape on a GPU → the method measured fastest there


def _fastest_on_device(key: tuple, weight_sq_norm: Callable[[str], torch.Tensor]) -> str:
    """On a GPU the CPU-tuned rule of :func:`_conv_method` does not hold (the kernels' efficiencies differ), so
    every exact method is timed once per layer and chunk shape, on the real tensors, and the fastest kept for
    the rest of the process.  All three give the same value up to rounding."""
    if key not in _DEVICE_CHOICE:
        times = {}
        for how in ("ghost", "grouped", "unfold"):
            try:
                weight_sq_norm(how)  # warm-up: kernel selection, workspaces
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                weight_sq_norm(how)
                end.record()
                end.synchronize()
                times[how] = start.elapsed_time(end)
            except torch.cuda.OutOfMemoryError:
                torch.cuda.empty_cache()  # a method too big for this chunk is simply not a candidate
        _DEVICE_CHOICE[key] = min(times, key=times.get)
    return _DEVICE_CHOICE[key]


def _weight_sq_norm(u: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Σ over groups of ‖G Uᵀ‖²_F per example, for ``u [B, G, d, T]`` and ``g [B, G, p, T]``."""
    t, d, p = u.shape[3], u.shape[2], g.shape[2]
    return _ghost_sq_norm(u, g) if t * t * (d + p) < 2 * t * d * p else _bmm_sq_norm(u, g)


def _bmm_sq_norm(u: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """‖G Uᵀ‖²_F built explicitly, in slices that bound the ``[b, G, p, d]`` per-example gradients."""
    step = max(1, _EXPLICIT_CHUNK_ELEMENTS // max(1, u.shape[1] * g.shape[2] * u.shape[2]))
    out = [torch.matmul(g[s:s + step], u[s:s + step].transpose(2, 3)).pow(2).sum((1, 2, 3))
           for s in range(0, u.shape[0], step)]
    return torch.cat(out)


def _ghost_sq_norm(u: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """⟨UᵀU, GᵀG⟩ summed over groups: ‖G Uᵀ‖²_F without forming G Uᵀ (cost T²·(d+p))."""
    uu = torch.matmul(u.transpose(2, 3), u)  # [B, G, T, T]
    gg = torch.matmul(g.transpose(2, 3), g)
    return (uu * gg).sum((1, 2, 3))


def _batchnorm_sq_norm(module: nn.modules.batchnorm._BatchNorm, a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    # ∂γ = Σ g·x̂ with x̂ = (a − μ)·r, computed as (Σ g·a − μ·Σ g)·r: two passes over the activations
    # instead of four.  μ, r are running statistics, so nothing couples examples.
    dims = tuple(range(2, a.dim()))
    sum_g = g.sum(dims) if dims else g
    sq = torch.zeros(a.shape[0], dtype=g.dtype, device=g.device)
    if module.weight is not None and module.weight.requires_grad:
        sum_ga = (g * a).sum(dims) if dims else g * a
        inv_std = torch.rsqrt(module.running_var + module.eps)
        sq = sq + ((sum_ga - module.running_mean * sum_g) * inv_std).pow(2).sum(1)
    if module.bias is not None and module.bias.requires_grad:
        sq = sq + sum_g.pow(2).sum(1)
    return sq


def _layernorm_sq_norm(module: nn.LayerNorm, a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    norm_dims = tuple(range(a.dim() - len(module.normalized_shape), a.dim()))
    mean = a.mean(norm_dims, keepdim=True)
    var = a.var(norm_dims, unbiased=False, keepdim=True)
    xhat = (a - mean) * torch.rsqrt(var + module.eps)
    b = a.shape[0]
    sq = torch.zeros(b, dtype=g.dtype, device=g.device)
    # Sum over the dims between batch and the normalized ones (tokens), keep the normalized shape.
    if module.weight is not None and module.weight.requires_grad:
        sq = sq + (g * xhat).reshape(b, -1, *module.normalized_shape).sum(1).pow(2).reshape(b, -1).sum(1)
    if module.bias is not None and module.bias.requires_grad:
        sq = sq + g.reshape(b, -1, *module.normalized_shape).sum(1).pow(2).reshape(b, -1).sum(1)
    return sq


def _is_supported(module: nn.Module) -> bool:
    if isinstance(module, (nn.Conv1d, nn.Conv2d)):
        return module.padding_mode == "zeros"
    if isinstance(module, _BN):  # without running statistics eval mode still uses batch statistics
        return module.track_running_stats and module.running_mean is not None
    return isinstance(module, SUPPORTED_LAYERS)


def _has_trainable(module: nn.Module) -> bool:
    return any(p.requires_grad for p in module.parameters(recurse=False))


def _check_supported(model: nn.Module) -> None:
    bad = unsupported_layers(model)
    if bad:
        raise UnsupportedLayerError(
            f"The fast GraNd path cannot handle these layers exactly: {', '.join(bad)}. Supported: Linear, "
            "Conv1d/Conv2d (zero padding, any stride/dilation/groups), BatchNorm with running statistics (used in "
            "eval mode; without them BatchNorm normalises with batch statistics and per-example gradients are not "
            "defined) and LayerNorm. "
            "Use method='vmap' (exact, slower) for other layers; no layer is ever skipped silently.")
    if _shares_parameters(model):
        raise UnsupportedLayerError("Some parameters are shared between layers (tied weights); use method='vmap'.")


# ----------------------------------------------------------------------------- reference paths

def _vmap_chunk(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None, cotangent: Cotangent) -> torch.Tensor:
    from torch.func import functional_call, grad, vmap

    params = {k: p.detach() for k, p in model.named_parameters() if p.requires_grad}
    buffers = {k: b for k, b in model.named_buffers()}
    frozen = {k: p for k, p in model.named_parameters() if not p.requires_grad}

    def scalar(p, xi, yi):
        logits = check_logits(functional_call(model, (p, buffers, frozen), (xi.unsqueeze(0),)), 1)
        v = cotangent(logits.detach(), None if yi is None else yi.unsqueeze(0))
        return (logits * v).sum()

    in_dims = (None, 0, None if y is None else 0)
    grads = vmap(grad(scalar), in_dims=in_dims)(params, x, y)
    return torch.stack([g.reshape(g.shape[0], -1).pow(2).sum(1) for g in grads.values()]).sum(0).sqrt()


def _loop_chunk(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None, cotangent: Cotangent) -> torch.Tensor:
    params = [p for p in model.parameters() if p.requires_grad]
    out = []
    for i in range(x.shape[0]):
        with torch.enable_grad():
            logits = check_logits(model(x[i:i + 1]), 1)
            v = cotangent(logits.detach(), None if y is None else y[i:i + 1])
            grads = torch.autograd.grad((logits * v).sum(), params, allow_unused=True)
        out.append(sum(g.pow(2).sum() for g in grads if g is not None).sqrt())
    return torch.stack(out)


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    was = {m: m.training for m in model.modules()}
    model.eval()
    try:
        yield
    finally:
        for m, training in was.items():
            m.train(training)


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's parameters; a model without parameters, or with them on the meta device, is
    refused (there is nothing to score with)."""
    check_model_values(model)
    try:
        return next(model.parameters()).device
    except StopIteration:
        raise UnsupportedLayerError("The model has no parameters.") from None
