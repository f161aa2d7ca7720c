"""Accuracy against compute: does a pruning method beat simply training on all the data for less?

Pruning is sold as saving compute.  The fair baseline is then not the full data at the full budget but the full data
trained for *the same compute*: this study draws that baseline as a curve and places every method on it.  All points
use the same setting and every evaluation seed:

* ``full``: all the data at several fractions of the epoch budget (the learning-rate schedule is a fraction of the
  run, so each is a complete, compressed schedule): the baseline curve;
* ``random``: a fresh random subset per seed, trained ``--epochs`` passes over itself (``budget="epochs"``: fewer
  steps, unlike the papers' matched budget, which trains every subset the full run's steps and so saves nothing);
* score methods (``el2n@epoch2``, ``el2n@epoch2+ccs``) on the same budget, charged their scoring: the score runs of
  every draw that chose their subsets (evaluation seed s selects from draw s mod K), what their score needed of them;
* ``InfoBatch`` (Qin et al. 2024) at several prune ratios and ``RS2`` (Okanovic et al. 2024) at several per-epoch
  fractions, both for the full epoch budget (dynamic pruning needs no score runs);
* optionally the full data in bf16 (CPU autocast): the same passes in less time, where the CPU has native bf16.

Compute is counted in sample passes (examples through forward + backward; scoring's forward-only passes at their
FLOP share) and estimated FLOPs (:mod:`datadiet.training.accounting`).  Each point is compared with the full-data
curve at the same sample passes: per evaluation seed s, seed s's own curve is interpolated linearly at the point's
compute on seed s; outside the curve's range nothing is extrapolated.  The interpolated accuracies and the point's
are compared with a Welch interval (``datadiet.stats.compare_groups``) and Holm's correction over all comparisons.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal, Sequence

import numpy as np

from ..config import TrainConfig, check_fractions, check_keeps
from ..errors import ConfigError
from ..methods import DynamicMethod, Method
from ..report import figures
from ..report.pruning import NOT_JUDGED, judged, learned_gate
from ..report.tables import METRIC_NAMES, choose_metric, class_cells, cost_rows, metric_column
from ..runs.presets import Setting, study_presets
from ..runs.scoring import add_charges, recipe_flops
from ..runs.workspace import ScoreDraws, Workspace
from ..selection import select_random
from ..stats import compare_groups, holm_correct, interval_text, summarize, verdict_phrase
from .common import Study, check_seed_counts, coverage

NAME = "compute"
TITLE = "Accuracy against compute: pruning against training on all the data for less"
SOURCE = ("Qin et al. (2024) InfoBatch (Tables 1-2: accuracy and saved cost against full data), Okanovic et al. (2024) "
          "RS2 (accuracy at a time budget against static pruning), Data Diet / Kirsch (2023) static scores charged "
          "their score runs")

# Recipe fields this study sets per point: the command line offers no flag for them.
SET_PER_POINT = ("steps", "budget", "dynamic", "precision")  # "dynamic": the pruner and every parameter's flag


@dataclass(frozen=True)
class Config:
    setting: Setting
    fractions: tuple[float, ...] = (0.2, 0.3, 0.5, 0.7, 1.0)  # full data: fractions of the epoch budget (the baseline)
    keeps: tuple[float, ...] = (0.3, 0.5, 0.7)    # static subsets (random, score methods), trained their own epochs
    methods: tuple[Method, ...] = ()              # score methods SCORE[+RULE]; empty = EL2N early, hardest and +ccs
    prune_ratios: tuple[float, ...] = (0.3, 0.5, 0.7)  # InfoBatch's prune ratios (full epoch budget); empty = none
    infobatch_delta: float = 0.875                # InfoBatch's delta: fraction of the epochs that may prune, in (0, 1]
    rs2_keeps: tuple[float, ...] = (0.3, 0.5, 0.7)     # RS2's per-epoch fractions (full epoch budget); empty = none
    bf16: bool = False                            # also the full data in bf16 (CPU autocast) at the full budget
    eval_seeds: int | None = None                 # evaluation runs per point; None = the setting's
    score_runs: int | None = None                 # score runs per draw; None = the setting's
    score_draws: int | None = None                # score draws (eval seed s: draw s mod K); None = the setting's
    # What judges every point and comparison and the did-it-learn gate: test accuracy, balanced accuracy or
    # worst-class accuracy. auto: accuracy, or balanced where the training split's largest class has over 1.5× the
    # examples of its smallest.
    metric: Literal["auto", "accuracy", "balanced", "worst-class"] = "auto"

    def __post_init__(self) -> None:
        check_fractions("--fractions", self.fractions, "(0, inf)")
        if len(set(self.fractions)) < 2:
            raise ConfigError(f"--fractions needs at least two budgets for a baseline curve; got {list(self.fractions)}.")
        check_keeps(self.keeps)
        check_fractions("--prune-ratios", self.prune_ratios, "(0, 1)", empty=True)
        check_fractions("--infobatch-delta", (self.infobatch_delta,), "(0, 1]")
        check_fractions("--rs2-keeps", self.rs2_keeps, "(0, 1]", empty=True)
        object.__setattr__(self, "methods", tuple(map(Method.coerce, self.methods)))  # parsed once, here
        check_seed_counts(self)
        _check_recipe(self.setting.train, dynamic=bool(self.prune_ratios or self.rs2_keeps))


def _check_recipe(train: TrainConfig, *, dynamic: bool) -> None:
    """The budgets here are fractions of epochs, and dynamic pruning trains whole epochs."""
    if train.steps is not None:
        raise ConfigError("analyze compute budgets in epochs (fractions of --epochs); drop --steps.")
    if train.dynamic is not None:
        raise ConfigError("analyze compute sets dynamic pruning per point; the setting's recipe must have none.")
    if dynamic and not (float(train.epochs).is_integer() and train.epochs >= 1):
        raise ConfigError(f"InfoBatch and RS2 train whole epochs: --epochs must be a whole number >= 1, got "
                          f"{train.epochs:g}.")


# quick runs on the `quick` setting (8,000 examples, the redundant regime of `reproduce --preset quick`), not the
# analyses' 4,000-example miniature (compute runs quick itself, not on ON_SCARCE): a saving of compute is worth
# measuring where data is redundant.

PRESETS = study_presets(NAME, Config,
    # Seconds: the smoke setting, one kept fraction and one ratio each, and the bf16 path.
    smoke=dict(fractions=(0.4, 0.7, 1.0), keeps=(0.5,), prune_ratios=(0.5,), rs2_keeps=(0.5,),
                    bf16=True),
    # 2 CPU cores, <= 20 min: the quick setting (8,000 Fashion-MNIST, small CNN ×0.5, 16 epochs) with 5 evaluation
    # seeds. Per seed ≈ 12 full runs' time: the baseline 2.7, random and two EL2N methods 1.5 each, RS2 1.5, InfoBatch
    # ≈ 3.3 (≈ 0.8 of the passes but ≈ 1.1× the time of a full run at ratio 0.5); plus 12 EL2N score runs to epoch 2
    # (≈ 0.6 min). A full run took 13.5 s on an idle 2-core VM here (17 s elsewhere): ≈ 14-18 min in all. No bf16
    # point: it costs a full run more per seed, which the 20 minutes do not hold, and pays only on CPUs with native
    # bf16 (--bf16 adds it).
    quick=dict(eval_seeds=5),
    # One GPU: full Fashion-MNIST, ResNet18, 6 epochs, 4 seeds: ≈ 45 full-run equivalents (a run ≈ 8-28 s on an H200)
    # plus 40 EL2N score runs to epoch 1.  bf16 is the CPU's autocast (on CUDA --amp decides): not drawn.
    gpu=dict(),
    # CIFAR-10 with the full recipe: ≈ 45 full-run equivalents of 200 epochs (≈ 280 s each on an H200) + 40 score runs.
    paper=dict(),
)


# ---------------------------------------------------------------- the points

def resolved(config: Config) -> Setting:
    """The setting with the study's evaluation seeds, score runs and draws."""
    return config.setting.with_protocol(eval_seeds=config.eval_seeds, score_runs=config.score_runs,
                                        score_draws=config.score_draws)


def methods_of(config: Config, setting: Setting) -> list[Method]:
    """The score methods: the configured ones, or EL2N early in training keeping the hardest and by coverage."""
    return list(config.methods or (Method(setting.early("el2n")), Method(setting.early("el2n"), "ccs")))


def charges_of(methods: Sequence[Method], draws: ScoreDraws | None) -> dict[str, dict]:
    """Method → its charge: what its score needed of the score runs of every draw (each score file's ``cost``)."""
    return {str(m): add_charges([tables[m.label].meta["cost"] for tables in draws]) for m in methods}


def point_tasks(ws: Workspace, config: Config, setting: Setting, methods: Sequence[Method],
                draws: ScoreDraws | None) -> list[tuple]:
    """``(task, point)`` for every point and evaluation seed; a point is ``{"method", "value", "seed"}``."""
    return [(ws.task(setting.data, train, name, keep, kept), {"method": method, "value": value, "seed": s})
            for s, cfg in enumerate(setting.eval_configs())
            for method, value, train, name, keep, kept in _seed_points(ws, config, setting, methods,
                                                                       draws.for_seed(s) if draws else {}, cfg)]


def _seed_points(ws: Workspace, config: Config, setting: Setting, methods: Sequence[Method], tables: dict,
                 cfg: TrainConfig) -> list[tuple]:
    """The points of one evaluation seed ``cfg``: ``(method, value, recipe, run method, kept fraction, ids)``;
    its score methods select from ``tables`` (the draw this seed selects from)."""
    train_set = ws.splits(setting.data).train
    ids = train_set.ids.numpy()
    out = [("full", f, replace(cfg, epochs=cfg.epochs * f), "full", 1.0, ids) for f in config.fractions]
    own = replace(cfg, budget="epochs")  # a subset trains --epochs passes over itself: fewer steps
    for k in config.keeps:
        out.append(("random", k, own, "random", k, select_random(ids, keep=k, seed=cfg.seed)))
        for m in methods:
            kept = m.select(tables[m.label], keep=k, seed=cfg.seed, labels=train_set.labels.numpy(),
                            num_classes=train_set.num_classes)
            out.append((str(m), k, own, str(m), k, kept))
    dynamic = [("InfoBatch", DynamicMethod("infobatch", r, delta=config.infobatch_delta)) for r in config.prune_ratios]
    dynamic += [("RS2", DynamicMethod("rs2", k)) for k in config.rs2_keeps]
    out += [(shown, m.value, m.recipe(cfg), str(m), 1.0, ids) for shown, m in dynamic]
    if config.bf16:
        out.append(("full (bf16)", 1.0, replace(cfg, precision="bf16"), "full", 1.0, ids))
    return out


def point_rows(records: list[dict], points: dict[str, dict], charges: dict[str, dict], per_example=None,
               metric: str = "accuracy") -> list[dict]:
    """One row per finished run: its point, test accuracy (and per-class numbers), ``judged`` (the value of
    ``metric`` that every table and comparison reads; None where the record predates it) and cost, training only
    and with its method's charge (the whole cost of its score runs, added once; none for methods without score
    runs)."""
    rows = []
    for r, c in zip(records, cost_rows(records, per_example)):
        point = points[r["run_id"]]
        charge = charges.get(point["method"])
        judged_value = r.get(metric_column(metric))
        row = {**point, "run_id": r["run_id"], "test_accuracy": r["test_accuracy"], **class_cells(r),
               "judged": None if judged_value is None else float(judged_value), "passes": c["sample_passes"],
               "flops": c["flops"], "seconds": c["wall_seconds"], "scored": charge is not None}
        rows.append({**row, **_with_charge(row, charge)})
    return sorted(rows, key=lambda r: (r["method"], r["value"], r["seed"]))


def _with_charge(row: dict, charge: dict | None) -> dict:
    """The row's compute including its scoring charge (equal to training only without one)."""
    if charge is None:
        return {"passes_with_scoring": row["passes"], "flops_with_scoring": row["flops"],
                "seconds_with_scoring": row["seconds"]}
    flops = None if row["flops"] is None or charge["flops"] is None else row["flops"] + charge["flops"]
    wall = math.nan if charge["wall_seconds"] is None else charge["wall_seconds"]
    return {"passes_with_scoring": row["passes"] + float(charge["pass_equivalents"]), "flops_with_scoring": flops,
            "seconds_with_scoring": row["seconds"] + wall}


# ---------------------------------------------------------------- pure computations

def interpolate(curve: Sequence[tuple[float, float]], x: float) -> float | None:
    """The piecewise-linear curve through ``(compute, accuracy)`` points at ``x``; None outside its range (no
    extrapolation). Points at the same compute are averaged."""
    merged: dict[float, list[float]] = {}
    for cx, cy in curve:
        merged.setdefault(float(cx), []).append(float(cy))
    xs = sorted(merged)
    if not xs or not xs[0] <= x <= xs[-1]:
        return None
    return float(np.interp(x, xs, [float(np.mean(merged[v])) for v in xs]))


BASES = {"training": "passes", "with scoring": "passes_with_scoring"}


def _judged(row: dict) -> float:
    """The value a row is judged by: the chosen metric's (``judged``, from :func:`point_rows`), else its accuracy."""
    return row["judged"] if row.get("judged") is not None else row["test_accuracy"]


def judged_rows(rows: Sequence[dict]) -> list[dict]:
    """The rows that hold a value of the chosen metric (``judged`` absent: rows without one, all judged by
    accuracy); records written before runs measured it are left out."""
    return [r for r in rows if "judged" not in r or r["judged"] is not None]


def versus_full(rows: Sequence[dict], level: float = 0.95) -> list[dict]:
    """Every point against the full-data curve at the same compute, training only and (static score methods)
    including scoring, with Holm's correction over every comparison that has a p-value."""
    curves = _full_curves(rows)
    out = []
    for (method, value), pts in _points(rows).items():
        if method == "full":
            continue
        for basis, key in BASES.items():
            if basis == "with scoring" and not pts[0]["scored"]:
                continue
            out.append({"method": method, "value": value, "basis": basis, **_at_same_compute(pts, curves, key, level)})
    return holm_correct(out, level)


def _points(rows: Sequence[dict]) -> dict[tuple, list[dict]]:
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["method"], r["value"]), []).append(r)
    return groups


def _full_curves(rows: Sequence[dict]) -> dict[int, list[tuple[float, float]]]:
    """Seed → its own full-data curve ``[(sample passes, accuracy)]``."""
    curves: dict[int, list] = {}
    for r in rows:
        if r["method"] == "full":
            curves.setdefault(r["seed"], []).append((r["passes"], _judged(r)))
    return curves


def _at_same_compute(pts: Sequence[dict], curves: dict, key: str, level: float) -> dict:
    """The point's accuracies against each seed's own full-data curve at that seed's compute. A seed without a
    curve is left out; a compute outside a seed's curve makes the comparison "outside the baseline's range"."""
    paired = [(p, curves[p["seed"]]) for p in pts if p["seed"] in curves]
    compute = float(np.mean([p[key] for p, _ in paired])) if paired else math.nan
    baseline = [interpolate(curve, p[key]) for p, curve in paired]
    row = {"seeds": len(paired), "compute": compute}
    if not paired or any(b is None for b in baseline):
        where = _outside(paired, key) if paired else "no full-data runs of these seeds"
        return {**row, "full_at_same": math.nan, **compare_groups([], []).row(), "note": where, "accuracies": "",
                "full_accuracies": ""}
    accs = [_judged(p) for p, _ in paired]
    return {**row, "full_at_same": float(np.mean(baseline)), **compare_groups(accs, baseline, level).row(),
            "accuracies": _values(accs), "full_accuracies": _values(baseline)}


def _outside(paired: list, key: str) -> str:
    above = any(p[key] > max(x for x, _ in curve) for p, curve in paired)
    return "outside the baseline's range: " + ("more compute than its largest budget" if above else
                                               "less compute than its smallest budget")


def _values(values) -> str:
    return " ".join(f"{v:.4f}" for v in values)


def point_table(rows: Sequence[dict]) -> list[dict]:
    """Per point: accuracy (mean, 16th/84th percentiles) and mean compute, training only and with scoring."""
    out = []
    for (method, value), pts in sorted(_points(rows).items()):
        flops = [p["flops"] for p in pts]
        flops_all = [p["flops_with_scoring"] for p in pts]
        out.append({"method": method, "value": value, **summarize([_judged(p) for p in pts]),
                    "passes": float(np.mean([p["passes"] for p in pts])),
                    "passes_with_scoring": float(np.mean([p["passes_with_scoring"] for p in pts])),
                    "flops": _mean_or_none(flops), "flops_with_scoring": _mean_or_none(flops_all),
                    "seconds": float(np.mean([p["seconds"] for p in pts])),
                    "seconds_with_scoring": float(np.mean([p["seconds_with_scoring"] for p in pts])),
                    "scored": pts[0]["scored"]})
    return out


def _mean_or_none(values) -> float | None:
    return None if any(v is None for v in values) else float(np.mean(values))


def infobatch_rows(rows: Sequence[dict], versus: Sequence[dict], level: float = 0.95) -> list[dict]:
    """Per InfoBatch prune ratio: the training sample passes saved against full data at the full budget (mean over
    seeds of 1 − passes / the same seed's full-data passes), its mean training time as a fraction of that run's
    (the bookkeeping of per-example losses is not free), the accuracy difference to that run (Welch interval) and
    the verdict against full data trained for the same passes (:func:`versus_full`)."""
    full = {r["seed"]: r for r in rows if r["method"] == "full" and r["value"] == 1.0}
    out = []
    for (method, value), pts in sorted(_points(rows).items()):
        if method != "InfoBatch":
            continue
        same = next((v for v in versus if v["method"] == method and v["value"] == value), {})
        out.append({"prune_ratio": value, **_saving(pts, full),
                    **compare_groups([_judged(p) for p in pts], [_judged(r) for r in full.values()], level).row(),
                    "verdict_same_passes": same.get("verdict", "not measured"), "note_same_passes": same.get("note", ""),
                    "diff_same_passes": same.get("diff", math.nan)})
    return out


def _saving(pts: Sequence[dict], full: dict[int, dict]) -> dict:
    """Seeds paired with a full-data run, the passes saved (mean over those seeds of 1 − passes / the seed's own
    full-data passes) and the mean training time as a fraction of the full data's; NaN without full-data runs."""
    paired = [p for p in pts if p["seed"] in full]
    if not paired:
        return {"seeds": 0, "saved": math.nan, "seconds_of_full": math.nan}
    saved = np.mean([1 - p["passes"] / full[p["seed"]]["passes"] for p in paired])
    seconds = np.mean([p["seconds"] for p in paired]) / np.mean([full[p["seed"]]["seconds"] for p in paired])
    return {"seeds": len(paired), "saved": float(saved), "seconds_of_full": float(seconds)}


# ---------------------------------------------------------------- the study

def run(config: Config, ws: Workspace) -> dict:
    setting = resolved(config)
    methods = methods_of(config, setting)
    draws = ws.score_draws(setting, labels=tuple(dict.fromkeys(m.label for m in methods))) if methods else None
    charges = charges_of(methods, draws)
    pairs = point_tasks(ws, config, setting, methods, draws)
    records = ws.evaluate([t for t, _ in pairs], NAME)
    points = {t.spec.run_id: p for t, p in pairs}
    train_set = ws.splits(setting.data).train
    metric, metric_reason = choose_metric(config.metric, train_set.labels, train_set.num_classes)
    rows = point_rows(records, points, charges, _per_example(ws, setting, records), metric)
    gate = learned_gate([{**r, "method": "full"} for r in records if points[r["run_id"]]["method"] == "full"
                         and points[r["run_id"]]["value"] == 1.0], metric)  # the full budget's runs
    judged_by = judged_rows(rows)
    versus, table = judged(versus_full(judged_by), gate["learned"]), point_table(judged_by)
    infobatch = not_judged_infobatch(infobatch_rows(judged_by, versus), gate["learned"])
    folder = ws.folder(NAME)
    _plot_accuracy_vs_compute(table, folder / "accuracy_vs_compute.png")
    gate_lines = metric_findings(metric, metric_reason, gate, len(rows) - len(judged_by))
    return STUDY.write_section(folder, config,
        findings=gate_lines + findings(table, versus, infobatch, charges, setting),
        tables={"points.csv": table, "versus_full.csv": versus, "infobatch.csv": infobatch, "results.csv": rows},
        figures={"accuracy_vs_compute.png": "Final test accuracy (mean, 16th-84th percentile band) against training compute: "
                                    "sample passes (left) and estimated FLOPs (right). Full data at fractions of the "
                                    "epoch budget in black; score methods solid for training only, dashed including "
                                    "their score runs (every draw)."},
        summary={"versus_full": versus, "infobatch": infobatch, "charges": charges, "metric": metric,
                 "metric_reason": metric_reason, "learned": gate["learned"], "learned_reason": gate["reason"]})


def not_judged_infobatch(rows: list[dict], learned_task: bool | None) -> list[dict]:
    """InfoBatch's rows with every verdict "not judged" where the full-data runs did not learn the task."""
    if learned_task is not False:
        return rows
    return [{**r, "verdict": NOT_JUDGED, "verdict_same_passes": NOT_JUDGED} for r in rows]


def metric_findings(metric: str, reason: str, gate: dict, lacking: int) -> list[str]:
    """The first findings: the metric and why, whether the full-data runs (full budget) learned the task, and the
    runs left out for lacking the metric."""
    lines = [f"Judged by **{METRIC_NAMES[metric]}** (`--metric {metric}`: {reason})."
             + (f" {lacking} run records predate this metric and are left out." if lacking else "")]
    if gate["learned"] is False:
        lines.insert(0, f"**The model did not learn the task on this setting**: {gate['reason']}. Every comparison is "
                        f"\"{NOT_JUDGED}\". To change: train longer (`--epochs`), a larger or better-suited model "
                        "(`--model`, `--width`), larger images for a built-in model (`--resize H W` on folder data), "
                        "or another learning rate (`--lr`).")
    elif gate["learned"] is None:
        lines.append(f"Did the model learn the task? {gate['reason'][0].upper()}{gate['reason'][1:]}; the verdicts "
                     "are given unchecked.")
    else:
        lines.append(f"The model learned the task: {gate['reason']}.")
    return lines


def _per_example(ws: Workspace, setting: Setting, records: list[dict]):
    """FLOPs per example of the setting's model, needed only for run records that predate recorded costs."""
    if all("cost" in r for r in records):
        return None
    train_set = ws.splits(setting.data).train
    return recipe_flops(setting.train, train_set.shape, train_set.num_classes)


# ---------------------------------------------------------------- words and figure

def findings(table, versus, infobatch, charges, setting: Setting) -> list[str]:
    lines = [coverage(setting)]
    full = [p for p in table if p["method"] == "full"]
    lines.append("Full data (the baseline) at fractions of the epoch budget: " + "; ".join(
        f"{p['value']:g}: {p['mean']:.4f} at {p['passes']:,.0f} sample passes" for p in full) + ".")
    lines.append("Static subsets trained `--epochs` passes over themselves (`budget=\"epochs\"`); under the papers' "
                 "matched budget every subset trains the full run's steps and saves no training compute at all.")
    full_passes = next((p["passes"] for p in full if p["value"] == 1.0), math.nan)
    for method, c in charges.items():
        lines.append(f"{method}: its {c['runs']} score runs (every draw) cost {c['pass_equivalents']:,.0f} sample-pass "
                     f"equivalents, {c['pass_equivalents'] / full_passes:.2f}× a full-data run; charged to each point.")
    lines += [_versus_line(v) for v in versus]
    lines += [_infobatch_line(r) for r in infobatch]
    lines += _bf16_lines(table)
    return lines


def _versus_line(v: dict) -> str:
    what = f"**{v['method']}** {_value_name(v['method'])} {v['value']:g} ({v['basis']}, {v['compute']:,.0f} passes)"
    if v["note"].startswith("outside"):
        return f"{what}: {v['note']}; not compared."
    holm_text = f"; after Holm's correction {v['verdict_holm']}" if v["verdict_holm"] != v["verdict"] else ""
    return (f"{what}: {interval_text(v['diff'], v['ci_low'], v['ci_high'], v['note'])} against full data at the same "
            f"compute, {verdict_phrase(v['verdict'], 'full data for the same compute')}{holm_text}.")


def _value_name(method: str) -> str:
    return {"InfoBatch": "prune ratio", "RS2": "per-epoch fraction", "full (bf16)": "budget"}.get(method, "keep")


def _infobatch_line(r: dict) -> str:
    same = "outside the baseline's range" if r["note_same_passes"].startswith("outside") else \
        verdict_phrase(r["verdict_same_passes"], "full data trained for the same passes")
    return (f"InfoBatch, prune ratio {r['prune_ratio']:g}: saved {r['saved'] * 100:.1f} % of the training sample "
            f"passes (its training loop took {r['seconds_of_full']:.2f}× the full data's time); {interval_text(r['diff'], r['ci_low'], r['ci_high'], r['note'])} against full data at the full "
            f"budget, {verdict_phrase(r['verdict'], 'it')}; {same}.")


def _bf16_lines(table) -> list[str]:
    bf16 = next((p for p in table if p["method"] == "full (bf16)"), None)
    fp32 = next((p for p in table if p["method"] == "full" and p["value"] == 1.0), None)
    if bf16 is None or fp32 is None:
        return []
    return [f"Full data in bf16: {bf16['mean']:.4f} against {fp32['mean']:.4f} in fp32, the same sample passes in "
            f"{bf16['seconds']:.1f} s instead of {fp32['seconds']:.1f} s of training ({bf16['seconds'] / fp32['seconds']:.2f}×)."]


PANELS = (("passes", "sample passes (dashed: with scoring)"), ("flops", "estimated FLOPs (dashed: with scoring)"))


def _plot_accuracy_vs_compute(table: Sequence[dict], path) -> None:
    series = []
    for method in dict.fromkeys(p["method"] for p in table):
        pts = [p for p in table if p["method"] == method]
        group = "full" if method == "full" else method
        series.append({"label": "full data" if method == "full" else method, "group": group, "dashed": False,
                       "points": pts})
        if pts[0]["scored"]:
            series.append({"label": f"{method}, with scoring", "group": group, "dashed": True,
                           "points": [{**p, "passes": p["passes_with_scoring"], "flops": p["flops_with_scoring"]}
                                      for p in pts]})
    figures.cost_curves(series, PANELS, path)


STUDY = Study(NAME, TITLE, SOURCE, Config, PRESETS, run, doc=__doc__, set_per_point=SET_PER_POINT)
