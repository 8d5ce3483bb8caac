"""Subscribers: the operators' records, and the ends of contracts and ports that follow them.

Ending a contract or moving a number ends every code registered for it, one notification
per code, in the same unit of work (the outbox); they are announced after the commit.
"""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from operator_sim import errors
from operator_sim.clock import SimClock, ms_to_datetime
from operator_sim.server.operators import Operators
from operator_sim.server.outbox import Emitted, Outbox
from operator_sim.store import Conn, Database, codes, subscribers
from operator_sim.wire import LifecycleResult, Subscriber, SubscriberIn, SubscribersUpserted

__all__ = ["Subscribers"]

log = structlog.get_logger("operator_sim.lifecycle")


class Subscribers:
    """Subscriber records, contract terminations and ports."""

    def __init__(self, db: Database, clock: SimClock, operators: Operators, outbox: Outbox) -> None:
        self._db = db
        self._clock = clock
        self._operators = operators
        self._outbox = outbox

    async def get(self, msisdn: str) -> Subscriber:
        """One subscriber, personal data included (admin only)."""
        found = await self._db.read(lambda conn: subscribers.get_subscriber(conn, msisdn))
        if found is None:
            raise errors.NotFound(kind="subscriber")
        return found

    async def upsert(self, records: Sequence[SubscriberIn]) -> SubscribersUpserted:
        """Insert or replace subscribers, all or nothing; of a repeated number, the last wins."""
        # A number given twice is upserted twice, in order: the last one stands.
        unique = list({sub.msisdn: sub for sub in records}.values())
        for i, sub in enumerate(unique):
            self._operators.require(sub.operator_id, field=("subscribers", i, "operator_id"))
        now = self._clock.now_ms()
        created, updated = await self._db.run(
            lambda conn: subscribers.upsert_subscribers(conn, unique, source="admin", now_ms=now)
        )
        return SubscribersUpserted(upserted=created + updated, created=created, updated=updated)

    async def terminate(self, msisdn: str) -> LifecycleResult:
        """End the contract; one ``subscriber.contract_terminated`` per registered code."""
        now = self._clock.now_ms()

        async def unit(conn: Conn) -> tuple[str, list[Emitted]]:
            standing = await subscribers.subscriber_standing(conn, msisdn)
            if standing is None:
                raise errors.NotFound(kind="subscriber")
            if standing.status != "terminated":
                await subscribers.set_subscriber_status(
                    conn,
                    msisdn,
                    status="terminated",
                    contract_end=ms_to_datetime(now).date().isoformat(),
                    now_ms=now,
                )
            emitted = await self._end_codes(
                conn, kind="terminated", msisdn=msisdn, operator_id=standing.operator_id, now=now
            )
            return standing.operator_id, emitted

        operator_id, emitted = await self._db.run(unit)
        self._outbox.published(emitted)
        log.info("contract_terminated", msisdn=msisdn, operator_id=operator_id, events=len(emitted))
        return LifecycleResult(
            msisdn=msisdn, operator_id=operator_id, status="terminated", events=len(emitted)
        )

    async def port(self, msisdn: str, to_operator_id: str) -> LifecycleResult:
        """Move the number; one ``subscriber.number_ported`` per code, from the operator it left."""
        self._operators.require(to_operator_id, field=("to_operator_id",))
        now = self._clock.now_ms()

        async def unit(conn: Conn) -> tuple[str, str, list[Emitted]]:
            standing = await subscribers.subscriber_standing(conn, msisdn)
            if standing is None:
                raise errors.NotFound(kind="subscriber")
            if standing.operator_id == to_operator_id:
                raise errors.Conflict(f"the number is already served by {to_operator_id}")
            await subscribers.set_subscriber_operator(
                conn, msisdn, operator_id=to_operator_id, now_ms=now
            )
            emitted = await self._end_codes(
                conn, kind="ported", msisdn=msisdn, operator_id=standing.operator_id, now=now
            )
            return standing.operator_id, standing.status, emitted

        from_operator_id, status, emitted = await self._db.run(unit)
        self._outbox.published(emitted)
        log.info(
            "number_ported",
            msisdn=msisdn,
            from_operator_id=from_operator_id,
            to_operator_id=to_operator_id,
            events=len(emitted),
        )
        return LifecycleResult(
            msisdn=msisdn, operator_id=to_operator_id, status=status, events=len(emitted)
        )

    async def _end_codes(
        self, conn: Conn, *, kind: str, msisdn: str, operator_id: str, now: int
    ) -> list[Emitted]:
        """End every code registered for the number at its operator, one event per code."""
        return [
            await self._outbox.emit_lifecycle(
                conn,
                kind=kind,
                messenger_id=code.messenger_id,
                operator_id=operator_id,
                msisdn=msisdn,
                code=code.code,
                at_ms=now,
            )
            for code in await codes.take_codes_of_number(
                conn, msisdn=msisdn, operator_id=operator_id
            )
        ]
