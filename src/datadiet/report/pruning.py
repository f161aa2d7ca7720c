"""The report of a pruning experiment: tables, figures and a plain statement of what beat random.

:func:`write_pruning_report` takes what a results folder holds (its config, the finished run records and the
mean scores), recomputes every table and figure from them, and writes ``report.md`` and the self-contained
``report.html`` made from it (figures embedded).  Reading the folder is the reproduce study's job.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import DataDietError
from ..io import write_json_atomic
from ..stats import VERDICTS, spearman_matrix
from . import figures
from .markdown import markdown_table, write_markdown_and_html
from .tables import compare_to_random, curve_table, flatten_results, point_label, write_csv

FIGURES = {"curve": "pruning_curve.png", "offsets": "offset_curve.png", "spearman": "spearman.png",
           "scatter": "grand_init_vs_input_norm.png"}


def write_pruning_report(folder: str | Path, config: dict, records: list[dict],
                         score_means: dict[str, np.ndarray], *, accounting: dict | None = None) -> dict:
    """(Re)write every table, figure and the report of a pruning experiment into ``folder``; returns the
    summary. ``records`` are finished run records, ``score_means`` maps score labels to mean scores, and
    ``accounting`` lists the run files left out (missing, extra, foreign, damaged), for the report to say."""
    folder = Path(folder)
    rows = flatten_results(records)
    if not rows:
        raise DataDietError(f"{folder} holds no finished runs (runs/*.json); run the experiment first.")
    write_csv(folder / "results.csv", rows)
    curve, versus = curve_table(rows), compare_to_random(rows)
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
    summary["runs"] = {"aggregated": len(rows), **(accounting or {})}
    write_json_atomic(folder / "summary.json", summary)
    write_markdown_and_html(folder, "report", _markdown(folder, config, curve, versus, names, rho, summary),
                            title="datadiet report")
    return summary


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
    if accounting.get("foreign"):
        lines.append(f"{len(accounting['foreign'])} run files of another experiment (other data, recipe or subset) "
                     f"left out: {', '.join(accounting['foreign'][:3])}{' ...' if len(accounting['foreign']) > 3 else ''}")
    if accounting.get("damaged"):
        lines.append(f"{len(accounting['damaged'])} damaged run files left out (a re-run trains them again): "
                     f"{', '.join(accounting['damaged'][:3])}")
    return lines


def _has_offsets(curve) -> bool:
    return any(r.get("offset") is not None for r in curve)


VERDICT_PHRASES = {"better": "better than random", "no different": "no different than random",
                   "worse": "worse than random", "not measured": "not compared with random (one run or no spread)"}


def _summary(curve, versus, grand_vs_norm, config) -> dict:
    """Verdicts per method: kept fractions of the keep-highest window, and [keep, offset] pairs of explicit
    offset windows (``offset_verdicts``); a method beat random if it was better somewhere and worse nowhere."""
    full = [r for r in curve if r["method"] == "full"]
    verdicts: dict[str, dict[str, list]] = {}
    offset_verdicts: dict[str, dict[str, list]] = {}
    for v in versus:
        target, entry = (verdicts, v["keep"]) if v.get("offset") is None else (offset_verdicts, [v["keep"], v["offset"]])
        target.setdefault(v["method"], {kind: [] for kind in VERDICTS})[v["verdict"]].append(entry)
    methods = set(verdicts) | set(offset_verdicts)
    empty = {"better": [], "worse": []}
    beat = sorted(m for m in methods
                  if (verdicts.get(m, empty)["better"] or offset_verdicts.get(m, empty)["better"])
                  and not (verdicts.get(m, empty)["worse"] or offset_verdicts.get(m, empty)["worse"]))
    return {"preset": config.get("preset"), "full_data_accuracy": full[0]["mean"] if full else None,
            "spearman_grand_init_input_norm": grand_vs_norm, "verdicts": verdicts,
            "offset_verdicts": offset_verdicts, "beat_random": beat}


def _finding_lines(summary: dict, versus) -> list[str]:
    lines = []
    for method in sorted({v["method"] for v in versus}):
        points = [v for v in versus if v["method"] == method]
        parts = []
        for kind in VERDICTS:
            labels = [point_label(v) for v in points if v["verdict"] == kind]
            if labels:
                parts.append(f"{VERDICT_PHRASES[kind]} at {', '.join(labels)}")
        best = max(points, key=lambda v: v["diff"])
        lines.append(f"**{method}**: {'; '.join(parts)} (largest difference {best['diff'] * 100:+.2f} points "
                     f"at {point_label(best)}, 95 % CI [{best['ci_low'] * 100:+.2f}, {best['ci_high'] * 100:+.2f}]).")
    if summary["spearman_grand_init_input_norm"] is not None:
        lines.append(f"Spearman rank correlation of GraNd at initialization with the input norm: "
                     f"**{summary['spearman_grand_init_input_norm']:.3f}**.")
    return lines


def _markdown(folder, config, curve, versus, names, rho, summary) -> str:
    out = [f"# datadiet report: {config.get('title', folder.name)}", ""]
    beat = summary["beat_random"]
    out += ["## What beat random", "",
            ("Scores that beat random pruning at some kept fraction (95 % Welch interval above zero) and never "
             f"did worse: **{', '.join(beat)}**." if beat else
             "**No score beat random pruning** at any kept fraction with 95 % confidence."), ""]
    out += [f"- {line}" for line in _finding_lines(summary, versus)]
    if summary["full_data_accuracy"] is not None:
        out += [f"- Full data: final test accuracy {summary['full_data_accuracy']:.4f}."]
    out += ["", f"Aggregated {summary['runs']['aggregated']} runs of this experiment's plan."]
    out += [f"- {line[0].upper()}{line[1:]}." for line in describe_accounting(summary["runs"])]
    out += ["", "## Pruning curves", "", f"![pruning curves]({FIGURES['curve']})", ""]
    if _has_offsets(curve):
        out += [f"![offset sweeps]({FIGURES['offsets']})", ""]
    out += markdown_table([{"method": r["method"], "subset": point_label(r), "runs": r["n"], "mean acc.": f"{r['mean']:.4f}",
                            "16th pct": f"{r['p16']:.4f}", "84th pct": f"{r['p84']:.4f}"} for r in curve], limit=len(curve))
    out += ["", "## Difference to random (same kept fraction)", ""]
    out += markdown_table([{"method": v["method"], "subset": point_label(v), "runs": v["n"],
                            "Δ acc. (points)": f"{v['diff'] * 100:+.2f}",
                            "95 % CI": f"[{v['ci_low'] * 100:+.2f}, {v['ci_high'] * 100:+.2f}]",
                            "p": f"{v['p_value']:.3g}", "verdict": v["verdict"]} for v in versus], limit=len(versus))
    if len(names) > 1:
        out += ["", "## Rank correlations of the scores (Spearman)", "", f"![spearman]({FIGURES['spearman']})", "",
                "| | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
        out += [f"| {n} | " + " | ".join(f"{rho[i, j]:.2f}" for j in range(len(names))) + " |"
                for i, n in enumerate(names)]
    if summary["spearman_grand_init_input_norm"] is not None:
        out += ["", "## GraNd at initialization against input norm", "", f"![scatter]({FIGURES['scatter']})"]
    out += ["", "## Configuration", "", "```json", json.dumps(config, indent=2, sort_keys=True), "```", ""]
    return "\n".join(out)

