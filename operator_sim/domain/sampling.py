"""Where to look for random subscribers: points in the number ranges, not a table scan.

A sample draws numbers uniformly over the ranges (a range is picked in proportion to its
size) and takes the first stored record at or after each one. Finding that record is one
seek in the table's key, whatever its size; the points are a function of the generator
alone, so a seeded generator finds the same records in the same database.
"""

from __future__ import annotations

import random
from bisect import bisect_right
from collections.abc import Sequence
from itertools import accumulate

__all__ = ["sample_points"]


def sample_points(ranges: Sequence[tuple[int, int]], count: int, rng: random.Random) -> list[int]:
    """``count`` numbers drawn uniformly over inclusive ``(low, high)`` ranges; none when
    there are no ranges."""
    if not ranges:
        return []
    sizes = [high - low + 1 for low, high in ranges]
    ends = list(accumulate(sizes))
    points = []
    for _ in range(count):
        index = rng.randrange(ends[-1])
        which = bisect_right(ends, index)
        points.append(ranges[which][0] + index - (ends[which] - sizes[which]))
    return points
