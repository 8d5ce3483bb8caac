"""Driving the simulation clock: its mode and scale, and advances that fire what falls due."""

from __future__ import annotations

from datetime import UTC, datetime

import structlog

from operator_sim import errors
from operator_sim.clock import ClockMode, SimClock
from operator_sim.server.retention import Retention
from operator_sim.server.scheduler import Scheduler
from operator_sim.server.waiters import CLOCK_CHANGED, Waiters
from operator_sim.server.webhooks import WebhookWorker
from operator_sim.store import Database, meta
from operator_sim.wire import ClockAdvanced, ClockView

__all__ = ["Clockwork"]

log = structlog.get_logger("operator_sim.control")

# Simulation time must stay representable in RFC 3339 (four-digit years).
_LATEST_MS = int(datetime(9000, 1, 1, tzinfo=UTC).timestamp() * 1000)


class Clockwork:
    """The admin's hand on the simulation clock."""

    def __init__(
        self,
        db: Database,
        clock: SimClock,
        scheduler: Scheduler,
        webhooks: WebhookWorker,
        retention: Retention,
        waiters: Waiters,
        *,
        webhook_wait: float,
    ) -> None:
        self._db = db
        self._clock = clock
        self._scheduler = scheduler
        self._webhooks = webhooks
        self._retention = retention
        self._waiters = waiters
        self._webhook_wait = webhook_wait

    def view(self) -> ClockView:
        """The clock as the API shows it."""
        return ClockView(now=self._clock.now(), mode=self._clock.mode, scale=self._clock.scale)

    async def save(self) -> None:
        """Persist the clock's anchor."""
        state = self._clock.state()
        await self._db.run(lambda conn: meta.save_clock(conn, state))

    async def set_mode(self, mode: ClockMode, scale: float | None) -> ClockView:
        """Switch the clock's mode, continuing from the current simulation time."""
        if mode == "scaled" and scale is None:
            # Keep a scaled clock's speed; otherwise 60x (the 20-minute deadline in 20 s).
            scale = self._clock.scale if self._clock.mode == "scaled" else 60.0
        self._clock.set_mode(mode, scale or 1.0)
        await self.save()
        self._scheduler.wake()
        self._webhooks.wake()
        self._waiters.notify(CLOCK_CHANGED)
        log.info("clock_set", mode=mode, scale=self._clock.scale)
        return self.view()

    async def advance(self, ms: int) -> ClockAdvanced:
        """Move the clock forward and fire everything that became due.

        Answers and expiries all fire before it returns; webhook attempts that fell due
        are started, and waited for about one attempt's timeout.
        """
        if self._clock.now_ms() + ms >= _LATEST_MS:
            raise errors.ValidationFailed(
                "the clock cannot pass the year 9000",
                errors=[{"loc": ["by"], "msg": "too large", "type": "too_large"}],
            )
        # Counted from the scheduler's total: its background pass may fire some of what
        # falls due before this call's own pass does.
        fired_before = self._scheduler.fired_total
        self._clock.advance(ms)
        await self.save()
        await self._scheduler.run_due()
        fired = self._scheduler.fired_total - fired_before
        # A hanging receiver must not hold the clock: its retries go on in the background.
        in_flight = await self._webhooks.drain(self._webhook_wait)
        self._scheduler.wake()
        self._retention.wake()
        self._waiters.notify(CLOCK_CHANGED)
        log.info("clock_advanced", by_ms=ms, fired=fired, webhooks_in_flight=in_flight)
        view = self.view()
        return ClockAdvanced(
            now=view.now,
            mode=view.mode,
            scale=view.scale,
            fired=fired,
            webhooks_in_flight=in_flight,
        )
