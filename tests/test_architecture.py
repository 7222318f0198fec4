"""The layout keeps its seams: no import cycle inside `studio/`, and no gradio below the UI.

Imports are read with `ast`, every one of them: at the top of a module, inside functions (lazy
imports) and under `if TYPE_CHECKING:`, since a cycle hidden in any of them is still a cycle in the
design. `from package import name` counts as an import of `package.name` when that is a module.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "studio"
BELOW_THE_UI = ("studio.backends", "studio.services", "studio.media")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {module_name(path): path for path in PACKAGE.rglob("*.py")}


def imports_of(name: str, path: Path, modules: set[str]) -> set[str]:
    """Every module (inside or outside the studio) that `path` imports."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                package = name if is_package else name.rpartition(".")[0]
                for _ in range(node.level - 1):
                    package = package.rpartition(".")[0]
                base = f"{package}.{base}" if base else package
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if candidate in modules else base)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = all_modules()
    names = set(modules)
    return {name: {m for m in imports_of(name, path, names) if m in names and m != name}
            for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each as a sorted list."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle_inside_the_studio():
    graph = import_graph()
    assert len(graph) > 50  # the whole package was read
    found = cycles(graph)
    assert not found, "import cycles: " + "; ".join(" <-> ".join(c) for c in found)


def test_the_cycle_finder_finds_cycles():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_imports_are_read_everywhere_in_a_module(tmp_path):
    source = tmp_path / "studio" / "services" / "sample.py"
    source.parent.mkdir(parents=True)
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "from studio.services import facade\n"
        "if TYPE_CHECKING:\n    from studio.history import Gallery\n"
        "def later():\n    import studio.runtime\n    from . import style\n",
        encoding="utf-8",
    )
    names = {"studio.services.facade", "studio.history", "studio.runtime", "studio.services.style"}
    found = imports_of("studio.services.sample", source, names)
    assert names <= found


@pytest.mark.parametrize("layer", BELOW_THE_UI)
def test_no_gradio_below_the_ui(layer):
    modules = all_modules()
    offenders = [
        name for name, path in modules.items()
        if (name == layer or name.startswith(layer + "."))
        and any(m == "gradio" or m.startswith("gradio.") for m in imports_of(name, path, set(modules)))
    ]
    assert [name for name in modules if name.startswith(layer)], f"{layer} has no modules"
    assert not offenders, f"gradio imported in {offenders}"


def test_the_root_keeps_only_what_every_part_uses():
    root_modules = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem not in ("__init__", "__main__"))
    assert root_modules == sorted(
        ["settings", "catalog", "runtime", "hub", "history", "errors", "limits", "hosting", "claims", "space", "model_folders"]
    )
