"""The simulation as a whole: applying the fixture, resetting it, and whether it is ready."""

from __future__ import annotations

import asyncio

import structlog

from operator_sim import errors
from operator_sim.clock import SimClock
from operator_sim.fixture import LoadedFixture
from operator_sim.server.auth import Authenticator
from operator_sim.server.feed import new_feed_secret
from operator_sim.server.messengers import new_webhook_secret
from operator_sim.server.operators import Operators
from operator_sim.server.outbox import NOTIFY
from operator_sim.server.rulebook import Rulebook
from operator_sim.server.scheduler import Scheduler
from operator_sim.server.subscribers import Subscribers, Written
from operator_sim.server.waiters import STATE_RESET, Waiters, messenger_key
from operator_sim.store import (
    Conn,
    Database,
    messengers,
    meta,
    operators,
    reset,
    rules,
    sim_swaps,
)
from operator_sim.wire import Operator

__all__ = ["Control"]

log = structlog.get_logger("operator_sim.control")

_FIXTURE_DIGEST = "fixture_digest"
_FIRST_APPLIED = "fixture_first_applied_ms"


class Control:
    """Fixture, reset and readiness."""

    def __init__(
        self,
        db: Database,
        clock: SimClock,
        fixture: LoadedFixture,
        operator_cache: Operators,
        rulebook: Rulebook,
        scheduler: Scheduler,
        auth: Authenticator,
        subscriber_records: Subscribers,
        waiters: Waiters,
        ready: asyncio.Event,
    ) -> None:
        self._subscribers = subscriber_records
        self._waiters = waiters
        self._db = db
        self._clock = clock
        self._fixture = fixture
        self._operators = operator_cache
        self._rulebook = rulebook
        self._scheduler = scheduler
        self._auth = auth
        self._ready = ready

    async def apply_fixture(self) -> bool:
        """Load the fixture into the database unless this very fixture is already there.

        Its subscribers go the way of an admin upsert: a record that ends a contract or
        moves a number ends its codes, with notifications. A database without a feed
        secret gets one here.
        """
        fx = self._fixture.fixture
        digest = self._fixture.digest
        now = self._clock.now_ms()
        fresh_secret = new_feed_secret()

        async def unit(conn: Conn) -> Written | None:
            if await meta.feed_secret(conn) is None:
                await meta.set_feed_secret(conn, fresh_secret)
            if await meta.get_meta(conn, _FIXTURE_DIGEST) == digest:
                return None
            await operators.replace_operators(
                conn, [Operator(id=o.id, name=o.name, ranges=o.ranges) for o in fx.operators]
            )
            for m in fx.messengers:
                await messengers.insert_messenger(
                    conn,
                    messenger_id=m.id,
                    name=m.name,
                    webhook_url=m.webhook_url,
                    api_key=m.api_key,
                    webhook_secret=m.webhook_secret or new_webhook_secret(),
                    demo=m.demo,
                    source="fixture",
                    now_ms=now,
                    replace=True,
                )
            written = await self._restore_fixture_state(conn, now)
            await meta.set_meta(conn, _FIXTURE_DIGEST, digest)
            return written

        written = await self._db.run(unit)
        await self._operators.load()
        if written is None:
            return False
        self._subscribers.announce(written)
        self._auth.forget()
        self._rulebook.changed()
        log.info("fixture_applied", fixture=fx.name, path=self._fixture.path)
        return True

    async def _restore_fixture_state(self, conn: Conn, now: int) -> Written:
        fx = self._fixture.fixture
        await rules.replace_fixture_rules(conn, fx.rules)
        # The fixture's own notification rules apply to what its records end.
        notify = [r for r in fx.rules if r.match.endpoint == NOTIFY]
        written = await self._subscribers.write_records(
            conn, fx.subscribers, notify, source="fixture", now=now
        )
        # The fixture's subscribers come back with their own SIM swaps, dated from when a
        # fixture was first applied here: the same dates after every restart and reset.
        first = await meta.get_meta(conn, _FIRST_APPLIED)
        if first is None:
            first = str(now)
            await meta.set_meta(conn, _FIRST_APPLIED, first)
        await sim_swaps.forget_swaps(conn, [s.msisdn for s in fx.subscribers])
        for swap in fx.sim_swaps:
            at = int(first) - round(swap.before_first_applied.total_seconds() * 1000)
            await sim_swaps.record_swap(conn, swap.msisdn, at_ms=at, source="fixture")
        return written

    async def reset(self) -> None:
        """Clear all flow state and runtime rules; restore the fixture's subscribers and rules.

        Every feed cursor issued before stops being valid, and every long poll returns.
        """
        now = self._clock.now_ms()
        fresh_secret = new_feed_secret()

        async def unit(conn: Conn) -> Written:
            await reset.clear_flow_state(conn)
            await meta.set_feed_secret(conn, fresh_secret)
            return await self._restore_fixture_state(conn, now)

        self._subscribers.announce(await self._db.run(unit))
        self._rulebook.changed()
        self._scheduler.wake()
        self._waiters.notify_all()
        log.info("reset")

    async def reset_messenger(self, messenger_id: str) -> None:
        """Clear one messenger's flow state, its runtime rules and its rule counters.

        Its feed cursors stop being valid, and its long polls return.
        """

        async def unit(conn: Conn) -> None:
            if not await messengers.messenger_exists(conn, messenger_id):
                raise errors.NotFound(kind="messenger", ident=messenger_id)
            await reset.clear_messenger_state(conn, messenger_id)
            await rules.forget_messenger_rules(conn, messenger_id)
            await meta.next_feed_epoch(conn, messenger_id)

        await self._db.run(unit)
        self._rulebook.changed()
        self._scheduler.wake()
        self._waiters.notify(messenger_key(messenger_id))
        self._waiters.notify(STATE_RESET)
        log.info("messenger_reset", messenger_id=messenger_id)

    async def ready(self) -> bool:
        """Started, with the fixture loaded and the database answering and writable.

        After a write failed for want of storage the database counts as unwritable until
        a write commits again; readiness then tries a small write of its own, so that it
        comes back once there is room even when nothing else writes.
        """
        if not self._ready.is_set():
            return False
        if self._db.writable:
            await self._db.read(meta.ping)
            return True
        return await self._db.check_writable()
