"""How each event reached its messenger (feed and webhook), and replaying a webhook."""

from __future__ import annotations

from operator_sim import errors
from operator_sim.clock import SimClock
from operator_sim.server.wakeups import Wakeup
from operator_sim.store import Conn, Database
from operator_sim.store import outbox as outbox_table
from operator_sim.wire import Delivery

__all__ = ["Deliveries"]


class Deliveries:
    """The admin's view of the outbox."""

    def __init__(self, db: Database, clock: SimClock, webhook_work: Wakeup) -> None:
        self._db = db
        self._clock = clock
        self._webhook_work = webhook_work

    async def list_deliveries(self, *, messenger_id: str | None, limit: int) -> list[Delivery]:
        """Events with their delivery on both channels, newest first."""
        return await self._db.read(
            lambda conn: outbox_table.list_deliveries(
                conn, messenger_id=messenger_id, event_id=None, limit=limit
            )
        )

    async def replay(self, event_id: str) -> Delivery:
        """Start the event's webhook attempts again, from now, to the current URL."""
        now = self._clock.now_ms()

        async def unit(conn: Conn) -> Delivery:
            if not await outbox_table.event_exists(conn, event_id):
                raise errors.NotFound(kind="event", ident=event_id)
            if not await outbox_table.replay_webhook(conn, event_id, now):
                raise errors.Conflict("this event's messenger has no webhook_url to deliver to")
            found = await outbox_table.list_deliveries(
                conn, messenger_id=None, event_id=event_id, limit=1
            )
            return found[0]

        delivery = await self._db.run(unit)
        self._webhook_work.wake()
        return delivery
