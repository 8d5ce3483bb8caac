"""Resource identifiers: a prefix and a ULID (time-ordered, 80 random bits)."""

from __future__ import annotations

import base64
import functools
import random
import secrets

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_TO_CROCKFORD = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", _CROCKFORD.encode())
# Ids must be unique, not secret (every lookup checks the owner), so a generator seeded
# once from the OS is enough; reading the OS for every id cost a system call per request.
_RANDOM = random.Random(secrets.randbits(128))  # noqa: S311


def new_id(prefix: str, time_ms: int) -> str:
    """``prefix_`` + a 26-character ULID whose time part is ``time_ms``.

    A ULID's 26 characters split exactly: the first 10 encode the 48-bit time (behind two
    zero bits), the last 16 the 80 random bits, which base32 encodes in C.
    """
    random_part = base64.b32encode(_RANDOM.getrandbits(80).to_bytes(10, "big"))
    return f"{prefix}_{_time_part(time_ms)}{random_part.translate(_TO_CROCKFORD).decode()}"


@functools.lru_cache(maxsize=256)
def _time_part(time_ms: int) -> str:
    value = time_ms & ((1 << 48) - 1)
    chars = []
    for _ in range(10):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))
