"""Fan-out of committed changes to the open live streams, and what a reconnect missed.

The server announces every commit (a request answered, an event written, the clock
moved, ...) by its waiter key. The hub numbers the keys, keeps the most recent ones, and
hands each to every open :class:`Stream`; a stream works out, when it wakes, which parts
of its page the keys' changes (:func:`~operator_sim.console.backend.classify`) make
stale. Nothing polls: an idle stream waits on an event that only a change sets.

A stream's position is ``{boot}-{seq}``: the process it came from and how many changes
that process had published. Every message carries it as its SSE ``id``, so a browser
that reconnects sends it back as ``Last-Event-ID`` and gets exactly the parts that
changed meanwhile; a position from another process, or older than the hub remembers,
gets every part again.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections import deque
from collections.abc import Callable, Iterable

from operator_sim.console.backend import Change, classify

__all__ = ["Hub", "Stream"]

Wants = Callable[[Change], Iterable[str]]
"""The parts of a page (SSE event names) that a change makes stale."""


class Stream:
    """One open live page: which of its parts are stale, and a wake-up when one becomes so."""

    def __init__(self, wants: Wants) -> None:
        self._wants = wants
        self._stale: set[str] = set()
        self._keys: set[str] = set()
        self._wake = asyncio.Event()
        self._closing = asyncio.Event()
        self.closed = False

    def note(self, key: str) -> None:
        """Note a committed change by its waiter key (called inside the server's notify,
        on every commit: only a set insertion; what it makes stale is worked out when
        the stream next wakes)."""
        self._keys.add(key)
        self._wake.set()

    def mark(self, names: Iterable[str]) -> None:
        """Mark parts stale directly (on connect, from what a reconnect missed)."""
        self._stale.update(names)
        if self._stale:
            self._wake.set()

    def close(self) -> None:
        """Ask the stream to end (server shutdown)."""
        self.closed = True
        self._wake.set()
        self._closing.set()

    async def wait(self) -> None:
        """Return once a part is stale or the stream is closed."""
        await self._wake.wait()

    async def rest(self, seconds: float) -> None:
        """Pause ``seconds`` between updates; a close ends the pause at once."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._closing.wait()

    def take(self) -> set[str]:
        """The stale parts, now considered fresh."""
        keys, self._keys = self._keys, set()
        for key in keys:
            change = classify(key)
            if change is not None:
                self._stale.update(self._wants(change))
        stale, self._stale = self._stale, set()
        self._wake.clear()
        return stale


class Hub:
    """Numbers changes, remembers the last ``memory`` of them, and marks open streams."""

    def __init__(self, *, memory: int = 4096) -> None:
        self.boot = secrets.token_hex(4)
        self._seq = 0
        # Changes from the server are kept as their waiter keys, classified only if a
        # reconnect asks what it missed: the server's hot paths pay for an append.
        self._recent: deque[tuple[int, str]] = deque(maxlen=memory)
        self._streams: set[Stream] = set()

    @property
    def position(self) -> str:
        """Where the hub stands now, as a stream position."""
        return f"{self.boot}-{self._seq}"

    def note(self, key: str) -> None:
        """Record a committed change by its waiter key, and note it on every open stream.

        The server calls this on every commit: the key is classified only when a stream
        or a reconnect needs to know what it makes stale.
        """
        self._seq += 1
        self._recent.append((self._seq, key))
        for stream in self._streams:
            stream.note(key)

    def missed(self, position: str | None, wants: Wants, every: Iterable[str]) -> set[str]:
        """The parts stale since ``position``; ``every`` part when that cannot be told."""
        seq = self._seq_of(position)
        if seq is None:
            return set(every)
        if seq == self._seq:
            return set()
        if not self._recent or self._recent[0][0] > seq + 1:
            return set(every)  # some of what happened since is no longer remembered
        stale: set[str] = set()
        for number, key in reversed(self._recent):
            if number <= seq:
                break
            change = classify(key)
            if change is not None:
                stale.update(wants(change))
        return stale

    def _seq_of(self, position: str | None) -> int | None:
        if not position:
            return None
        boot, _, raw = position.strip().partition("-")
        if boot != self.boot or not raw.isdigit():
            return None
        seq = int(raw)
        return seq if seq <= self._seq else None

    def open(self, wants: Wants) -> Stream:
        """A new stream, marked from now on."""
        stream = Stream(wants)
        self._streams.add(stream)
        return stream

    def discard(self, stream: Stream) -> None:
        """Stop marking a stream (it ended)."""
        self._streams.discard(stream)

    def close(self) -> None:
        """End every open stream (the server is shutting down)."""
        for stream in self._streams:
            stream.close()

    def __len__(self) -> int:
        return len(self._streams)
