"""Numbered random draws: the same key and position always give the same numbers.

Fault rules draw from a ``random.Random``; a server seeded the same way must make the same
decisions for the same sequence of requests. The draws are made inside a unit of work,
which may run twice (``store.inline.run_batch``) and must keep nothing outside itself, so
the generator's state cannot live in memory: :class:`NumberedDraws` derives every number
from a key (the seed and the messenger) and a position, and the position is what the
store keeps. Running a unit again from the same stored position draws the same numbers.
"""

from __future__ import annotations

import hashlib
import random

__all__ = ["NumberedDraws"]

_DOUBLE = float(1 << 53)


class NumberedDraws(random.Random):
    """A ``random.Random`` whose output is a function of ``key`` and ``position`` alone.

    ``position`` counts the draws made so far; it is the state to store. Every method of
    ``random.Random`` works, built on :meth:`random` and :meth:`getrandbits` here.
    """

    def __init__(self, key: str, position: int = 0) -> None:
        super().__init__(0)
        self._key = key.encode()
        self.position = position

    def _block(self, size: int) -> bytes:
        digest = hashlib.blake2b(
            self.position.to_bytes(8, "big"), digest_size=min(size, 64), key=self._key[:64]
        ).digest()
        self.position += 1
        return digest

    def random(self) -> float:
        """A float in [0, 1), from 53 bits of the next draw."""
        return (int.from_bytes(self._block(8), "big") >> 11) / _DOUBLE

    def getrandbits(self, k: int, /) -> int:
        """``k`` random bits (one draw per 512 bits)."""
        if k < 0:
            raise ValueError("number of bits must be non-negative")
        out = 0
        bits = 0
        while bits < k:
            take = min(512, k - bits)
            chunk = int.from_bytes(self._block((take + 7) // 8), "big") >> (-take % 8)
            out = (out << take) | chunk
            bits += take
        return out
