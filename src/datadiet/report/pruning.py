"""The report of a pruning experiment: tables, figures and, per kept fraction, which scores beat random.

:func:`write_pruning_report` takes what a reproduction holds (its config, the finished run records and the mean
scores), recomputes every table and figure from them, and writes them with the study's ``section.md`` into its
folder; the workspace report gathers the section.  Reading the folder is the reproduce study's job.

Its *Ties in the scores* section names each score's largest tie and warns where the seeded tie order, not the
score, picked over a tenth of a method's kept examples (:func:`tie_rows` says how those are counted).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataDietError
from ..io import write_json_atomic, write_text_atomic
from ..methods import Method
from ..selection import TIE_WARNING_SHARE, percent, tie_decided, tie_phrase, tie_summary
from ..stats import (MIN_SEEDS, VERDICTS, interval_cell, interval_text, learned, seeds_text, spearman_matrix,
                     verdict_phrase)
from . import figures
from .classes import class_count_markdown, class_count_rows, class_warnings
from .markdown import markdown_table
from .tables import (CLASS_RECALL_COLUMNS, METRIC_NAMES, METRICS, class_recall_table, compare_to_random, compute_table,
                     compute_total, cost_rows, curve_table, flatten_results, holm_family_size, interval_coverage,
                     lacking_metric, metric_value, point_label, write_csv)

FIGURES = {"curve": "pruning_curve.png", "offsets": "offset_curve.png", "spearman": "spearman.png",
           "scatter": "grand_init_vs_input_norm.png"}


def write_pruning_report(folder: str | Path, config: dict, records: list[dict],
                         score_means: dict[str, np.ndarray], *, accounting: dict | None = None,
                         classes: dict | None = None, compute: dict | None = None, labels=None,
                         untrained: dict[str, str] | None = None) -> dict:
    """(Re)write every table, figure and the report of a pruning experiment into ``folder``; returns the
    summary. ``records`` are finished run records, ``score_means`` maps score labels to mean scores, and
    ``accounting`` lists the run files left out (missing, extra, foreign, damaged), for the report to say.
    ``compute`` says what the score runs cost: ``charges`` (method → its score runs' charge), ``score_runs``
    (one cost per score run) and ``per_example`` (the model's FLOPs, for records that predate run costs).
    ``labels`` (optional, ``[N]`` classes of the scored examples) lets the tie counts cover methods with a class
    quota (:func:`tie_rows`). ``untrained`` (optional): score label → why its network had not learned when it scored
    (:func:`datadiet.runs.scoring.untrained_reason`); every method selecting by such a score is flagged."""
    folder = Path(folder)
    rows = flatten_results(records)
    if not rows:
        raise DataDietError(f"{folder} has no finished run of its plan (sweep/runs/*.json); run the experiment "
                            "first.")
    write_csv(folder / "results.csv", rows)
    metric = config.get("metric", "accuracy")  # folders written before --metric judged by accuracy
    if metric not in METRICS:  # an edited config.json: an error here, not a silent accuracy
        raise DataDietError(f"{folder / 'config.json'} names the metric {metric!r}; it is one of "
                            f"{', '.join(METRICS)}. Restore it, or run the reproduction again with --metric.")
    gate = learned_gate(records, metric)
    curve, versus = curve_table(rows, metric), judged(compare_to_random(rows, metric=metric), gate["learned"])
    write_csv(folder / "curve.csv", curve)
    write_csv(folder / "vs_random.csv", versus)
    figures.pruning_curve(curve, folder / FIGURES["curve"], title=config.get("title", ""))
    if _has_offsets(curve):
        figures.offset_curve(curve, folder / FIGURES["offsets"], title=config.get("title", ""))
    names, rho = spearman_matrix(score_means)
    write_csv(folder / "spearman.csv", [{"score": n, **{m: float(rho[i, j]) for j, m in enumerate(names)}}
                                        for i, n in enumerate(names)])
    if len(names) > 1:
        figures.correlation_heatmap(names, rho, folder / FIGURES["spearman"])
    grand_vs_norm = None
    if "grand@init" in score_means and "input_norm" in score_means:
        grand_vs_norm = float(rho[names.index("grand@init"), names.index("input_norm")])
        figures.score_scatter(score_means["input_norm"], score_means["grand@init"], folder / FIGURES["scatter"],
                              xlabel="input norm", ylabel="GraNd at init", rho=grand_vs_norm)
    summary = _summary(curve, versus, grand_vs_norm, config)
    summary.update(metric=metric, metric_reason=config.get("metric_reason"), lacking_metric=lacking_metric(rows, metric),
                   learned=gate["learned"], learned_reason=gate["reason"], learned_level=gate["level"])
    summary["runs"] = {"aggregated": len(rows), **(accounting or {})}
    summary["untrained_scorers"] = untrained_methods(records, untrained or {})
    recall_rows = class_recall_table(records, (classes or {}).get("names"))
    if recall_rows:
        write_csv(folder / "class_recall.csv", recall_rows, CLASS_RECALL_COLUMNS)
    summary["dropped_classes"] = dropped_class_warnings(recall_rows)
    summary["unlearned_classes"] = unlearned_class_warnings(recall_rows)
    compute = compute or {}
    costs = cost_rows(records, compute.get("per_example"))
    compute_rows = compute_table(costs, compute.get("charges"))
    write_csv(folder / "compute.csv", compute_rows, COMPUTE_COLUMNS)
    summary["compute"] = compute_total(costs, compute.get("score_runs", []))
    class_rows = class_count_rows(classes)  # classes: the plan's kept counts per class (None for old plans)
    summary["class_warnings"] = class_warnings(class_rows)
    if class_rows:
        write_csv(folder / "class_counts.csv", class_rows)
    summary["score_ties"] = score_tie_summaries(score_means)
    ties = tie_rows(score_means, records, labels)
    summary["tie_decided"], summary["tie_warnings"] = ties, tie_warnings(ties)
    if ties:
        write_csv(folder / "ties.csv", ties, TIE_COLUMNS)
    write_json_atomic(folder / "summary.json", summary)
    tie_lines = tie_markdown(summary["score_ties"], ties, summary["tie_warnings"])
    class_lines = class_count_markdown(class_rows, summary["class_warnings"])
    compute_lines = compute_markdown(compute_rows, summary["compute"], config)
    write_text_atomic(folder / "section.md", _markdown(folder, config, curve, versus, names, rho, summary,
                                                       class_lines, compute_lines, tie_lines, recall_rows))
    return summary


# --- the metric and the "did it learn?" gate (issue 26 §2, §3) ------------------------------------------------------

NOT_JUDGED = "not judged"


def learned_gate(records: list[dict], metric: str = "accuracy") -> dict:
    """Whether the full-data runs learned the task, on ``metric``: their values must beat the majority-class rate
    (accuracy) or chance, 1/K over the K classes present in the test split (balanced and worst-class accuracy), with
    their interval excluding it (:func:`datadiet.stats.learned`). ``learned``: True, False, or None (unknown: records
    written before runs measured the rate, or no full-data run); ``reason``: a sentence; ``level``: the rate beaten."""
    full = [r for r in records if r.get("method") == "full"]
    if not full:
        return {"learned": None, "reason": "unknown: no full-data run to judge", "level": None}
    level, against = _gate_level(full, metric)
    ok, reason = learned([metric_value(r, metric) for r in full], level, against=against, what=METRIC_NAMES[metric])
    return {"learned": ok, "reason": reason, "level": level}


def _gate_level(full: list[dict], metric: str) -> tuple[float | None, str]:
    """The level the full-data runs must beat on ``metric``, and its name; None when a record lacks what it needs."""
    if metric == "accuracy":
        rates = [r.get("test_majority_rate") for r in full]  # one test split: one rate (the largest, to be safe)
        return (None if None in rates else max(map(float, rates))), "the majority-class rate"
    recalls = [r.get("test_class_recall") for r in full]
    if None in recalls:
        return None, "chance (1/K)"
    classes = max(sum(1 for x in recall if x is not None) for recall in recalls)
    return (1.0 / classes if classes else None), f"chance (1/{classes})"


def untrained_methods(records: list[dict], untrained: dict[str, str]) -> dict[str, str]:
    """{method: why its score's network counts as untrained} for the records' score methods whose score label is
    in ``untrained``."""
    out = {}
    for name in sorted({r["method"] for r in records if r.get("method") not in _NOT_SCORE_METHODS}):
        method = _score_method(name)
        if method is not None and untrained.get(method.label):
            out[name] = f"{method.label}: {untrained[method.label]}"
    return out


def judged(versus: list[dict], learned_task: bool | None) -> list[dict]:
    """The comparisons with random as the report states them: every verdict, Holm's too, "not judged" where the
    full-data runs did not learn the task (their differences and intervals stay in the table); unchanged
    otherwise."""
    if learned_task is not False:
        return versus
    # the reason is the gate, not the seed count, and no number of seeds resolves a comparison with a model that
    # learned nothing: the note and the seeds-to-resolve estimate say so
    return [{**v, "verdict": NOT_JUDGED, "verdict_holm": NOT_JUDGED, "note": _gate_note(v.get("note", "")),
             "seeds_needed": None} for v in versus]


def _gate_note(note: str) -> str:
    """A comparison's note once the gate failed: a note about the seed count gives way to the gate's reason; a note
    about the comparison itself (e.g. outside the baseline's range) stays."""
    return "the model did not learn the task" if not note or "seed" in note else note


def not_learned_lines(summary: dict) -> list[str]:
    """The section's first lines where the model did not learn the task: what happened and what to change."""
    return [f"**The model did not learn the task on this setting**: {summary['learned_reason']}. Every comparison "
            f"with random is therefore \"{NOT_JUDGED}\" (a subset cannot be told better or worse than random when "
            "full data learned nothing), and `summary.json` records `\"learned\": false`.",
            "",
            "To change: train longer (`--epochs`), a larger or better-suited model (`--model`, `--width`), larger "
            "images for a built-in model (`--resize H W` on folder data), or another learning rate (`--lr`); check "
            "the labels if none of these helps.", ""]


def metric_lines(summary: dict, config: dict) -> list[str]:
    """The sentence naming the metric that judges every table and verdict, and why; a metric other than accuracy
    opens the section, accuracy (the default on balanced data) is said among the findings."""
    metric = summary["metric"]
    why = summary.get("metric_reason") or ("chosen" if "metric" in config else
                                           "this folder predates --metric, so accuracy")
    line = f"Judged by **{METRIC_NAMES[metric]}** (`--metric {metric}`: {why})."
    if summary.get("lacking_metric"):
        line += (f" {summary['lacking_metric']} run records predate this metric and are left out of its tables "
                 "(their runs count in *Compute*).")
    return [line]


def unknown_gate_line(summary: dict) -> list[str]:
    """Where whether the model learned is not known, a finding that says so."""
    if summary.get("learned") is not None:
        return []
    reason = summary["learned_reason"]
    return [f"Did the model learn the task? {reason[0].upper()}{reason[1:]}; the verdicts are given unchecked."]


def dropped_class_warnings(rows: list[dict]) -> list[str]:
    """One sentence per point and class of :func:`class_recall_table` that fell to recall 0 where full data had
    it above 0."""
    return [f"{r['method']} at {point_label(r)}: class {_class_named(r)} recognised in none of its {r['runs']} runs "
            f"(recall 0; full data {r['full_recall']:.4f})" for r in rows if r["dropped"]]


def unlearned_class_warnings(rows: list[dict]) -> list[str]:
    """One sentence per class that full data itself recognises none of: a model that passes the did-it-learn gate
    can still ignore a class, and then no method's verdict says anything about that class."""
    return [f"full data recognises none of class {_class_named(r)} (recall 0 in all {r['runs']} runs): the model "
            "ignores it, so the comparisons say nothing about it; train longer, weigh the classes "
            "(`--class-weights balanced`) or judge by `--metric worst-class`"
            for r in rows if r["method"] == "full" and r["mean_recall"] == 0]


def _cases(n: int) -> str:
    return f"{n} case" if n == 1 else f"{n} cases"


def _class_named(row: dict) -> str:
    name = row.get("class_name", str(row["class"]))
    return repr(name) if name != str(row["class"]) else name


def class_recall_markdown(rows: list[dict], warnings: list[str]) -> list[str]:
    """The report's *Recall per class* section: mean test recall per point (rows) and class (columns)."""
    if not rows:
        return []
    classes = [name for _, name in sorted({(r["class"], r.get("class_name", str(r["class"]))) for r in rows})]
    points: dict[tuple, dict] = {}
    for r in rows:
        cells = points.setdefault((r["method"], r["keep"], r["offset"]), {"method": r["method"],
                                                                         "subset": point_label(r)})
        cells[f"class {r.get('class_name', r['class'])}"] = "—" if r["mean_recall"] is None else (
            f"{r['mean_recall']:.3f}" + (" (dropped)" if r["dropped"] else ""))
    table = [{**{"method": "", "subset": ""}, **dict.fromkeys((f"class {c}" for c in classes), "—"), **cells}
             for cells in points.values()]
    out = ["### Recall per class", ""]
    out += [f"- **Warning**: {w}." for w in warnings] + ([""] if warnings else [])
    out += markdown_table(table, limit=len(table))
    out += ["", "Mean test recall of each class over the point's runs (`class_recall.csv`); *dropped*: recall 0 "
            "where full data had it above 0. — : no run recorded it (records written before runs measured "
            "classes, or a class absent from the test split)."]
    return out


def describe_accounting(accounting: dict) -> list[str]:
    """One line per kind of run file that the report did not simply aggregate."""
    lines = []
    if accounting.get("missing"):
        lines.append(f"{len(accounting['missing'])} planned runs are not finished yet (re-run `datadiet reproduce` "
                     "with the same options to train them); the report covers the finished ones")
    if accounting.get("extra"):
        verb = "included" if accounting.get("included_extra_seeds") else "left out (--extra-seeds include adds them)"
        lines.append(f"{len(accounting['extra'])} runs of this experiment with evaluation seeds beyond the plan: "
                     f"{verb}")
    if accounting.get("other_studies"):
        lines.append(f"{len(accounting['other_studies'])} runs of the workspace's other studies left out")
    if accounting.get("foreign"):
        lines.append(f"{len(accounting['foreign'])} run files of another experiment (other data, recipe or subset) "
                     f"left out: {', '.join(accounting['foreign'][:3])}{' ...' if len(accounting['foreign']) > 3 else ''}")
    if accounting.get("damaged"):
        lines.append(f"{len(accounting['damaged'])} damaged run files left out (a re-run trains them again): "
                     f"{', '.join(accounting['damaged'][:3])}")
    if accounting.get("unchecked"):
        lines.append(f"{len(accounting['unchecked'])} run files predate run-record checksums: used unchecked (an "
                     f"edit to their numbers cannot be detected): {', '.join(accounting['unchecked'][:3])}"
                     f"{' ...' if len(accounting['unchecked']) > 3 else ''}")
    return lines


def _has_offsets(curve) -> bool:
    return any(r.get("offset") is not None for r in curve)


def _summary(curve, versus, grand_vs_norm, config) -> dict:
    """Verdicts per method: kept fractions of the keep-highest window, and [keep, offset] pairs of explicit
    offset windows (``offset_verdicts``); where each method was better than random (``better_at``, point labels,
    and ``better_at_holm`` after Holm's correction); the report's ``headline``, one line per window; and
    ``beat_random``, the methods better somewhere and worse nowhere."""
    full = [r for r in curve if r["method"] == "full"]
    verdicts: dict[str, dict[str, list]] = {}
    offset_verdicts: dict[str, dict[str, list]] = {}
    for v in versus:
        target, entry = (verdicts, v["keep"]) if v.get("offset") is None else (offset_verdicts, [v["keep"], v["offset"]])
        kinds = target.setdefault(v["method"], {kind: [] for kind in VERDICTS if kind != NOT_JUDGED})
        kinds.setdefault(v["verdict"], []).append(entry)
    methods = set(verdicts) | set(offset_verdicts)
    empty = {"better": [], "worse": []}
    beat = sorted(m for m in methods
                  if (verdicts.get(m, empty)["better"] or offset_verdicts.get(m, empty)["better"])
                  and not (verdicts.get(m, empty)["worse"] or offset_verdicts.get(m, empty)["worse"]))
    return {"preset": config.get("preset"), "full_data_accuracy": full[0]["mean"] if full else None,
            "spearman_grand_init_input_norm": grand_vs_norm, "verdicts": verdicts,
            "offset_verdicts": offset_verdicts, "beat_random": beat,
            "better_at": _points_by_method(versus, "verdict", "better"),
            "better_at_holm": _points_by_method(versus, "verdict_holm", "better"),
            "holm_comparisons": holm_family_size(versus), "headline": _headline(versus),
            "not_resolved": sum(v["verdict"] == "not resolved" for v in versus),
            "coverage": interval_coverage(config.get("eval_seeds"), config.get("score_runs"), config.get("score_draws"))}


def _windows(versus) -> list[tuple]:
    """The (keep, offset) windows compared with random, by kept fraction, keep-highest before explicit offsets."""
    keys = {(float(v["keep"]), None if v.get("offset") is None else float(v["offset"])) for v in versus}
    return sorted(keys, key=lambda k: (k[0], -1.0 if k[1] is None else k[1]))


def _in_window(v, window) -> bool:
    offset = None if v.get("offset") is None else float(v["offset"])
    return (float(v["keep"]), offset) == window


def _points_by_method(versus, column: str, kind: str) -> dict[str, list[str]]:
    """{method: [point labels]} of the comparisons whose ``column`` says ``kind``, windows in headline order."""
    out: dict[str, list[str]] = {}
    for window in _windows(versus):
        for v in sorted((v for v in versus if _in_window(v, window)), key=lambda v: v["method"]):
            if v.get(column) == kind:
                out.setdefault(v["method"], []).append(point_label(v))
    return dict(sorted(out.items()))


def _verdict_lists(rows, column: str) -> str:
    """``better — a; no different — b, c; worse — none`` (and "not resolved" or "not measured" only when some
    were)."""
    parts = []
    if rows and all(v.get(column) == NOT_JUDGED for v in rows):  # the model did not learn: no verdict to list
        return f"{NOT_JUDGED} — {', '.join(sorted(v['method'] for v in rows))}"
    for kind in VERDICTS:
        methods = sorted(v["method"] for v in rows if v.get(column) == kind)
        if methods or kind not in ("not resolved", "not measured", NOT_JUDGED):
            parts.append(f"{kind} — {', '.join(methods) if methods else 'none'}")
    return "; ".join(parts)


def _headline(versus) -> list[str]:
    """One Markdown line per compared window: which scores were better, no different and worse than random there,
    by the 95 % Welch interval of each comparison and, in brackets, after Holm's correction over all of them."""
    m = holm_family_size(versus)
    lines = []
    for window in _windows(versus):
        rows = [v for v in versus if _in_window(v, window)]
        line = f"**{point_label(rows[0])}**: {_verdict_lists(rows, 'verdict')}"
        if m:
            line += f" (Holm-corrected over {m} comparisons: {_verdict_lists(rows, 'verdict_holm')})"
        lines.append(line)
    return lines


def _points_phrase(labels: list[str]) -> str:
    """``keep 0.5, 0.7`` for keep-highest windows, the full labels when offsets are among them."""
    if all(label.startswith("keep ") and " offset " not in label for label in labels):
        return "keep " + ", ".join(label[len("keep "):] for label in labels)
    return ", ".join(labels)


def _better_somewhere(better_at: dict[str, list[str]]) -> str:
    return ", ".join(f"**{m}** ({_points_phrase(points)})" for m, points in better_at.items()) or "none"


def _verdict_summary(summary: dict) -> list[str]:
    """What the headline adds up to, without letting one verdict per score hide a fraction where it won."""
    if summary.get("learned") is False:
        return ["No comparison is judged: the full-data runs did not learn the task (see above).",
                summary["coverage"]]
    beat = summary["beat_random"]
    lines = [(f"Better than random at some kept fraction (95 % Welch interval above zero): "
             f"{_better_somewhere(summary['better_at'])}; of these, never worse anywhere: "
             f"{', '.join(f'**{m}**' for m in beat) if beat else 'none'}.")]
    if summary["holm_comparisons"]:
        lines.append(f"After Holm's correction over all {summary['holm_comparisons']} comparisons with random, better "
                     f"somewhere: {_better_somewhere(summary['better_at_holm'])}.")
    lines.append("The uncorrected verdicts read each comparison on its own: better or worse when the 95 % Welch "
                 "interval of the difference to random (same kept fraction) excludes zero. The Holm-corrected "
                 "verdicts hold the chance of any false \"better\" or \"worse\" among all the comparisons in this "
                 "report below 5 % (family-wise error), so they claim less.")
    if summary["not_resolved"]:
        lines.append(f"{summary['not_resolved']} comparisons have fewer than {MIN_SEEDS} runs on a side: a Welch "
                     "interval from so few runs is not informative (it swings from a few points to hundreds with "
                     "the luck of two numbers), so the table shows their mean difference and per-run accuracies, "
                     "the interval as n/a and the verdict as \"not resolved\". Run more evaluation seeds "
                     "(`--eval-seeds`); *seeds to resolve* estimates how many.")
    lines.append(summary["coverage"])
    return lines


def _finding_lines(summary: dict, versus) -> list[str]:
    lines = []
    for method in sorted({v["method"] for v in versus}):
        points = [v for v in versus if v["method"] == method]
        parts = [f"{verdict_phrase(kind, 'random', note)} at {', '.join(labels)}"
                 for (kind, note), labels in _labels_by_verdict(points).items()]
        changed = [v for v in points if v.get("verdict_holm", v["verdict"]) != v["verdict"]]
        if changed:
            parts.append("after Holm's correction " + ", ".join(f"{v['verdict_holm']} at {point_label(v)}"
                                                                 for v in changed))
        largest = max(points, key=lambda v: abs(v["diff"]))  # in size: -54.74 is larger than -3.34
        which = "largest difference in size" if len(points) > 1 else "difference"
        flag = summary.get("untrained_scorers", {}).get(method)
        lines.append(f"**{method}**: {'; '.join(parts)} ({which} at {point_label(largest)}: "
                     f"{interval_text(largest['diff'], largest['ci_low'], largest['ci_high'], largest['note'])})."
                     + (f" **Untrained scorer**: {flag}." if flag else ""))
    if summary["spearman_grand_init_input_norm"] is not None:
        lines.append(f"Spearman rank correlation of GraNd at initialization with the input norm: "
                     f"**{summary['spearman_grand_init_input_norm']:.3f}**.")
    return lines


def _labels_by_verdict(points) -> dict[tuple[str, str], list[str]]:
    """{(verdict, note): point labels}, strongest verdict first; the note ("exact: no spread", "2 seeds: not
    informative") stays with the verdict it qualifies."""
    groups: dict[tuple[str, str], list[str]] = {}
    for v in sorted(points, key=lambda v: VERDICTS.index(v["verdict"])):
        groups.setdefault((v["verdict"], v["note"]), []).append(point_label(v))
    return groups


def _verdict_cell(verdict: str, note: str) -> str:
    """The verdict column: ``better``, ``better (exact: no spread)``, ``no different (identical)``; a few-seed note
    stands in the interval column instead."""
    return f"{verdict} ({note})" if note in ("exact: no spread", "identical") else verdict


# The short name of the chosen metric in table headings ("acc." for accuracy, as the tables always said).
METRIC_HEADINGS = {"accuracy": "acc.", "balanced": "balanced acc.", "worst-class": "worst-class acc."}


def _difference_row(v: dict, with_runs: bool, metric: str = "accuracy") -> dict:
    """One line of the difference table; per-run values of the metric where some comparison is not resolved."""
    same = v["verdict_holm"] == v["verdict"]
    short = METRIC_HEADINGS[metric]
    row = {"method": v["method"], "subset": point_label(v), "runs": v["n"], f"Δ {short} (points)": f"{v['diff'] * 100:+.2f}",
           "95 % CI": interval_cell(v["ci_low"], v["ci_high"], v["note"]), "p": _p_cell(v["p_value"]),
           "verdict": _verdict_cell(v["verdict"], v["note"]), "p (Holm)": _p_cell(v["p_holm"]),
           "verdict (Holm)": _verdict_cell(v["verdict_holm"], v["note"] if same else ""),
           "seeds to resolve": seeds_text(v["seeds_needed"])}
    if with_runs:
        row[f"per-run {short} (method / random)"] = f"{v['accuracies']} / {v['random_accuracies']}"
    return row


def _table_legend(holm_comparisons: int) -> str:
    """What the columns of the difference table mean."""
    holm = (f"Holm-corrected p-value below 0.05 over all {holm_comparisons} comparisons in the table with a p-value"
            if holm_comparisons else "no comparison has a p-value to correct")
    return (f"*verdict*: the 95 % Welch interval of this one difference; *verdict (Holm)*: {holm}. *seeds to "
            "resolve*: evaluation seeds per arm at which a 95 % interval around the observed difference, with the "
            "observed pooled spread, would exclude zero (— : no difference or no spread). Fewer than "
            f"{MIN_SEEDS} runs on a side: no interval (n/a), verdict \"not resolved\".")


def _p_cell(p: float) -> str:
    return f"{p:.3g}" if np.isfinite(p) else "—"


def _markdown(folder, config, curve, versus, names, rho, summary, class_lines=(), compute_lines=(),
              tie_lines=(), recall_rows=()) -> str:
    """The section (``section.md``): headings one level below the workspace report's, figures linked from it."""
    here = folder.name  # report.md lies in the workspace above the study's folder
    out = [f"## Pruning curves: {config.get('title', folder.name)}", ""]
    if summary["metric"] != "accuracy":  # what judged every number below, said first when it is not accuracy
        out += metric_lines(summary, config) + [""]
    if summary.get("learned") is False:
        out += not_learned_lines(summary)
    if summary.get("untrained_scorers"):
        out += [f"**Warning**: some methods select by a score taken from a network that had not learned to fit its "
                f"training data (training loss above 0.9 × ln K when it scored): "
                f"{', '.join(summary['untrained_scorers'])}; their verdicts say little about the score "
                "(see *Findings*).", ""]
    if summary.get("unlearned_classes"):
        out += [f"**Warning**: full data itself recognises none of {len(summary['unlearned_classes'])} "
                f"class{'es' if len(summary['unlearned_classes']) > 1 else ''} (see *Recall per class* below): the "
                f"verdicts say nothing about {'them' if len(summary['unlearned_classes']) > 1 else 'it'}.", ""]
    if summary.get("dropped_classes"):
        out += [f"**Warning**: some methods recognise none of a class that full data recognised "
                f"({_cases(len(summary['dropped_classes']))}; see *Recall per class* below).", ""]
    if summary.get("class_warnings"):  # a method that drops a class is read differently: say so first
        out += [f"**Warning**: some subsets keep a class at under half of its proportional share "
                f"({_cases(len(summary['class_warnings']))}; see *Kept examples per class* below).", ""]
    if summary.get("tie_warnings"):  # so is a subset the tie order chose
        out += [f"**Warning**: the seeded tie order, not the score, picked over {percent(TIE_WARNING_SHARE)} of the "
                f"kept examples of some subsets ({_methods_count(len(summary['tie_warnings']))}; see *Ties in the "
                "scores* below).", ""]
    if summary["headline"]:
        out += [f"- {line}" for line in summary["headline"]] + [""]
        for line in _verdict_summary(summary):
            out += [line, ""]
    else:
        out += ["No score was compared with random (no random runs at the scores' kept fractions).", ""]
    out += ["### Findings", ""]
    out += [f"- {line}" for line in _finding_lines(summary, versus)]
    if summary["full_data_accuracy"] is not None:
        out += [f"- Full data: final test {METRIC_NAMES[summary.get('metric', 'accuracy')]} "
                f"{summary['full_data_accuracy']:.4f}."]
    if summary.get("learned"):
        out += [f"- The model learned the task: {summary['learned_reason']}."]
    out += [f"- {line}" for line in unknown_gate_line(summary)]
    if summary["metric"] == "accuracy":
        out += [f"- {line}" for line in metric_lines(summary, config)]
    out += ["", f"Aggregated {summary['runs']['aggregated']} runs of this experiment's plan."]
    out += [f"- {line[0].upper()}{line[1:]}." for line in describe_accounting(summary["runs"])]
    out += ["", "### Pruning curves", "", f"![pruning curves]({here}/{FIGURES['curve']})", ""]
    if _has_offsets(curve):
        out += [f"![offset sweeps]({here}/{FIGURES['offsets']})", ""]
    short = METRIC_HEADINGS[summary["metric"]]
    out += markdown_table([{"method": r["method"], "subset": point_label(r), "runs": r["n"], f"mean {short}": f"{r['mean']:.4f}",
                            "16th pct": f"{r['p16']:.4f}", "84th pct": f"{r['p84']:.4f}"} for r in curve], limit=len(curve))
    out += ["", "### Difference to random (same kept fraction)", ""]
    with_runs = summary["not_resolved"] > 0
    out += markdown_table([_difference_row(v, with_runs, summary["metric"]) for v in versus], limit=len(versus))
    if versus:
        out += ["", _table_legend(summary["holm_comparisons"])]
    if len(names) > 1:
        out += ["", "### Rank correlations of the scores (Spearman)", "", f"![spearman]({here}/{FIGURES['spearman']})", "",
                "| | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
        out += [f"| {n} | " + " | ".join(f"{rho[i, j]:.2f}" for j in range(len(names))) + " |"
                for i, n in enumerate(names)]
    if summary["spearman_grand_init_input_norm"] is not None:
        out += ["", "### GraNd at initialization against input norm", "", f"![scatter]({here}/{FIGURES['scatter']})"]
    out += ["", *tie_lines] if tie_lines else []
    out += ["", *class_lines] if class_lines else []
    recall_lines = class_recall_markdown(list(recall_rows), summary.get("unlearned_classes", []) +
                                         summary.get("dropped_classes", []))
    out += ["", *recall_lines] if recall_lines else []
    out += ["", *compute_lines] if compute_lines else []
    out += ["", "### Configuration", "", "```json", json.dumps(config, indent=2, sort_keys=True), "```", ""]
    return "\n".join(out)



COMPUTE_COLUMNS = ("method", "keep", "offset", "runs", "train_passes", "train_of_full", "train_flops", "train_seconds",
                   "score_runs", "scoring_passes", "scoring_forward", "passes_with_scoring", "with_scoring_of_full",
                   "flops_with_scoring", "seconds_with_scoring")


def compute_markdown(rows: list[dict], total: dict, config: dict) -> list[str]:
    """The report's *Compute* section: what each point's training cost, with and without the score runs that
    chose its subsets, what the whole experiment cost, and what the step budget means for the saving."""
    out = ["### Compute", "", budget_sentence(config.get("train", {})), ""]
    out += markdown_table([_compute_cell(r) for r in rows], limit=len(rows))
    out += ["", "*training*: means over the point's runs of the examples through forward + backward (sample passes), "
            "as a fraction of the full-data run's, estimated FLOPs and the training loop's wall seconds. *with scoring*: "
            "the same plus the whole cost of the score runs that chose the point's subsets (every draw: evaluation seed "
            "s selects from draw s mod K), charged to every point of the method, since every model it trains needed "
            "them; a method is charged what its score needed of the runs (training to its scoring step and its own "
            "scoring pass), not the other scores they computed. Forward-only scoring passes (EL2N) count at their "
            "share of a forward + backward's FLOPs; gradient scores (GraNd) count a sample pass per example.", ""]
    t = total
    out.append(f"Whole experiment: {_count(t['training']['sample_passes'])} training sample passes in {t['runs']} "
               f"evaluation runs, plus {t['score_runs']} score runs ({_count(t['scoring']['sample_passes'])} sample "
               f"passes and {_count(t['scoring']['forward_passes'])} forward passes), each score run counted once "
               f"however many methods and fractions share it: {_flops(t['total']['flops'])} FLOPs, "
               f"{_seconds(t['total']['wall_seconds'])} of training and scoring.")
    if t["recomputed"]:
        out += ["", f"{t['recomputed']} run records predate recorded costs: their passes come from their step schedule "
                "(steps × batch), their FLOPs from the model, their seconds from the record (set-up and test "
                "evaluation included)."]
    return out


def budget_sentence(train: dict) -> str:
    """What the step budget means for the compute a pruned subset saves."""
    if train.get("steps") is not None or train.get("budget", "matched") == "matched":
        return ("**Every subset trained the full run's number of steps** (the papers' matched budget, Data Diet B.2): "
                "the pruned points saved no training compute; each costs what the full-data run costs, and a score "
                "method's score runs come on top. (`--budget epochs` trains each subset its own epochs instead: "
                "fewer steps for smaller subsets.)")
    return ("Each subset trained `--epochs` passes over itself (`--budget epochs`): a subset of a fraction k of the "
            "data costs about k of the full-data run's training, plus its score runs.")


def _compute_cell(row: dict) -> dict:
    cells = {"method": row["method"], "subset": point_label(row), "runs": row["runs"],
             "training passes": _count(row["train_passes"]), "training, of full": _share(row["train_of_full"]),
             "training FLOPs": _flops(row["train_flops"]), "training s": _seconds(row["train_seconds"])}
    if row.get("score_runs") is None:
        return {**cells, **dict.fromkeys(("score runs", "with scoring: passes", "with scoring, of full",
                                          "with scoring: FLOPs", "with scoring: s"), "—")}
    return {**cells, "score runs": row["score_runs"], "with scoring: passes": _count(row["passes_with_scoring"]),
            "with scoring, of full": _share(row["with_scoring_of_full"]),
            "with scoring: FLOPs": _flops(row["flops_with_scoring"]),
            "with scoring: s": _seconds(row["seconds_with_scoring"])}


def _count(value) -> str:
    return f"{value:,.0f}"


def _share(value) -> str:
    return f"{value:.2f}" if np.isfinite(value) else "—"


def _flops(value) -> str:
    return "unknown" if value is None else f"{value:.3g}"


def _seconds(value) -> str:
    return f"{value:.1f} s" if np.isfinite(value) else "unknown"


# --- ties (issue 26 §4) ------------------------------------------------------------------------------------------

TIE_COLUMNS = ("method", "keep", "offset", "kept", "subsets", "tie_decided_mean", "tie_decided_max", "share_max")
_NOT_SCORE_METHODS = ("random", "full")  # the baselines: "random" also names a score, but these runs read none


def score_tie_summaries(score_means: dict[str, np.ndarray]) -> dict[str, dict]:
    """``{score label: selection.tie_summary of its mean scores}``, labels sorted."""
    return {label: tie_summary(score_means[label]) for label in sorted(score_means)}


def tie_rows(score_means: dict[str, np.ndarray], records: list[dict], labels=None) -> list[dict]:
    """How many kept examples the seeded tie order picked, per score method's point (method, kept fraction, offset).

    Computed at report time: the plan does not record it, so each point's subset is selected again from
    ``score_means`` (the mean scores the report is given: the first score draw's) at its kept fraction, and
    counted with ``selection.tie_decided``. For the ranking rules (the window, hardest, easiest, moderate) the count
    depends only on the scores and the kept fraction, not on the tie order or the ids, so it is the count of the
    subsets chosen from that draw (with several draws, the other draws' subsets are not counted). CCS draws its
    sample, so it is counted once per evaluation seed of the point's runs (its sample seed), over positions as ids:
    an estimate. A method with a class quota (+balanced, +equal) needs ``labels`` (``[N]``, the scored examples'
    classes): without them its row says None. Rows: ``TIE_COLUMNS``; ``share_max`` = ``tie_decided_max / kept``.
    """
    points: dict[tuple, set[int]] = {}
    for r in records:
        if r.get("method") not in _NOT_SCORE_METHODS:
            key = (r["method"], float(r["keep"]), None if r.get("offset") is None else float(r["offset"]))
            points.setdefault(key, set()).add(int((r.get("train") or {}).get("seed", 0)))
    rows = []
    for (name, keep, offset), seeds in sorted(points.items(), key=lambda item: _point_key(*item[0])):
        method = _score_method(name)
        if method is None or method.label not in score_means:
            continue  # a dynamic method, or scores the report was not given
        counted = _tie_counts(method, np.asarray(score_means[method.label], dtype=np.float64), keep, offset,
                              sorted(seeds), labels)
        if counted is not None:
            rows.append({"method": name, "keep": keep, "offset": offset, **counted})
    return rows


def _point_key(method: str, keep: float, offset: float | None) -> tuple:
    return (keep, method, -1.0 if offset is None else offset)


def _score_method(name: str) -> Method | None:
    """The score method a run's method name spells, or None (a dynamic method, or one tagged with other scores)."""
    try:
        method = Method.parse(name)
    except DataDietError:  # an unknown score or rule names no score method this report can count
        return None
    return None if method.tag else method


def _tie_counts(method: Method, values: np.ndarray, keep: float, offset: float | None, seeds: list[int],
                labels) -> dict | None:
    """The point's kept count and its tie-decided counts (mean, max, largest share) over ``seeds`` (one selection
    when the rule draws nothing); None where the selection cannot be made again from these scores."""
    quota = method.class_quota
    rule = "window" if offset is not None else method.rule
    positions = np.arange(len(values))
    counts, kept_count = [], None
    try:
        for seed in seeds if method.seeded else seeds[:1]:
            if quota is not None and labels is None:
                kept_count = int(round(keep * len(values)))
                break
            kept = method.select(values, keep=keep, seed=seed, labels=labels, offset=offset)
            kept_count = len(kept)
            counts.append(tie_decided(values, positions, kept, rule=rule, labels=labels, class_quota=quota,
                                      keep=keep))
    except ConfigError:  # scores of another size than the subsets' data, a fraction that keeps none, ...
        return None
    if not counts:
        return {"kept": kept_count, "subsets": len(seeds), "tie_decided_mean": None, "tie_decided_max": None,
                "share_max": None}
    return {"kept": kept_count, "subsets": len(seeds), "tie_decided_mean": float(np.mean(counts)),
            "tie_decided_max": int(max(counts)), "share_max": max(counts) / kept_count}


def tie_warnings(rows: list[dict]) -> list[str]:
    """One sentence per method whose subsets had over a tenth of their kept examples picked by the tie order."""
    by_method: dict[str, list[dict]] = {}
    for r in rows:
        if r["share_max"] is not None and r["share_max"] > TIE_WARNING_SHARE:
            by_method.setdefault(r["method"], []).append(r)
    lines = []
    for method, points in sorted(by_method.items()):
        worst = max(points, key=lambda r: r["share_max"])
        most = (f"{worst['tie_decided_max']:,} of the {worst['kept']:,} kept examples ({percent(worst['share_max'])})"
                f" at {point_label(worst)}")
        where = most if len(points) == 1 else (
            f"over {percent(TIE_WARNING_SHARE)} of the kept examples at {', '.join(point_label(r) for r in points)} "
            f"(the most: {most})")
        lines.append(f"{method}: the seeded tie order, not the score, picked {where}; its curve there measures the "
                     "tie order as much as the score")
    return lines


def tie_markdown(score_ties: dict[str, dict], rows: list[dict], warnings: list[str]) -> list[str]:
    """The report's *Ties in the scores* section: each score's largest tie, the warnings, the tie-decided table."""
    if not score_ties:
        return []
    out = ["### Ties in the scores", ""]
    out += [f"- **{label}**: {tie_phrase(ties)}" + (f"; {percent(ties['tied_share'])} of the examples share their "
                                                     "score with another" if ties["largest_tie_count"] else "") + "."
            for label, ties in score_ties.items()]
    out += [""] + [f"- **Warning**: {w}." for w in warnings] + ([""] if warnings else [])
    if rows:
        out += markdown_table([_tie_cell(r) for r in rows], limit=len(rows))
        out += ["", "*tie-decided*: kept examples that tie, in the rule's ranking (inside their class for +balanced "
                "and +equal), with an example left out: the seeded tie order (`--tie-seed`), not the score, put them "
                "in the subset. Counted at report time on the first score draw's mean scores (the window, hardest, "
                "easiest and moderate rules: exact for that draw's subsets, whatever the tie order; CCS: only ties "
                "across its hardest cut count, one count per evaluation seed's sample, an estimate). — : a method "
                "with a class quota, whose count needs the examples' labels."]
    return out


def _methods_count(n: int) -> str:
    return f"{n} method" + ("" if n == 1 else "s")


def _tie_cell(row: dict) -> dict:
    if row["tie_decided_mean"] is None:
        return {"method": row["method"], "subset": point_label(row), "kept": f"{row['kept']:,}", "tie-decided": "—",
                "share of kept": "—"}
    mean, most = row["tie_decided_mean"], row["tie_decided_max"]
    shown = f"{mean:,.0f}" if mean == most else f"{mean:,.1f} (max {most:,})"  # the subsets differ: CCS draws
    return {"method": row["method"], "subset": point_label(row), "kept": f"{row['kept']:,}", "tie-decided": shown,
            "share of kept": percent(row["share_max"])}
