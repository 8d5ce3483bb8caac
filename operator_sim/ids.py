"""Resource identifiers: a prefix and a ULID (time-ordered, 80 random bits)."""

from __future__ import annotations

import functools
import random
import secrets

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_PAIRS = tuple(a + b for a in _CROCKFORD for b in _CROCKFORD)
"""Every pair of base32 digits, indexed by the 10 bits they encode."""
# Ids must be unique, not secret (every lookup checks the owner), so a generator seeded
# once from the OS is enough; reading the OS for every id cost a system call per request.
_RANDOM = random.Random(secrets.randbits(128))  # noqa: S311


def new_id(prefix: str, time_ms: int) -> str:
    """``prefix_`` + a 26-character ULID whose time part is ``time_ms``.

    A ULID's 26 characters split exactly: the first 10 encode the 48-bit time (behind two
    zero bits), the last 16 the 80 random bits, looked up two characters at a time.
    """
    r = _RANDOM.getrandbits(80)
    p = _PAIRS
    return (
        f"{prefix}_{_time_part(time_ms)}{p[r >> 70]}{p[(r >> 60) & 1023]}{p[(r >> 50) & 1023]}"
        f"{p[(r >> 40) & 1023]}{p[(r >> 30) & 1023]}{p[(r >> 20) & 1023]}{p[(r >> 10) & 1023]}"
        f"{p[r & 1023]}"
    )


@functools.lru_cache(maxsize=256)
def _time_part(time_ms: int) -> str:
    value = time_ms & ((1 << 48) - 1)
    return "".join(_CROCKFORD[(value >> shift) & 31] for shift in range(45, -5, -5))


def time_floor(prefix: str, time_ms: int) -> str:
    """An id below every ``prefix`` id made at ``time_ms`` and above every earlier one.

    The time part comes first and is fixed-width, so ids sort by creation time: a range
    on a primary key of ids (``id < time_floor(...)``) finds older rows without a scan.
    """
    return f"{prefix}_{_time_part(time_ms)}"
