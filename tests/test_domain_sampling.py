"""Sample points: uniform over the ranges, a function of the generator alone."""

from __future__ import annotations

import random
from collections import Counter

from operator_sim.domain.sampling import sample_points

RANGES = [(100, 199), (1000, 1899), (5, 5)]


def _range_of(number: int) -> tuple[int, int]:
    [found] = [(low, high) for low, high in RANGES if low <= number <= high]
    return found


def test_points_lie_in_the_ranges() -> None:
    numbers = sample_points(RANGES, 2000, random.Random(1))  # noqa: S311
    assert len(numbers) == 2000
    for number in numbers:
        _range_of(number)


def test_ranges_are_drawn_in_proportion_to_their_size() -> None:
    drawn = Counter(_range_of(n) for n in sample_points(RANGES, 10_000, random.Random(2)))  # noqa: S311
    # 100, 900 and 1 numbers of 1,001: about 10%, 90% and 0.1%.
    assert 800 < drawn[(100, 199)] < 1200
    assert 8_800 < drawn[(1000, 1899)] < 9_200
    assert drawn[(5, 5)] < 40
    numbers = set(sample_points(RANGES, 10_000, random.Random(3)))  # noqa: S311
    assert min(numbers) == 5  # the one-number range too
    assert max(numbers) > 1890  # up to the last numbers of the last range


def test_the_same_generator_draws_the_same_points() -> None:
    first = sample_points(RANGES, 50, random.Random("seed"))  # noqa: S311
    assert first == sample_points(RANGES, 50, random.Random("seed"))  # noqa: S311
    assert first != sample_points(RANGES, 50, random.Random("other"))  # noqa: S311


def test_no_ranges_give_no_points() -> None:
    assert sample_points([], 10, random.Random(0)) == []  # noqa: S311
