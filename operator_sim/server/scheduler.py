"""The scheduler: one task that sleeps until the next due job and fires it.

Jobs live in the database, so a restart re-arms whatever was pending. Advancing a
manual clock calls :meth:`Scheduler.run_due` directly, so everything that became due
has fired, in order, before the advance call returns.
"""

from __future__ import annotations

import asyncio

import structlog

from operator_sim.clock import SimClock
from operator_sim.server.identification import Identification
from operator_sim.server.metrics import Metrics
from operator_sim.server.wakeups import Wakeup

__all__ = ["Scheduler"]

log = structlog.get_logger("operator_sim.scheduler")

_MAX_SLEEP = 30.0  # re-check at least this often (real seconds), whatever happens
_ERROR_BACKOFF = 1.0


class Scheduler:
    """Fires due answers and expiries; woken when work is added or the clock changes."""

    def __init__(
        self, clock: SimClock, identification: Identification, metrics: Metrics, work: Wakeup
    ) -> None:
        self._clock = clock
        self._identification = identification
        self._metrics = metrics
        self._work = work
        self._fire_lock = asyncio.Lock()
        self.fired_total = 0
        """Answers and expiries fired since start, by whichever pass fired them."""

    def wake(self) -> None:
        """Re-read the next due time now (new work, or the clock changed)."""
        self._work.wake()

    async def run_due(self) -> int:
        """Fire everything due at the current simulation time; returns how many fired."""
        total = 0
        async with self._fire_lock:
            while True:
                fired = await self._identification.fire_due(self._clock.now_ms())
                total += fired
                self.fired_total += fired
                if fired == 0:
                    break
        return total

    async def _sleep_seconds(self) -> float | None:
        due = await self._identification.next_due()
        self._metrics.scheduled_jobs.set(await self._identification.scheduled())
        if due is None:
            return None
        return self._clock.real_seconds_until(due)

    async def run(self) -> None:
        """The background loop, until cancelled."""
        while True:
            self._work.clear()
            try:
                await self.run_due()
                seconds = await self._sleep_seconds()
            except Exception:
                log.exception("scheduler_pass_failed")
                seconds = _ERROR_BACKOFF
            await self._work.wait(_MAX_SLEEP if seconds is None else min(seconds, _MAX_SLEEP))
