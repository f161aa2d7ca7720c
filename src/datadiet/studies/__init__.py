"""The studies of both papers: `reproduce` and one module per analysis, run as ``datadiet analyze NAME``.

Every analysis module defines ``NAME``, ``TITLE``, a frozen ``Config`` dataclass whose first field is the shared
``setting`` (a preset of :mod:`datadiet.runs.presets`), ``PRESETS`` (``smoke``, ``quick``, ``paper``) and
``run(config, workspace) -> summary``.  The command line is generated from ``Config``: every other field is a
flag.  A module that needs input the user may lack defines ``missing_input(config) -> reason | None``.
"""
from __future__ import annotations

import importlib
from dataclasses import replace
from pathlib import Path
from types import ModuleType

from ..errors import DataDietError, unknown_name
from ..io import builds_report, folder_lock, write_json_atomic
from ..report.markdown import write_markdown_and_html
from ..runs.workspace import Workspace

# Report order: roughly the order of the papers.
MODULES = ("grand_vs_norm", "correlations", "averaging", "noisy_labels", "label_free", "transfer", "hparam_grid",
           "examples", "kernel_velocity", "mode_connectivity", "scaling", "compute", "external")


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
                 workspace: Workspace | None = None, **where) -> dict:
    """Run (or resume) one analysis into the workspace ``root`` and rebuild the workspace report.

    ``config`` replaces the preset's config; ``where`` are :class:`Workspace` options (``data_root``,
    ``device``, ``executor``, ``address``, ``cpus``, ``gpus``, ``log``).
    """
    module = get_analysis(name)
    config = config or get_preset(module, preset)
    ws = workspace or Workspace(Path(root), **where)
    ws.check(config.setting)
    with folder_lock(ws.root, f"datadiet analyze {module.NAME}"):
        write_json_atomic(ws.root / "workspace.json", {"kind": "datadiet analyses", "modules": list(MODULES)})
        summary = module.run(config, ws)
        build_workspace_report(ws.root)
    return summary


@builds_report  # two builds never interleave (see io.report_lock)
def build_workspace_report(root: str | Path) -> Path:
    """Gather the section of every analysis run in workspace ``root`` into ``report.md`` and the
    self-contained ``report.html`` made from it; returns the Markdown path."""
    root = Path(root)
    sections = [(name, (root / name / "section.md").read_text(encoding="utf-8"))
                for name in MODULES if (root / name / "section.md").is_file()]
    if not sections:
        raise DataDietError(f"{root} holds no finished analysis (no */section.md); run `datadiet analyze NAME` first.")
    lines = ["# datadiet analyses", "", "Sections: " + ", ".join(f"`{name}`" for name, _ in sections), ""]
    markdown = "\n".join(lines) + "\n" + "\n".join(text for _, text in sections)
    return write_markdown_and_html(root, "report", markdown, title="datadiet analyses")


__all__ = ["MODULES", "available", "build_workspace_report", "configured", "get_analysis", "get_preset",
           "run_analysis"]
