"""The simulated operators: which exist, checked in one place."""

from __future__ import annotations

from collections.abc import Sequence

from operator_sim import errors
from operator_sim.store import Database
from operator_sim.store import operators as operators_table
from operator_sim.wire import Operator

__all__ = ["Operators"]


class Operators:
    """Operator existence: the ids are cached, and checked here only."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._ids: frozenset[str] = frozenset()

    async def load(self) -> None:
        """Cache the operator ids (they change only when a fixture is applied)."""
        operators = await self._db.read(operators_table.list_operators)
        self._ids = frozenset(op.id for op in operators)

    def check(self, operator_id: str) -> None:
        """``NotFound`` unless this operator is simulated (an operator in a path)."""
        if operator_id not in self._ids:
            raise errors.NotFound(kind="operator", ident=operator_id)

    def require(self, operator_id: str, *, field: Sequence[str | int]) -> None:
        """``ValidationFailed`` at ``field`` unless this operator is simulated (one in a body)."""
        if operator_id not in self._ids:
            name = ".".join(str(part) for part in field)
            raise errors.ValidationFailed(
                f"{name}: no operator {operator_id}",
                errors=[
                    {"loc": list(field), "msg": "unknown operator", "type": "unknown_operator"}
                ],
            )

    async def list_operators(self) -> list[Operator]:
        """Every operator with its number ranges, in fixture order."""
        return await self._db.read(operators_table.list_operators)
