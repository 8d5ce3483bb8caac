"""SIM swaps: recorded by the admin, answered by the operator that holds the number.

The CAMARA SIM Swap calls (``retrieve-date`` and ``check``) are messenger-facing: each is
journalled and screened by the fault rules in its own unit of work. Only the holder of
the number (of its subscriber record, else of its range, as routing says) answers; any
other operator does not know the number: ``404``.
"""

from __future__ import annotations

from datetime import datetime

import structlog

from operator_sim import errors
from operator_sim.clock import SimClock, ms_to_datetime
from operator_sim.domain import resolve_routing
from operator_sim.server.calls import Call, Calls, Screened
from operator_sim.server.operators import Operators
from operator_sim.store import Conn, Database, sim_swaps, subscribers
from operator_sim.store import operators as operators_table
from operator_sim.wire import SimSwapCheck, SimSwapDate, SimSwapRecorded

__all__ = ["SimSwaps"]

log = structlog.get_logger("operator_sim.sim_swap")

_HOUR_MS = 3_600_000


async def _holder(conn: Conn, msisdn: str) -> str | None:
    standing = await subscribers.subscriber_standing(conn, msisdn)
    resolved = resolve_routing(
        holder_operator_id=None if standing is None else standing.operator_id,
        range_operator_id=await operators_table.range_holder(conn, msisdn),
    )
    return None if resolved is None else resolved[0]


class SimSwaps:
    """The operators' answers about SIM swaps, and the admin's record of them."""

    def __init__(self, db: Database, clock: SimClock, operators: Operators, calls: Calls) -> None:
        self._db = db
        self._clock = clock
        self._operators = operators
        self._calls = calls

    async def _latest(self, call: Call, msisdn: str) -> int | None:
        """Inside one unit: the holder check, the rules, the journal; the latest swap."""
        operator_id = call.operator_id or ""
        self._operators.check(operator_id)
        call.msisdn = msisdn
        rules = await self._calls.rules()

        async def unit(conn: Conn) -> tuple[int | None, Screened, int]:
            if await _holder(conn, msisdn) != operator_id:
                raise errors.NotFound(kind="number at this operator")
            screened = await self._calls.screen(conn, call, rules)
            if screened.refused:
                return None, screened, 0
            latest = await sim_swaps.latest_swap(conn, msisdn)
            dropped = await self._calls.record(conn, call.entry(200, rule_id=screened.rule_id))
            return latest, screened, dropped

        latest, screened, dropped = await self._db.run(unit)
        self._calls.committed(call, screened, dropped=dropped)
        return latest

    async def retrieve_date(self, call: Call, msisdn: str) -> SimSwapDate:
        """When the number's SIM last changed (null: never)."""
        latest = await self._latest(call, msisdn)
        return SimSwapDate(latestSimChange=None if latest is None else ms_to_datetime(latest))

    async def check(self, call: Call, msisdn: str, *, max_age_hours: int) -> SimSwapCheck:
        """Whether the SIM changed within the last ``max_age_hours`` (simulation time)."""
        latest = await self._latest(call, msisdn)
        since = call.received_at - max_age_hours * _HOUR_MS
        return SimSwapCheck(swapped=latest is not None and since <= latest <= call.received_at)

    async def record(self, msisdn: str, *, at: datetime | None) -> SimSwapRecorded:
        """Record a swap (default: now); the contract and its codes stay as they are."""
        now = self._clock.now_ms()
        at_ms = now if at is None else round(at.timestamp() * 1000)
        if at_ms > now:
            raise errors.ValidationFailed(
                "at is after the simulation's current time: a swap cannot be recorded ahead",
                errors=[{"loc": ["at"], "msg": "in the future", "type": "future"}],
            )

        async def unit(conn: Conn) -> tuple[str, int]:
            standing = await subscribers.subscriber_standing(conn, msisdn)
            if standing is None:
                raise errors.NotFound(kind="subscriber")
            latest = await sim_swaps.record_swap(conn, msisdn, at_ms=at_ms, source="admin")
            return standing.operator_id, latest

        operator_id, latest = await self._db.run(unit)
        log.info("sim_swap_recorded", msisdn=msisdn, operator_id=operator_id)
        return SimSwapRecorded(
            msisdn=msisdn, operator_id=operator_id, latest_sim_change=ms_to_datetime(latest)
        )
