"""Averaging sensitivity: how many score runs are enough? [Paul et al. (2021) App. E.1, Figs. 10–11].

Two questions, both from the shared standard score runs (R of them):

1. **Rank stability.** For n = 1..R, the Spearman rank correlation between the mean of n runs and the mean
   of all R runs (Figs. 10–11, left), for every score that is averaged over runs. Besides the first n runs
   (the paper's curve), every choice of n runs (or a seeded sample of them) gives the spread, and the mean of
   n runs is also compared with the mean of the *other* R − n runs, which does not share runs with it (the
   n-vs-R curve reaches 1 at n = R by construction; the disjoint one does not flatter).
2. **Pruning.** Keep the highest-scoring examples by a single run's scores and by the R-run mean, retrain
   with the evaluation seeds, and compare both with each other and with random subsets (Figs. 10–11, right;
   Paul et al.: "using scores averaged over 10 initializations performs significantly better").
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from ..methods import Method
from ..report import figures
from ..config import check_counts, check_keeps
from ..report.tables import curve_table
from ..stats import spearman
from ..errors import ConfigError, DataDietError
from .compare import accuracies, check_labels, contrast, interval_text, mean_or_nan, relation, verdict
from ..runs.presets import ON_SCARCE, Setting, standard_scores, study_presets
from ..runs.workspace import Workspace
from .common import Study, accuracy_rows, baseline_tasks, check_score_labels, coverage, pruning_tasks

NAME = "averaging"
TITLE = "Averaging sensitivity: single-run against R-run scores"
SOURCE = "Paul et al. (2021) App. E.1, Figs. 10–11"


def check_ns(ns, R: int) -> None:
    bad = [n for n in ns if not 1 <= n <= R]
    if bad:
        raise DataDietError(f"Cannot average n = {bad} runs out of {R} score runs: n must be in 1..{R}. "
                            "Lower n or compute more score runs.")


@dataclass(frozen=True)
class Config:
    setting: Setting
    curve_scores: tuple[str, ...] = ()   # scores of the n-run curve; empty = every standard score with R runs
    prune_scores: tuple[str, ...] = ()   # scores pruned with one run and with R; empty = EL2N and GraNd early
    keeps: tuple[float, ...] = (0.5,)
    single_run: int = 0                  # which score run (row) is "the single run"
    ns: tuple[int, ...] = ()             # points of the n-run curve; empty = 1..R
    max_subsets: int = 50                # choices of n runs drawn per n for the spread (all when fewer)

    def __post_init__(self) -> None:
        check_keeps(self.keeps)
        check_counts(self, ("max_subsets",))
        check_score_labels(self, "curve_scores", "prune_scores")
        check_ns(self.ns, self.setting.score_runs)
        R = self.setting.score_runs
        if not (isinstance(self.single_run, int) and 0 <= self.single_run < R):
            raise ConfigError(f"single_run {self.single_run} does not exist: the setting has {R} score runs "
                              f"(0..{R - 1}). Choose a run in that range (--single-run).")


PRESETS = study_presets(NAME, Config, settings=ON_SCARCE,
    smoke=dict(keeps=(0.5,)),
    # quick: 2 scores × 2 fractions × 3 seeds × (single, mean) = 24 runs + 6 random + 3 full = 33 runs ≈ 6 min
    # at ≈ 10 s a run; the 12 R-run-mean runs and the 9 baselines are the same runs (same ids) as any other
    # analysis in the workspace that prunes with el2n@epoch2 / grand@epoch2 at these fractions. No new score
    # runs (the standard set is shared).
    quick=dict(keeps=(0.5, 0.7)),
    # Figs. 10–11: GraNd at init and EL2N early, 50 % kept, one initialization against 10. (Fig. 11 scores
    # EL2N at epoch 10; the standard set's epoch 20 is used so the ten score runs are shared.)
    paper=dict(keeps=(0.5,), prune_scores=("grand@init", "el2n@epoch20")),
)


def run(config: Config, ws: Workspace) -> dict:
    setting = config.setting
    prune_labels = config.prune_scores or (setting.early("el2n"), setting.early("grand"))
    check_labels((*config.curve_scores, *prune_labels), standard_scores(setting))  # before any training
    check_ns(config.ns, setting.score_runs)
    draws = ws.score_draws(setting)
    tables = draws.for_seed(0)  # the rank-stability curve: draw 0, the workspace's standard score runs
    curve_labels = config.curve_scores or averaged_labels(tables)
    check_single_run(config.single_run, {label: tables[label].runs.shape[0] for label in prune_labels})
    curve = [{"score": label, **row} for label in curve_labels
             for row in n_run_curve(tables[label].runs, ns=config.ns or None, max_subsets=config.max_subsets)]

    tasks = baseline_tasks(ws, setting, config.keeps)
    for label in prune_labels:  # each evaluation seed prunes with its own draw's single run and mean
        variants = {single_label(label, config.single_run): draws.map(lambda t: t[label].runs[config.single_run]),
                    label: draws.map(lambda t: t[label].mean)}
        for method, values in variants.items():
            tasks += pruning_tasks(ws, setting, method, values, config.keeps)
    rows = accuracy_rows(ws.evaluate(tasks, NAME))
    table = pruning_table(rows, prune_labels, config.keeps, config.single_run)

    folder = ws.folder(NAME)
    R = setting.score_runs
    _plot_curve(curve, folder / "n_runs.png", R)
    _plot_pruning(curve_table(rows), prune_labels, config.single_run, folder / "pruning.png")
    return STUDY.write_section(folder, config, findings=[coverage(setting), *findings(curve, table, R, config.single_run)],
        tables={"n_runs.csv": curve, "pruning.csv": table, "results.csv": rows},
        figures={"n_runs.png": f"Spearman between the mean of n score runs and the mean of all {R} (line: the first n "
                       f"runs; band: min–max over choices of n runs; dotted: against the other {R} − n runs)",
         "pruning.png": f"test accuracy when pruning with run {config.single_run}'s scores alone and with the "
                        f"{R}-run mean (mean, 16th–84th percentile over evaluation seeds)"},
        summary={"single_run_spearman": {label: _at(curve, label, 1)["mean"] for label in curve_labels
                                 if _has(curve, label, 1)},
         "pruning": table})


def averaged_labels(tables: dict) -> tuple[str, ...]:
    """Scores worth a curve: those with one row per run (not ``input_norm``, identical in every run) and
    not ``random`` (a fresh permutation per run: its curve is only noise)."""
    return tuple(label for label, t in tables.items() if t.runs.shape[0] > 1 and label != "random")


def check_single_run(run: int, runs_per_label: dict[str, int]) -> None:
    for label, R in runs_per_label.items():
        if not 0 <= run < R:
            raise ConfigError(f"single_run {run} does not exist: {label} has {R} score runs (0..{R - 1}). "
                              "Choose a run in that range.")


def single_label(label: str, run: int) -> str:
    """Method name of pruning with one run's scores; differs from ``label`` so the run ids differ."""
    return str(Method(label, tag=f"run{run}"))


# ---------------------------------------------------------------------------------------------- n-run curve

def n_run_curve(rows: np.ndarray, *, ns=None, max_subsets: int = 50, seed: int = 0) -> list[dict]:
    """Spearman between n-run means and the R-run mean of a ``[R, N]`` score matrix, for each n.

    Per n: ``first_n`` (the first n runs, the paper's curve); ``min``/``mean``/``max`` over choices of n runs
    (all ``C(R, n)`` of them, or ``max_subsets`` distinct ones drawn with ``seed``); ``disjoint`` the mean
    Spearman between the mean of the chosen n runs and the mean of the remaining R − n (NaN at n = R).
    """
    rows = np.asarray(rows, dtype=np.float64)
    if rows.ndim != 2 or rows.shape[0] < 1:
        raise DataDietError(f"Expected a [runs, examples] score matrix, got shape {rows.shape}.")
    R = rows.shape[0]
    ns = list(range(1, R + 1)) if ns is None else list(ns)
    check_ns(ns, R)
    reference = rows.mean(axis=0)
    out = []
    for n in ns:
        subsets = run_subsets(R, n, max_subsets, seed)
        rhos = np.array([spearman(rows[list(s)].mean(axis=0), reference) for s in subsets])
        disjoint = [spearman(rows[list(s)].mean(axis=0), np.delete(rows, list(s), axis=0).mean(axis=0))
                    for s in subsets] if n < R else []
        out.append({"n": n, "first_n": spearman(rows[:n].mean(axis=0), reference), "subsets": len(subsets),
                    "min": float(rhos.min()), "mean": float(rhos.mean()), "max": float(rhos.max()),
                    "disjoint": float(np.mean(disjoint)) if disjoint else float("nan")})
    return out


def run_subsets(R: int, n: int, limit: int, seed: int = 0) -> list[tuple[int, ...]]:
    """Every choice of n of R runs when there are at most ``limit``, else ``limit`` distinct seeded ones
    (always including the first n runs, the paper's choice)."""
    if math.comb(R, n) <= limit:
        return list(itertools.combinations(range(R), n))
    rng = np.random.default_rng(seed)
    chosen = {tuple(range(n))}
    while len(chosen) < limit:
        chosen.add(tuple(sorted(int(i) for i in rng.choice(R, n, replace=False))))
    return sorted(chosen)


# ---------------------------------------------------------------------------------------------- pruning


def pruning_table(rows, labels, keeps, single_run: int) -> list[dict]:
    """Per (score, kept fraction): mean accuracy of single-run and R-run pruning and of random, with Welch
    intervals of averaged − single and of each against random."""
    out = []
    for label in labels:
        for keep in keeps:
            single, averaged = accuracies(rows, single_label(label, single_run), keep), accuracies(rows, label, keep)
            rand = accuracies(rows, "random", keep)
            out.append({"score": label, "keep": keep, "n": len(averaged), "single": mean_or_nan(single),
                        "averaged": mean_or_nan(averaged), "random": mean_or_nan(rand),
                        **contrast(averaged, single, "averaged_minus_single"),
                        **contrast(single, rand, "single_vs_random"), **contrast(averaged, rand, "averaged_vs_random")})
    return out


# ---------------------------------------------------------------------------------------------- findings

def _at(curve: list[dict], label: str, n: int) -> dict:
    return next(r for r in curve if r["score"] == label and r["n"] == n)


def findings(curve: list[dict], table: list[dict], R: int, single_run: int) -> list[str]:
    labels = list(dict.fromkeys(r["score"] for r in curve))
    lines = []
    if labels:
        singles = "; ".join(f"{label} {_at(curve, label, 1)['mean']:.2f} ({_at(curve, label, 1)['min']:.2f}–"
                            f"{_at(curve, label, 1)['max']:.2f})" for label in labels if _has(curve, label, 1))
        lines.append(f"Spearman of one run's scores with the {R}-run mean, mean (min–max) over the {R} runs: "
                     f"{singles} (Paul et al.: about 0.75 for GraNd at init with 10 runs).")
        disjoint = "; ".join(f"{label} {_at(curve, label, 1)['disjoint']:.2f}" for label in labels
                             if _has(curve, label, 1) and not np.isnan(_at(curve, label, 1)["disjoint"]))
        if disjoint:
            lines.append(f"Against the mean of the other {R - 1} runs (no shared run), a single run reaches: "
                         f"{disjoint}.")
        half = max(1, R // 2)
        halves = "; ".join(f"{label} {_at(curve, label, half)['mean']:.2f}" for label in labels
                           if _has(curve, label, half))
        if half > 1 and halves:
            lines.append(f"Averaging {half} runs raises the Spearman with the {R}-run mean to: {halves}.")
    for row in table:
        lines.append(f"Pruning to {row['keep']:g} with {row['score']}: {R}-run mean {row['averaged']:.4f} vs run "
                     f"{single_run} alone {row['single']:.4f} ({interval_text(row, 'averaged_minus_single')}, "
                     f"{verdict(row, 'averaged_minus_single')}); random {row['random']:.4f} (averaged "
                     f"{relation(row, 'averaged_vs_random')} random, single run {relation(row, 'single_vs_random')} "
                     "random).")
    if table:
        better = sum(verdict(r, "averaged_minus_single") == "better" for r in table)
        worse = sum(verdict(r, "averaged_minus_single") == "worse" for r in table)
        lines.append(f"The {R}-run mean pruned significantly better than a single run at {better} of {len(table)} "
                     f"points and worse at {worse}.")
    return lines


def _has(curve, label, n) -> bool:
    return any(r["score"] == label and r["n"] == n for r in curve)


# ---------------------------------------------------------------------------------------------- figures

def _plot_curve(curve: list[dict], path, R: int):
    plt = figures.pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    colors = plt.get_cmap("tab10")
    for i, label in enumerate(dict.fromkeys(r["score"] for r in curve)):
        pts = sorted((r for r in curve if r["score"] == label), key=lambda r: r["n"])
        n = [r["n"] for r in pts]
        ax.plot(n, [r["first_n"] for r in pts], marker="o", markersize=3, color=colors(i % 10), label=label)
        ax.fill_between(n, [r["min"] for r in pts], [r["max"] for r in pts], color=colors(i % 10), alpha=0.12)
        ax.plot(n, [r["disjoint"] for r in pts], linestyle=":", marker=".", color=colors(i % 10))
    ax.set_xticks(sorted({r["n"] for r in curve}))
    ax.set_xlabel("runs averaged (n)")
    ax.set_ylabel(f"Spearman with the {R}-run mean")
    ax.set_title("Rank stability of averaged scores")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    return figures.save(fig, path)


def _plot_pruning(curve: list[dict], labels, single_run: int, path):
    panels = {label: [(label, "R-run mean", "o"), (single_label(label, single_run), f"run {single_run} alone", "s"),
                      ("random", "random", "x")] for label in labels}
    return figures.accuracy_points(curve, panels, path)


STUDY = Study(NAME, TITLE, SOURCE, Config, PRESETS, run, doc=__doc__)
