"""Notification delivery: the 24-hour window, the webhook retry schedule, feed cursors."""

from __future__ import annotations

import random
import re

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


CURSOR_PATTERN = r"^c[0-9a-z]{1,12}$"  # 36**12 < 2**63: always an SQLite integer
"""Every string of this shape is a cursor (the feed position in base 36, behind a ``c``)."""

_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"
_CURSOR_RE = re.compile(CURSOR_PATTERN)


def encode_cursor(seq: int) -> str:
    """An opaque, URL-safe cursor for a feed position."""
    digits = ""
    while True:
        seq, rest = divmod(seq, 36)
        digits = _BASE36[rest] + digits
        if seq == 0:
            return "c" + digits


def decode_cursor(cursor: str) -> int | None:
    """The feed position of a cursor, or None when it is not one."""
    if not _CURSOR_RE.fullmatch(cursor):
        return None
    return int(cursor[1:], 36)
