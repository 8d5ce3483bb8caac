"""Drawing subscriber numbers from the fixture's ranges: no collisions, ascending, O(1) memory.

All ranges, in number order, form one index space. Taking out the numbers that must
not be written (the reserved ones, see ``reserved_numbers``, and those already stored)
leaves ``free`` numbers, ranked in ascending order. For ``count`` numbers the ranks
``0 .. free - 1`` are cut into ``count`` equal slices and each slice yields the number
of one random rank in it. So numbers never collide, spread over operators in
proportion to their free numbers, fill the ranges to the last number if asked, need no
memory of what was drawn, and come out in ascending order: SQLite then appends to the
right edge of the subscribers B-tree instead of dirtying pages all over it (about four
times faster for a million rows).

Ranks become numbers by walking the sorted excluded numbers alongside: the number of
rank ``r`` is ``r`` plus the count of excluded numbers below it. Stored numbers are read
window by window, ahead of the walk, inside the caller's write transaction.
"""

from __future__ import annotations

import random
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass

from operator_sim.fixture import Fixture

__all__ = ["NumberDraw", "NumberSpace", "OutOfNumbers", "Segment", "StoredLoader"]

# Stored numbers are read ahead for about this many draws at a time.
_WINDOW_DRAWS = 4096


class OutOfNumbers(Exception):
    """The ranges hold no free number above the current position."""


@dataclass(frozen=True, slots=True)
class Segment:
    """One fixture range placed in the index space."""

    low: int
    """The first number of the range (its digits after '+')."""
    offset: int
    """Index of ``low`` in the index space."""
    end: int
    """Index just past the range."""
    operator_id: str


StoredLoader = Callable[[int, int], list[int]]
"""``(first, last)`` -> the stored numbers from ``first`` to ``last`` inclusive, two numbers
of the same range."""


def reserved_numbers(fixture: Fixture) -> frozenset[int]:
    """Numbers seeding never writes: the whole block of ten of every number the fixture names.

    Fixture subscribers and exact-number rules are magic numbers; their neighbours are
    reserved too, because a documented magic number can also be one that deliberately
    has no record (``+79000000002`` in the default fixture answers absent).
    """
    named = [int(s.msisdn[1:]) for s in fixture.subscribers]
    for rule in fixture.rules:
        pattern = rule.match.msisdn
        if pattern is not None and "*" not in pattern:
            named.append(int(pattern.lstrip("+")))
    return frozenset(
        block * 10 + digit for block in {n // 10 for n in named} for digit in range(10)
    )


class NumberSpace:
    """The fixture's ranges as one index space, and the numbers that must stay free."""

    def __init__(self, fixture: Fixture) -> None:
        ranges = sorted(
            (int(r.from_[1:]), int(r.to[1:]), op.id) for op in fixture.operators for r in op.ranges
        )
        segments: list[Segment] = []
        offset = 0
        for low, high, operator_id in ranges:
            size = high - low + 1
            segments.append(Segment(low, offset, offset + size, operator_id))
            offset += size
        self.segments: tuple[Segment, ...] = tuple(segments)
        self.total = offset
        """How many numbers the ranges hold."""
        self.operator_ids: tuple[str, ...] = tuple(op.id for op in fixture.operators)
        self.reserved: frozenset[int] = reserved_numbers(fixture)
        self.reserved_indexes: tuple[int, ...] = tuple(
            sorted(i for i in (self.index_of(n) for n in self.reserved) if i is not None)
        )
        """Indexes of the reserved numbers that lie inside the ranges, ascending."""

    def index_of(self, number: int) -> int | None:
        """The index of a number, or None when no range holds it."""
        for seg in self.segments:
            if seg.low <= number < seg.low + seg.end - seg.offset:
                return seg.offset + number - seg.low
        return None

    def reserved_in_ranges(self) -> list[int]:
        """The reserved numbers inside the ranges, ascending."""
        return sorted(n for n in self.reserved if self.index_of(n) is not None)


class NumberDraw:
    """Deals ``count`` of ``free`` numbers in ascending order; see the module docstring."""

    def __init__(
        self,
        space: NumberSpace,
        count: int,
        free: int,
        rng: random.Random,
        stored: StoredLoader,
    ) -> None:
        if count > free:
            raise OutOfNumbers
        self._space = space
        self._count = count
        self._free = free
        self._rng = rng
        self._stored = stored
        self._next = 0  # the slice the next draw comes from
        self._passed = 0  # excluded numbers below the walk's position
        self._seg = 0
        self._position = 0  # every index below this is walked past
        # Excluded indexes in [_position, _win_end), ascending, consumed from _ex_next.
        self._excluded: list[int] = []
        self._ex_next = 0
        self._win_end = 0
        self._window = max(1, space.total * _WINDOW_DRAWS // count)
        self.by_segment = [0] * len(space.segments)
        """Numbers dealt so far, per segment."""

    def forget_stored(self) -> None:
        """Re-read stored numbers from here on (call at the start of each transaction)."""
        self._win_end = self._position
        self._excluded = []
        self._ex_next = 0

    def _load(self) -> None:
        """Read the excluded indexes of the next window, right after the current one."""
        space = self._space
        low = self._win_end
        end = min(low + self._window, space.total)
        if low >= end:
            raise OutOfNumbers
        found: set[int] = set()
        for seg in space.segments:
            first, last = max(low, seg.offset), min(end, seg.end) - 1
            if first <= last:
                base = seg.offset - seg.low
                found.update(
                    n + base
                    for n in self._stored(seg.low + first - seg.offset, seg.low + last - seg.offset)
                )
        reserved = space.reserved_indexes
        found.update(reserved[bisect_left(reserved, low) : bisect_left(reserved, end)])
        self._excluded = sorted(found)
        self._ex_next = 0
        self._win_end = end

    def _index_of_rank(self, rank: int) -> int:
        """Walk up to the free number of ``rank``: skip every excluded index at or below it."""
        index = rank + self._passed
        while True:
            if index >= self._win_end:
                # Excluded indexes left in the window are all below ``index``: count them.
                self._passed += len(self._excluded) - self._ex_next
                index = rank + self._passed
                self._load()
                continue
            excluded, at = self._excluded, self._ex_next
            if at < len(excluded) and excluded[at] <= index:
                self._ex_next = at + 1
                self._passed += 1
                index += 1
                continue
            return index

    def take(self, size: int) -> list[tuple[str, str]]:
        """The next ``size`` (msisdn, operator_id) pairs (fewer at the end)."""
        # This runs once per row: the window check is inlined, the walk is not.
        count, free = self._count, self._free
        segments = self._space.segments
        rand = self._rng.random
        by_segment = self.by_segment
        k = self._next
        end = (k * free) // count
        size = min(size, count - k)
        seg_i = self._seg
        seg = segments[seg_i]
        out: list[tuple[str, str]] = []
        append = out.append
        for _ in range(size):
            start, end = end, ((k + 1) * free) // count
            k += 1
            rank = start + int(rand() * (end - start))
            index = rank + self._passed
            excluded = self._excluded
            if index >= self._win_end or (
                self._ex_next < len(excluded) and excluded[self._ex_next] <= index
            ):
                index = self._index_of_rank(rank)
            self._position = index + 1
            while index >= seg.end:
                seg_i += 1
                seg = segments[seg_i]
            by_segment[seg_i] += 1
            append((f"+{seg.low + index - seg.offset}", seg.operator_id))
        self._next, self._seg = k, seg_i
        return out

    def by_operator(self) -> dict[str, int]:
        """Numbers dealt so far, per operator, in fixture order."""
        counts = dict.fromkeys(self._space.operator_ids, 0)
        for seg, dealt in zip(self._space.segments, self.by_segment, strict=True):
            counts[seg.operator_id] += dealt
        return counts
