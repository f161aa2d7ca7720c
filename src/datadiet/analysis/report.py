"""The report of a pruning experiment: tables, figures and a plain statement of what beat random.

``build_report(folder)`` reads a results folder written by ``datadiet reproduce`` (``runs/``,
``scores/``, ``config.json``), recomputes every table and figure from those files, and writes
``report.md`` and a self-contained ``report.html`` (figures embedded) beside them.
"""
from __future__ import annotations

import base64
import html
import json
import re
from pathlib import Path

import numpy as np

from ..errors import DataDietError
from ..io import write_json_atomic, write_text_atomic
from . import figures
from .tables import compare_to_random, curve_table, flatten_results, point_label, spearman_matrix, write_csv

FIGURES = {"curve": "pruning_curve.png", "offsets": "offset_curve.png", "spearman": "spearman.png",
           "scatter": "grand_init_vs_input_norm.png"}


def build_report(folder: str | Path) -> dict:
    """(Re)build every table, figure and the report of a results folder; returns the summary."""
    from ..experiments.sweep import load_results
    from ..scores import load_scores

    folder = Path(folder)
    config = _read_config(folder)
    rows = flatten_results(load_results(folder))
    if not rows:
        raise DataDietError(f"{folder} holds no finished runs (runs/*.json); run the experiment first.")
    write_csv(folder / "results.csv", rows)
    curve, versus = curve_table(rows), compare_to_random(rows)
    write_csv(folder / "curve.csv", curve)
    write_csv(folder / "vs_random.csv", versus)
    figures.pruning_curve(curve, folder / FIGURES["curve"], title=config.get("title", ""))
    if _has_offsets(curve):
        figures.offset_curve(curve, folder / FIGURES["offsets"], title=config.get("title", ""))

    tables = {t.label: t for t in (load_scores(p) for p in sorted((folder / "scores").glob("*.npz")))}
    means = {label: t.mean for label, t in tables.items()}
    names, rho = spearman_matrix(means)
    write_csv(folder / "spearman.csv", [{"score": n, **{m: float(rho[i, j]) for j, m in enumerate(names)}}
                                        for i, n in enumerate(names)])
    if len(names) > 1:
        figures.correlation_heatmap(names, rho, folder / FIGURES["spearman"])
    grand_vs_norm = None
    if "grand@init" in means and "input_norm" in means:
        grand_vs_norm = float(rho[names.index("grand@init"), names.index("input_norm")])
        figures.score_scatter(means["input_norm"], means["grand@init"], folder / FIGURES["scatter"],
                              xlabel="input norm", ylabel="GraNd at init", rho=grand_vs_norm)
    summary = _summary(curve, versus, grand_vs_norm, config)
    write_json_atomic(folder / "summary.json", summary)
    write_text_atomic(folder / "report.md", _markdown(folder, config, curve, versus, names, rho, summary))
    write_text_atomic(folder / "report.html", _html(folder, config, curve, versus, names, rho, summary))
    return summary


def _read_config(folder: Path) -> dict:
    path = folder / "config.json"
    if not path.is_file():
        raise DataDietError(f"{folder} is not a datadiet results folder (no config.json). Point `datadiet report` "
                            "at the --out folder of `datadiet reproduce`.")
    return json.loads(path.read_text(encoding="utf-8"))


def _has_offsets(curve) -> bool:
    return any(r.get("offset") is not None for r in curve)


VERDICTS = ("better", "no different", "worse", "not measured")
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
    out += ["", "## Pruning curves", "", f"![pruning curves]({FIGURES['curve']})", ""]
    if _has_offsets(curve):
        out += [f"![offset sweeps]({FIGURES['offsets']})", ""]
    out += ["| method | subset | runs | mean acc. | 16th pct | 84th pct |", "|---|---|---|---|---|---|"]
    out += [f"| {r['method']} | {point_label(r)} | {r['n']} | {r['mean']:.4f} | {r['p16']:.4f} | {r['p84']:.4f} |"
            for r in curve]
    out += ["", "## Difference to random (same kept fraction)", "",
            "| method | subset | runs | Δ acc. (points) | 95 % CI | p | verdict |", "|---|---|---|---|---|---|---|"]
    out += [f"| {v['method']} | {point_label(v)} | {v['n']} | {v['diff'] * 100:+.2f} | "
            f"[{v['ci_low'] * 100:+.2f}, {v['ci_high'] * 100:+.2f}] | {v['p_value']:.3g} | {v['verdict']} |"
            for v in versus]
    if len(names) > 1:
        out += ["", "## Rank correlations of the scores (Spearman)", "", f"![spearman]({FIGURES['spearman']})", "",
                "| | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
        out += [f"| {n} | " + " | ".join(f"{rho[i, j]:.2f}" for j in range(len(names))) + " |"
                for i, n in enumerate(names)]
    if summary["spearman_grand_init_input_norm"] is not None:
        out += ["", "## GraNd at initialization against input norm", "", f"![scatter]({FIGURES['scatter']})"]
    out += ["", "## Configuration", "", "```json", json.dumps(config, indent=2, sort_keys=True), "```", ""]
    return "\n".join(out)


def _html(folder, config, curve, versus, names, rho, summary) -> str:
    """Self-contained HTML: the Markdown's content with figures embedded as data URIs."""
    def img(name: str) -> str:
        path = folder / name
        if not path.is_file():
            return ""
        data = base64.b64encode(path.read_bytes()).decode()
        return f'<img src="data:image/png;base64,{data}" style="max-width:100%">'

    def table(header, rows) -> str:
        head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
        return f"<table><tr>{head}</tr>{body}</table>"

    beat = summary["beat_random"]
    parts = [f"<h1>datadiet report: {html.escape(config.get('title', folder.name))}</h1>", "<h2>What beat random</h2>",
             f"<p><b>{'Beat random: ' + ', '.join(beat) if beat else 'No score beat random pruning with 95 % confidence.'}</b></p>",
             "<ul>" + "".join(f"<li>{html.escape(line.replace('**', ''))}</li>" for line in _finding_lines(summary, versus)) + "</ul>",
             "<h2>Pruning curves</h2>", img(FIGURES["curve"]), img(FIGURES["offsets"]) if _has_offsets(curve) else "",
             table(["method", "subset", "runs", "mean", "p16", "p84"],
                   [[r["method"], point_label(r), r["n"], f"{r['mean']:.4f}", f"{r['p16']:.4f}", f"{r['p84']:.4f}"] for r in curve]),
             "<h2>Difference to random</h2>",
             table(["method", "subset", "runs", "Δ (points)", "95% CI", "p", "verdict"],
                   [[v["method"], point_label(v), v["n"], f"{v['diff'] * 100:+.2f}",
                     f"[{v['ci_low'] * 100:+.2f}, {v['ci_high'] * 100:+.2f}]", f"{v['p_value']:.3g}", v["verdict"]] for v in versus])]
    if len(names) > 1:
        parts += ["<h2>Rank correlations (Spearman)</h2>", img(FIGURES["spearman"]),
                  table([""] + list(names), [[n] + [f"{rho[i, j]:.2f}" for j in range(len(names))] for i, n in enumerate(names)])]
    if summary["spearman_grand_init_input_norm"] is not None:
        parts += ["<h2>GraNd at initialization against input norm</h2>", img(FIGURES["scatter"])]
    parts += ["<h2>Configuration</h2>", f"<pre>{html.escape(json.dumps(config, indent=2, sort_keys=True))}</pre>"]
    style = ("body{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:2px 8px;font-size:90%}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>datadiet report</title><style>{style}</style>"
            f"</head><body>{''.join(parts)}</body></html>\n")


def build_analyses_report(root: str | Path) -> Path:
    """Gather the section of every analysis run in workspace ``root`` into ``report.md`` and a
    self-contained ``report.html``; returns the Markdown path."""
    from ..experiments.analyses import MODULES

    root = Path(root)
    sections = [(name, (root / name / "section.md").read_text(encoding="utf-8"))
                for name in MODULES if (root / name / "section.md").is_file()]
    if not sections:
        raise DataDietError(f"{root} holds no finished analysis (no */section.md); run `datadiet analyze NAME` first.")
    lines = ["# datadiet analyses", "", "Sections: " + ", ".join(f"`{name}`" for name, _ in sections), ""]
    markdown = "\n".join(lines) + "\n" + "\n".join(text for _, text in sections)
    write_text_atomic(root / "report.md", markdown)
    write_text_atomic(root / "report.html", markdown_to_html(markdown, root, title="datadiet analyses"))
    return root / "report.md"


def markdown_to_html(markdown: str, folder: Path, *, title: str) -> str:
    """The small Markdown subset the sections use (headings, lists, tables, images, code, details), with
    every image embedded so the file opens anywhere on its own."""
    out, table, code = [], [], False

    def flush_table():
        if table:
            rows = [r for r in table if not set(r.replace("|", "").strip()) <= set("-: ")]
            cells = [[html.escape(c.strip()) for c in r.strip().strip("|").split("|")] for r in rows]
            head = "".join(f"<th>{c}</th>" for c in cells[0])
            body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in cells[1:])
            out.append(f"<table><tr>{head}</tr>{body}</table>")
            table.clear()

    for line in markdown.splitlines():
        if line.startswith("```"):
            flush_table()
            out.append("</pre>" if code else "<pre>")
            code = not code
            continue
        if code:
            out.append(html.escape(line))
            continue
        if line.startswith("|"):
            table.append(line)
            continue
        flush_table()
        out.append(_html_line(line, folder))
    flush_table()
    style = ("body{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:2px 8px;font-size:90%}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body>{''.join(out)}</body></html>\n")


def _html_line(line: str, folder: Path) -> str:
    if line.startswith("!["):
        caption, path = line[2:].split("](", 1)
        file = folder / path.rstrip(")")
        if not file.is_file():
            return ""
        data = base64.b64encode(file.read_bytes()).decode()
        return f'<p><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}" style="max-width:100%"></p>'
    if line.startswith("<details>") or line.startswith("</details>"):
        return line  # our own markup, not user text
    text = _inline(html.escape(line.lstrip("#- ").strip()))
    if line.startswith("### "):
        return f"<h3>{text}</h3>"
    if line.startswith("## "):
        return f"<h2>{text}</h2>"
    if line.startswith("# "):
        return f"<h1>{text}</h1>"
    if line.startswith("- "):
        return f"<li>{text}</li>"
    return f"<p>{text}</p>" if text else ""


def _inline(text: str) -> str:
    """**bold**, *italic* and `code`, on already-escaped text."""
    text = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", text)
    text = re.sub(r"\*(.+?)\*", r"<i>\1</i>", text)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", text)
