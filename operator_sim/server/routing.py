"""Number routing (the portability database): which operator to ask about a number."""

from __future__ import annotations

from operator_sim import errors
from operator_sim.domain import resolve_routing
from operator_sim.server.calls import Call, Calls, Screened
from operator_sim.store import Conn, Database, subscribers
from operator_sim.store import operators as operators_table
from operator_sim.wire import Routing

__all__ = ["Router"]


class Router:
    """Answers ``GET /v1/routing/{msisdn}``: the holder of the record, else of the range."""

    def __init__(self, db: Database, calls: Calls) -> None:
        self._db = db
        self._calls = calls

    async def route(self, call: Call, msisdn: str) -> Routing:
        """Which operator to ask about a number."""
        call.msisdn = msisdn
        rules = await self._calls.rules()

        async def unit(conn: Conn) -> tuple[Routing | None, Screened, int]:
            screened = await self._calls.screen(conn, call, rules)
            if screened.refused:
                return None, screened, 0
            standing = await subscribers.subscriber_standing(conn, msisdn)
            resolved = resolve_routing(
                holder_operator_id=standing.operator_id if standing else None,
                range_operator_id=await operators_table.range_holder(conn, msisdn),
            )
            if resolved is None:
                raise errors.NotFound(kind="operator serving this number")
            routing = Routing(msisdn=msisdn, operator_id=resolved[0], ported=resolved[1])
            dropped = await self._calls.record(conn, call.entry(200, rule_id=screened.rule_id))
            return routing, screened, dropped

        routing, screened, dropped = await self._db.run(unit)
        self._calls.committed(call, screened, dropped=dropped)
        if routing is None:  # cannot happen: a refusing rule raised in committed()
            raise errors.StoreError("a refused call without its refusal")
        return routing
