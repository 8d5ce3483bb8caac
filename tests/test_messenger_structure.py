"""The library's modules import one way: no circle, and nothing of the server."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "operator_sim" / "messenger"


def _imports() -> dict[str, set[str]]:
    """Module -> the operator_sim modules it imports, wherever (TYPE_CHECKING, functions)."""
    graph: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.glob("*.py")):
        name = f"operator_sim.messenger.{path.stem}".removesuffix(".__init__")
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                found.add(node.module)
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
        graph[name] = {m for m in found if m.startswith("operator_sim")}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str] | None:
        if node in path:
            return [*path[path.index(node) :], node]
        if node in done or node not in graph:
            return None
        for target in sorted(graph[node]):
            found = visit(target, [*path, node])
            if found:
                return found
        done.add(node)
        return None

    for start in sorted(graph):
        if start == "operator_sim.messenger":
            continue  # the package re-exports its modules; none imports it back
        found = visit(start, [])
        if found:
            return found
    return None


def test_no_module_of_the_library_takes_part_in_an_import_circle() -> None:
    graph = _imports()
    assert _cycle(graph) is None
    assert len(graph) > 10


def test_no_module_imports_the_package_itself() -> None:
    for module, targets in _imports().items():
        assert "operator_sim.messenger" not in targets, module


def test_the_library_imports_only_wire_the_log_masker_and_itself() -> None:
    allowed = ("operator_sim.messenger", "operator_sim.wire", "operator_sim.logs")
    for module, targets in _imports().items():
        foreign = {t for t in targets if not t.startswith(allowed) and t != "operator_sim"}
        assert foreign == set(), module


def test_the_check_finds_a_circle() -> None:
    assert _cycle({"a": {"b"}, "b": {"a"}}) == ["a", "b", "a"]
