"""Subscribers: the operators' records, and the ends of contracts and ports that follow them.

Ending a contract or moving a number ends every code registered for it, one notification
per code, in the same unit of work (the outbox); they are announced after the commit.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

import structlog

from operator_sim import errors
from operator_sim.clock import SimClock, ms_to_datetime
from operator_sim.domain.sampling import sample_points
from operator_sim.server.operators import Operators
from operator_sim.server.outbox import Emitted, Outbox
from operator_sim.store import Conn, Database, codes, subscribers
from operator_sim.store import operators as operators_table
from operator_sim.store.subscribers import SubscriberFilter
from operator_sim.wire import (
    LifecycleResult,
    RuleSpec,
    Subscriber,
    SubscriberIn,
    SubscriberPage,
    SubscriberSample,
    SubscribersUpserted,
)

__all__ = ["Subscribers", "Written"]

log = structlog.get_logger("operator_sim.lifecycle")


_SAMPLE_WINDOW = 256
"""Records a sample's draw looks at, at most, for one that matches the filter."""


def _sample_draws(count: int) -> int:
    """Draws a sample of ``count`` makes at most: repeats and misses need some spare."""
    return 2 * count + 32


async def _ranges_of(conn: Conn, operator_id: str | None) -> list[tuple[int, int]]:
    """The number ranges of one operator, or of all."""
    return [
        (int(r.from_[1:]), int(r.to[1:]))
        for op in await operators_table.list_operators(conn)
        if operator_id in (None, op.id)
        for r in op.ranges
    ]


async def _spans_of(conn: Conn, operator_id: str) -> list[subscribers.Span]:
    return subscribers.number_spans(await _ranges_of(conn, operator_id))


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

    async def list_page(
        self, selection: SubscriberFilter, *, after: str | None, limit: int
    ) -> SubscriberPage:
        """One page of records in number order after ``after`` (admin only).

        Like the journal's filters, an operator that is not simulated holds nothing.
        """
        operator_id = selection.operator_id

        async def unit(conn: Conn) -> list[Subscriber]:
            spans = await _spans_of(conn, operator_id) if operator_id is not None else []
            return await subscribers.list_subscribers(
                conn, selection, after=after, limit=limit + 1, operator_spans=spans
            )

        found = await self._db.read(unit)
        page = found[:limit]
        more = len(found) > limit
        return SubscriberPage(subscribers=page, next_cursor=page[-1].msisdn if more else None)

    async def sample(
        self, selection: SubscriberFilter, *, count: int, seed: int | None
    ) -> SubscriberSample:
        """Up to ``count`` distinct records drawn at random; the same seed, the same records.

        Each draw is a random number of the operators' ranges (``domain.sampling``; of the
        operator's, with ``operator_id``) and the first matching record not drawn yet at
        or after it, going round at the end: seeks in the table's key, never a scan. A
        draw looks at no more than ``_SAMPLE_WINDOW`` records, so a filter that matches
        fewer than about one record in that many may give fewer than ``count``.
        """
        operator_id = selection.operator_id
        rng_seed = secrets.randbits(63) if seed is None else seed

        async def unit(conn: Conn) -> list[Subscriber]:
            ranges = await _ranges_of(conn, operator_id)
            # Records held outside any range (the admin API's) are sampled too, unless
            # the sample is of one operator: then its ranges are where it looks.
            spans = subscribers.number_spans(ranges) if operator_id is not None else []
            rng = random.Random(f"operator-sim/sample/{rng_seed}")  # noqa: S311 (test data)
            taken: dict[str, None] = {}  # drawn numbers, in the order drawn
            for number in sample_points(ranges, _sample_draws(count), rng):
                found, exhausted = await subscribers.first_untaken(
                    conn, f"+{number}", selection, taken, spans=spans, window=_SAMPLE_WINDOW
                )
                if found is not None:
                    taken[found] = None
                if exhausted or len(taken) == count:
                    break
            return await subscribers.subscribers_by_number(conn, list(taken))

        return SubscriberSample(subscribers=await self._db.read(unit))

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
