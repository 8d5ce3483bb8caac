"""Ids: prefix and a ULID whose time part sorts with the time and whose rest is random."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from operator_sim import ids

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def _reference_ulid(time_ms: int, random_bits: int) -> str:
    """The ULID specification, literally: 128 bits, 26 base32 digits, most significant first."""
    value = ((time_ms & ((1 << 48) - 1)) << 80) | random_bits
    return "".join(_CROCKFORD[(value >> (5 * i)) & 31] for i in reversed(range(26)))


@given(st.integers(min_value=0, max_value=(1 << 48) - 1), st.integers(min_value=0))
def test_an_id_is_the_ulid_of_its_time_and_random_draw(time_ms: int, seed: int) -> None:
    draws = random.Random(seed)  # noqa: S311 (test data)
    expected = _reference_ulid(time_ms, random.Random(seed).getrandbits(80))  # noqa: S311
    original, ids._RANDOM = ids._RANDOM, draws
    try:
        made = ids.new_id("ir", time_ms)
    finally:
        ids._RANDOM = original
    assert made == f"ir_{expected}"


def test_ids_sort_by_time_and_differ_within_one_millisecond() -> None:
    made = [ids.new_id("evt", t) for t in (1_772_366_400_000, 1_772_366_400_001)]
    assert made == sorted(made)
    same = {ids.new_id("evt", 1_772_366_400_000) for _ in range(1000)}
    assert len(same) == 1000
    assert all(len(i) == len("evt_") + 26 for i in same)
