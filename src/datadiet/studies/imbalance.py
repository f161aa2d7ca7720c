"""Where pruning hurts classes: score-based pruning on long-tailed and on noisy-label training data.

The setting's training split is made harder in three ways, each its own data (the test split is never touched, so
every class is measured on as many test examples as the data has):

* ``long_tail``: long-tailed, the largest class ``long_tail`` times the smallest, on a geometric profile by class
  index (class c keeps the fraction ``ratio ** (-c / (C - 1))`` of its examples, drawn with the subset seed:
  :func:`datadiet.data.subset.long_tail_n`, ``DataConfig.long_tail``);
* ``noisy``: class-balanced, with ``label_noise`` of the training labels permuted among themselves (Data Diet App.
  F's label noise, :func:`datadiet.data.permute_labels`: the label histogram stays fixed, and ≈ 1/K of the chosen
  examples draw their own class back; this is the project's "symmetric" noise);
* ``long_tail+noisy``: both, the noise permuted on the long-tailed copy.

On each, the setting's score runs (on that data, with its labels, noisy ones included) give EL2N early in training,
and every evaluation seed trains on: the full data, a random subset, and each method of ``rules`` (the hardest
EL2N window; coverage-centric sampling ``ccs``; each with ``+balanced``, every class its proportional share, or
``+equal``, the same count from every class), at every kept fraction. Each run records its test accuracy, balanced
accuracy (the mean per-class recall) and worst-class accuracy (the lowest per-class recall).

Every method is compared with random at the same fraction on each of the three metrics (difference of means, Welch
95 % interval across evaluation seeds, which select from score draw s mod K, so the intervals cover the score runs'
randomness too), Holm-corrected over all methods and fractions of one data and one metric. The question the section
answers: **does some method beat random on both mean and worst-class accuracy at keep 0.5** (Holm verdict "better"
on both)?

**Data Diet's offset window** (B.3: drop the hardest m % first, keep the next ``keep``) is chosen honestly, never
on the test split: a seeded, stratified ``holdout`` part (10 %) of each training split is held out
(``DataConfig.holdout``: those examples replace the test split, with the labels they were given, noisy ones
included); the score runs are repeated on the remaining 90 %, and for every kept fraction each candidate m of
``drop_hardest`` (0 = the hardest window itself) trains ``validation_seeds`` runs there. The m with the best mean
*validation* balanced accuracy (ties: the smaller m) is then run on the whole training split and measured on the
test split like every other method, as ``EL2N+window``.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np

from ..config import DataConfig, check_keeps
from ..errors import ConfigError
from ..methods import Method
from ..report.tables import METRIC_NAMES, compare_to_random, curve_table
from ..runs.presets import ON_SCARCE, Setting, study_presets
from ..runs.workspace import Workspace
from ..selection import class_counts
from .common import Study, accuracy_rows, baseline_tasks, check_rules, check_seed_counts, coverage, pruning_tasks

NAME = "imbalance"
TITLE = "Where pruning hurts classes: long-tailed and noisy-label training data"
SOURCE = ("Paul et al. (2021) App. F (label noise), Zheng et al. (2023) (CCS), Cui et al. (2019) (the long-tailed "
          "profile); issue 26 item 6")

DATASETS = ("long_tail", "noisy", "long_tail+noisy")
WINDOW = "window"  # the method name of the validated offset window in this study's tables: f"{score}+window"
METRICS = ("accuracy", "balanced", "worst-class")
QUESTION_KEEP = 0.5


@dataclass(frozen=True)
class Config:
    setting: Setting
    keeps: tuple[float, ...] = (0.3, 0.5, 0.7)   # kept fractions
    rules: tuple[str, ...] = ("hardest", "hardest+balanced", "hardest+equal", "ccs", "ccs+balanced", "ccs+equal")
    long_tail: float = 10.0                      # largest / smallest training class of the long-tailed data
    label_noise: float = 0.2                     # fraction of training labels permuted (the noisy data)
    noise_seed: int = 0
    train_size: int | None = None                # a seeded balanced subset of this many first; None = the setting's
    drop_hardest: tuple[float, ...] = (0.0, 0.1, 0.2)  # the window's candidate m: fraction of the hardest dropped
    holdout: float = 0.1                         # the training split's stratified part that validates m
    validation_seeds: int = 1                    # runs per candidate m on the held-out part
    eval_seeds: int | None = None                # evaluation runs per point; None = the setting's
    score_runs: int | None = None                # score runs averaged; None = the setting's
    score_draws: int | None = None               # score draws (eval seed s: draw s mod K); None = the setting's

    def __post_init__(self) -> None:
        """Refuse settings that cannot show anything, before any training."""
        check_keeps(self.keeps)
        check_seed_counts(self)
        check_rules(self.rules)
        if not self.long_tail > 1:
            raise ConfigError(f"--long-tail is the ratio of the largest to the smallest training class and must be "
                              f"above 1 (e.g. 10); got {self.long_tail}.")
        if not 0 < self.label_noise <= 1:
            raise ConfigError(f"imbalance compares noisy with clean labels, so --label-noise must lie in (0, 1]; got "
                              f"{self.label_noise}.")
        if self.train_size is not None and self.train_size < 1:
            raise ConfigError(f"--train-size must be a positive number of examples, got {self.train_size}.")
        if not self.drop_hardest or any(not 0 <= m < 1 for m in self.drop_hardest):
            raise ConfigError(f"--drop-hardest takes fractions in [0, 1) of the hardest examples to drop before the "
                              f"window (0 = keep the hardest); got {list(self.drop_hardest)}.")
        if not 0 < self.holdout < 1:
            raise ConfigError(f"--holdout must lie strictly between 0 and 1 (e.g. 0.1); got {self.holdout}.")
        if self.validation_seeds < 1:
            raise ConfigError(f"--validation-seeds must be at least 1, got {self.validation_seeds}.")
        data = self.setting.data
        if data.holdout is not None:
            raise ConfigError(f"The setting's data already holds out {data.holdout} of the training split; imbalance "
                              "holds out its own validation part (set the study's --holdout instead).")
        if data.label_noise or data.long_tail is not None:
            raise ConfigError(f"The setting's data already has label_noise={data.label_noise}, long_tail="
                              f"{data.long_tail}; imbalance needs the clean, balanced data and makes its own long-tailed "
                              "and noisy copies (set the study's --long-tail and --label-noise instead).")



PRESETS = study_presets(NAME, Config, settings=ON_SCARCE,
    # 384 fake examples, 2 epochs: 3 data × (full, random, 3 methods, the window) × 2 seeds = 36 tiny runs, and 3 × 3
    # validation runs of the window.
    smoke=dict(keeps=(0.5,), rules=("hardest", "hardest+balanced", "ccs+equal")),
    # Sized for ≤ 20 min on 2 cores: timed at 7 min wall from an empty workspace on the shared 2-core development
    # machine (load ≈ 2). The quick-scarce recipe (small CNN ×0.5, 20 epochs) on 2,000 balanced Fashion-MNIST
    # examples (≈ 3-4 s a run; subsets train the steps of their data's full run) and the long-tailed 818 (≈ 2 s).
    # Per evaluation seed (3) and data: full + 3 fractions × (random, 4 methods, the window); on the balanced noisy
    # data "+equal" is "+balanced" (equal classes) and is not run: 48 runs there, 2 × 57 on the long-tailed data;
    # the window's validation, 9 candidate runs per data on 90 %; score runs 2 per draw, to epoch 2.
    # (ccs+balanced and ccs+equal: add them with --rules.)
    quick=dict(rules=("hardest", "hardest+balanced", "hardest+equal", "ccs"), score_runs=2, train_size=2000),
)


# ---------------------------------------------------------------- the grid

def data_of(config: Config, name: str) -> DataConfig:
    """The training data of one of :data:`DATASETS`."""
    base = config.setting.data
    if config.train_size is not None:
        base = replace(base, subset=config.train_size, subset_mode="balanced")
    tail = config.long_tail if "long_tail" in name else None
    noise = config.label_noise if "noisy" in name else 0.0
    return replace(base, long_tail=tail, label_noise=noise, noise_seed=config.noise_seed if noise else 0)


def setting_of(config: Config, name: str) -> Setting:
    return replace(config.setting, data=data_of(config, name), keeps=tuple(config.keeps)).with_protocol(
        eval_seeds=config.eval_seeds, score_runs=config.score_runs, score_draws=config.score_draws)


def methods_for(config: Config, sizes: Sequence[int]) -> list[Method]:
    """The methods of ``rules`` for data whose classes have ``sizes``. With equal classes ``+equal`` selects exactly
    what ``+balanced`` does (the same quota per class), so where both are asked for it is not trained twice."""
    label = config.setting.early("el2n")
    methods = [Method.of(label, rule) for rule in config.rules]
    if len(set(sizes)) == 1:
        asked = {str(m) for m in methods}
        methods = [m for m in methods if not (m.equal and str(replace(m, equal=False, balanced=True)) in asked)]
    return methods


def data_tasks(ws: Workspace, config: Config, name: str, drops: dict[float, float]) -> tuple[list, list, list]:
    """Baselines, every method, and the offset window of each kept fraction's chosen m (``drops``; m = 0 is the
    hardest window, already among the methods): (tasks, window tasks, methods)."""
    setting = setting_of(config, name)
    label = setting.early("el2n")
    draws = ws.score_draws(setting, labels=(label,))
    methods = methods_for(config, _sizes(ws.splits(setting.data).train))
    tasks = baseline_tasks(ws, setting, config.keeps)
    for method in methods:
        tasks += pruning_tasks(ws, setting, method, draws, config.keeps)
    windows = {k: [window_offset(k, m)] for k, m in drops.items() if m > 0}
    return tasks, window_tasks(ws, setting, Method(label), draws, windows), methods


def window_offset(keep: float, m: float) -> float | None:
    """The B.3 offset (fraction dropped from the easy end) of the window that drops the hardest ``m`` and keeps
    ``keep``; None for m = 0 (the keep-the-highest window)."""
    return None if m == 0 else round(1 - keep - m, 10)


def window_tasks(ws: Workspace, setting: Setting, method: Method, draws, windows: dict[float, list]) -> list:
    """Runs of the hardest ``method`` at each kept fraction's offsets (``windows``: keep → offsets, None = the top
    window), once per evaluation seed, seed s selecting from draw s mod K (as :func:`pruning_tasks`)."""
    train_set = ws.splits(setting.data).train
    ids = train_set.ids.numpy()
    tasks = []
    for s, cfg in enumerate(setting.eval_configs()):
        scores = draws.for_seed(s)[method.label]
        for keep, offsets in windows.items():
            for offset in offsets:
                kept = method.select(scores, keep=keep, offset=offset, ids=ids)
                tasks.append(ws.task(setting.data, cfg, str(method), keep, kept, offset=offset))
    return tasks


def validation_setting(config: Config, name: str) -> Setting:
    """The data of ``name`` with its validation part held out (it replaces the test split), and the validation
    protocol: ``validation_seeds`` runs per candidate, one score draw."""
    data = replace(data_of(config, name), holdout=config.holdout, test_subset=None)
    return replace(setting_of(config, name), data=data).with_protocol(eval_seeds=config.validation_seeds,
                                                                       score_draws=1)


def choose_drops(ws: Workspace, config: Config, name: str) -> tuple[dict[float, float], list[dict]]:
    """Per kept fraction, the m of ``drop_hardest`` with the best mean validation balanced accuracy (ties: the
    smaller m), and the validation table."""
    setting = validation_setting(config, name)
    method = Method(setting.early("el2n"))
    draws = ws.score_draws(setting, labels=(method.label,))
    candidates = {k: [m for m in sorted(set(config.drop_hardest)) if m <= 1 - k + 1e-9] for k in config.keeps}
    windows = {k: [window_offset(k, m) for m in ms] for k, ms in candidates.items()}
    records = ws.evaluate(window_tasks(ws, setting, method, draws, windows), NAME)
    table = validation_table(accuracy_rows(records), candidates, name)
    return pick_drops(table), table


def validation_table(rows: list[dict], candidates: dict[float, list[float]], name: str) -> list[dict]:
    """Per kept fraction and candidate m: the validation runs' mean accuracy and balanced accuracy."""
    out = []
    for keep, ms in candidates.items():
        for m in ms:
            offset = window_offset(keep, m)
            mine = [r for r in rows if abs(r["keep"] - keep) < 1e-9 and (r["offset"] is None if offset is None else
                                                                      r["offset"] is not None and abs(r["offset"] - offset) < 1e-9)]
            out.append({"data": name, "keep": keep, "m": m, "offset": offset, "runs": len(mine),
                        "validation_accuracy": _mean(r["test_accuracy"] for r in mine),
                        "validation_balanced": _mean(r["test_balanced_accuracy"] for r in mine)})
    return out


def pick_drops(table: list[dict]) -> dict[float, float]:
    """Per kept fraction, the candidate m with the highest validation balanced accuracy; ties go to the smaller m
    (drop less when dropping does not measurably help)."""
    best: dict[float, dict] = {}
    for row in sorted(table, key=lambda r: (r["keep"], r["m"])):
        if not np.isfinite(row["validation_balanced"]):
            continue
        held = best.get(row["keep"])
        if held is None or row["validation_balanced"] > held["validation_balanced"]:
            best[row["keep"]] = row
    return {k: r["m"] for k, r in best.items()}


def window_rows(rows: list[dict], window_ids: set[str], drops: dict[float, float], label: str) -> list[dict]:
    """The rows of the chosen windows, as method ``{label}+window`` with their m: the window runs themselves, and
    for a fraction whose chosen m is 0 the hardest method's runs (the same window)."""
    name = f"{label}+{WINDOW}"
    out = [{**r, "method": name, "m": drops[r["keep"]]} for r in rows if r["run_id"] in window_ids]
    out += [{**r, "method": name, "m": 0.0} for r in rows if r["method"] == label and r["offset"] is None
            and drops.get(r["keep"]) == 0]
    return out


def _mean(values) -> float:
    v = list(values)
    return float(np.mean(v)) if v else float("nan")


# ---------------------------------------------------------------- pure computations

def point_table(rows: list[dict]) -> list[dict]:
    """Per (data, method, keep): runs, and mean / 16th / 84th percentile of each metric."""
    out: dict[tuple, dict] = {}
    for name in _names(rows):
        mine = [r for r in rows if r["data"] == name]
        for metric in METRICS:
            prefix = metric.replace("-", "_")
            for p in curve_table(mine, metric):
                row = out.setdefault((name, p["method"], p["keep"]), {"data": name, "method": p["method"],
                                                                      "keep": p["keep"], "runs": p["n"]})
                row.update({f"{prefix}_mean": p["mean"], f"{prefix}_p16": p["p16"], f"{prefix}_p84": p["p84"]})
    return list(out.values())


def versus_random(rows: list[dict]) -> list[dict]:
    """Per data and metric, every method at every fraction minus random (Welch interval), Holm-corrected over the
    methods and fractions of that data and metric."""
    out = []
    for name in _names(rows):
        mine = [r for r in rows if r["data"] == name]
        for metric in METRICS:
            for v in compare_to_random(mine, metric=metric):
                out.append({"data": name, "metric": metric, "method": v["method"], "keep": v["keep"], "n": v["n"],
                            "n_random": v["n_random"], "diff": v["diff"], "ci_low": v["ci_low"],
                            "ci_high": v["ci_high"], "p_value": v["p_value"], "p_holm": v["p_holm"],
                            "verdict": v["verdict"], "verdict_holm": v["verdict_holm"]})
    return out


def answer_rows(versus: list[dict], keep: float = QUESTION_KEEP) -> list[dict]:
    """At ``keep``, per data and method: its Holm verdict against random on mean and on worst-class accuracy, and
    whether it beats random on both."""
    by = {(v["data"], v["method"], v["metric"]): v for v in versus if abs(v["keep"] - keep) < 1e-9}
    out = []
    for (name, method, metric), v in by.items():
        if metric != "accuracy":
            continue
        worst = by.get((name, method, "worst-class"))
        out.append({"data": name, "method": method, "keep": keep, "accuracy_diff": v["diff"],
                    "accuracy_verdict": v["verdict_holm"], "worst_class_diff": worst and worst["diff"],
                    "worst_class_verdict": worst and worst["verdict_holm"],
                    "beats_random_on_both": bool(worst) and v["verdict_holm"] == worst["verdict_holm"] == "better"})
    return out


def class_count_rows(tasks: Sequence, labels: dict[str, np.ndarray], sizes: dict[str, list[int]]) -> list[dict]:
    """Per (data, method, keep, class): the mean count a subset kept of the class (by the *true* class, before any
    label noise) over the evaluation seeds, beside the class's size in the training data."""
    counts: dict[tuple, list] = defaultdict(list)
    for name, task in tasks:
        if task.positions is not None:
            kept = class_counts(labels[name][task.positions], len(sizes[name]))
            counts[(name, task.spec.method, task.spec.keep)].append(kept)
    return [{"data": name, "method": method, "keep": keep, "class": c, "size": sizes[name][c],
             "kept_mean": float(np.mean([k[c] for k in kept]))}
            for (name, method, keep), kept in sorted(counts.items(), key=lambda kv: (DATASETS.index(kv[0][0]), *kv[0][1:]))
            for c in range(len(sizes[name]))]


def _sizes(split) -> list[int]:
    return class_counts(split.labels.numpy(), split.num_classes).tolist()


def _names(rows: list[dict]) -> list[str]:
    return [n for n in DATASETS if any(r["data"] == n for r in rows)]


# ---------------------------------------------------------------- the study

def run(config: Config, ws: Workspace) -> dict:
    rows, all_tasks, labels, sizes, skipped, validation, chosen = [], [], {}, {}, {}, [], {}
    label = config.setting.early("el2n")
    for name in DATASETS:
        drops, table = choose_drops(ws, config, name)
        validation += [{**r, "chosen": drops.get(r["keep"]) == r["m"]} for r in table]
        chosen[name] = drops
        tasks, windows, methods = data_tasks(ws, config, name, drops)
        records = ws.evaluate(tasks + windows, NAME)
        window_ids = {t.spec.run_id for t in windows}
        mine = accuracy_rows(records, data=name, m=None)  # m: the window's dropped fraction, on its rows only
        rows += [r for r in mine if r["run_id"] not in window_ids] + window_rows(mine, window_ids, drops, label)
        all_tasks += [(name, t) for t in tasks] + [(name, _renamed(t, f"{label}+{WINDOW}")) for t in windows]
        all_tasks += [(name, _renamed(t, f"{label}+{WINDOW}")) for t in tasks if t.spec.method == label
                      and t.spec.offset is None and drops.get(t.spec.keep) == 0]
        true_split = ws.splits(replace(data_of(config, name), label_noise=0.0, noise_seed=0)).train
        labels[name] = true_split.labels.numpy()
        sizes[name] = _sizes(true_split)
        skipped[name] = [r for r in config.rules if str(Method.of(config.setting.early("el2n"), r))
                         not in {str(m) for m in methods}]
    points, versus = point_table(rows), versus_random(rows)
    answers = answer_rows(versus)
    counts = class_count_rows(all_tasks, labels, sizes)
    folder = ws.folder(NAME)
    return STUDY.write_section(folder, config,
        findings=findings(config, points, answers, sizes, skipped, chosen),
        tables={"window_validation.csv": validation, "points.csv": points, "versus_random.csv": versus, "answer_keep_0.5.csv": answers,
                "class_counts.csv": counts, "results.csv": rows},
        summary={"answer": answers, "chosen_drops": {n: {str(k): m for k, m in d.items()} for n, d in chosen.items()}, "beats_random_on_both": [a for a in answers if a["beats_random_on_both"]],
                 "class_sizes": sizes})


def _renamed(task, method: str):
    """``task`` as the class-count table names it (its spec's method replaced; the run is the same)."""
    return replace(task, spec=replace(task.spec, method=method))


def findings(config: Config, points: list[dict], answers: list[dict], sizes: dict[str, list[int]],
             skipped: dict[str, list[str]], chosen: dict[str, dict[float, float]]) -> list[str]:
    s = setting_of(config, DATASETS[0])
    lines = [coverage(s),
             f"Training data ({config.setting.data.dataset}, test split untouched): "
             + "; ".join(f"**{n}** {sum(sizes[n]):,} examples, classes {min(sizes[n])}–{max(sizes[n])}"
                         for n in sizes)
             + f" (long tail {config.long_tail:g}:1, geometric by class index; {config.label_noise:.0%} of labels "
               f"permuted, seed {config.noise_seed}, ≈ 1/K of them drawing their own class back)."]
    for name, rules in skipped.items():
        if rules:
            lines.append(f"On {name} the classes are equal, so {', '.join(rules)} select exactly what the "
                         "+balanced variant does and were not trained again.")
    for name in sizes:
        full = next((p for p in points if p["data"] == name and p["method"] == "full"), None)
        rand = next((p for p in points if p["data"] == name and p["method"] == "random"
                     and abs(p["keep"] - QUESTION_KEEP) < 1e-9), None)
        if full and rand:
            lines.append(f"{name}: full data accuracy {full['accuracy_mean']:.4f}, balanced {full['balanced_mean']:.4f}, "
                         f"worst class {full['worst_class_mean']:.4f}; random {QUESTION_KEEP:g}: "
                         f"{rand['accuracy_mean']:.4f} / {rand['balanced_mean']:.4f} / {rand['worst_class_mean']:.4f}.")
    if points and all(abs(p["balanced_mean"] - p["accuracy_mean"]) < 1e-6 for p in points):
        lines.append("The test split has the same number of examples in every class, so balanced accuracy (the mean "
                     "per-class recall) equals accuracy here; worst-class accuracy is the metric that differs.")
    winners = [a for a in answers if a["beats_random_on_both"]]
    if winners:
        lines.append(f"**Yes**: at keep {QUESTION_KEEP:g}, beating random on both mean and worst-class accuracy (Holm, "
                     "95 %): " + "; ".join(f"{a['method']} on {a['data']} ({a['accuracy_diff']:+.4f} / "
                                           f"{a['worst_class_diff']:+.4f})" for a in winners) + ".")
    else:
        lines.append(f"**No** method beats random on both mean and worst-class accuracy at keep {QUESTION_KEEP:g} on any "
                     f"of the data (Holm-corrected Welch tests, 95 %; {len(answers)} method–data pairs).")
    for a in answers:
        lines.append(f"keep {QUESTION_KEEP:g}, {a['data']}, {a['method']}: {METRIC_NAMES['accuracy']} "
                     f"{_signed(a['accuracy_diff'])} ({a['accuracy_verdict']}), {METRIC_NAMES['worst-class']} "
                     f"{_signed(a['worst_class_diff'])} ({a['worst_class_verdict']}) against random.")
    lines.append(f"Offset window (drop the hardest m, then keep the highest), m from {list(config.drop_hardest)} chosen "
                 f"on a held-out {config.holdout:.0%} of each training split by validation balanced accuracy "
                 f"({config.validation_seeds} run(s) per candidate), never on the test split: "
                 + "; ".join(f"{n}: " + ", ".join(f"keep {k:g} → m {m:g}" for k, m in sorted(d.items()))
                             for n, d in chosen.items()) + f" (`{NAME}/window_validation.csv`).")
    lines.append(f"Per run: `{NAME}/results.csv`; per class kept (true classes): `{NAME}/class_counts.csv`.")
    return lines


def _signed(value) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:+.4f}"


STUDY = Study(NAME, TITLE, SOURCE, Config, PRESETS, run, doc=__doc__)
