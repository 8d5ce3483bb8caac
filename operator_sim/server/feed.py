"""The pull feed: a messenger's events from one operator, after an opaque cursor."""

from __future__ import annotations

from operator_sim import errors
from operator_sim.clock import SimClock
from operator_sim.domain.delivery import decode_cursor, encode_cursor
from operator_sim.server.metrics import Metrics
from operator_sim.server.operators import Operators
from operator_sim.server.outbox import feed_key
from operator_sim.server.waiters import Waiters, wait_for
from operator_sim.store import Database
from operator_sim.store import outbox as outbox_table
from operator_sim.store.outbox import FeedRow

__all__ = ["Feed"]


class Feed:
    """Pages of the outbox, oldest first, with long polling."""

    def __init__(
        self,
        db: Database,
        clock: SimClock,
        operators: Operators,
        waiters: Waiters,
        metrics: Metrics,
    ) -> None:
        self._db = db
        self._clock = clock
        self._operators = operators
        self._waiters = waiters
        self._metrics = metrics

    async def _read(
        self, messenger_id: str, operator_id: str, after: int, limit: int
    ) -> list[FeedRow]:
        return await self._db.read(
            lambda conn: outbox_table.feed_page(
                conn, messenger_id=messenger_id, operator_id=operator_id, after=after, limit=limit
            )
        )

    async def page(
        self, *, messenger_id: str, operator_id: str, after: str | None, limit: int, wait: int
    ) -> bytes:
        """The feed page as JSON; waits up to ``wait`` seconds for a first event."""
        self._operators.check(operator_id)
        position = 0
        if after is not None:
            decoded = decode_cursor(after)
            if decoded is None:
                raise errors.ValidationFailed(
                    "after is not a cursor this feed returned",
                    errors=[
                        {
                            "loc": ["query", "after"],
                            "msg": "unknown cursor",
                            "type": "cursor_format",
                        }
                    ],
                )
            position = decoded
        rows = await self._read(messenger_id, operator_id, position, limit)
        if not rows and wait > 0:
            async with self._waiters.watch(feed_key(messenger_id, operator_id)) as event:
                rows = await self._read(messenger_id, operator_id, position, limit)
                if not rows and await wait_for(event, wait):
                    rows = await self._read(messenger_id, operator_id, position, limit)
        fresh = [row.seq for row in rows if not row.delivered]
        if fresh:
            now = self._clock.now_ms()
            await self._db.run(lambda conn: outbox_table.mark_feed_delivered(conn, fresh, now))
            missed = sum(1 for row in rows if not row.delivered and now > row.deliver_by)
            if missed:
                self._metrics.deliver_by_missed.labels("feed").inc(missed)
        cursor = encode_cursor(rows[-1].seq if rows else position)
        events = ",".join(row.body for row in rows)
        return f'{{"events":[{events}],"next_cursor":"{cursor}"}}'.encode()
