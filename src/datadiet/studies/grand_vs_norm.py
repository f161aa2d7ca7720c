"""GraNd at initialization against input norm [Kirsch (2023) Figs. 1 and 4].

Kirsch's argument (his eqs. 3–7): for a linear softmax model the per-example gradient is the input times a
prediction-error factor, so GraNd = c(x)·‖x‖₂ with c(x) nearly the same for every example at initialization;
averaged over initializations, GraNd at init then ranks examples by input norm. This analysis measures it:

* Spearman(GraNd at init averaged over the R score-run initializations, ‖x‖₂) on the training set (from the
  shared score runs) and on the test set (the same R initial models, scored here);
* the per-example ratio ‖x‖₂ / GraNd: its coefficient of variation (small = GraNd ≈ c·‖x‖₂) and whether its
  logarithm looks normal (skewness, excess kurtosis, D'Agostino's K² test), i.e. the ratio log-normal;
* Spearman against the number n of averaged initializations, n = 1..K.

GraNd at init needs no training, so the test-set scores and the extra initializations of the n-curve (seeds
R..K−1, beyond the score runs' seeds 0..R−1) are computed here directly from ``init_model`` with the score
runs' own scorer, and cached as score files in the analysis folder. A few training examples are re-scored
from the first seed to check that these initial models are the score runs' ones.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..report import figures
from ..config import check_counts, check_fractions, to_dict
from ..errors import DataDietError
from ..runs.identity import identity
from ..runs.scoring import dataset_input_norms, score_model
from ..scores import ScoreFileError, ScoreTable, load_scores, save_scores
from ..training import init_model, place_model, resolve_device
from ..runs.presets import ON_SCARCE, Setting, study_presets
from ..runs.workspace import Workspace
from ..stats import spearman
from .common import Study
NAME = "grand_vs_norm"
TITLE = "GraNd at initialization against input norm"
SOURCE = "Kirsch (2023) Figs. 1 and 4"

GRAND_INIT = "grand@init"


@dataclass(frozen=True)
class Config:
    setting: Setting
    inits: int | None = None    # initializations in the n-curve, at least the setting's R score runs (None = R)
    check_examples: int = 32    # training examples re-scored from the first seed to check the initial models
    check_tolerance: float = 1e-2  # largest relative difference accepted in that check
    bins: int = 60              # histogram bins of the log ratio
    max_points: int = 20000     # examples drawn in the scatter plots (all are used for the numbers)

    def __post_init__(self) -> None:
        check_counts(self, ("inits", "check_examples", "bins", "max_points"))
        check_fractions("--check-tolerance", (self.check_tolerance,), "(0, inf)")


# Extra initializations cost only a GraNd pass (no training), so the quick preset runs 16 for the n-curve:
# 12 beyond the 4 score runs.
PRESETS = study_presets(NAME, Config, settings=ON_SCARCE,
    smoke=dict(inits=4),
    # quick cost: the shared score runs (cached, ≈ 4 × 20 s) plus GraNd at init of 10,000 test images × 4 inits
    # and of 4,000 training images × 12 extra inits: ≈ 90k per-example gradients ≈ 2–3 min on 2 CPU cores.
    quick=dict(inits=16),
    # Kirsch averages over 10 initializations, the paper's R; the n-curve stops there.
    paper=dict(inits=10),
)


# ---------------------------------------------------------------- pure computations


def ratio_stats(norm: np.ndarray, grand: np.ndarray) -> dict:
    """Statistics of the per-example ratio ‖x‖₂ / GraNd and of its logarithm.

    A small coefficient of variation of the ratio (compared with GraNd's own) says GraNd ≈ c·‖x‖₂; a log ratio
    with skewness ≈ 0, excess kurtosis ≈ 0 and a large normality-test p-value says the ratio is log-normal.
    """
    from scipy import stats

    norm, grand = np.asarray(norm, dtype=np.float64), np.asarray(grand, dtype=np.float64)
    if norm.shape != grand.shape or norm.ndim != 1:
        raise ValueError(f"norm {norm.shape} and grand {grand.shape} must be matching vectors")
    if (norm <= 0).any() or (grand <= 0).any():
        raise DataDietError(f"{int((norm <= 0).sum())} input norms and {int((grand <= 0).sum())} GraNd values are "
                            "not positive, so their ratio has no logarithm; the scores are corrupt, recompute them.")
    ratio = norm / grand
    log_ratio = np.log(ratio)
    nan = float("nan")
    out = {"n_examples": len(ratio), "ratio_mean": float(ratio.mean()), "ratio_cv": _cv(ratio),
           "grand_cv": _cv(grand), "norm_cv": _cv(norm), "log_ratio_mean": float(log_ratio.mean()),
           "log_ratio_std": float(log_ratio.std(ddof=1)) if len(ratio) > 1 else nan,
           "log_ratio_skew": nan, "log_ratio_excess_kurtosis": nan, "normaltest_stat": nan, "normaltest_p": nan,
           "pearson_log": _pearson(np.log(norm), np.log(grand))}
    if np.ptp(log_ratio) <= 1e-12 * max(1.0, abs(log_ratio[0])):
        return out  # a constant ratio (GraNd exactly c·‖x‖) has no shape to test
    out.update(log_ratio_skew=float(stats.skew(log_ratio)), log_ratio_excess_kurtosis=float(stats.kurtosis(log_ratio)))
    if len(ratio) >= 20:  # D'Agostino's K² needs the kurtosis test, valid from 20 samples
        test = stats.normaltest(log_ratio)
        out.update(normaltest_stat=float(test.statistic), normaltest_p=float(test.pvalue))
    return out


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def _cv(values: np.ndarray) -> float:
    """Coefficient of variation (sample standard deviation over mean)."""
    return float(values.std(ddof=1) / values.mean()) if len(values) > 1 else float("nan")


def n_init_curve(rows: np.ndarray, norm: np.ndarray) -> list[dict]:
    """For n = 1..K: Spearman(mean of the first n initializations, ‖x‖), Spearman(first-n mean, all-K mean),
    and Spearman(initialization n alone, ‖x‖)."""
    rows = np.asarray(rows, dtype=np.float64)
    full = rows.mean(axis=0)
    return [{"n": n, "spearman_input_norm": spearman(rows[:n].mean(0), norm),
             "spearman_all_inits": spearman(rows[:n].mean(0), full),
             "single_init_input_norm": spearman(rows[n - 1], norm)} for n in range(1, len(rows) + 1)]


def normalized_by_range(values: np.ndarray) -> np.ndarray:
    """(v − min) / (max − min), Kirsch Fig. 4's "normalized score" (all zeros for a constant score)."""
    span = values.max() - values.min()
    return (values - values.min()) / span if span > 0 else np.zeros_like(values, dtype=np.float64)


# ---------------------------------------------------------------- GraNd at init computed here


def init_grand(train, splits, dataset, seeds) -> np.ndarray:
    """GraNd at initialization of ``dataset`` (a split of ``splits``) for every seed: ``[len(seeds), N]``.

    The model is built exactly as a score run builds it (``init_model`` of the run's recipe with seed s, placed
    on the device in the recipe's memory format) and scored by the score runs' own ``score_model`` on the
    normalized, un-augmented images, so seed s here is score run s at step 0.
    """
    device = resolve_device(train.device)
    target = replace(splits, train=dataset)  # score_model scores splits.train
    rows = []
    for seed in seeds:
        cfg = replace(train, seed=seed)
        model = place_model(init_model(cfg, splits.train), cfg, device)
        rows.append(score_model(model, target, ["grand"])["grand"])
    return np.stack(rows) if rows else np.zeros((0, len(dataset)))


def cached_init_grand(folder: Path, kind: str, train, data, splits, dataset, seeds, log) -> np.ndarray:
    """:func:`init_grand`, cached as a datadiet score file ``folder/<kind>-<digest>.npz`` (ids, runs, meta).

    The key (the run identity) covers the data, the recipe and the seeds; the file's dataset fingerprint
    is checked on load, so changed data or a changed recipe never reads a stale cache.
    """
    seeds = list(seeds)
    if not seeds:
        return np.zeros((0, len(dataset)))
    key = identity({"data": data, "train": replace(train, seed=0), "seeds": seeds, "split": dataset.split,
                    "fingerprint": dataset.fingerprint})
    path = folder / f"{kind}-{key}.npz"
    if path.is_file():
        try:
            table = load_scores(path, dataset=dataset)
            if table.runs.shape[0] == len(seeds):
                log(f"{NAME}: {kind}: cached ({path.name})")
                return table.runs
        except ScoreFileError as exc:  # a torn or foreign file: recompute it
            log(f"{NAME}: ignoring {path.name} ({exc})")
    log(f"{NAME}: {kind}: GraNd at init of {len(dataset)} {dataset.split} examples for {len(seeds)} seeds")
    rows = init_grand(train, splits, dataset, seeds)
    meta = {"when": "init", "epoch": 0.0, "step": 0, "seeds": seeds, "model": train.model, "train": to_dict(train),
            "data": to_dict(data), "dataset": dataset.describe(), "computed_by": f"analysis {NAME}"}
    save_scores(path, ScoreTable("grand", dataset.ids.numpy(), rows, meta))
    return rows


def check_initial_models(train, splits, seed: int, stored_row: np.ndarray, examples: int, tolerance: float) -> float:
    """Re-score the first ``examples`` training examples from ``seed`` and compare with that score run's GraNd
    at init (``stored_row``); returns the largest relative difference, raising if it exceeds ``tolerance``."""
    k = min(examples, len(splits.train))
    if k == 0:
        return 0.0
    mine = init_grand(train, splits, splits.train.take(np.arange(k)), [seed])[0]
    diff = float(np.max(np.abs(mine - stored_row[:k]) / np.abs(stored_row[:k])))
    if diff > tolerance:
        raise DataDietError(
            f"GraNd at init recomputed from seed {seed} differs from the stored score run's by up to {diff:.2%} "
            f"(tolerance {tolerance:.2%}), so the initial models built here are not the score runs' ones. The "
            "cached score runs were probably made by another version of datadiet or torch: delete the "
            "workspace's scores/ folder and re-run to recompute them.")
    return diff


# ---------------------------------------------------------------- the analysis


def run(config: Config, ws: Workspace) -> dict:
    setting = config.setting
    tables = ws.scores(setting)
    stored, norm_train = tables[GRAND_INIT], tables["input_norm"].mean
    data, train = ws.data(setting.data), ws.train(setting.train)
    splits = ws.splits(setting.data)
    folder = ws.folder(NAME)
    R = stored.runs.shape[0]
    seeds = list(stored.meta.get("seeds") or range(R))
    if seeds != list(range(seeds[0], seeds[0] + R)):
        raise DataDietError(f"The stored {GRAND_INIT} scores have seeds {seeds}, not consecutive ones.")
    check = check_initial_models(train, splits, seeds[0], stored.runs[0], config.check_examples,
                                 config.check_tolerance)

    K = R if config.inits is None else max(config.inits, R)
    extra_seeds = range(seeds[-1] + 1, seeds[-1] + 1 + K - R)
    extra = cached_init_grand(folder, "grand_init_train_extra", train, data, splits, splits.train, extra_seeds, ws.log)
    all_train = np.concatenate([stored.runs, extra])
    test_rows = cached_init_grand(folder, "grand_init_test", train, data, splits, splits.test, seeds, ws.log)
    norm_test = dataset_input_norms(splits, splits.test)

    grand_train, grand_test = stored.mean, test_rows.mean(axis=0)
    per_split = [{"split": "train", "inits": R, "spearman": spearman(grand_train, norm_train),
                  **ratio_stats(norm_train, grand_train)},
                 {"split": "test", "inits": R, "spearman": spearman(grand_test, norm_test),
                  **ratio_stats(norm_test, grand_test)}]
    curve = n_init_curve(all_train, norm_train)

    labels = {"train": splits.train.labels.numpy(), "test": splits.test.labels.numpy()}
    points = {"train": (norm_train, grand_train), "test": (norm_test, grand_test)}
    plot_scatter(points, labels, per_split, folder / "scatter.png", max_points=config.max_points)
    plot_ratio_histograms(points, per_split, folder / "log_ratio.png", bins=config.bins)
    plot_n_curve(curve, R, folder / "n_inits.png")
    plot_sorted(norm_test, grand_test, per_split[1]["spearman"], folder / "sorted_test.png")

    return STUDY.write_section(folder, config, findings=findings(per_split, curve, R, check, config),
        tables={"spearman.csv": per_split, "n_inits.csv": curve},
        figures={"scatter.png": f"GraNd at init (mean over {R} initializations) against input norm, training and test "
                        "set (log-log; colour = class)",
         "log_ratio.png": "log(input norm / GraNd at init) with the fitted normal density",
         "n_inits.png": "Spearman rank correlation against the number of averaged initializations",
         "sorted_test.png": "test examples sorted by their mean range-normalized score (Kirsch Fig. 4a)"},
        summary={"spearman_train": per_split[0]["spearman"], "spearman_test": per_split[1]["spearman"],
         "ratio_cv_train": per_split[0]["ratio_cv"], "ratio_cv_test": per_split[1]["ratio_cv"],
         "spearman_by_inits": {str(r["n"]): r["spearman_input_norm"] for r in curve}, "init_check_max_rel_diff": check})


def findings(per_split: list[dict], curve: list[dict], R: int, check: float, config: Config) -> list[str]:
    train, test = per_split
    K = len(curve)
    singles = [r["single_init_input_norm"] for r in curve]
    at_R = curve[R - 1]
    lines = [
        f"GraNd at init (mean over {R} initializations) ~ input norm: Spearman **{train['spearman']:.3f}** on "
        f"the {train['n_examples']} training examples and **{test['spearman']:.3f}** on the {test['n_examples']} "
        "test examples (Kirsch: 0.96 on CIFAR-10 with 10 initializations, training set).",
        f"The ratio input norm / GraNd at init has coefficient of variation {train['ratio_cv']:.3f} on the "
        f"training set and {test['ratio_cv']:.3f} on the test set, against {train['grand_cv']:.3f} for GraNd "
        f"itself and {train['norm_cv']:.3f} for the input norm; log GraNd ~ log norm: Pearson "
        f"{train['pearson_log']:.3f} (so {train['pearson_log'] ** 2:.0%} of the variance of log GraNd is explained "
        "by log norm).",
        f"log ratio (training set): skewness {train['log_ratio_skew']:.2f}, excess kurtosis "
        f"{train['log_ratio_excess_kurtosis']:.2f}, D'Agostino K² = {train['normaltest_stat']:.1f} "
        f"(p = {train['normaltest_p']:.2g}): normality of the log ratio is "
        f"{'rejected' if train['normaltest_p'] < 0.05 else 'not rejected'} at the 5% level "
        f"(test set: skewness {test['log_ratio_skew']:.2f}, kurtosis {test['log_ratio_excess_kurtosis']:.2f}, "
        f"p = {test['normaltest_p']:.2g}).",
        f"One initialization: Spearman with input norm {min(singles):.3f}–{max(singles):.3f} over the {K} "
        f"initializations; averaging {R} gives {at_R['spearman_input_norm']:.3f}"
        + (f" and {K} gives {curve[-1]['spearman_input_norm']:.3f}" if K > R else "")
        + f"; the {R}-init mean ranks like the {K}-init mean at Spearman {at_R['spearman_all_inits']:.3f}.",
        f"The initial models rebuilt here reproduce the score runs' GraNd at init on "
        f"{config.check_examples} training examples to a relative difference of {check:.1e}.",
    ]
    return lines


# ---------------------------------------------------------------- figures


def plot_scatter(points: dict, labels: dict, per_split: list[dict], path: Path, *, max_points: int) -> Path:
    plt = figures.pyplot()
    fig, axes = plt.subplots(1, len(points), figsize=(5.2 * len(points), 4.5), squeeze=False)
    for ax, (split, (norm, grand)), row in zip(axes[0], points.items(), per_split):
        pick = np.random.default_rng(0).permutation(len(norm))[:max_points]
        ax.scatter(norm[pick], grand[pick], c=labels[split][pick], cmap="tab10", vmin=-0.5, vmax=9.5, s=3,
                   alpha=0.5, linewidths=0)
        ax.set_xscale("log")
        ax.set_yscale("log")
        _plain_log_ticks(ax)
        ax.set_xlabel("input norm ‖x‖₂ (normalized image)")
        ax.set_ylabel(f"GraNd at init (mean of {row['inits']})")
        ax.set_title(f"{split}: Spearman ρ = {row['spearman']:.3f} (n = {row['n_examples']})")
        ax.grid(alpha=0.3, which="both")
    return figures.save(fig, path)


def _plain_log_ticks(ax) -> None:
    """Plain numbers on log axes (a narrow range otherwise gets crowded 2.75×10¹-style minor labels)."""
    from matplotlib.ticker import FormatStrFormatter

    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_formatter(FormatStrFormatter("%.3g"))
        axis.set_minor_formatter(FormatStrFormatter("%.3g"))
    ax.tick_params(which="both", labelsize=7)


def plot_ratio_histograms(points: dict, per_split: list[dict], path: Path, *, bins: int) -> Path:
    plt = figures.pyplot()
    fig, axes = plt.subplots(1, len(points), figsize=(5.2 * len(points), 4), squeeze=False)
    for ax, (split, (norm, grand)), row in zip(axes[0], points.items(), per_split):
        log_ratio = np.log(norm / grand)
        ax.hist(log_ratio, bins=bins, density=True, color="tab:blue", alpha=0.6, label="examples")
        mu, sd = row["log_ratio_mean"], row["log_ratio_std"]
        grid = np.linspace(log_ratio.min(), log_ratio.max(), 200)
        if sd > 0:
            ax.plot(grid, np.exp(-0.5 * ((grid - mu) / sd) ** 2) / (sd * np.sqrt(2 * np.pi)), color="black",
                    label=f"normal fit (μ = {mu:.2f}, σ = {sd:.2f})")
        ax.set_xlabel("log(input norm / GraNd at init)")
        ax.set_ylabel("density")
        ax.set_title(f"{split}: CV of ratio {row['ratio_cv']:.3f}, skew {row['log_ratio_skew']:.2f}, "
                     f"ex. kurt. {row['log_ratio_excess_kurtosis']:.2f}", fontsize=9)
        ax.legend(fontsize=8)
    return figures.save(fig, path)


def plot_n_curve(curve: list[dict], R: int, path: Path) -> Path:
    from matplotlib.ticker import MaxNLocator

    plt = figures.pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    n = [r["n"] for r in curve]
    ax.plot(n, [r["spearman_input_norm"] for r in curve], "o-", label="mean of first n ~ input norm")
    ax.plot(n, [r["spearman_all_inits"] for r in curve], "s-", label=f"mean of first n ~ mean of all {len(curve)}")
    ax.plot(n, [r["single_init_input_norm"] for r in curve], "x", color="gray", label="init n alone ~ input norm")
    ax.axvline(R, color="gray", linestyle=":", label=f"score runs (R = {R})")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("initializations averaged (n)")
    ax.set_ylabel("Spearman ρ")
    ax.set_title("GraNd at init: averaging over initializations")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return figures.save(fig, path)


def plot_sorted(norm: np.ndarray, grand: np.ndarray, rho: float, path: Path) -> Path:
    """Kirsch Fig. 4a: examples sorted by the mean of both range-normalized scores, each score drawn."""
    plt = figures.pyplot()
    a, b = normalized_by_range(norm), normalized_by_range(grand)
    order = np.argsort((a + b) / 2, kind="stable")
    fig, ax = plt.subplots(figsize=(6.5, 4))
    ax.plot(b[order], ".", markersize=1.5, alpha=0.5, label="GraNd at init")
    ax.plot(a[order], ".", markersize=1.5, alpha=0.5, label="input norm")
    ax.set_xlabel("test examples, sorted by mean normalized score")
    ax.set_ylabel("normalized score")
    ax.set_title(f"test set: Spearman ρ = {rho:.3f}")
    ax.legend(fontsize=8, markerscale=6)
    return figures.save(fig, path)


STUDY = Study(NAME, TITLE, SOURCE, Config, PRESETS, run, doc=__doc__)
