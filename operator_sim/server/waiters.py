"""Long-poll waiters: handlers wait on keys, services wake them after a commit."""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import AsyncIterator, Callable

__all__ = [
    "CLOCK_CHANGED",
    "DELIVERIES_CHANGED",
    "JOURNAL_CHANGED",
    "RULES_CHANGED",
    "SMS_CHANGED",
    "STATE_RESET",
    "Waiters",
    "messenger_key",
    "wait_for",
]

# Keys notified for changes that no long poll waits on, for listeners (the web console).
# Request ids (`ir_...`), feed keys (`events:{messenger}:{operator}`), messenger keys and
# phone keys (`phone:{msisdn}`, a message reached the phone) are the others.
CLOCK_CHANGED = "clock"
"""The clock's mode, scale or time was set or advanced (not its steady running)."""
RULES_CHANGED = "rules"
"""A fault rule was added, deleted or applied (its hit count moved)."""
JOURNAL_CHANGED = "journal"
"""A messenger-facing call was journalled."""
STATE_RESET = "reset"
"""Flow state was cleared (everything, or one messenger's)."""
DELIVERIES_CHANGED = "deliveries"
"""An event was delivered on a channel (the feed returned it, or a webhook attempt ended)."""
SMS_CHANGED = "sms"
"""An SMS was accepted, or its status changed."""


def messenger_key(messenger_id: str) -> str:
    """The key every long poll of one messenger also watches (woken by its reset)."""
    return f"messenger:{messenger_id}"


class Waiters:
    """In-memory wake-ups keyed by resource id; nothing polls."""

    def __init__(self) -> None:
        self._events: defaultdict[str, set[asyncio.Event]] = defaultdict(set)
        self._listeners: list[Callable[[str], None]] = []
        self._closing = False

    def subscribe(self, listener: Callable[[str], None]) -> Callable[[], None]:
        """Call ``listener(key)`` on every notify; returns the call that unsubscribes.

        It runs inside ``notify``, right after a commit: it must be quick and not raise.
        """
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

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
        """Wake everyone watching ``key``, then tell the listeners."""
        for event in self._events.get(key, ()):
            event.set()
        for listener in self._listeners:
            listener(key)

    def notify_all(self) -> None:
        """Wake everyone watching anything now (a reset of everything)."""
        for bucket in self._events.values():
            for event in bucket:
                event.set()
        for listener in self._listeners:
            listener(STATE_RESET)

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
