"""Retention: pruning finished work older than ``--retention``, off the request path.

One background loop, owned by the app like the scheduler and the webhook worker. Each
pass takes one cutoff (simulation time now, minus the retention) and removes, below it:

- finished (answered or expired) identification requests that no live code points to
  and that have no scheduled work left, with their idempotency keys;
- events whose webhook delivery is final or that have none, with their attempts;
- ended codes (kept for the admin's view of codes) that ended before it.

The work is split into units that look at no more than ``_CHUNK`` rows each, one after
the other for each of the two kinds: each joins the batch of whatever requests are
queued with it, so a request waits a few milliseconds at most behind them, and a large
backlog is worked off a unit of each kind per batch, sharing the database with the
requests.

A pass runs when an advance of the clock wakes it (a :class:`Wakeup`, so that a manual
clock prunes as soon as it moves, and tests need not wait for a poll), and otherwise
every ``_INTERVAL`` real seconds, for a scaled or real clock. Most passes only look at
what became old since the pass before (everything older was pruned or kept then), so a
pass costs what the load added, not what is kept: requests that live codes point to
can be many, and kept for ever. Kept rows become prunable later (a code deleted, a
delivery settled, a late answer given): a full pass, from the oldest row, looks at them
again after each clock advance and every ``_FULL_PASS`` real seconds.
"""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass, fields
from datetime import timedelta

import structlog

from operator_sim import errors
from operator_sim.clock import SimClock
from operator_sim.ids import time_floor
from operator_sim.server.metrics import Metrics
from operator_sim.server.wakeups import Wakeup
from operator_sim.store import Conn, Database, codes, idempotency, jobs, outbox
from operator_sim.store import requests as requests_table

__all__ = ["Pruned", "Retention"]

log = structlog.get_logger("operator_sim.retention")

_CHUNK = 200
"""Rows one unit of work looks at."""
_INTERVAL = 1.0
"""Real seconds between passes when nothing wakes the loop."""
_FULL_PASS = 60.0
"""Real seconds between full passes, which look again at every row kept so far."""
_ERROR_BACKOFF = 5.0


@dataclass(frozen=True, slots=True)
class Pruned:
    """Rows removed, by table."""

    identification_requests: int = 0
    idempotency_keys: int = 0
    events: int = 0
    delivery_attempts: int = 0
    ended_codes: int = 0

    def __add__(self, other: Pruned) -> Pruned:
        return Pruned(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    def by_table(self) -> dict[str, int]:
        """Counts keyed by table name."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


class Retention:
    """Removes finished work older than the retention; does nothing when it is 0."""

    def __init__(
        self, db: Database, clock: SimClock, metrics: Metrics, work: Wakeup, *, keep: timedelta
    ) -> None:
        self._db = db
        self._clock = clock
        self._metrics = metrics
        self._work = work
        self._keep_ms = round(keep.total_seconds() * 1000)
        # Where the next pass that is not full starts: everything before was looked at.
        self._requests_from = ""
        self._events_from = 0
        self._full_due = True

    @property
    def enabled(self) -> bool:
        """Whether anything is ever pruned (a retention of 0 keeps everything)."""
        return self._keep_ms > 0

    def wake(self) -> None:
        """Prune now, fully (the clock moved)."""
        self._full_due = True
        self._work.wake()

    async def prune(self, *, full: bool = True) -> Pruned:
        """One pass: remove what is prunable below the current cutoff; returns the counts.

        A full pass looks at every row below the cutoff; another only at those the
        previous passes did not look at.
        """
        if not self.enabled:
            return Pruned()
        cutoff = self._clock.now_ms() - self._keep_ms
        if cutoff <= 0:
            return Pruned()
        # Side by side, so that each batch of requests carries a unit of each.
        requests, events, ended = await asyncio.gather(
            self._prune_requests("" if full else self._requests_from, time_floor("ir", cutoff)),
            self._prune_events(0 if full else self._events_from, cutoff),
            self._prune_ended_codes(cutoff),
        )
        pruned = requests + events + ended
        counts = pruned.by_table()
        if any(counts.values()):
            log.info("retention_pruned", **counts)
        return pruned

    async def _prune_requests(self, after: str, before: str) -> Pruned:
        total = Pruned()
        while True:
            step, last = await self._db.run(
                functools.partial(_prune_requests_step, after=after, before=before)
            )
            self._count(step)
            total += step
            if last is None:
                # Ids begin with their creation time: no request made later sorts below.
                self._requests_from = max(self._requests_from, before)
                return total
            after = last

    async def _prune_events(self, after: int, before_ms: int) -> Pruned:
        total = Pruned()
        while True:
            step = await self._db.run(
                functools.partial(
                    outbox.prune_events, after=after, before_ms=before_ms, limit=_CHUNK
                )
            )
            pruned = Pruned(events=step.events, delivery_attempts=step.attempts)
            self._count(pruned)
            total += pruned
            if not step.more:
                self._events_from = max(self._events_from, step.examined_to)
                return total
            after = step.examined_to

    async def _prune_ended_codes(self, before_ms: int) -> Pruned:
        total = Pruned()
        while True:
            removed = await self._db.run(
                functools.partial(codes.prune_ended, before_ms=before_ms, limit=_CHUNK)
            )
            step = Pruned(ended_codes=removed)
            self._count(step)
            total += step
            if removed < _CHUNK:
                return total

    def _count(self, pruned: Pruned) -> None:
        """Count what one unit removed, once it committed."""
        m = self._metrics
        for table, count in pruned.by_table().items():
            if count:
                m.child(m.retention_pruned, table).inc(count)

    async def run(self) -> None:
        """The background loop, until cancelled; returns at once when retention is 0."""
        if not self.enabled:
            return
        loop = asyncio.get_running_loop()
        next_full = loop.time()
        while True:
            self._work.clear()
            full = self._full_due or loop.time() >= next_full
            if full:
                self._full_due = False
                next_full = loop.time() + _FULL_PASS
            try:
                await self.prune(full=full)
                pause = _INTERVAL
            except errors.StorageUnavailable as exc:
                # Deleting needs room in the write-ahead log too: try again later.
                log.warning("retention_pass_failed", detail=exc.detail)
                pause = _ERROR_BACKOFF
            except Exception:
                log.exception("retention_pass_failed")
                pause = _ERROR_BACKOFF
            await self._work.wait(pause)


async def _prune_requests_step(conn: Conn, *, after: str, before: str) -> tuple[Pruned, str | None]:
    """One unit: finished requests among the next chunk, unless a code or a job holds them."""
    finished, last = await requests_table.finished_requests(
        conn, after=after, before=before, limit=_CHUNK
    )
    # A pending request has its expiry scheduled; an expired one may still have a late
    # answer to come.
    held = await codes.requests_with_codes(conn, finished)
    held |= await jobs.refs_with_jobs(conn, finished)
    gone = [request_id for request_id in finished if request_id not in held]
    keys = await idempotency.delete_keys_of_requests(conn, gone)
    removed = await requests_table.delete_requests(conn, gone)
    return Pruned(identification_requests=removed, idempotency_keys=keys), last
