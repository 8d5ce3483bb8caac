"""Following the operators' event feeds: one stored cursor per operator, events applied once.

``EventFeed`` reads each operator's feed from the cursor stored in the messenger's
database, hands every event to an applier (the ``Messenger``'s, which deduplicates by
event id) and stores the cursor past them. ``sync`` reads every pending event once; with
``background=True`` one long-polling consumer per operator keeps reading until closed.

The feed never stalls on the operator's account:

- a page of events that comes back with the cursor it was read after would be read for
  ever: :class:`FeedStalled` ends the sync (a consumer backs off and tries again later);
- an event of a type this library does not know is handed to the applier as an
  ``UnknownEvent`` (which skips and reports it), and the rest of the page is applied;
- a stored cursor the operator refuses (``409 cursor_unknown``, or ``422``) is dropped and
  the feed read again from the oldest event: safe, as events are deduplicated by id.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from operator_sim.messenger.checks import UnknownEvent
from operator_sim.messenger.client import OperatorClient
from operator_sim.messenger.errors import ApiError, FeedStalled
from operator_sim.messenger.store import MessengerStore
from operator_sim.wire import Event

__all__ = ["Applier", "EventFeed"]

Applier = Callable[[Event | UnknownEvent], Awaitable[bool]]
"""Applies one event once; returns whether it was new (an unknown type never is)."""

_PAGE = 500
_BACKOFF_BASE = 0.5
_BACKOFF_CAP = 60.0


def _refuses_cursor(exc: ApiError) -> bool:
    # Our only other parameter, limit, is always in range: a 422 is about the cursor.
    return (exc.status == 409 and exc.code == "cursor_unknown") or exc.status == 422


class EventFeed:
    """Reads every operator's feed from its stored cursor and applies what it finds."""

    def __init__(
        self,
        client: OperatorClient,
        store: MessengerStore,
        apply: Applier,
        *,
        report: Callable[[str, str | None, str], None],
        wait: int,
        background: bool,
    ) -> None:
        self._client = client
        self._store = store
        self._apply = apply
        self._report = report
        self._wait = wait
        self._background = background
        self._locks: dict[str, asyncio.Lock] = {}
        self._consumers: dict[str, asyncio.Task[None]] = {}

    async def start(self) -> None:
        """Start a consumer for every operator already asked (when following in background)."""
        for operator_id, _ in await self._store.operators():
            self.follow(operator_id)

    async def close(self) -> None:
        """Stop the consumers."""
        consumers = list(self._consumers.values())
        for task in consumers:
            task.cancel()
        await asyncio.gather(*consumers, return_exceptions=True)
        self._consumers.clear()

    async def sync(self) -> int:
        """Pull and apply every pending event from each operator asked so far, once."""
        applied = 0
        for operator_id, _ in await self._store.operators():
            applied += await self._drain(operator_id, wait=0)
        return applied

    def follow(self, operator_id: str) -> None:
        """Keep reading this operator's feed in the background (when so configured)."""
        if not self._background or operator_id in self._consumers:
            return
        self._consumers[operator_id] = asyncio.create_task(
            self._consume(operator_id), name=f"messenger-feed-{operator_id}"
        )

    async def _drain(self, operator_id: str, *, wait: int) -> int:
        lock = self._locks.setdefault(operator_id, asyncio.Lock())
        applied = 0
        async with lock:
            while True:
                cursor = await self._store.cursor(operator_id)
                try:
                    page = await self._client.events(
                        operator_id, after=cursor, limit=_PAGE, wait=wait
                    )
                except ApiError as exc:
                    if cursor is None or not _refuses_cursor(exc):
                        raise
                    self._report(
                        "cursor_reset",
                        None,
                        f"{operator_id} refused the stored cursor ({exc.status} {exc.code}): "
                        "reading its feed again from the oldest event",
                    )
                    await self._store.save_cursor(operator_id, None)
                    continue
                for event in page.events:
                    applied += await self._apply(event)
                if page.events and cursor is not None and page.next_cursor == cursor:
                    raise FeedStalled(operator_id=operator_id, cursor=cursor)
                await self._store.save_cursor(operator_id, page.next_cursor)
                if not page.events:
                    return applied
                wait = 0

    async def _consume(self, operator_id: str) -> None:
        policy = self._client.retry
        failures = 0
        while True:
            try:
                await self._drain(operator_id, wait=self._wait)
                failures = 0
            except Exception as exc:  # noqa: BLE001 (the consumer outlives any one failure)
                self._report("feed_error", None, f"{operator_id}: {exc}")
                step = min(_BACKOFF_CAP, _BACKOFF_BASE * 2.0 ** min(failures, 16))
                failures += 1
                # Jitter keeps several processes from reading a failing feed in step.
                await policy.sleep(step / 2 + policy.rng.uniform(0, step / 2))
