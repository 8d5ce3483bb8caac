"""The simulated operators: which exist, and which one serves a number (routing)."""

from __future__ import annotations

from collections.abc import Sequence

from operator_sim import errors
from operator_sim.domain import resolve_routing
from operator_sim.store import Conn, Database
from operator_sim.store import operators as operators_table
from operator_sim.store import subscribers as subscribers_table
from operator_sim.wire import Operator, Routing

__all__ = ["Operators"]


class Operators:
    """Operator existence, checked in one place, and number routing."""

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

    async def route(self, msisdn: str) -> Routing:
        """Which operator to ask about a number."""

        async def unit(conn: Conn) -> tuple[str | None, str | None]:
            standing = await subscribers_table.subscriber_standing(conn, msisdn)
            holder = await operators_table.range_holder(conn, msisdn)
            return (standing.operator_id if standing else None), holder

        record_holder, range_holder = await self._db.read(unit)
        resolved = resolve_routing(holder_operator_id=record_holder, range_operator_id=range_holder)
        if resolved is None:
            raise errors.NotFound(kind="operator serving this number")
        return Routing(msisdn=msisdn, operator_id=resolved[0], ported=resolved[1])
