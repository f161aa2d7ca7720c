"""The analyses of both papers, one module each, run as ``datadiet analyze NAME --preset quick``.

Every analysis module defines ``NAME``, ``TITLE``, a frozen ``Config`` dataclass, ``PRESETS`` (``smoke``,
``quick``, ``paper``) and ``run(config, workspace) -> summary``; it may add command-line options with
``add_options(parser)`` and ``configure(config, args) -> config``.
"""
from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

from ...errors import unknown_name
from ...io import write_json_atomic
from .common import SETTINGS, Section, Setting, Workspace, get_setting, write_section

# Report order: the order of the issue (and roughly of the papers).
MODULES = ("grand_vs_norm", "correlations", "averaging", "noisy_labels", "label_free", "transfer", "hparam_grid",
           "examples", "kernel_velocity", "mode_connectivity", "external")


def available() -> dict[str, ModuleType]:
    """Analysis name → module, for the modules present in this installation."""
    found = {}
    for module in MODULES:
        try:
            mod = importlib.import_module(f"{__name__}.{module}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{module}":
                raise
            continue
        found[mod.NAME] = mod
    return found


def get_analysis(name: str) -> ModuleType:
    analyses = available()
    key = name.lower().replace("-", "_")
    if key not in analyses:
        raise unknown_name("analysis", name, tuple(analyses))
    return analyses[key]


def get_preset(module: ModuleType, preset: str):
    if preset not in module.PRESETS:
        raise unknown_name(f"preset of {module.NAME}", preset, tuple(module.PRESETS))
    return module.PRESETS[preset]


def run_analysis(name: str, preset: str = "quick", root: str | Path = "results/analyses", *, config=None,
                 workspace: Workspace | None = None, **where) -> dict:
    """Run (or resume) one analysis into the workspace ``root`` and rebuild the workspace report.

    ``config`` replaces the preset's config; ``where`` are :class:`Workspace` options (``data_root``,
    ``device``, ``executor``, ``address``, ``cpus``, ``gpus``, ``log``).
    """
    from ...analysis.report import build_analyses_report

    module = get_analysis(name)
    config = config or get_preset(module, preset)
    ws = workspace or Workspace(Path(root), **where)
    ws.root.mkdir(parents=True, exist_ok=True)
    write_json_atomic(ws.root / "workspace.json", {"kind": "datadiet analyses", "modules": list(MODULES)})
    summary = module.run(config, ws)
    build_analyses_report(ws.root)
    return summary


__all__ = ["MODULES", "SETTINGS", "Section", "Setting", "Workspace", "available", "get_analysis", "get_preset",
           "get_setting", "run_analysis", "write_section"]
