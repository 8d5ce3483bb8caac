"""The scheduler: one task that sleeps until the next due job and fires it.

Jobs live in the database, so a restart re-arms whatever was pending. Advancing a
manual clock calls :meth:`Scheduler.run_due` directly, so everything that became due
has fired, in order, before the advance call returns.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from operator_sim.clock import SimClock
from operator_sim.server.flow import Flow
from operator_sim.server.metrics import Metrics
from operator_sim.store import Database
from operator_sim.store import requests as store

log = structlog.get_logger("operator_sim.scheduler")

_MAX_SLEEP = 30.0  # re-check at least this often (real seconds), whatever happens
_ERROR_BACKOFF = 1.0


class Scheduler:
    """Fires due answers and expiries; woken when work is added or the clock changes."""

    def __init__(self, db: Database, clock: SimClock, flow: Flow, metrics: Metrics) -> None:
        self._db = db
        self._clock = clock
        self._flow = flow
        self._metrics = metrics
        self._wake = asyncio.Event()
        self._fire_lock = asyncio.Lock()
        self.fired_total = 0
        """Answers and expiries fired since start, by whichever pass fired them."""

    def wake(self) -> None:
        """Re-read the next due time now (new work, or the clock changed)."""
        self._wake.set()

    async def run_due(self) -> int:
        """Fire everything due at the current simulation time; returns how many fired."""
        total = 0
        async with self._fire_lock:
            while True:
                fired = await self._flow.fire_due(self._clock.now_ms())
                total += fired
                self.fired_total += fired
                if fired == 0:
                    break
        return total

    async def _sleep_seconds(self) -> float | None:
        async with self._db.read() as conn:
            due = await store.next_due(conn)
            self._metrics.scheduled_jobs.set(await store.count_jobs(conn))
        if due is None:
            return None
        return self._clock.real_seconds_until(due)

    async def run(self) -> None:
        """The background loop, until cancelled."""
        while True:
            self._wake.clear()
            try:
                await self.run_due()
                seconds = await self._sleep_seconds()
            except Exception:
                log.exception("scheduler_pass_failed")
                seconds = _ERROR_BACKOFF
            timeout = _MAX_SLEEP if seconds is None else min(seconds, _MAX_SLEEP)
            # asyncio.timeout rather than wait_for: on 3.11, wait_for can lose a
            # cancellation that races with the event, and shutdown would hang.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
