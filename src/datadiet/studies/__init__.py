"""The studies of both papers: `reproduce` and one module per analysis, run as ``datadiet analyze NAME``.

Every study module ends with its :class:`~datadiet.studies.common.Study` record, ``STUDY``: its name, title and
source, a frozen ``Config`` whose first field is the shared ``setting`` (a preset of :mod:`datadiet.runs.presets`),
its config for every preset (``runs.presets.study_presets``, which also declares a preset it runs on another
setting), ``run(config, workspace)``, and the optional parts (``claim``, ``rebuild``, ``missing_input``,
``set_per_point``). :func:`get_study` finds it by name and :func:`run_study` runs any of them. The command line is
generated from ``Config``: every other field is a flag.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Callable

from ..errors import DataDietError, unknown_name
from ..io import builds_report, folder_lock, write_json_atomic
from ..report.markdown import write_markdown_and_html
from ..runs.sweep import Execution
from ..runs.workspace import Workspace
from .common import Study

# The analyses, in report order: roughly the order of the papers.
MODULES = ("grand_vs_norm", "correlations", "averaging", "noisy_labels", "label_free", "transfer", "hparam_grid",
           "examples", "kernel_velocity", "mode_connectivity", "scaling", "compute", "external",
           "imbalance")
STUDIES = ("reproduce", *MODULES)  # every study, in report order


@lru_cache(maxsize=None)  # a module is imported once per process anyway; this only saves the name lookups
def get_study(name: str) -> Study:
    """The study ``name`` (``reproduce`` or an analysis; dashes and case are forgiven)."""
    key = name.lower().replace("-", "_")
    if key not in STUDIES:
        raise unknown_name("analysis", name, MODULES)
    return importlib.import_module(f"{__name__}.{key}").STUDY


def configured(study: Study, preset: str, **changes):
    """The study's preset config with ``changes`` (fields of its ``Config``; ``None`` values are ignored)."""
    return replace(study.preset(preset), **{k: v for k, v in changes.items() if v is not None})


def run_analysis(name: str, preset: str = "quick", root: str | Path = "results/analyses", *, config=None,
                 workspace: Workspace | None = None, log: Callable[[str], None] = print, **execution) -> dict:
    """Run (or resume) one analysis into the workspace ``root`` and rebuild the workspace report.

    ``config`` replaces the preset's config; ``execution`` are :class:`~datadiet.runs.sweep.Execution` fields
    (``data_root``, ``device``, ``executor``, ...).
    """
    study = get_study(name)
    ws = workspace or Workspace(Path(root), Execution(**execution), log=log)
    return run_study(study.name, config or study.preset(preset), ws)


def run_study(name: str, config, ws: Workspace) -> dict:
    """Run (or resume) study ``name`` with ``config`` in workspace ``ws`` under the folder's lock, then rebuild the
    workspace report; returns the study's summary. The one runner of `reproduce` and every analysis."""
    study = get_study(name)
    check_layout(ws.root)
    command = "datadiet reproduce" if study.name == "reproduce" else f"datadiet analyze {study.name}"
    # Before the folder exists: user code (the model factory) runs here, and a factory that ends the process
    # (os._exit) must leave nothing behind.
    ws.check(config.setting)
    with folder_lock(ws.root, command):  # a refused command removes the folder the lock made
        if study.claim:  # a study that refuses to mix two experiments in its folder says so first
            study.claim(config, ws)
        ws.planned.pop(study.name, None)  # the plan is this run's tasks, not those of an earlier run in this process
        write_json_atomic(ws.root / "workspace.json", {"kind": "datadiet workspace", "studies": list(STUDIES)})
        summary = study.run(config, ws)
        # the sections rebuilt from disk say what they say when their own study runs, not again after every other one
        report = build_workspace_report(ws.root, log=ws.log if study.rebuild else lambda _: None)
    return report.summaries.get(study.name, summary)


@dataclass(frozen=True)
class WorkspaceReport:
    markdown: Path                 # report.md (report.html beside it)
    summaries: dict[str, dict]     # study → summary, for the studies whose section was rebuilt from disk


@builds_report  # two builds never interleave (see io.report_lock)
def build_workspace_report(root: str | Path, *, extra_seeds: str = "ignore",
                           log: Callable[[str], None] = print) -> WorkspaceReport:
    """Rebuild the sections that are built from disk (the reproduction's: ``rebuild``), then gather the section of
    every study run in workspace ``root`` into ``report.md`` and the self-contained ``report.html`` made from it.
    ``extra_seeds``: see :func:`datadiet.studies.reproduce.rebuild`."""
    root = Path(root)
    check_layout(root)
    rebuilt = [get_study(name) for name in STUDIES if (root / name / "config.json").is_file()]
    summaries = {study.name: study.rebuild(root, extra_seeds=extra_seeds, log=log) for study in rebuilt if study.rebuild}
    sections = [(name, (root / name / "section.md").read_text(encoding="utf-8"))
                for name in STUDIES if (root / name / "section.md").is_file()]
    if not sections:
        raise DataDietError(f"{root} holds no finished study (no */section.md); run `datadiet reproduce` or "
                            "`datadiet analyze NAME` first.")
    lines = ["# datadiet report", "", "Sections: " + ", ".join(f"`{name}`" for name, _ in sections), ""]
    markdown = "\n".join(lines) + "\n" + "\n".join(text for _, text in sections)
    return WorkspaceReport(write_markdown_and_html(root, "report", markdown, title="datadiet report"), summaries)


def check_layout(root: Path) -> None:
    """Refuse a `reproduce` folder of the old layout (runs/ and config.json at its top): its runs are kept, but only
    `datadiet migrate` moves them into the workspace layout."""
    if (root / "config.json").is_file() and (root / "runs").is_dir() and not (root / "workspace.json").is_file():
        raise DataDietError(f"{root} is a reproduce folder of the old layout (runs/ and config.json at its "
                            f"top). Run `datadiet migrate {root}` once: it moves the finished runs and score runs "
                            "into the workspace layout (nothing is trained again), then re-run this command.")


__all__ = ["MODULES", "STUDIES", "Study", "WorkspaceReport", "build_workspace_report", "configured", "get_study",
           "run_analysis", "run_study"]
