"""Linear mode connectivity of children spawned from a parent run, on easy, hard and random examples
[Paul et al. (2021) § 5.2 / Fig. 5 (right) and App. B.3, "Linear mode connectivity"; Frankle et al. (2020)].

A parent trains (seed ``setting.eval_seed_base``) and is saved at each spawn epoch t.  From the parent's state
at step k = t epochs (parameters, BatchNorm buffers and SGD momentum), two children train to the end of the
budget under the same learning-rate schedule but with different data orders and augmentation (their own
seeds).  Along the straight line θ(α) = (1 − α) θ₁ + α θ₂ (``alphas`` evenly spaced points, ends included) the
classification error is measured on three sets of training examples: ``eval_set_size`` (1,000) random ones, the
highest-EL2N ones and the lowest-EL2N ones, EL2N being that of the parent at ``el2n_epoch`` (the paper: epoch
10 of the parent run).  The error barrier follows Frankle et al. (2020), whom the paper follows:

    barrier = max_α E(θ(α)) − (E(θ₁) + E(θ₂)) / 2,

the largest rise in error along the path above the mean of the endpoints (≥ 0 since the endpoints are on the
path; 0 when the children are linearly connected).

BatchNorm.  The paper does not say what it did with the running statistics.  By default (``bn="interpolate"``)
they are interpolated with the parameters, i.e. the whole state dict: the path's endpoints are then exactly
the two trained children (so E(θ₁), E(θ₂) are their own errors) and nothing is fitted along the way.
Interpolated statistics need not match the activations of the interpolated network (Jordan et al., 2022,
"REPAIR"), which can only raise the barrier; ``bn="recompute"`` instead re-estimates them at every α (the
endpoints included, so the comparison stays fair) as the average over the un-augmented training set, in
batches of the training batch size.

Cached in ``mode_connectivity/cache/<digest>/``: the parent's checkpoints and EL2N, and each child's final
state (written to a temporary file, then renamed; read with ``weights_only=True``), so a re-run only
re-evaluates the paths.  Children are trained here, not through the sweep: they start from a saved state.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..report import figures
from ..selection import rank_order
from ..data.transforms import Normalizer
from ..errors import ConfigError, DataDietError
from ..io import atomic_path, read_npy
from ..runs.scoring import score_model
from ..training import StartFrom, classification_error, ensure_checkpoints, init_model, resolve_device, train
from ..runs.presets import ON_SCARCE, Setting, study_presets
from ..runs.workspace import Workspace
from .common import Study
NAME = "mode_connectivity"
TITLE = "Linear mode connectivity: error barriers on easy, hard and random examples"
SOURCE = "Paul et al. (2021) § 5.2 / Fig. 5 (right) and App. B.3; barrier as in Frankle et al. (2020)"

BN_MODES = ("interpolate", "recompute")
STABLE = 0.02  # Frankle et al. call children "stable" when the barrier is within 2 % error
SUBSET_NAMES = {"random": "random", "high_el2n": "highest EL2N", "low_el2n": "lowest EL2N"}


@dataclass(frozen=True)
class Config:
    setting: Setting
    spawn_epochs: tuple[float, ...] = (0.0, 1.0, 2.0, 4.0)  # parent epochs t at which the two children are spawned
    alphas: int = 11                    # evenly spaced points on the path, both ends included
    eval_set_size: int = 1000             # training examples per evaluation set (the paper: 1,000)
    el2n_epoch: float | None = None     # EL2N of the parent at this epoch; None = the setting's score epoch
    bn: str = "interpolate"             # BatchNorm statistics along the path: "interpolate" or "recompute"
    child_seeds: tuple[int, int] = (1, 2)  # added to the parent's seed: the children's data-order seeds
    subset_seed: int = 0                # draws the random evaluation set

    def __post_init__(self) -> None:
        if self.bn not in BN_MODES:
            raise ConfigError(f"bn must be one of {BN_MODES} (what to do with BatchNorm statistics along the path), "
                              f"got {self.bn!r}.")
        if self.alphas < 2:
            raise ConfigError(f"The path needs at least its two endpoints; got alphas={self.alphas}.")
        if self.eval_set_size < 1:
            raise ConfigError(f"Evaluation sets need at least one example, got --eval-set-size {self.eval_set_size}.")
        if not self.spawn_epochs:
            raise ConfigError("Give at least one spawn epoch (--spawn-epochs).")
        if len(set(self.child_seeds)) != 2:
            raise ConfigError(f"Two children need two different seeds, got {self.child_seeds}.")


PRESETS = study_presets(NAME, Config, settings=ON_SCARCE,
    smoke=dict(spawn_epochs=(0.0, 1.0), eval_set_size=100),
    # quick: parent ≈ 12 epochs (≈ 6 s), then 2 children from each of 7 spawn epochs trained to epoch 20:
    # 2 × (20 + 19.5 + 19 + 18 + 16 + 12 + 8) = 225 epochs ≈ 2 min at ≈ 10 s per 20 epochs; 7 paths × 11
    # points × 3,000 examples are evaluated in seconds: ≈ 2–4 min in all.
    quick=dict(spawn_epochs=(0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 12.0)),
    # paper: CIFAR-10 / ResNet18, EL2N at epoch 10 of the parent (App. B.3); 18 children of ≤ 200 epochs.
    paper=dict(spawn_epochs=(0.0, 1.0, 2.0, 4.0, 6.0, 8.0, 10.0, 15.0, 20.0), el2n_epoch=10.0),
)


# ----------------------------------------------------------------------------- pure pieces

def alpha_grid(points: int) -> np.ndarray:
    """``points`` evenly spaced α in [0, 1]; the ends are exactly 0 and 1."""
    return np.linspace(0.0, 1.0, points)


def interpolate_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], alpha: float) -> dict:
    """(1 − α)·a + α·b for every floating tensor (parameters and BatchNorm statistics); integer buffers
    (``num_batches_tracked``) are taken from ``a``.  ``torch.lerp`` is exact at α = 0 and 1 and when a = b."""
    if a.keys() != b.keys():
        raise ConfigError("Cannot interpolate two models with different parameters; both children must share "
                          "the parent's architecture.")
    return {k: torch.lerp(a[k], b[k].to(a[k].dtype), float(alpha)) if a[k].is_floating_point() else a[k].clone()
            for k in a}


def error_barrier(errors) -> float:
    """max error along the path minus the mean of its two endpoints (Frankle et al., 2020)."""
    errors = np.asarray(errors, dtype=np.float64)
    return float(errors.max() - (errors[0] + errors[-1]) / 2)


def subset_rows(el2n: np.ndarray, size: int, seed: int) -> dict[str, np.ndarray]:
    """Row positions of the three evaluation sets: ``size`` random examples, the ``size`` highest and the
    ``size`` lowest EL2N (ties broken by position)."""
    order = rank_order(el2n)  # ascending EL2N, ties by position
    rng = np.random.default_rng(seed)
    return {"random": np.sort(rng.choice(len(el2n), size=size, replace=False)),
            "high_el2n": np.sort(order[-size:]), "low_el2n": np.sort(order[:size])}


@torch.no_grad()
def recompute_bn_statistics(model: nn.Module, x: torch.Tensor, batch_size: int) -> None:
    """Reset every BatchNorm's running statistics to the plain average of the batch statistics over ``x`` in
    full batches (momentum None = cumulative average), then leave the model in eval mode."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    batch_size = min(batch_size, len(x))
    for s in range(0, len(x) - batch_size + 1, batch_size):  # full batches only, as in training
        model(x[s:s + batch_size])
    for m, momentum in zip(norms, saved):
        m.momentum = momentum
    model.eval()


def errors_along_path(model: nn.Module, a: dict, b: dict, alphas: np.ndarray,
                      subsets: dict[str, tuple[torch.Tensor, torch.Tensor]], *, bn: str = "interpolate",
                      bn_data: torch.Tensor | None = None, bn_batch: int = 128) -> list[dict]:
    """Error of θ(α) on every evaluation set, one row per (α, set); ``model`` is only a container."""
    rows = []
    for alpha in alphas:
        model.load_state_dict(interpolate_state(a, b, alpha))
        if bn == "recompute":
            recompute_bn_statistics(model, bn_data, bn_batch)
        for name, (x, y) in subsets.items():
            rows.append({"alpha": float(alpha), "subset": name, "error": classification_error(model, x, y)})
    return rows


def barrier_rows(path: list[dict]) -> list[dict]:
    """Per (spawn, set): endpoint errors, the worst point and the barrier."""
    out = []
    rank = {name: i for i, name in enumerate(SUBSET_NAMES)}
    keys = sorted({(r["spawn_epoch"], r["spawn_step"], r["subset"]) for r in path},
                  key=lambda key: (key[1], rank.get(key[2], len(rank)), key[2]))
    for epoch, step, subset in keys:
        mine = sorted((r for r in path if r["spawn_step"] == step and r["subset"] == subset), key=lambda r: r["alpha"])
        errors = [r["error"] for r in mine]
        worst = int(np.argmax(errors))
        out.append({"spawn_epoch": epoch, "spawn_step": step, "subset": subset, "error_child_1": errors[0],
                    "error_child_2": errors[-1], "max_error": errors[worst], "alpha_at_max": mine[worst]["alpha"],
                    "barrier": error_barrier(errors)})
    return out


# ----------------------------------------------------------------------------- the analysis

def run(config: Config, ws: Workspace) -> dict:
    setting = config.setting
    splits = ws.splits(setting.data)
    parent_cfg = ws.train(replace(setting.train, seed=setting.eval_seed_base))
    n = len(splits.train)
    schedule = parent_cfg.schedule(train_size=n)
    el2n_epoch = setting.score_epoch if config.el2n_epoch is None else config.el2n_epoch
    check_fits(config, n, schedule.total, schedule.per_epoch, el2n_epoch)
    spawns = {t: schedule.step_at(t) for t in config.spawn_epochs}
    el2n_step = schedule.step_at(el2n_epoch)
    seeds = [parent_cfg.seed + s for s in config.child_seeds]

    cache = ws.run_cache(NAME, ws.data(setting.data), parent_cfg)
    child_path = {(k, s): cache / "children" / f"spawn{k:09d}-seed{s}.pt" for k in spawns.values() for s in seeds}
    needed = sorted({k for (k, _), p in child_path.items() if not p.is_file()})
    el2n = ensure_parent(parent_cfg, splits, cache, needed, el2n_step, ws.log)
    for (k, seed), path in sorted(child_path.items()):
        ensure_child(replace(parent_cfg, seed=seed), splits, cache / "parent", k, path, ws.log)

    device = resolve_device(parent_cfg.device)
    normalize = Normalizer(splits.mean, splits.std, device)
    rows = subset_rows(el2n, config.eval_set_size, config.subset_seed)
    subsets = {name: (normalize(splits.train.images[torch.as_tensor(r)].to(device)),
                      splits.train.labels[torch.as_tensor(r)].to(device)) for name, r in rows.items()}
    bn_data = normalize(splits.train.images.to(device)) if config.bn == "recompute" else None
    container = init_model(parent_cfg, splits.train).to(device)
    path, children = [], []
    for t, k in sorted(spawns.items()):
        a, b = (load_child(child_path[k, s]) for s in seeds)
        children += [{"spawn_epoch": t, "spawn_step": k, "seed": s, "test_accuracy": c["test_accuracy"]}
                     for s, c in zip(seeds, (a, b))]
        for row in errors_along_path(container, a["model"], b["model"], alpha_grid(config.alphas), subsets,
                                     bn=config.bn, bn_data=bn_data, bn_batch=parent_cfg.batch_size):
            path.append({"spawn_epoch": t, "spawn_step": k, **row})
    barriers = barrier_rows(path)

    folder = ws.folder(NAME)
    plot_paths(path, folder / "error_paths.png")
    plot_barriers(barriers, folder / "barrier.png")
    return STUDY.write_section(folder, config, findings=findings(barriers, children, config, el2n_epoch),
        tables={"barrier.csv": barriers, "path.csv": path, "children.csv": children},
        figures={"error_paths.png": f"training error along the linear path between the two children, per evaluation set "
                            f"({config.eval_set_size} examples each), one curve per spawn epoch",
         "barrier.png": "error barrier (max error on the path − mean of the endpoints) against the spawn epoch"},
        summary={"barrier": {f"{r['subset']}@epoch{r['spawn_epoch']:g}": r["barrier"] for r in barriers}})


def check_fits(config: Config, n: int, total: int, per_epoch: int, el2n_epoch: float) -> None:
    """What the config can only be checked against once the data and budget are known."""
    if config.eval_set_size > n:
        raise ConfigError(f"Evaluation sets of {config.eval_set_size} examples do not fit the {n} training examples; "
                          "lower --eval-set-size (the paper uses 1,000 of 50,000).")
    late = [t for t in (*config.spawn_epochs, el2n_epoch) if not 0 <= round(t * per_epoch) <= total]
    if late:
        raise ConfigError(f"Epochs {late} lie outside the {total / per_epoch:g}-epoch budget; spawn children and "
                          "score EL2N within it.")


def ensure_parent(parent_cfg, splits, cache: Path, spawn_steps: list[int], el2n_step: int, log) -> np.ndarray:
    """The parent's EL2N at ``el2n_step`` (cached) and its checkpoints at the spawn steps whose children are
    missing; trains the parent only as far as one of them is not on disk, continuing its saved run."""
    el2n_file = cache / f"parent_el2n_step{el2n_step:09d}.npy"

    def save_el2n(model, step):
        with atomic_path(el2n_file) as tmp, open(tmp, "wb") as fh:
            np.save(fh, score_model(model, splits, ["el2n"])["el2n"])

    ensure_checkpoints(parent_cfg, splits, cache / "parent", spawn_steps,
                       hooks={} if el2n_file.is_file() else {el2n_step: save_el2n},
                       log=lambda m: log(f"{NAME}: parent: {m}"))
    return read_npy(el2n_file, what="a cached EL2N score of the parent", error=DataDietError,
                    fix="Delete it and run the same command again: it is computed again from the parent's run.")


def ensure_child(child_cfg, splits, parent_dir: Path, step: int, path: Path, log) -> None:
    """Train a child from the parent's state at ``step`` to the end of the budget, unless it is on disk."""
    if path.is_file():
        return
    log(f"{NAME}: child seed {child_cfg.seed} from step {step}")
    result = train(child_cfg, splits, start_from=StartFrom.from_checkpoint(parent_dir, step), progress=False,
                   log=lambda _: None)
    state = {k: v.detach().cpu().contiguous() for k, v in result.model.state_dict().items()}
    with atomic_path(path) as tmp:
        torch.save({"model": state, "test_accuracy": result.test_accuracy, "spawn_step": step,
                    "seed": child_cfg.seed, "steps": result.steps}, tmp)


def load_child(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


# ----------------------------------------------------------------------------- figures and findings


def plot_paths(path: list[dict], out: Path) -> Path:
    plt = figures.pyplot()
    subsets = [s for s in SUBSET_NAMES if any(r["subset"] == s for r in path)]
    fig, axes = plt.subplots(1, len(subsets), figsize=(4.2 * len(subsets), 3.8), sharey=True, squeeze=False)
    cmap = plt.get_cmap("viridis")
    epochs = sorted({r["spawn_epoch"] for r in path})
    for ax, subset in zip(axes[0], subsets):
        for i, epoch in enumerate(epochs):
            mine = sorted((r for r in path if r["subset"] == subset and r["spawn_epoch"] == epoch),
                          key=lambda r: r["alpha"])
            ax.plot([r["alpha"] for r in mine], [r["error"] for r in mine], marker=".",
                    color=cmap(i / max(len(epochs) - 1, 1)), label=f"spawn epoch {epoch:g}")
        ax.set_title(SUBSET_NAMES[subset])
        ax.set_xlabel("α (child 1 → child 2)")
    axes[0][0].set_ylabel("training error")
    axes[0][-1].legend(fontsize=7)
    return figures.save(fig, out)


def plot_barriers(barriers: list[dict], out: Path) -> Path:
    plt = figures.pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for subset, label in SUBSET_NAMES.items():
        mine = sorted((r for r in barriers if r["subset"] == subset), key=lambda r: r["spawn_epoch"])
        if mine:
            ax.plot([r["spawn_epoch"] for r in mine], [r["barrier"] for r in mine], marker="o", label=label)
    ax.axhline(STABLE, color="gray", linestyle=":", linewidth=1, label=f"{STABLE:.0%} (stable)")
    ax.set_xlabel("spawn epoch t")
    ax.set_ylabel("error barrier")
    ax.legend(fontsize=8)
    return figures.save(fig, out)


def findings(barriers: list[dict], children: list[dict], config: Config, el2n_epoch: float) -> list[str]:
    at = {(r["subset"], r["spawn_epoch"]): r["barrier"] for r in barriers}
    epochs = sorted({r["spawn_epoch"] for r in barriers})
    lines = []
    for subset, label in SUBSET_NAMES.items():
        stable = next((e for e in epochs if at[subset, e] <= STABLE), None)
        when = f"first ≤ {STABLE:.0%} when spawned at epoch {stable:g}" if stable is not None else \
            f"never ≤ {STABLE:.0%} up to epoch {epochs[-1]:g}"
        lines.append(f"Error barrier on the {config.eval_set_size} {label} examples: "
                     + ", ".join(f"{at[subset, e]:.3f} (t={e:g})" for e in epochs) + f"; {when}.")
    above = sum(at["high_el2n", e] > at["low_el2n", e] for e in epochs)
    lines.append(f"The highest-EL2N examples (EL2N of the parent at epoch {el2n_epoch:g}) have the larger barrier "
                 f"at {above} of {len(epochs)} spawn epochs (Paul et al.: the barrier vanishes early on the "
                 "lowest-score examples and later on the highest-score ones).")
    accs = [c["test_accuracy"] for c in children if c["test_accuracy"] is not None]
    if accs:
        lines.append(f"Children's final test accuracy: {min(accs):.4f}–{max(accs):.4f} "
                     f"(BatchNorm statistics along the path: {config.bn}).")
    return lines


STUDY = Study(NAME, TITLE, SOURCE, Config, PRESETS, run, doc=__doc__)
