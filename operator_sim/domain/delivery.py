"""Notification delivery: the 24-hour window, the webhook retry schedule, feed cursors.

A feed cursor is a position and a tag: an HMAC over the position, the messenger, the feed
and the messenger's epoch under the database's secret. Only a cursor this feed issued to
this messenger since the last reset carries the right tag; any other is refused, so a
messenger that kept a cursor across a restart on a fresh database learns it at once
instead of silently skipping events.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import random
import re
from dataclasses import dataclass

from operator_sim.wire import NOTIFY_WINDOW

_S = 1000
_WINDOW_MS = int(NOTIFY_WINDOW.total_seconds() * _S)

RETRY_OFFSETS_MS: tuple[int, ...] = (
    0,
    5 * _S,
    5 * 60 * _S,
    30 * 60 * _S,
    2 * 3600 * _S,
    5 * 3600 * _S,
    10 * 3600 * _S,
    17 * 3600 * _S,
)
"""When each webhook attempt is due, counted from the event (or from a replay)."""

_JITTER = 0.1


def attempt_due(base_ms: int, attempt: int, rng: random.Random) -> int | None:
    """When attempt number ``attempt`` (0-based) is due, or None after the last one.

    Attempts after the second get up to ±10% jitter on their offset, so receivers that
    recover together are not hit together; every attempt stays inside the window.
    """
    if attempt >= len(RETRY_OFFSETS_MS):
        return None
    offset = RETRY_OFFSETS_MS[attempt]
    if attempt >= 2:
        offset = int(offset * (1 + rng.uniform(-_JITTER, _JITTER)))
    return base_ms + min(offset, _WINDOW_MS - 1)


def next_attempt_at(
    *, base_ms: int, attempt: int, now_ms: int, retry_after_s: float | None, rng: random.Random
) -> int | None:
    """When to try again after attempt ``attempt`` failed at ``now_ms``; None when spent.

    A delivery's attempts stay inside the 24 hours from its start (``base_ms``: the change
    itself, or a replay). A receiver's ``Retry-After`` is honoured, so the next attempt is
    never earlier; if it would fall past the window there is none, and the delivery fails.
    """
    due = attempt_due(base_ms, attempt + 1, rng)
    if due is None:
        return None
    if retry_after_s is not None:
        due = max(due, now_ms + int(retry_after_s * _S))
    due = max(due, now_ms)
    return due if due < base_ms + _WINDOW_MS else None


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header in delta-seconds form; None otherwise."""
    if value is None:
        return None
    text = value.strip()
    if not text.isdigit():
        return None
    return float(min(int(text), 86_400))


CURSOR_PATTERN = r"^c[0-9a-z]{1,12}(?:\.[A-Za-z0-9_-]{1,64})?$"  # 36**12 < 2**63: an SQLite integer
"""Every string of this shape is read as a cursor; only its tag says whether it is one."""

_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"
_CURSOR_RE = re.compile(CURSOR_PATTERN)
_TAG_BYTES = 12


@dataclass(frozen=True, slots=True)
class CursorKey:
    """What binds a cursor to the feed that issued it.

    ``secret`` belongs to the database (a reset of everything replaces it), ``epoch`` to
    the messenger (a reset of that messenger moves it), ``feed`` names the feed (an
    operator's, or the SMS gateway's).
    """

    secret: bytes
    messenger_id: str
    feed: str
    epoch: int

    def _tag(self, position: int) -> str:
        message = f"{self.messenger_id}\n{self.feed}\n{self.epoch}\n{position}".encode()
        digest = hmac.new(self.secret, message, hashlib.sha256).digest()[:_TAG_BYTES]
        return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")

    def issue(self, position: int) -> str:
        """The opaque cursor for a feed position."""
        digits = ""
        rest = position
        while True:
            rest, digit = divmod(rest, 36)
            digits = _BASE36[digit] + digits
            if rest == 0:
                return f"c{digits}.{self._tag(position)}"

    def position(self, cursor: str) -> int | None:
        """The position of a cursor this key issued; None for one it did not."""
        head, _, tag = cursor.partition(".")
        position = int(head[1:], 36)
        return position if hmac.compare_digest(tag, self._tag(position)) else None


def well_formed_cursor(cursor: str) -> bool:
    """Whether ``cursor`` has a cursor's shape (it may still be one this feed never issued)."""
    return _CURSOR_RE.fullmatch(cursor) is not None
