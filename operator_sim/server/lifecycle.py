"""Subscriber lifecycle and the pull feed: terminations, ports, and reading the outbox."""

from __future__ import annotations

import aiosqlite
import structlog

from operator_sim import errors
from operator_sim.clock import SimClock, ms_to_datetime
from operator_sim.domain.delivery import encode_cursor
from operator_sim.server.flow import Flow
from operator_sim.server.metrics import Metrics
from operator_sim.server.outbox import Emitted, Outbox, feed_key
from operator_sim.server.waiters import Waiters, wait_for
from operator_sim.store import Database, catalog
from operator_sim.store import events as store
from operator_sim.store.events import FeedRow
from operator_sim.wire import LifecycleResult

log = structlog.get_logger("operator_sim.lifecycle")


class Lifecycle:
    """Ends contracts and ports numbers, notifying every messenger that holds a code."""

    def __init__(self, db: Database, clock: SimClock, flow: Flow, outbox: Outbox) -> None:
        self._db = db
        self._clock = clock
        self._flow = flow
        self._outbox = outbox

    async def _end_codes(
        self, conn: aiosqlite.Connection, *, kind: str, msisdn: str, operator_id: str, now: int
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
            for code in await store.take_codes_of_number(
                conn, msisdn=msisdn, operator_id=operator_id
            )
        ]

    async def terminate(self, msisdn: str) -> LifecycleResult:
        """End the contract; one ``subscriber.contract_terminated`` per registered code."""
        async with self._db.write() as conn:
            standing = await catalog.subscriber_standing(conn, msisdn)
            if standing is None:
                raise errors.NotFound(kind="subscriber")
            now = self._clock.now_ms()
            if standing.status != "terminated":
                await store.set_subscriber_status(
                    conn,
                    msisdn,
                    status="terminated",
                    contract_end=ms_to_datetime(now).date().isoformat(),
                    now_ms=now,
                )
            emitted = await self._end_codes(
                conn, kind="terminated", msisdn=msisdn, operator_id=standing.operator_id, now=now
            )
        self._outbox.published(emitted)
        log.info(
            "contract_terminated",
            msisdn=msisdn,
            operator_id=standing.operator_id,
            events=len(emitted),
        )
        return LifecycleResult(
            msisdn=msisdn,
            operator_id=standing.operator_id,
            status="terminated",
            events=len(emitted),
        )

    async def port(self, msisdn: str, to_operator_id: str) -> LifecycleResult:
        """Move the number; one ``subscriber.number_ported`` per code, from the operator it left."""
        try:
            self._flow.check_operator(to_operator_id)
        except errors.NotFound:
            raise errors.ValidationFailed(
                f"to_operator_id: no operator {to_operator_id}",
                errors=[{"loc": ["to_operator_id"], "msg": "unknown operator"}],
            ) from None
        async with self._db.write() as conn:
            standing = await catalog.subscriber_standing(conn, msisdn)
            if standing is None:
                raise errors.NotFound(kind="subscriber")
            if standing.operator_id == to_operator_id:
                raise errors.Conflict(f"the number is already served by {to_operator_id}")
            now = self._clock.now_ms()
            await store.set_subscriber_operator(
                conn, msisdn, operator_id=to_operator_id, now_ms=now
            )
            emitted = await self._end_codes(
                conn, kind="ported", msisdn=msisdn, operator_id=standing.operator_id, now=now
            )
        self._outbox.published(emitted)
        log.info(
            "number_ported",
            msisdn=msisdn,
            from_operator_id=standing.operator_id,
            to_operator_id=to_operator_id,
            events=len(emitted),
        )
        return LifecycleResult(
            msisdn=msisdn,
            operator_id=to_operator_id,
            status=standing.status,
            events=len(emitted),
        )


class Feed:
    """The pull feed: a messenger's events from one operator, after an opaque cursor."""

    def __init__(self, db: Database, clock: SimClock, waiters: Waiters, metrics: Metrics) -> None:
        self._db = db
        self._clock = clock
        self._waiters = waiters
        self._metrics = metrics

    async def _read(
        self, messenger_id: str, operator_id: str, after: int, limit: int
    ) -> list[FeedRow]:
        async with self._db.read() as conn:
            return await store.feed_page(
                conn, messenger_id=messenger_id, operator_id=operator_id, after=after, limit=limit
            )

    async def page(
        self, *, messenger_id: str, operator_id: str, after: int, limit: int, wait: int
    ) -> bytes:
        """The feed page as JSON; waits up to ``wait`` seconds for a first event."""
        rows = await self._read(messenger_id, operator_id, after, limit)
        if not rows and wait > 0:
            async with self._waiters.watch(feed_key(messenger_id, operator_id)) as event:
                rows = await self._read(messenger_id, operator_id, after, limit)
                if not rows and await wait_for(event, wait):
                    rows = await self._read(messenger_id, operator_id, after, limit)
        fresh = [row for row in rows if not row.delivered]
        if fresh:
            now = self._clock.now_ms()
            async with self._db.write() as conn:
                await store.mark_feed_delivered(conn, [row.seq for row in fresh], now)
            missed = sum(1 for row in fresh if now > row.deliver_by)
            if missed:
                self._metrics.deliver_by_missed.labels("feed").inc(missed)
        cursor = encode_cursor(rows[-1].seq if rows else after)
        events = ",".join(row.body for row in rows)
        return f'{{"events":[{events}],"next_cursor":"{cursor}"}}'.encode()
