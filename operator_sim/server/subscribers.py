"""Subscribers: the operators' records, and the ends of contracts and ports that follow them.

Ending a contract or moving a number ends every code registered for it, one notification
per code, in the same unit of work (the outbox); they are announced after the commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import structlog

from operator_sim import errors
from operator_sim.clock import SimClock, ms_to_datetime
from operator_sim.server.operators import Operators
from operator_sim.server.outbox import Emitted, Outbox
from operator_sim.store import Conn, Database, codes, subscribers
from operator_sim.wire import (
    LifecycleResult,
    RuleSpec,
    Subscriber,
    SubscriberIn,
    SubscribersUpserted,
)

__all__ = ["Subscribers", "Written"]

log = structlog.get_logger("operator_sim.lifecycle")


def _day(now_ms: int) -> str:
    return ms_to_datetime(now_ms).date().isoformat()


@dataclass(frozen=True, slots=True)
class Written:
    """What writing subscriber records did: counts, notifications, and the contracts ended."""

    created: int
    updated: int
    emitted: tuple[Emitted, ...]
    endings: tuple[tuple[str, str, str], ...]
    """(msisdn, "terminated" or "ported", the operator it left) for each record that ended."""


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
        """Insert or replace subscribers, all or nothing; of a repeated number, the last wins.

        A record that ends a contract or moves a number goes the way of :meth:`terminate`
        or :meth:`port`: its codes end and their messengers are notified.
        """
        # A number given twice is upserted twice, in order: the last one stands.
        unique = list({sub.msisdn: sub for sub in records}.values())
        for i, sub in enumerate(unique):
            self._operators.require(sub.operator_id, field=("subscribers", i, "operator_id"))
        now = self._clock.now_ms()
        notify = await self._outbox.notify_rules()
        written = await self._db.run(
            lambda conn: self.write_records(conn, unique, notify, source="admin", now=now)
        )
        self.announce(written)
        return SubscribersUpserted(
            upserted=written.created + written.updated,
            created=written.created,
            updated=written.updated,
            events=len(written.emitted),
        )

    async def write_records(
        self,
        conn: Conn,
        records: Sequence[SubscriberIn],
        notify: Sequence[RuleSpec],
        *,
        source: str,
        now: int,
    ) -> Written:
        """Write records inside a unit: a contract that ends or a number that moves ends
        its codes, one notification per code (both at once is a port)."""
        emitted: list[Emitted] = []
        endings: list[tuple[str, str, str]] = []
        for sub in records:
            before = await subscribers.subscriber_standing(conn, sub.msisdn)
            if before is None:
                continue
            if before.operator_id != sub.operator_id:
                endings.append((sub.msisdn, "ported", before.operator_id))
            elif before.status == "active" and sub.status == "terminated":
                endings.append((sub.msisdn, "terminated", before.operator_id))
        created, updated = await subscribers.upsert_subscribers(
            conn, records, source=source, now_ms=now
        )
        for msisdn, kind, operator_id in endings:
            if kind == "terminated":
                await subscribers.set_subscriber_status(
                    conn, msisdn, status="terminated", contract_end=_day(now), now_ms=now
                )
            emitted += await self._end_codes(
                conn, notify, kind=kind, msisdn=msisdn, operator_id=operator_id, now=now
            )
        return Written(created, updated, tuple(emitted), tuple(endings))

    def announce(self, written: Written) -> None:
        """After the unit committed: notify, and log what ended."""
        self._outbox.published(written.emitted)
        for msisdn, kind, operator_id in written.endings:
            log.info(
                "contract_terminated" if kind == "terminated" else "number_ported",
                msisdn=msisdn,
                operator_id=operator_id,
                source="upsert",
            )

    async def terminate(self, msisdn: str) -> LifecycleResult:
        """End the contract; one ``subscriber.contract_terminated`` per registered code."""
        now = self._clock.now_ms()
        notify = await self._outbox.notify_rules()

        async def unit(conn: Conn) -> tuple[str, list[Emitted]]:
            standing = await subscribers.subscriber_standing(conn, msisdn)
            if standing is None:
                raise errors.NotFound(kind="subscriber")
            if standing.status != "terminated":
                await subscribers.set_subscriber_status(
                    conn, msisdn, status="terminated", contract_end=_day(now), now_ms=now
                )
            emitted = await self._end_codes(
                conn,
                notify,
                kind="terminated",
                msisdn=msisdn,
                operator_id=standing.operator_id,
                now=now,
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
        notify = await self._outbox.notify_rules()

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
                conn,
                notify,
                kind="ported",
                msisdn=msisdn,
                operator_id=standing.operator_id,
                now=now,
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
        self,
        conn: Conn,
        notify: Sequence[RuleSpec],
        *,
        kind: str,
        msisdn: str,
        operator_id: str,
        now: int,
    ) -> list[Emitted]:
        """End every code registered for the number at its operator, one event per code."""
        return [
            await self._outbox.emit_lifecycle(
                conn,
                notify,
                kind=kind,
                messenger_id=code.messenger_id,
                operator_id=operator_id,
                msisdn=msisdn,
                code=code.code,
                at_ms=now,
            )
            for code in await codes.take_codes_of_number(
                conn,
                msisdn=msisdn,
                operator_id=operator_id,
                at=now,
                by="contract_terminated" if kind == "terminated" else "number_ported",
            )
        ]
