"""The regime map: does keeping the hardest examples pay, at this training-set size? [Sorscher et al. 2022; CCS]

Sorscher et al. ("Beyond neural scaling laws", NeurIPS 2022) predict that keeping the *hardest* examples pays when
data is abundant and keeping the *easiest* pays when it is scarce; Data Diet's offset discussion (B.3, Fig. 4)
says the same, and Zheng et al. (CCS, ICLR 2023) show that hardest-only selection collapses at high pruning rates
where coverage-aware sampling does not.  This study measures where a dataset sits.

For every training-set size N (a seeded, class-balanced subset of the training split, test set unchanged) it
scores the N examples with the setting's score runs (EL2N early in training by default), and trains, per kept
fraction and evaluation seed:

* ``random``: a fresh random subset per seed (the baseline);
* ``SCORE``: the hardest examples (Data Diet's keep-the-highest window);
* ``SCORE+easiest``: the easiest examples;
* ``SCORE+ccs``: coverage-centric stratified sampling, drawn with the evaluation seed;
* ``full``: all N examples, and the redundancy ``full − random`` at the largest kept fraction.

Every subset trains for the steps of its own N's full data (matched budget).  The crossover is where the hardest
window's difference to random turns from below the easiest window's to above it, interpolated in log N; it is marked
only where hardest − easiest is resolved on both sides (95 % Welch intervals excluding zero, with opposite signs),
else the study says "no crossover resolved".  With the setting's K > 1 score draws, evaluation seed s selects from
draw s mod K, so the intervals cover the score runs' randomness too.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Sequence

from ..config import TrainConfig, check_keeps
from ..errors import ConfigError
from ..report import figures
from ..report.tables import compare_to_random, curve_table, interval_coverage
from ..runs.presets import ON_SCARCE, Setting, study_presets
from ..runs.workspace import Workspace
from ..scores.registry import ScoreLabel
from ..stats import compare_groups, interval_text, seeds_text, verdict_phrase
from ..methods import Method
from .common import Study, accuracy_rows, baseline_tasks, check_rules, check_seed_counts, pruning_tasks
from .compare import accuracies

NAME = "scaling"
TITLE = "The regime map: hardest, easiest and coverage-sampled subsets against random, as the data grows"
SOURCE = ("Sorscher et al. (2022) Fig. 1 (the crossover), Data Diet B.3 / Fig. 4 (offsets), Zheng et al. (2023) "
          "(CCS at high pruning rates)")

RULES = ("hardest", "easiest", "ccs")
# Setting fields this study sets per point: the command line offers no flag for them (--sizes and
# --epochs-per-size set them), rather than accepting one that would be overwritten.
SET_PER_POINT = ("subset", "subset_mode", "epochs")


@dataclass(frozen=True)
class Config:
    setting: Setting
    sizes: tuple[int, ...] = (1000, 4000, 16000)  # training-set sizes N (class-balanced subsets; 0 = all)
    keeps: tuple[float, ...] = (0.3, 0.5, 0.7)    # kept fractions
    rules: tuple[str, ...] = RULES                # hardest, easiest, ccs, moderate
    score: str | None = None                      # score label; None = EL2N at a tenth of each size's budget
    epochs_per_size: tuple[float, ...] = ()       # training epochs per size (aligned with sizes); empty = the setting's
    eval_seeds: int | None = None                 # evaluation runs per point; None = the setting's
    score_runs: int | None = None                 # score runs averaged; None = the setting's
    score_draws: int | None = None                # score draws (eval seed s: draw s mod K); None = the setting's

    def __post_init__(self) -> None:
        if not self.sizes or any(n < 0 for n in self.sizes):
            raise ConfigError(f"--sizes takes training-set sizes >= 0 (0 = the whole training split); got "
                              f"{list(self.sizes)}.")
        repeated = sorted({n for n in self.sizes if self.sizes.count(n) > 1})
        if repeated:  # the tables are keyed by size: a repeated size would train twice and show once
            raise ConfigError(f"--sizes names {', '.join(map(str, repeated))} more than once; give each size once.")
        if self.epochs_per_size and len(self.epochs_per_size) != len(self.sizes):
            raise ConfigError(f"--epochs-per-size gives one budget per size: {len(self.sizes)} sizes but "
                              f"{len(self.epochs_per_size)} epochs.")
        check_seed_counts(self)
        if any(not e > 0 for e in self.epochs_per_size):
            raise ConfigError(f"--epochs-per-size must be positive, got {list(self.epochs_per_size)}.")
        check_keeps(self.keeps)
        check_rules(self.rules)



PRESETS = study_presets(NAME, Config, settings=ON_SCARCE,
    smoke=dict(sizes=(192, 384), keeps=(0.5,), epochs_per_size=(2, 2)),
    # Chosen to fit 20 minutes on 2 CPU cores (see README "The regime map"); the small CNN of the quick setting,
    # without augmentation, 2 evaluation seeds.  Larger N trains fewer epochs: the same number of steps per
    # example would grow the cost with N², and the small CNN converges in fewer passes over more data.
    quick=dict(sizes=(1000, 4000, 16000, 0), epochs_per_size=(30, 10, 4, 2), eval_seeds=2,
                    score_runs=2),
    # Full ResNet18 on Fashion-MNIST on one GPU, the gpu setting's 6 epochs everywhere.
    gpu=dict(sizes=(2000, 5000, 10000, 20000, 0)),
    # CIFAR-10 with the full recipe: 10 %, 20 %, 50 % and all of the training set.
    paper=dict(sizes=(5000, 10000, 25000, 0)),
)


# ---------------------------------------------------------------- the grid

def size_setting(config: Config, index: int) -> Setting:
    """The setting restricted to the ``index``-th training-set size (its own epochs, if given)."""
    base, n = config.setting, config.sizes[index]
    data = replace(base.data, subset=n or None, subset_mode="balanced")
    train: TrainConfig = replace(base.train, epochs=config.epochs_per_size[index]) if config.epochs_per_size else base.train
    return replace(base, data=data, train=train, keeps=tuple(config.keeps)).with_protocol(
        eval_seeds=config.eval_seeds, score_runs=config.score_runs, score_draws=config.score_draws)


SCORE_FRACTION = 0.1  # Data Diet scores EL2N at epoch 20 of 200: a tenth of the budget


def score_label(config: Config, setting: Setting) -> str:
    """The score of one size: the configured label, or EL2N at a tenth of that size's budget (sizes train for
    different numbers of epochs, so a fixed epoch would be early for one and the end of training for another)."""
    return config.score or str(ScoreLabel("el2n", round(SCORE_FRACTION * setting.train.epochs, 3)))


def size_tasks(ws: Workspace, config: Config, setting: Setting) -> list:
    """Full-data and random baselines plus every rule at every kept fraction, for one size."""
    label = score_label(config, setting)
    draws = ws.score_draws(setting, labels=(label,))
    tasks = baseline_tasks(ws, setting, config.keeps)
    for method in (Method.of(label, rule) for rule in config.rules):
        tasks += pruning_tasks(ws, setting, method, draws, config.keeps)
    return tasks


# ---------------------------------------------------------------- pure computations

def by_rule(rows: list[dict]) -> list[dict]:
    """Rows with the method replaced by its selection rule (``el2n@epoch2+ccs`` → ``ccs``; ``el2n@epoch2`` →
    ``hardest``; ``el2n@epoch2+balanced`` → ``hardest+balanced``), the score kept in a ``score`` column: sizes
    score at different times, rules compare across them."""
    out = []
    for r in rows:
        method = Method.parse(r["method"]) if r["method"] not in ("full", "random") else None
        out.append({**r, "method": method.how if method else r["method"], "score": method.label if method else None})
    return out


def regime_rows(rows_by_size: dict[int, list[dict]], rules: Sequence[str]) -> list[dict]:
    """Per size, rule and kept fraction: the difference to random (Welch 95 % interval) and the verdict, from
    rows whose method is the rule (:func:`by_rule`)."""
    out = []
    for n, rows in rows_by_size.items():
        versus = {(v["method"], v["keep"]): v for v in compare_to_random(rows) if v.get("offset") is None}
        for rule in rules:
            for (method, keep), v in sorted(versus.items(), key=lambda kv: kv[0][1]):
                if method == rule:
                    out.append({"n": n, "rule": rule, "keep": keep, "diff": v["diff"], "ci_low": v["ci_low"],
                                "ci_high": v["ci_high"], "p_value": v["p_value"], "verdict": v["verdict"],
                                "note": v["note"], "seeds": v["n"], "seeds_needed": v["seeds_needed"]})
    return out


def redundancy_rows(rows_by_size: dict[int, list[dict]], keep: float) -> list[dict]:
    """Per size: full-data accuracy, random's at ``keep``, and their difference (small = redundant data)."""
    out = []
    for n, rows in rows_by_size.items():
        curve = {(r["method"], r["keep"]): r["mean"] for r in curve_table(rows) if r["offset"] is None}
        full, random = curve.get(("full", 1.0)), curve.get(("random", keep))
        out.append({"n": n, "full": full, f"random_{keep:g}": random,
                    "redundancy_gap": None if full is None or random is None else full - random})
    return out


def gap_rows(rows_by_size: dict[int, list[dict]], keeps: Sequence[float]) -> list[dict]:
    """Per size and kept fraction: hardest − easiest accuracy (random, the same for both, cancels) with its interval
    and verdict (:func:`datadiet.stats.compare_groups`; "better": the hardest beat the easiest), from rows whose
    method is the rule (:func:`by_rule`). Sizes without runs of both rules are left out."""
    out = []
    for n, rows in rows_by_size.items():
        for keep in keeps:
            hardest, easiest = accuracies(rows, "hardest", keep), accuracies(rows, "easiest", keep)
            if len(hardest) and len(easiest):
                out.append({"n": n, "keep": keep, **compare_groups(hardest, easiest).row()})
    return out


def crossovers(gaps: list[dict], keeps: Sequence[float]) -> list[dict]:
    """Per kept fraction: the sizes between which hardest − easiest (:func:`gap_rows`) changes sign *resolved on both
    sides* (its interval excludes zero at both sizes, below at one and above at the other), and the crossover
    interpolated linearly in log N between them. Unresolved sizes between two resolved ones are passed over: the
    sign changes somewhere across them.  Without such a pair no crossover is resolved (``crossover_n`` None),
    however the means go up and down.  Every row lists the per-size gaps and which sizes were resolved."""
    out = []
    for keep in keeps:
        points = sorted((g for g in gaps if g["keep"] == keep), key=lambda g: g["n"])
        resolved = [g for g in points if g["verdict"] in ("better", "worse")]
        row = {"keep": keep, "below": None, "above": None, "direction": None, "crossover_n": None,
               "hardest_minus_easiest": [round(g["diff"], 4) for g in points],
               "resolved_sizes": [g["n"] for g in resolved]}
        for g0, g1 in zip(resolved, resolved[1:]):
            if g0["verdict"] != g1["verdict"]:
                t = g0["diff"] / (g0["diff"] - g1["diff"])
                n0, n1 = g0["n"], g1["n"]
                row.update(below=n0, above=n1, direction="to hardest" if g1["diff"] > 0 else "to easiest",
                           crossover_n=round(math.exp(math.log(n0) + t * (math.log(n1) - math.log(n0)))))
                break
        out.append(row)
    return out


# ---------------------------------------------------------------- the study

def run(config: Config, ws: Workspace) -> dict:
    rows_by_size: dict[int, list[dict]] = {}
    labels = {}
    for i in range(len(config.sizes)):
        setting = size_setting(config, i)
        n = len(ws.splits(setting.data).train)
        labels[n] = score_label(config, setting)
        records = ws.evaluate(size_tasks(ws, config, setting), NAME)
        rows_by_size[n] = by_rule(accuracy_rows(records, n=n, epochs=setting.train.epochs))
    regime = regime_rows(rows_by_size, config.rules)
    redundancy = redundancy_rows(rows_by_size, max(config.keeps))
    gaps = gap_rows(rows_by_size, config.keeps)
    crossing = crossovers(gaps, config.keeps)
    folder = ws.folder(NAME)
    score = config.score or f"EL2N at {SCORE_FRACTION:g} of the budget"
    _plot_regime(regime, crossing, folder / "regime.png", score)
    return STUDY.write_section(folder, config, findings=findings(regime, redundancy, gaps, crossing, config, labels),
        tables={"regime.csv": regime, "redundancy.csv": redundancy, "hardest_minus_easiest.csv": gaps,
         "crossover.csv": crossing, "results.csv": [r for rows in rows_by_size.values() for r in rows]},
        figures={"regime.png": f"{score}-selected subsets minus random subsets of the same size (test accuracy points, 95 % "
                       "Welch interval), against the training-set size N; one panel per kept fraction. Hollow points "
                       "(dotted line): fewer than 3 evaluation seeds, no interval drawn. Crossovers dashed, only where "
                       "hardest − easiest is resolved on both sides"},
        summary={"regime": regime, "redundancy": redundancy, "hardest_minus_easiest": gaps, "crossovers": crossing})


def _protocol(config: Config) -> dict:
    """Evaluation seeds, score runs and score draws of every size (all sizes share them)."""
    s = config.setting
    return {"eval_seeds": config.eval_seeds or s.eval_seeds, "score_runs": config.score_runs or s.score_runs,
            "score_draws": config.score_draws or s.score_draws}


def findings(regime, redundancy, gaps, crossing, config: Config, labels: dict[int, str]) -> list[str]:
    protocol = _protocol(config)
    lines = [interval_coverage(protocol["eval_seeds"], protocol["score_runs"], protocol["score_draws"])]
    for r in redundancy:
        if r["redundancy_gap"] is not None:
            lines.append(f"N = {r['n']}: full data {r['full']:.4f}, random {max(config.keeps):g} "
                         f"{r[f'random_{max(config.keeps):g}']:.4f}; redundancy gap "
                         f"{r['redundancy_gap'] * 100:+.2f} points.")
    for c in crossing:
        per_size = "; ".join(f"N = {g['n']}: {_text(g)}" for g in gaps if g["keep"] == c["keep"]) or "not measured"
        if c["crossover_n"] is not None:
            lines.append(f"keep {c['keep']:g}: the better direction switches {c['direction']} between N = "
                         f"{c['below']} and N = {c['above']} (≈ {c['crossover_n']} by log-interpolation; "
                         f"hardest − easiest per size: {per_size}).")
        else:
            lines.append(f"keep {c['keep']:g}: no crossover resolved within the sizes measured (one needs hardest − "
                         f"easiest resolved on both sides, with opposite signs; per size: {per_size}).")
    for rule in config.rules:
        for r in (x for x in regime if x["rule"] == rule):
            lines.append(f"{Method.of(labels[r['n']], rule)} at N = {r['n']}, keep {r['keep']:g}: {_text(r)} vs "
                         f"random, {verdict_phrase(r['verdict'], 'random')}{_to_resolve(r)}.")
    return lines


def _to_resolve(row: dict) -> str:
    """How many seeds per arm would resolve a difference of this size, where it is not resolved yet."""
    if row["verdict"] not in ("no different", "not resolved"):
        return ""
    return f" (seeds per arm to resolve a difference this size: {seeds_text(row['seeds_needed'])})"


def _text(row: dict) -> str:
    return interval_text(row["diff"], row["ci_low"], row["ci_high"], row["note"])


def _plot_regime(regime: list[dict], crossing: list[dict], path, score: str) -> None:
    plt = figures.pyplot()
    keeps = sorted({r["keep"] for r in regime})
    fig, axes = plt.subplots(1, len(keeps), figsize=(4.5 * len(keeps), 3.8), squeeze=False, sharey=True)
    shown = []  # the means and informative intervals: the shared y axis follows these alone
    for ax, keep in zip(axes[0], keeps):
        for rule in sorted({r["rule"] for r in regime}):
            pts = sorted((r for r in regime if r["keep"] == keep and r["rule"] == rule), key=lambda r: r["n"])
            shown += figures.difference_points(ax, [r["n"] for r in pts], pts, label=rule)
        ax.axhline(0, color="black", linewidth=0.8)
        for c in crossing:
            if c["keep"] == keep and c["crossover_n"]:
                ax.axvline(c["crossover_n"], color="grey", linestyle="--", label=f"crossover ≈ {c['crossover_n']}")
        ax.set_xscale("log")
        ax.set_title(f"keep {keep:g}")
        ax.set_xlabel("training-set size N")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    figures.difference_limits(axes[0][0], shown)
    axes[0][0].set_ylabel(f"{score}: accuracy minus random (points)")
    figures.save(fig, path)


STUDY = Study(NAME, TITLE, SOURCE, Config, PRESETS, run, doc=__doc__, set_per_point=SET_PER_POINT)
