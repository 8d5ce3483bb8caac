"""Following the operators' event feeds: one stored cursor per operator, events applied once.

``EventFeed`` reads each operator's feed from the cursor stored in the messenger's
database, hands every event to an applier (the ``Messenger``'s, which deduplicates by
event id) and stores the cursor past them. ``sync`` reads every pending event once; with
``background=True`` one long-polling consumer per operator keeps reading until closed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from operator_sim.messenger.client import OperatorClient
from operator_sim.messenger.store import MessengerStore
from operator_sim.wire import Event

__all__ = ["Applier", "EventFeed"]

Applier = Callable[[Event], Awaitable[bool]]
"""Applies one event once; returns whether it was new."""

_PAGE = 500


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
                page = await self._client.events(operator_id, after=cursor, limit=_PAGE, wait=wait)
                for event in page.events:
                    applied += await self._apply(event)
                await self._store.save_cursor(operator_id, page.next_cursor)
                if not page.events:
                    return applied
                wait = 0

    async def _consume(self, operator_id: str) -> None:
        failures = 0
        while True:
            try:
                await self._drain(operator_id, wait=self._wait)
                failures = 0
            except Exception as exc:  # noqa: BLE001 (the consumer outlives any one failure)
                failures += 1
                self._report("feed_error", None, f"{operator_id}: {exc}")
                await asyncio.sleep(min(30.0, 0.5 * 2.0 ** min(failures, 6)))
