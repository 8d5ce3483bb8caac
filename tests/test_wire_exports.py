"""The wire module's public surface: everything other modules import from it is exported."""

from __future__ import annotations

import ast
from pathlib import Path

from operator_sim import wire

ROOT = Path(__file__).resolve().parent.parent


def _imported_from_wire() -> dict[str, list[str]]:
    """Every public name some module imports from ``operator_sim.wire``, with who imports it."""
    users: dict[str, list[str]] = {}
    for folder in ("operator_sim", "tests", "scripts"):
        for path in (ROOT / folder).rglob("*.py"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and node.module == "operator_sim.wire":
                    for alias in node.names:
                        if not alias.name.startswith("_"):
                            users.setdefault(alias.name, []).append(str(path.relative_to(ROOT)))
    return users


def test_every_name_imported_from_wire_is_in_its_all() -> None:
    missing = {
        name: where for name, where in _imported_from_wire().items() if name not in wire.__all__
    }
    assert missing == {}


def test_wire_all_names_exist_once() -> None:
    assert [name for name in wire.__all__ if not hasattr(wire, name)] == []
    assert len(set(wire.__all__)) == len(wire.__all__)
