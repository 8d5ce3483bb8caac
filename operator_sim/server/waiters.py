"""Long-poll waiters: handlers wait on keys, services wake them after a commit."""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import AsyncIterator

__all__ = ["Waiters", "messenger_key", "wait_for"]


def messenger_key(messenger_id: str) -> str:
    """The key every long poll of one messenger also watches (woken by its reset)."""
    return f"messenger:{messenger_id}"


class Waiters:
    """In-memory wake-ups keyed by resource id; nothing polls."""

    def __init__(self) -> None:
        self._events: defaultdict[str, set[asyncio.Event]] = defaultdict(set)
        self._closing = False

    @contextlib.asynccontextmanager
    async def watch(self, *keys: str) -> AsyncIterator[asyncio.Event]:
        """One wake-up for any of ``keys``.

        Register before reading state, so a wake-up between the read and the wait is kept.
        """
        event = asyncio.Event()
        if self._closing:
            event.set()
        for key in keys:
            self._events[key].add(event)
        try:
            yield event
        finally:
            for key in keys:
                bucket = self._events.get(key)
                if bucket is not None:
                    bucket.discard(event)
                    if not bucket:
                        del self._events[key]

    def notify(self, key: str) -> None:
        """Wake everyone watching ``key``."""
        for event in self._events.get(key, ()):
            event.set()

    def notify_all(self) -> None:
        """Wake everyone watching anything now (a reset of everything)."""
        for bucket in self._events.values():
            for event in bucket:
                event.set()

    def release_all(self) -> None:
        """Wake every waiter now and from now on (shutdown)."""
        self._closing = True
        self.notify_all()

    def __len__(self) -> int:
        return len({id(e) for bucket in self._events.values() for e in bucket})


async def wait_for(event: asyncio.Event, seconds: float) -> bool:
    """Wait up to ``seconds`` for ``event``; True when it was set."""
    if seconds <= 0:
        return event.is_set()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()
    return event.is_set()
