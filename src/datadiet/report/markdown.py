"""Markdown, the one report format: a study's section, Markdown tables, and the self-contained HTML made from
the Markdown (figures embedded), so the two files always say the same thing."""
from __future__ import annotations

import base64
import html
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ..io import write_json_atomic, write_text_atomic
from .tables import write_csv

STYLE = ("body{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em}"
         "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:2px 8px;font-size:90%}")


@dataclass(frozen=True, kw_only=True)
class Section:
    """What a study reports: a title, its findings in words with numbers, tables and figures."""

    name: str
    title: str
    source: str                         # which figure/section of which paper it reproduces
    findings: list[str]
    tables: dict[str, list[dict]]       # file name (CSV) → rows
    figures: dict[str, str]             # file name (PNG, already written) → caption
    config: dict
    summary: dict


def write_section(folder: Path, section: Section) -> dict:
    """Write the study's tables, ``section.md`` and ``summary.json``; returns the summary."""
    for file, rows in section.tables.items():
        write_csv(folder / file, rows)
    lines = [f"## {section.title}", "", f"*Reproduces {section.source}.*", "", "**Findings.**", ""]
    lines += [f"- {f}" for f in section.findings] + [""]
    for file, caption in section.figures.items():
        lines += [f"![{caption}]({section.name}/{file})", "", f"*{caption}*", ""]
    for file, rows in section.tables.items():
        lines += [f"Table `{section.name}/{file}`:", ""] + markdown_table(rows) + [""]
    lines += ["<details><summary>configuration</summary>", "", "```json",
              json.dumps(section.config, indent=2, sort_keys=True, default=str), "```", "</details>", ""]
    write_text_atomic(folder / "section.md", "\n".join(lines))
    summary = {"analysis": section.name, "findings": section.findings, **section.summary}
    write_json_atomic(folder / "summary.json", summary)
    return summary


def markdown_table(rows: Sequence[dict], limit: int = 40) -> list[str]:
    """A Markdown table of the first ``limit`` rows (the CSV holds them all); floats get 4 significant digits."""
    if not rows:
        return ["(no rows)"]
    cols = list(rows[0])
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    out += ["| " + " | ".join(_cell(r.get(c)) for c in cols) + " |" for r in rows[:limit]]
    if len(rows) > limit:
        out.append(f"| … {len(rows) - limit} more rows in the CSV |" + " |" * (len(cols) - 1))
    return out


def write_markdown_and_html(folder: Path, stem: str, markdown: str, *, title: str) -> Path:
    """``stem.md`` and its self-contained ``stem.html``, both atomic; returns the Markdown path."""
    write_text_atomic(folder / f"{stem}.md", markdown)
    write_text_atomic(folder / f"{stem}.html", markdown_to_html(markdown, folder, title=title))
    return folder / f"{stem}.md"


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def markdown_to_html(markdown: str, folder: Path, *, title: str) -> str:
    """The small Markdown subset the sections use (headings, lists, tables, images, code, details), with
    every image embedded so the file opens anywhere on its own."""
    out, table, code, in_list = [], [], False, False

    def flush_table():
        if table:
            rows = [r for r in table if not set(r.replace("|", "").strip()) <= set("-: ")]
            cells = [[html.escape(c.strip()) for c in r.strip().strip("|").split("|")] for r in rows]
            head = "".join(f"<th>{c}</th>" for c in cells[0])
            body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in cells[1:])
            out.append(f"<table><tr>{head}</tr>{body}</table>")
            table.clear()

    for line in markdown.splitlines():
        if in_list and not line.startswith("- "):
            out.append("</ul>")
            in_list = False
        if line.startswith("```"):
            flush_table()
            out.append("</pre>" if code else "<pre>")
            code = not code
            continue
        if code:
            out.append(html.escape(line) + "\n")  # a <pre> block keeps its lines
            continue
        if line.startswith("|"):
            table.append(line)
            continue
        flush_table()
        if line.startswith("- ") and not in_list:
            out.append("<ul>")
            in_list = True
        out.append(_html_line(line, folder))
    flush_table()
    if in_list:
        out.append("</ul>")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body>{''.join(out)}</body></html>\n")


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
    text = _inline(html.escape(re.sub(r"^(#{1,6} |- )", "", line).strip()))  # the marker only: "- -0.5" keeps its sign
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
