"""The package's import structure: no cycles, and the lower layers never import the server.

(What the messenger library may import is held by ``test_messenger_structure.py``.)
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "operator_sim"
_LOWER_LAYERS = ("domain", "store", "messenger", "seeding")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports() -> dict[str, set[str]]:
    """Every module's imports of other operator_sim modules, ``TYPE_CHECKING`` ones included."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                names = [f"{base}.{alias.name}" for alias in node.names]
                # `from package import submodule` imports the submodule, not the package's
                # own names; the package counts only for names that are not modules.
                targets = names + ([base] if any(n not in modules for n in names) else [])
            for target in targets:
                if target in modules and target != name:
                    graph[name].add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
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
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_there_are_no_import_cycles() -> None:
    assert _cycles(_imports()) == []


def test_the_lower_layers_never_import_the_server() -> None:
    offending = {
        module: sorted(t for t in targets if t.startswith("operator_sim.server"))
        for module, targets in _imports().items()
        if module.split(".")[1:2] and module.split(".")[1] in _LOWER_LAYERS
    }
    assert {m: t for m, t in offending.items() if t} == {}


def test_the_graph_sees_the_known_edges() -> None:
    graph = _imports()
    assert "operator_sim.store.database" in graph["operator_sim.server.app"] or any(
        t.startswith("operator_sim.store") for t in graph["operator_sim.server.app"]
    )
    assert "operator_sim.wire" in graph["operator_sim.domain.rules"]
