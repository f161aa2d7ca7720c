"""The studies of both papers: `reproduce` and one module per analysis, run as ``datadiet analyze NAME``.

Every study module defines ``NAME``, ``TITLE``, ``SOURCE``, a frozen ``Config`` dataclass whose first field is the
shared ``setting`` (a preset of :mod:`datadiet.runs.presets`), ``PRESETS`` (one per preset of the table:
``runs.presets.study_presets``) and ``run(config, workspace)``; :func:`run_study` runs any of them.  The command
line is generated from ``Config``: every other field is a flag.  A module that needs input the user may lack defines
``missing_input(config) -> reason | None``; one whose folder must not mix two experiments defines
``claim(config, workspace)``; one whose section is rebuilt from disk by `datadiet report` defines
``rebuild(root, extra_seeds=, log=)`` and is listed in ``REBUILT``.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType
from typing import Callable

from ..errors import DataDietError, unknown_name
from ..io import builds_report, folder_lock, write_json_atomic
from ..report.markdown import write_markdown_and_html
from ..runs.sweep import Execution
from ..runs.workspace import Workspace

# The analyses, in report order: roughly the order of the papers.
MODULES = ("grand_vs_norm", "correlations", "averaging", "noisy_labels", "label_free", "transfer", "hparam_grid",
           "examples", "kernel_velocity", "mode_connectivity", "scaling", "compute", "external")
STUDIES = ("reproduce", *MODULES)  # every study, in report order
REBUILT = ("reproduce",)  # studies whose section `datadiet report` rebuilds from the runs on disk


def available() -> dict[str, ModuleType]:
    """Analysis name → module."""
    return {name: importlib.import_module(f"{__name__}.{name}") for name in MODULES}


def get_analysis(name: str) -> ModuleType:
    key = name.lower().replace("-", "_")
    if key not in MODULES:
        raise unknown_name("analysis", name, MODULES)
    return importlib.import_module(f"{__name__}.{key}")


def get_preset(module: ModuleType, preset: str):
    if preset not in module.PRESETS:
        raise unknown_name(f"preset of {module.NAME}", preset, tuple(module.PRESETS))
    return module.PRESETS[preset]


def configured(module: ModuleType, preset: str, **changes):
    """The module's preset config with ``changes`` (fields of its ``Config``; ``None`` values are ignored)."""
    config = get_preset(module, preset)
    return replace(config, **{k: v for k, v in changes.items() if v is not None})


def run_analysis(name: str, preset: str = "quick", root: str | Path = "results/analyses", *, config=None,
                 workspace: Workspace | None = None, log: Callable[[str], None] = print, **execution) -> dict:
    """Run (or resume) one analysis into the workspace ``root`` and rebuild the workspace report.

    ``config`` replaces the preset's config; ``execution`` are :class:`~datadiet.runs.sweep.Execution` fields
    (``data_root``, ``device``, ``executor``, ...).
    """
    module = get_analysis(name)
    ws = workspace or Workspace(Path(root), Execution(**execution), log=log)
    return run_study(module.NAME, config or get_preset(module, preset), ws)


def study_module(name: str) -> ModuleType:
    """The module of a study: ``reproduce`` or an analysis."""
    return importlib.import_module(f"{__name__}.reproduce") if name == "reproduce" else get_analysis(name)


def run_study(name: str, config, ws: Workspace) -> dict:
    """Run (or resume) study ``name`` with ``config`` in workspace ``ws`` under the folder's lock, then rebuild the
    workspace report; returns the study's summary. The one runner of `reproduce` and every analysis."""
    module = study_module(name)
    check_layout(ws.root)
    command = "datadiet reproduce" if name == "reproduce" else f"datadiet analyze {name}"
    with folder_lock(ws.root, command):  # a refused command removes the folder the lock made
        if hasattr(module, "claim"):  # a study that refuses to mix two experiments in its folder says so first
            module.claim(config, ws)
        ws.check(config.setting)
        ws.planned.pop(name, None)  # the plan is this run's tasks, not those of an earlier run in this process
        write_json_atomic(ws.root / "workspace.json", {"kind": "datadiet workspace", "studies": list(STUDIES)})
        summary = module.run(config, ws)
        # the sections rebuilt from disk say what they say when their own study runs, not again after every other one
        report = build_workspace_report(ws.root, log=ws.log if name in REBUILT else lambda _: None)
    return report.summaries.get(name, summary)


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
    summaries = {name: study_module(name).rebuild(root, extra_seeds=extra_seeds, log=log)
                 for name in STUDIES if (root / name / "config.json").is_file() and name in REBUILT}
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


__all__ = ["MODULES", "STUDIES", "WorkspaceReport", "available", "build_workspace_report", "configured",
           "get_analysis", "get_preset", "run_analysis", "run_study", "study_module"]
