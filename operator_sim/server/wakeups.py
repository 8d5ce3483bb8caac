"""Wake-up calls between the code that adds work and the background loop that does it.

Created first, before either side, and handed to both: the flow wakes the scheduler and
the outbox wakes the webhook worker without knowing either (no late binding).
"""

from __future__ import annotations

import asyncio
import contextlib

__all__ = ["Wakeup"]


class Wakeup:
    """A flag a producer raises and one background loop waits on."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def wake(self) -> None:
        """There is work (new, or the clock moved): look now."""
        self._event.set()

    def clear(self) -> None:
        """Called by the loop before it looks, so a wake-up during the look is kept."""
        self._event.clear()

    async def wait(self, seconds: float) -> None:
        """Sleep until woken or ``seconds`` pass."""
        # asyncio.timeout rather than wait_for: on 3.11, wait_for can lose a
        # cancellation that races with the event, and shutdown would hang.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(seconds, 0.0)):
                await self._event.wait()
