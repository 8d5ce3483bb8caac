"""The pull feeds: a messenger's events from one operator (or from the SMS gateway), after
a cursor bound to the feed.

A cursor is only ever accepted by the feed that issued it, to the messenger it issued it
to, since that messenger's (or everybody's) last reset (see ``domain.delivery``); any
other is ``409 cursor_unknown``, so a messenger never skips events silently.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from operator_sim import errors
from operator_sim.clock import SimClock
from operator_sim.domain.delivery import CursorKey, well_formed_cursor
from operator_sim.server.calls import Call, Calls, Screened
from operator_sim.server.metrics import Metrics
from operator_sim.server.operators import Operators
from operator_sim.server.outbox import feed_key
from operator_sim.server.waiters import DELIVERIES_CHANGED, Waiters, messenger_key, wait_for
from operator_sim.store import Conn, Database, meta
from operator_sim.store import outbox as outbox_table
from operator_sim.store.outbox import FeedRow
from operator_sim.wire import SMS_GATEWAY, RuleSpec

__all__ = ["Feed", "new_feed_secret"]


def new_feed_secret() -> bytes:
    """A fresh secret for signing feed cursors (every earlier cursor stops being valid)."""
    return secrets.token_bytes(32)


@dataclass(frozen=True, slots=True)
class _Page:
    rows: list[FeedRow]
    key: CursorKey
    position: int
    screened: Screened


class Feed:
    """Pages of the outbox, oldest first, with long polling."""

    def __init__(
        self,
        db: Database,
        clock: SimClock,
        operators: Operators,
        calls: Calls,
        waiters: Waiters,
        metrics: Metrics,
    ) -> None:
        self._calls = calls
        self._db = db
        self._clock = clock
        self._operators = operators
        self._waiters = waiters
        self._metrics = metrics

    async def _read(
        self,
        call: Call,
        source: str,
        after: str | None,
        limit: int,
        rules: Sequence[RuleSpec] = (),
    ) -> _Page:
        messenger_id = call.messenger_id
        # An operator's feed is named after it; the SMS gateway's is "sms".
        name = "sms" if source == SMS_GATEWAY else f"operator:{source}"

        async def unit(conn: Conn) -> _Page:
            secret = await meta.feed_secret(conn)
            if secret is None:  # cannot happen: made when the server starts
                raise errors.StoreError("the feed secret is missing")
            key = CursorKey(
                secret=secret,
                messenger_id=messenger_id,
                feed=name,
                epoch=await meta.feed_epoch(conn, messenger_id),
            )
            position = 0 if after is None else key.position(after)
            if position is None:
                raise errors.CursorUnknown
            screened = await self._calls.screen(conn, call, rules) if rules else Screened(None)
            if screened.refused:
                return _Page([], key, position, screened)
            rows = await outbox_table.feed_page(
                conn,
                messenger_id=messenger_id,
                operator_id=source,
                after=position,
                limit=limit,
            )
            return _Page(rows, key, position, screened)

        # Screening may count a rule's hits: a write, only when a rule could act here.
        return await (self._db.run(unit) if rules else self._db.read(unit))

    async def page(self, call: Call, *, after: str | None, limit: int, wait: int) -> bytes:
        """The operator's feed page as JSON; waits up to ``wait`` seconds for a first event."""
        operator_id = call.operator_id or ""
        self._operators.check(operator_id)
        return await self._page(call, operator_id, after=after, limit=limit, wait=wait)

    async def sms_page(self, call: Call, *, after: str | None, limit: int, wait: int) -> bytes:
        """The SMS gateway's feed page (its ``sms.status_changed`` events) as JSON."""
        return await self._page(call, SMS_GATEWAY, after=after, limit=limit, wait=wait)

    async def _page(
        self, call: Call, source: str, *, after: str | None, limit: int, wait: int
    ) -> bytes:
        messenger_id = call.messenger_id
        if after is not None and not well_formed_cursor(after):
            raise errors.ValidationFailed(
                "after is not a cursor: pass the next_cursor of the previous page",
                errors=[{"loc": ["query", "after"], "msg": "not a cursor", "type": "cursor"}],
            )
        rules = [r for r in await self._calls.rules() if r.match.endpoint == call.endpoint]
        page = await self._read(call, source, after, limit, rules)
        screened = page.screened
        if screened.refused:
            self._calls.committed(call, screened)  # raises the refusal
        if not page.rows and wait > 0:
            keys = (feed_key(messenger_id, source), messenger_key(messenger_id))
            async with self._waiters.watch(*keys) as event:
                page = await self._read(call, source, after, limit)
                if not page.rows and await wait_for(event, wait):
                    # Read again, cursor included: a reset meanwhile makes it unknown.
                    page = await self._read(call, source, after, limit)
        rows = page.rows
        fresh = [row.seq for row in rows if not row.delivered]
        now = self._clock.now_ms()
        entry = call.entry(200, rule_id=screened.rule_id)

        async def delivered(conn: Conn) -> int:
            if fresh:
                await outbox_table.mark_feed_delivered(conn, fresh, now)
            return await self._calls.record(conn, entry)

        dropped = await self._db.run(delivered)
        self._calls.committed(call, screened, dropped=dropped)
        if fresh:
            self._waiters.notify(DELIVERIES_CHANGED)
        missed = sum(1 for row in rows if not row.delivered and now > row.deliver_by)
        if missed:
            self._metrics.deliver_by_missed.labels("feed").inc(missed)
        cursor = page.key.issue(rows[-1].seq if rows else page.position)
        # A `duplicate` fault rule has an event delivered several times: the same id again.
        events = ",".join(row.body for row in rows for _ in range(row.copies))
        return f'{{"events":[{events}],"next_cursor":"{cursor}"}}'.encode()
