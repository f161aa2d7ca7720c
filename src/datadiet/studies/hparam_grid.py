"""EL2N from the runs of a hyperparameter search [Paul et al. (2021) App. E.4, Fig. 14].

A hyperparameter search trains many networks anyway; their EL2N scores early in training, averaged over the
whole learning-rate × weight-decay grid, may serve as well as EL2N averaged over as many runs with the best
(here: the default) hyperparameters. Both ensembles score the same examples at the same epoch; they are
compared by Spearman rank correlation and by pruning at each kept fraction (evaluation always with the
default recipe), against random subsets. Paul et al.: "EL2N scores calculated during hyperparameter
optimization perform as well as EL2N scores calculated using optimal hyperparameters".

Every grid cell gets its own block of seeds (``grid_seed`` on), distinct from the default ensemble's seeds
``0..n−1`` and from the evaluation seeds, so no network is shared between the two ensembles. A cell whose
training diverges (NaN loss or scores) is reported and left out of the grid average, as a search would.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..methods import Method
from ..report import figures
from ..config import check_counts, check_keeps
from ..report.tables import curve_table, interval_coverage
from ..errors import ConfigError, DataDietError, NonFiniteLossError
from ..scores.registry import ScoreKind, score_spec
from ..scores.store import ScoreFileError
from ..runs.presets import ON_SCARCE, Setting, study_presets
from ..runs.workspace import ScoreDraws, Workspace
from .common import Study, accuracy_rows, baseline_tasks, pruning_tasks
from ..stats import spearman
from .compare import accuracies, contrast, interval_text, mean_or_nan, relation, verdict

NAME = "hparam_grid"
TITLE = "EL2N from a hyperparameter grid against EL2N at the best hyperparameters"
SOURCE = "Paul et al. (2021) App. E.4, Fig. 14"


@dataclass(frozen=True)
class Config:
    setting: Setting
    lrs: tuple[float, ...] = (0.05, 0.1, 0.2)            # the grid's learning rates
    weight_decays: tuple[float, ...] = (1e-4, 5e-4)      # the grid's weight decays
    keeps: tuple[float, ...] = (0.3, 0.5, 0.7)           # kept fractions
    runs_per_cell: int = 1
    score: str = "el2n"                 # a model score, taken at setting.score_epoch
    grid_seed: int = 100                # cell i trains seeds grid_seed + i·runs_per_cell, ...

    def __post_init__(self) -> None:
        check_keeps(self.keeps)
        check_grid(self)


def grid_cells(config: Config, draw: int = 0) -> list[dict]:
    """One dict per grid cell of score draw ``draw``: lr, weight decay and its first seed (consecutive blocks from
    ``grid_seed``; draw d's grid follows draw d − 1's)."""
    cells = [(lr, wd) for lr in config.lrs for wd in config.weight_decays]
    return [{"lr": lr, "weight_decay": wd, "seed": config.grid_seed + (draw * len(cells) + i) * config.runs_per_cell}
            for i, (lr, wd) in enumerate(cells)]


def check_grid(config: Config) -> None:
    """Reject grids that cannot run or whose networks would overlap the default ensemble or the evaluation."""
    if not config.lrs or not config.weight_decays:
        raise ConfigError("The hyperparameter grid is empty: give at least one learning rate and one weight decay.")
    if any(lr <= 0 for lr in config.lrs) or any(wd < 0 for wd in config.weight_decays):
        raise ConfigError(f"Learning rates must be > 0 and weight decays >= 0; got lrs {config.lrs}, weight decays "
                          f"{config.weight_decays}.")
    check_counts(config, ("runs_per_cell",))
    if score_spec(config.score).kind is not ScoreKind.MODEL:
        raise ConfigError(f"{config.score!r} is not scored from a model during training; use el2n, grand or "
                          "score1..3.")
    setting = config.setting
    total = len(config.lrs) * len(config.weight_decays) * config.runs_per_cell * setting.draws_used  # every draw
    grid = range(config.grid_seed, config.grid_seed + total)
    taken = {"the default ensemble": range(0, total),
             "the evaluation runs": range(setting.eval_seed_base, setting.eval_seed_base + setting.eval_seeds)}
    for what, seeds in taken.items():
        if set(grid) & set(seeds):
            raise ConfigError(f"Grid seeds {grid.start}..{grid.stop - 1} overlap the seeds of {what} "
                              f"({seeds.start}..{seeds.stop - 1}); choose another grid_seed.")


PRESETS = study_presets(NAME, Config, settings=ON_SCARCE,
    # smoke: 3 cells × 1 short run, 3 default runs (EL2N only, stopped at epoch 1); 2 × 2 + 4 evaluation runs.
    smoke=dict(lrs=(0.05, 0.1, 0.2), weight_decays=(5e-4,), keeps=(0.5,)),
    # quick: 6 cells × 1 run and 6 default runs, each trained only to the scoring epoch (2 of 20 epochs, EL2N
    # only: ≈ 3–5 s each, ≲ 1 min in all); 2 methods × 3 fractions × 3 seeds = 18 runs + 9 random + 3 full =
    # 30 evaluation runs ≈ 5 min at ≈ 10 s a run (random and full are shared with the other analyses).
    quick=dict(lrs=(0.05, 0.1, 0.2), weight_decays=(1e-4, 5e-4), keeps=(0.3, 0.5, 0.7)),
    # Fig. 14: lr ∈ {0.2, 0.1, 0.05} × weight decay ∈ {1e-3, 5e-4, 1e-4}, one ResNet18 per cell, EL2N at epoch
    # 20, against 9 ResNet18s at the default (optimal) recipe.
    paper=dict(lrs=(0.2, 0.1, 0.05), weight_decays=(1e-3, 5e-4, 1e-4), keeps=(0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3)),
)


def default_ensemble(ws: Workspace, setting: Setting, label: str, n: int, draw: int = 0) -> np.ndarray:
    """[n, N] scores of n default-recipe runs, as many as the grid of score draw ``draw`` kept (seeds d·n … d·n+n−1).
    For draw 0, the first n of the standard, shared runs when there are enough of them (a score at epoch t does not
    depend on how long the run goes on after t); otherwise n runs of this score alone."""
    if draw == 0 and n <= setting.score_runs:
        return ws.scores(setting)[label].runs[:n]
    return ws.scores(setting, runs=n, labels=(label,), seed=draw * n)[label].runs


def grid_draw(ws: Workspace, config: Config, label: str, draw: int) -> tuple[list[dict], np.ndarray | None]:
    """The cells of score draw ``draw`` (each with its ``runs`` and, unless it diverged, its ``mean``) and the
    ``[runs, N]`` scores of every cell that did not diverge (None when all did)."""
    cells, grid_rows = grid_cells(config, draw), []
    for cell in cells:
        ws.log(f"grid cell lr {cell['lr']:g}, weight decay {cell['weight_decay']:g} (seeds from {cell['seed']})")
        rows = _cell_scores(ws, config, cell, label)
        cell["runs"] = 0 if rows is None else rows.shape[0]
        if rows is not None:
            cell["mean"] = rows.mean(axis=0)
            grid_rows.append(rows)
    return cells, np.concatenate(grid_rows) if grid_rows else None


def later_draws(ws: Workspace, config: Config, label: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """(grid mean, default-recipe mean) of every score draw after the first that some evaluation seed selects from;
    a draw whose grid diverged entirely is left out (its seeds then select from the other draws)."""
    out = []
    for draw in range(1, config.setting.draws_used):
        _, runs = grid_draw(ws, config, label, draw)
        if runs is not None:
            default = default_ensemble(ws, config.setting, label, runs.shape[0], draw)
            out.append((runs.mean(axis=0), default.mean(axis=0)))
    return out


def run(config: Config, ws: Workspace) -> dict:
    setting = config.setting
    label = setting.early(config.score)
    cells, grid_runs = grid_draw(ws, config, label, 0)  # draw 0: the grid's table and agreement statistics
    if grid_runs is None:
        raise DataDietError("Every cell of the hyperparameter grid diverged; lower the learning rates.")
    n = grid_runs.shape[0]
    default_runs = default_ensemble(ws, setting, label, n)
    grid_mean, default_mean = grid_runs.mean(axis=0), default_runs.mean(axis=0)
    cell_table = grid_table(cells, grid_mean, default_mean)
    stats_ = {"spearman": spearman(grid_mean, default_mean), "runs": n,
              "default_halves": split_half(default_runs), "grid_halves": split_half(grid_runs)}

    grid_method = str(Method(label, tag="hp-grid"))
    tasks = baseline_tasks(ws, setting, config.keeps)
    draws = [(grid_mean, default_mean), *later_draws(ws, config, label)]  # evaluation seed s: draw s mod K
    for method, side in ((grid_method, 0), (label, 1)):
        tasks += pruning_tasks(ws, setting, method, ScoreDraws(tuple(d[side] for d in draws)), config.keeps)
    rows = accuracy_rows(ws.evaluate(tasks, NAME))
    table = pruning_table(rows, grid_method, label, config.keeps)

    folder = ws.folder(NAME)
    _plot_grid(cell_table, grid_mean, default_mean, stats_["spearman"], label, folder / "grid.png")
    figures.accuracy_points(curve_table(rows), {f"{label}: grid vs default": [
        (grid_method, f"grid mean ({n} runs)", "o"), (label, f"default recipe ({n} runs)", "s"),
        ("random", "random", "x")]}, folder / "pruning.png")
    grid_coverage = interval_coverage(setting.eval_seeds, f"{n} grid and {n} default-recipe", len(draws))
    return STUDY.write_section(folder, config, findings=[grid_coverage, *findings(stats_, cell_table, table, label)],
        tables={"pruning.csv": table, "grid.csv": cell_table, "results.csv": rows},
        figures={"grid.png": f"left: Spearman between each cell's {label} and the default-recipe mean; right: the grid "
                     f"mean against the default mean over all examples",
         "pruning.png": f"test accuracy when pruning with {label} averaged over the grid or over as many runs with "
                        "the default recipe (mean, 16th–84th percentile over evaluation seeds)"},
        summary={**stats_, "pruning": table})


def _cell_scores(ws: Workspace, config: Config, cell: dict, label: str) -> np.ndarray | None:
    """The cell's ``[runs, N]`` scores, or ``None`` when its training diverged."""
    recipe = replace(config.setting.train, lr=cell["lr"], weight_decay=cell["weight_decay"])
    try:
        return ws.scores(config.setting, train=recipe, runs=config.runs_per_cell, seed=cell["seed"],
                         labels=(label,))[label].runs
    except (NonFiniteLossError, ScoreFileError) as exc:
        ws.log(f"grid cell lr {cell['lr']:g}, weight decay {cell['weight_decay']:g} diverged ({exc}); left out")
        return None


def split_half(runs: np.ndarray) -> float:
    """Spearman between the means of the first and the second half of the runs: how much two disjoint
    ensembles of half the size agree (NaN with fewer than two runs)."""
    half = runs.shape[0] // 2
    if half < 1:
        return float("nan")
    return spearman(runs[:half].mean(axis=0), runs[half:2 * half].mean(axis=0))


def grid_table(cells: list[dict], grid_mean: np.ndarray, default_mean: np.ndarray) -> list[dict]:
    """Per cell: its hyperparameters, seeds, and Spearman of its mean score with the default and grid means."""
    out = []
    for c in cells:
        ok = c["runs"] > 0
        out.append({"lr": c["lr"], "weight_decay": c["weight_decay"], "first_seed": c["seed"], "runs": c["runs"],
                    "status": "ok" if ok else "diverged",
                    "spearman_vs_default": spearman(c["mean"], default_mean) if ok else float("nan"),
                    "spearman_vs_grid": spearman(c["mean"], grid_mean) if ok else float("nan")})
    return out


def pruning_table(rows, grid_method: str, default_method: str, keeps) -> list[dict]:
    """Per kept fraction: mean accuracy of grid, default and random, Welch intervals of grid − default and of
    each against random."""
    out = []
    for keep in keeps:
        grid, default = accuracies(rows, grid_method, keep), accuracies(rows, default_method, keep)
        rand = accuracies(rows, "random", keep)
        out.append({"keep": keep, "n": len(grid), "grid": mean_or_nan(grid), "default": mean_or_nan(default),
                    "random": mean_or_nan(rand), **contrast(grid, default, "grid_minus_default"),
                    **contrast(grid, rand, "grid_vs_random"), **contrast(default, rand, "default_vs_random")})
    return out


def findings(stats_: dict, cells: list[dict], table: list[dict], label: str) -> list[str]:
    n = stats_["runs"]
    lines = [f"{label} averaged over the {n} grid runs ~ averaged over {n} default-recipe runs: Spearman "
             f"**{stats_['spearman']:.2f}** (for scale: two disjoint halves of the default runs agree at "
             f"{stats_['default_halves']:.2f}, of the grid runs at {stats_['grid_halves']:.2f})."]
    ok = [c for c in cells if c["status"] == "ok"]
    if ok:
        worst = min(ok, key=lambda c: c["spearman_vs_default"])
        best = max(ok, key=lambda c: c["spearman_vs_default"])
        lines.append(f"Single cells against the default mean: Spearman from {worst['spearman_vs_default']:.2f} (lr "
                     f"{worst['lr']:g}, wd {worst['weight_decay']:g}) to {best['spearman_vs_default']:.2f} (lr "
                     f"{best['lr']:g}, wd {best['weight_decay']:g}).")
    diverged = [c for c in cells if c["status"] != "ok"]
    if diverged:
        lines.append("Diverged and left out: " + ", ".join(f"lr {c['lr']:g} wd {c['weight_decay']:g}" for c in diverged)
                     + ".")
    for row in table:
        lines.append(f"Keep {row['keep']:g}: grid {row['grid']:.4f} vs default {row['default']:.4f} "
                     f"({interval_text(row, 'grid_minus_default')}, {verdict(row, 'grid_minus_default')}); random "
                     f"{row['random']:.4f} (grid {relation(row, 'grid_vs_random')} random, default "
                     f"{relation(row, 'default_vs_random')} random).")
    same = sum(verdict(r, "grid_minus_default") == "no different" for r in table)
    lines.append(f"Grid-averaged {label} was statistically indistinguishable from the default-recipe ensemble at "
                 f"{same} of {len(table)} kept fractions (Paul et al.: as good at every fraction).")
    return lines


def _plot_grid(cells: list[dict], grid_mean, default_mean, rho: float, label: str, path):
    plt = figures.pyplot()
    lrs = sorted({c["lr"] for c in cells})
    wds = sorted({c["weight_decay"] for c in cells})
    matrix = np.full((len(lrs), len(wds)), np.nan)
    for c in cells:
        matrix[lrs.index(c["lr"]), wds.index(c["weight_decay"])] = c["spearman_vs_default"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"wspace": 0.4})
    image = left.imshow(matrix, vmin=-1, vmax=1, cmap="RdBu_r", aspect="auto")
    left.set_xticks(range(len(wds)), [f"{w:g}" for w in wds])
    left.set_yticks(range(len(lrs)), [f"{lr:g}" for lr in lrs])
    left.set_xlabel("weight decay")
    left.set_ylabel("learning rate")
    for i in range(len(lrs)):
        for j in range(len(wds)):
            left.text(j, i, "diverged" if np.isnan(matrix[i, j]) else f"{matrix[i, j]:.2f}", ha="center",
                      va="center", color="white" if abs(matrix[i, j]) > 0.6 else "black", fontsize=8)
    fig.colorbar(image, ax=left, shrink=0.8, label="Spearman ρ")
    left.set_title(f"each cell's {label} ~ default mean")
    pick = np.random.default_rng(0).permutation(len(grid_mean))[:5000]  # a readable sample; ρ uses all
    right.scatter(default_mean[pick], grid_mean[pick], s=2, alpha=0.3, linewidths=0)
    right.set_xlabel(f"{label}, default recipe")
    right.set_ylabel(f"{label}, grid mean")
    right.set_title(f"Spearman ρ = {rho:.3f}")
    right.grid(alpha=0.3)
    return figures.save(fig, path)


STUDY = Study(NAME, TITLE, SOURCE, Config, PRESETS, run, doc=__doc__)
