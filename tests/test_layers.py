"""The package's layers: no import cycle between modules, and every import points down the pipeline.

Imports inside functions count too, so a cycle cannot hide behind a late import.  Only third-party
packages (Ray, matplotlib, scipy, ...) may be imported lazily; they are not part of the graph.
"""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "datadiet"

# Layer of each top-level part of the package: a module may import only from its own layer or below.
LAYERS = {
    "version": 0, "errors": 0, "io": 0,
    # dynamic pruning (the pruners, their parameters, the PRUNERS registry) imports only errors, so it sits with
    # config, which holds the chosen pruner's parameters and generates their flags; the engine runs it
    "config": 1, "dynamic": 1,
    "data": 2,
    "models": 3,
    "training": 4,
    "scores": 5,
    "selection": 6, "stats": 6, "manifest": 6, "methods": 6,
    "runs": 7,
    "report": 8,
    "studies": 9,
    "cli": 10, "__main__": 10, "": 10,  # "" = the package's __init__ (the public API)
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path, modules: set[str], source: str | None = None) -> set[str]:
    """datadiet modules imported anywhere in ``path`` (``from .x import y`` counts ``.x.y`` if it is a module);
    ``source``: the module's text, for a module that is not on disk."""
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8") if source is None else source)):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "datadiet"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "datadiet":
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in modules else target)
    return {m for m in found if m in modules and m != here}


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    paths = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(p) for p in paths}
    return {module_name(p): imported_modules(p, modules) for p in paths}


def layer_of(module: str) -> int:
    part = module.split(".")[1] if "." in module else ""
    assert part in LAYERS, f"{module} belongs to no layer; add its part to LAYERS in this test"
    return LAYERS[part]


def test_no_import_cycle(graph):
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                cycle = path[path.index(target):] + [target] if target in path else [module, target]
                pytest.fail("import cycle: " + " → ".join(cycle))
            if target not in state:
                visit(target, path + [target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


def test_every_import_points_down_the_layers(graph):
    upward = [f"{m} (layer {layer_of(m)}) imports {t} (layer {layer_of(t)})"
              for m, targets in graph.items() for t in targets
              if layer_of(t) > layer_of(m) and not t.startswith(m + ".")]  # a package may import its own parts
    assert upward == []


def test_the_graph_sees_imports_inside_functions():
    """The walker itself: a late import inside a function is an edge like any other (the probe module is read
    from memory: nothing is written into the package)."""
    source = PACKAGE / "studies" / "reproduce.py"
    modules = {module_name(p) for p in PACKAGE.rglob("*.py")}
    assert "datadiet.runs.sweep" in imported_modules(source, modules)
    probe = PACKAGE / "runs" / "_probe_for_test.py"
    found = imported_modules(probe, modules | {"datadiet.runs._probe_for_test"},
                             source="def f():\n    from ..studies import reproduce\n")
    assert found == {"datadiet.studies.reproduce"}
    assert not probe.exists()
