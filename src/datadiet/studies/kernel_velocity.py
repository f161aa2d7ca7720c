"""Kernel velocity along the EL2N ranking [Paul et al. (2021) § 5.1 and App. B.3, "Kernel velocity"].

One model is trained (seed ``setting.eval_seed_base``: not one of the scoring runs) and saved at a series of
steps.  At each step the empirical NTK submatrix of a block of ``block`` (100) examples is computed exactly:
with ψ_k(x) = ∂f_k(x)/∂θ the gradient of logit k over ALL parameters, the rows of Ψ_t [m·C, P] run over
every logit of every example and K_t = Ψ_t Ψ_tᵀ [m·C, m·C].  Blocks are contiguous windows of the examples
sorted by ascending mean early EL2N (the shared score runs), starting at a few quantiles of the ranking.
The paper's eq. (7) is

    v(t) = 1 − ⟨K_t, K_{t+1}⟩_F / (‖K_t‖_F ‖K_{t+1}‖_F)

between consecutive times one epoch apart; here v(t) = distance(K_t, K_{t+gap}) / gap with ``gap`` in epochs,
which is eq. (7) itself for the default gap of one epoch.  The model is in eval mode (BatchNorm uses its
running statistics), so each example's logits, and hence the kernel, do not depend on the other examples.

Cached in ``kernel_velocity/cache/<digest>/``: the model at each step (parameters and buffers, written
atomically) and each (pair of steps, block) result, so a re-run neither retrains nor recomputes a kernel.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, jacrev, vmap

from ..report import figures
from ..selection import rank_order
from ..stats import spearman
from ..data.transforms import Normalizer
from ..errors import ConfigError, DataDietError, unknown_name
from ..io import UnreadableFileError, load_json, write_json_atomic
from ..training import ensure_checkpoints, init_model, restore
from ..training.engine import resolve_device
from ..runs.identity import digest_ids
from ..runs.presets import ON_SCARCE, Setting, study_presets
from ..runs.workspace import Workspace
from .common import Study
NAME = "kernel_velocity"
TITLE = "Kernel velocity of examples along the EL2N ranking"
SOURCE = "Paul et al. (2021) § 5.1 / Fig. 5 (left) and App. B.3 (kernel velocity, eq. 7)"


@dataclass(frozen=True)
class Config:
    setting: Setting
    # times t (in epochs) at which v(t) = distance(K_t, K_{t+gap}) / gap; the default fits any budget of >= 5 epochs
    velocity_epochs: tuple[float, ...] = (0.0, 1.0, 2.0, 4.0)
    positions: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)  # block starts, as quantiles of the ranking
    block: int = 100                    # contiguous examples per kernel (the paper: 100)
    gap: float = 1.0                    # epochs between the two kernels (eq. 7: consecutive epochs)
    chunk: int | None = None            # examples per Jacobian (memory); None = the whole block at once
    score: str | None = None            # ranking score label; None = the setting's early EL2N

    def __post_init__(self) -> None:
        if self.block < 1:
            raise ConfigError(f"A kernel block needs at least one example, got --block {self.block}.")
        if self.gap <= 0:
            raise ConfigError(f"The gap between kernels must be positive, got {self.gap} epochs.")
        if not self.velocity_epochs:
            raise ConfigError("Give at least one time (--velocity-epochs) for the kernel velocity.")
        bad = [q for q in self.positions if not 0.0 <= q <= 1.0]
        if bad or not self.positions:
            raise ConfigError(f"Block positions are quantiles of the ranking in [0, 1], got {list(self.positions)}.")
        if self.chunk is not None and self.chunk < 1:
            raise ConfigError(f"chunk must be a positive number of examples, got {self.chunk}.")


PRESETS = study_presets(NAME, Config, settings=ON_SCARCE,
    smoke=dict(velocity_epochs=(0.0, 1.0), positions=(0.0, 0.5, 1.0), block=10),
    # quick: one 20-epoch training run (≈ 10 s) saved at 15 steps; 15 steps × 5 blocks = 75 kernels of
    # 1,000 × 1,000 over the small CNN's 38,330 parameters (≈ 2–4 s each on 2 cores): ≈ 3–5 min in all,
    # plus the shared score runs if they are not cached yet.
    quick=dict(velocity_epochs=(0.0, 1.0, 2.0, 3.0, 5.0, 8.0, 12.0, 16.0, 19.0)),
    # paper: ResNet18 (11.2 M parameters) on CIFAR-10: a block's Jacobian is 1,000 × 11.2 M (45 GB in
    # float32), so it is built 10 examples (4.5 GB) at a time and K assembled from pairs of chunks (≈ 9 GB
    # of GPU memory; 55 chunk Jacobians per kernel).  6 blocks × 24 models = 144 kernels, untimed here (no
    # GPU was available to this session); the 200-epoch training run dominates unless kernels are slow.
    paper=dict(velocity_epochs=(0.0, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0, 90.0, 120.0, 160.0, 199.0),
                    positions=(0.0, 0.2, 0.4, 0.6, 0.8, 1.0), chunk=10),
)


# ----------------------------------------------------------------------------- the kernel (pure)

def logit_jacobian(model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """Ψ [m·C, P]: row i·C + a is ∂f_a(x_i)/∂θ over every parameter (in ``named_parameters`` order)."""
    return torch.cat(jacobian_parts(model, inputs), dim=1)


def jacobian_parts(model: nn.Module, inputs: torch.Tensor) -> list[torch.Tensor]:
    """Ψ split by parameter tensor: one [m·C, P_p] matrix per parameter (concatenating them would need a
    second copy of the largest object here, Ψ itself).

    One reverse-mode Jacobian per example (vmapped), the model in eval mode so BatchNorm uses its running
    statistics and examples do not interact."""
    model.eval()
    params = {k: v.detach() for k, v in model.named_parameters()}
    buffers = {k: v.detach() for k, v in model.named_buffers()}

    def logits_of(p: dict, x: torch.Tensor) -> torch.Tensor:
        return functional_call(model, (p, buffers), (x.unsqueeze(0),)).squeeze(0)

    jac = vmap(jacrev(logits_of), in_dims=(None, 0))(params, inputs)  # name → [m, C, *shape]
    return [j.reshape(j.shape[0] * j.shape[1], -1) for j in jac.values()]


def gram_of(parts_a: list[torch.Tensor], parts_b: list[torch.Tensor]) -> torch.Tensor:
    """Ψ_a Ψ_bᵀ as the sum over parameter tensors, accumulated in the Jacobians' dtype (float32: relative
    error ≈ 1e-6, far below the smallest velocities measured) and returned as float64."""
    return sum(a @ b.T for a, b in zip(parts_a, parts_b)).double()


def ntk_gram(model: nn.Module, inputs: torch.Tensor, chunk: int | None = None) -> torch.Tensor:
    """K = Ψ Ψᵀ [m·C, m·C] (float64), built from Jacobians of ``chunk`` examples at a time.

    With chunks, each off-diagonal block K[a, b] = Ψ_a Ψ_bᵀ needs two chunk Jacobians in memory at once;
    they are recomputed rather than stored (n + n(n−1)/2 Jacobians for n chunks)."""
    chunk = chunk or len(inputs)
    starts = list(range(0, len(inputs), chunk))
    blocks: dict[tuple[int, int], torch.Tensor] = {}
    for i, a in enumerate(starts):
        psi_a = jacobian_parts(model, inputs[a:a + chunk])
        for b in starts[i:]:
            psi_b = psi_a if b == a else jacobian_parts(model, inputs[b:b + chunk])
            blocks[a, b] = gram_of(psi_a, psi_b)
            blocks[b, a] = blocks[a, b].T
            del psi_b
        del psi_a
    return torch.cat([torch.cat([blocks[a, b] for b in starts], dim=1) for a in starts], dim=0)


def kernel_distance(k1: torch.Tensor | np.ndarray, k2: torch.Tensor | np.ndarray) -> float:
    """1 − ⟨K1, K2⟩_F / (‖K1‖_F ‖K2‖_F): 0 for proportional kernels, 1 for orthogonal ones (eq. 7)."""
    a = torch.as_tensor(k1, dtype=torch.float64)
    b = torch.as_tensor(k2, dtype=torch.float64)
    if a.shape != b.shape:
        raise DataDietError(f"Kernel distance needs matrices of one shape, got {tuple(a.shape)} and {tuple(b.shape)}.")
    norms = float(torch.linalg.norm(a)) * float(torch.linalg.norm(b))
    if norms == 0.0:
        raise DataDietError("Kernel distance of a zero matrix is undefined: every logit gradient vanished.")
    return 1.0 - float((a * b).sum()) / norms


def block_starts(n: int, block: int, quantiles: tuple[float, ...]) -> list[int]:
    """First rank of each block: quantile q of the ranking starts at round(q·(n − block)), so q = 1 is the
    top ``block`` examples; distinct starts, ascending."""
    return sorted({round(q * (n - block)) for q in quantiles})


def velocity_pairs(epochs: tuple[float, ...], gap: float, per_epoch: int) -> list[tuple[float, int, int]]:
    """(t, step at t, step at t + gap) for every t."""
    return [(t, round(t * per_epoch), round((t + gap) * per_epoch)) for t in epochs]


# ----------------------------------------------------------------------------- the analysis

def run(config: Config, ws: Workspace) -> dict:
    setting = config.setting
    label = config.score or setting.early("el2n")
    splits = ws.splits(setting.data)
    train_cfg = ws.train(replace(setting.train, seed=setting.eval_seed_base))
    n = len(splits.train)
    schedule = train_cfg.schedule(train_size=n)
    total, per_epoch = schedule.total, schedule.per_epoch
    pairs = velocity_pairs(config.velocity_epochs, config.gap, per_epoch)
    check_fits(config, n, total, pairs)

    tables = ws.scores(setting)
    if label not in tables:
        raise unknown_name("ranking score", label, tuple(tables))
    # The table's rows are the training split's examples in its order (load_scores checks it against the split), so
    # a position in the ranking is a position in the split.
    order = rank_order(tables[label].mean, tables[label].ids)
    starts = block_starts(n, config.block, config.positions)
    blocks = {s: order[s:s + config.block] for s in starts}

    cache = ws.run_cache(NAME, ws.data(setting.data), train_cfg)
    steps = sorted({s for _, a, b in pairs for s in (a, b)})
    if not ensure_checkpoints(train_cfg, splits, cache / "models", steps, log=lambda m: ws.log(f"{NAME}: {m}")):
        ws.log(f"{NAME}: models at {len(steps)} steps cached")
    rows = velocity_rows(config, pairs, blocks, tables[label], splits, train_cfg, cache, per_epoch, ws.log)

    folder = ws.folder(NAME)
    plot_velocity_vs_time(rows, folder / "velocity_vs_epoch.png")
    plot_velocity_vs_rank(rows, folder / "velocity_vs_rank.png")
    return STUDY.write_section(folder, config, findings=findings(rows, label, config),
        tables={"velocity.csv": rows},
        figures={"velocity_vs_epoch.png": f"kernel velocity against training time, one curve per block of "
                                                f"{config.block} examples along the ascending {label} ranking",
                       "velocity_vs_rank.png": "kernel velocity against the block's first rank (paper layout), one "
                                               "curve per time"},
        summary={"velocity": {f"rank{r['start']}@epoch{r['epoch']:g}": r["velocity"] for r in rows}})


def check_fits(config: Config, n: int, total: int, pairs: list[tuple[float, int, int]]) -> None:
    """What the config can only be checked against once the data and budget are known."""
    if config.block > n:
        raise ConfigError(f"A kernel block of {config.block} examples does not fit the {n} training examples; "
                          "lower --block (the paper uses 100 of 50,000).")
    late = [t for t, a, b in pairs if a < 0 or b > total]
    if late:
        raise ConfigError(f"Velocities at epochs {late} need the model {config.gap:g} epoch(s) later, beyond the "
                          f"{total}-step budget; choose times between 0 and the budget minus the gap.")


def load_model(train_cfg, splits, folder: Path, step: int, device: torch.device) -> nn.Module:
    model = init_model(train_cfg, splits.train)
    restore(model, folder, step)
    return model.to(device).eval()


def velocity_rows(config: Config, pairs, blocks: dict[int, np.ndarray], table, splits, train_cfg, cache: Path,
                  per_epoch: int, log) -> list[dict]:
    """One row per (time, block); a cached result is read, a missing one computed (kernels of one step
    are kept in memory for the next pair that needs them)."""
    device = resolve_device(train_cfg.device)
    normalize = Normalizer(splits.mean, splits.std, device)
    ids = splits.train.ids.numpy()
    scores = dict(zip(table.ids.tolist(), table.mean.tolist()))
    grams: dict[int, dict[int, torch.Tensor]] = {}

    def kernels(step: int) -> dict[int, torch.Tensor]:
        if step not in grams:
            model = load_model(train_cfg, splits, cache / "models", step, device)
            grams[step] = {s: ntk_gram(model, normalize(splits.train.images[torch.as_tensor(rows)].to(device)),
                                       config.chunk).cpu() for s, rows in blocks.items()}
        return grams[step]

    out = []
    for t, a, b in pairs:
        for step in [s for s in grams if s not in (a, b)]:  # consecutive pairs share a step; keep only those
            del grams[step]
        for start, rows in blocks.items():
            block_ids = ids[rows]
            path = cache / "kernels" / f"{a:09d}-{b:09d}-{digest_ids(block_ids)}.json"
            result = _cached_kernel_distance(path)
            if result is None:
                k_a, k_b = kernels(a)[start], kernels(b)[start]
                result = {"distance": kernel_distance(k_a, k_b), "norm_a": float(torch.linalg.norm(k_a)),
                          "norm_b": float(torch.linalg.norm(k_b))}
                write_json_atomic(path, result)
            dt = (b - a) / per_epoch
            block_scores = [scores[int(i)] for i in block_ids]
            out.append({"epoch": t, "step": a, "next_step": b, "dt_epochs": dt, "start": start,
                        "rank_quantile": start / max(len(ids) - len(rows), 1), "examples": len(rows),
                        "score_min": min(block_scores), "score_max": max(block_scores),
                        "distance": result["distance"], "velocity": result["distance"] / dt,
                        "kernel_norm": result["norm_a"], "kernel_norm_next": result["norm_b"]})
        log(f"{NAME}: epoch {t:g} done")
    return out


# ----------------------------------------------------------------------------- figures and findings

def plot_velocity_vs_time(rows: list[dict], path: Path) -> Path:
    """One curve per block against the epoch."""
    return _plot_velocity(rows, path, x="epoch", curve="start", cmap="viridis", xlabel="epoch t",
                          name=lambda start, mine: f"ranks {start}–{start + mine[0]['examples'] - 1}",
                          title="kernel velocity by ascending EL2N rank")


def plot_velocity_vs_rank(rows: list[dict], path: Path) -> Path:
    """One curve per time against the block's first rank (the paper's layout)."""
    return _plot_velocity(rows, path, x="start", curve="epoch", cmap="plasma",
                          xlabel="first rank of the block (ascending score)",
                          name=lambda epoch, _: f"epoch {epoch:g}", title=None)


def _plot_velocity(rows: list[dict], path: Path, *, x: str, curve: str, cmap: str, xlabel: str, name, title) -> Path:
    plt = figures.pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    colors = plt.get_cmap(cmap)
    keys = sorted({r[curve] for r in rows})
    for i, key in enumerate(keys):
        mine = sorted((r for r in rows if r[curve] == key), key=lambda r: r[x])
        ax.plot([r[x] for r in mine], [r["velocity"] for r in mine], marker="o",
                color=colors(i / max(len(keys) - 1, 1)), label=name(key, mine))
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("kernel velocity (1 − cos(K_t, K_t+Δ)) / Δ, per epoch")
    if title:
        ax.set_title(title)
    ax.legend(fontsize=7, ncol=2 if len(keys) > 6 else 1)
    return figures.save(fig, path)


def findings(rows: list[dict], label: str, config: Config) -> list[str]:

    starts = sorted({r["start"] for r in rows})
    epochs = sorted({r["epoch"] for r in rows})
    at = {(r["epoch"], r["start"]): r["velocity"] for r in rows}
    low, high = starts[0], starts[-1]
    lines = [f"Kernel velocity of the {config.block} lowest-{label} examples vs the {config.block} highest: "
             + "; ".join(f"epoch {e:g}: {at[e, low]:.3g} vs {at[e, high]:.3g}" for e in epochs) + "."]
    if len(starts) > 1:
        rho = [spearman(np.array(starts, float), np.array([at[e, s] for s in starts])) for e in epochs]
        higher = sum(at[e, high] > at[e, low] for e in epochs)
        lines.append(f"The highest-score block moves faster than the lowest-score block at {higher} of {len(epochs)} "
                     f"times; Spearman of velocity with rank position, per time: "
                     + ", ".join(f"{r:.2f}" for r in rho) + " (Paul et al.: the kernel keeps changing longest on "
                     "high-score examples).")
    first, last = epochs[0], epochs[-1]
    mean_first = np.mean([at[first, s] for s in starts])
    mean_last = np.mean([at[last, s] for s in starts])
    if len(epochs) > 1:
        trend = "falls" if mean_last < mean_first else "rises"
        lines.append(f"Averaged over blocks, the velocity {trend} from {mean_first:.3g} per epoch at epoch {first:g} "
                     f"to {mean_last:.3g} at epoch {last:g} (ratio {mean_first / max(mean_last, 1e-300):.3g}).")
    return lines



def _cached_kernel_distance(path) -> dict | None:
    """A block's cached kernel distance, or None when there is none or the cache file is damaged (it is then
    computed again and rewritten: a cache never decides an error)."""
    if not path.exists():
        return None
    try:
        result = load_json(path)
    except UnreadableFileError:
        return None
    return result if isinstance(result, dict) and {"distance", "norm_a", "norm_b"} <= set(result) else None

STUDY = Study(NAME, TITLE, SOURCE, Config, PRESETS, run, doc=__doc__)
