"""Resource identifiers: a prefix and a ULID (time-ordered, 80 random bits)."""

from __future__ import annotations

import random
import secrets

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# Ids must be unique, not secret (every lookup checks the owner), so a generator seeded
# once from the OS is enough; reading the OS for every id cost a system call per request.
_RANDOM = random.Random(secrets.randbits(128))  # noqa: S311


def new_id(prefix: str, time_ms: int) -> str:
    """``prefix_`` + a 26-character ULID whose time part is ``time_ms``."""
    value = ((time_ms & ((1 << 48) - 1)) << 80) | _RANDOM.getrandbits(80)
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return f"{prefix}_{''.join(reversed(chars))}"
