"""The personal part of seeded rows: names, dates, passports, addresses and the state.

Everything here is a pure function of the pools and one seeded ``random.Random``; the
database is never consulted, so this part of each row can be built outside the write
transaction. States are dealt exactly: of ``count`` rows, ``round(count * share)`` are
incomplete and as many terminated as their share says, spread at random (selection
sampling, so no list of all rows is kept).
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

from operator_sim.seeding.pools import ADDRESS_POOL_BITS, NAME_POOL_BITS, Pools

__all__ = ["AS_OF", "STATES", "PeopleStream", "Person", "state_counts"]

AS_OF: Final = date(2025, 12, 31)
"""Seeded records describe the world on this day (fixed, so that output never depends on today)."""

STATES: Final = ("present", "incomplete", "terminated")
"""Row states: answered present; incomplete data (absent); contract ended (absent)."""

Person = tuple[Any, ...]
"""full_name, birth_date, passport, address, contract_start, contract_end, data_complete,
status, source, updated_at: the row after its msisdn and operator_id."""

SOURCE: Final = "seed"
_UPDATED_AT_MS: Final = int(datetime.combine(AS_OF, datetime.min.time(), UTC).timestamp() * 1000)

_FIRST_DAY: Final = date(1935, 1, 1)
_OLDEST_AGE, _YOUNGEST_AGE = 85, 18
# 18 years plus the most leap days they can hold: a contract never starts before the
# subscriber is an adult.
_ADULT_DAYS: Final = 18 * 365 + 5
# Federal mobile numbers (+79xx) as subscribers hold them today: contracts from 2003 on.
_FIRST_CONTRACT: Final = date(2003, 1, 1)
_FEMALE_SHARE: Final = 0.54
_PASSPORTS_SINCE: Final = 1997
# Pools indexed by random bits have power-of-two sizes: ``getrandbits(k)`` is an index
# in one call, three times cheaper than scaling a float.
# The first two digits of a passport series: OKATO codes of Russian regions, the most
# populous ones repeated so that they come up more often.
_REGION_CODES: Final = (
    1, 3, 4, 5, 7, 8, 10, 11, 12, 14, 15, 17, 18, 19, 20, 22, 24, 25, 26, 27, 28, 29, 32,
    33, 34, 36, 37, 38, 40, 41, 42, 44, 45, 46, 47, 49, 50, 52, 53, 54, 56, 57, 58, 60, 61,
    63, 64, 65, 66, 68, 69, 70, 71, 73, 75, 76, 77, 78, 79, 80, 81, 82, 83, 84, 85, 86, 87,
    88, 89, 90, 91, 92, 93, 94, 95, 96, 97, 98, 99,
)  # fmt: skip
_POPULOUS: Final = (45, 46, 40, 3, 60, 65, 92, 80, 18, 52, 57, 22, 50, 4, 75, 36, 41, 71)
_REGION_BITS: Final = 7
_REGIONS: Final = tuple(
    f"{code:02d}" for code in (_REGION_CODES + _POPULOUS * 3)[: 1 << _REGION_BITS]
)
_HOUSE_BITS: Final = 8
_HOUSES: Final = (
    *(f"д. {n}" for n in range(1, 129)),
    *(f"д. {n} к. {k}" for n in range(1, 33) for k in range(1, 4)),
    *(f"д. {n} стр. {k}" for n in range(1, 17) for k in range(1, 3)),
)
# About one address in five is a private house (no flat).
_FLAT_BITS: Final = 9
_FLATS: Final = ("",) * 102 + tuple(f", кв. {n}" for n in range(1, 411))


def _iso_days() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """ISO strings of every day from ``_FIRST_DAY`` to ``AS_OF``, and each day's series year.

    The series year (two digits) is when a person born that day got the passport they
    hold on ``AS_OF``: at 14, replaced at 20 and 45, but not before 1997, when the
    current passport appeared (the exchange ran to 2004).
    """
    total = (AS_OF - _FIRST_DAY).days + 1
    days: list[str] = []
    issue: list[str] = []
    for offset in range(total):
        day = _FIRST_DAY + timedelta(days=offset)
        days.append(day.isoformat())
        year = day.year + next(
            (age for age in (45, 20, 14) if day.year + age <= AS_OF.year), _YOUNGEST_AGE
        )
        if year < _PASSPORTS_SINCE:
            year = _PASSPORTS_SINCE + day.year % 8
        issue.append(f"{year % 100:02d}")
    return tuple(days), tuple(issue)


def state_counts(count: int, incomplete_share: float, terminated_share: float) -> dict[str, int]:
    """How many of ``count`` rows get each state (exact, rounded to the nearest row)."""
    incomplete = round(count * incomplete_share)
    terminated = min(round(count * terminated_share), count - incomplete)
    return {
        "present": count - incomplete - terminated,
        "incomplete": incomplete,
        "terminated": terminated,
    }


class PeopleStream:
    """Deals ``count`` people, batch by batch, from the pools and a seeded generator."""

    def __init__(self, pools: Pools, rng: random.Random, counts: dict[str, int]) -> None:
        self._pools = pools
        self._rng = rng
        self._left = sum(counts.values())
        self._left_incomplete = counts["incomplete"]
        self._left_terminated = counts["terminated"]
        self._days, self._issue_yy = _iso_days()
        self._as_of = len(self._days) - 1
        self._birth_low = self._day(AS_OF.replace(year=AS_OF.year - _OLDEST_AGE))
        self._birth_span = self._day(AS_OF.replace(year=AS_OF.year - _YOUNGEST_AGE)) - (
            self._birth_low
        )
        self._first_contract = self._day(_FIRST_CONTRACT)

    @staticmethod
    def _day(day: date) -> int:
        return (day - _FIRST_DAY).days

    @property
    def left(self) -> int:
        """People not dealt yet."""
        return self._left

    def take(self, size: int) -> list[Person]:
        """The next ``size`` people (fewer at the end)."""
        size = min(size, self._left)
        # Everything the loop touches is bound to a local: this loop runs a million
        # times, and local lookups are several times cheaper than attribute lookups.
        rand, bits = self._rng.random, self._rng.getrandbits
        pools, days, issue_yy = self._pools, self._days, self._issue_yy
        male = (pools.male_last, pools.male_first, pools.male_middle)
        female = (pools.female_last, pools.female_first, pools.female_middle)
        heads, houses, flats, regions = pools.address_heads, _HOUSES, _FLATS, _REGIONS
        name_bits, head_bits = NAME_POOL_BITS, ADDRESS_POOL_BITS
        birth_low, birth_span = self._birth_low, self._birth_span
        first_contract, as_of = self._first_contract, self._as_of
        updated_at = _UPDATED_AT_MS
        left, left_inc, left_term = self._left, self._left_incomplete, self._left_terminated

        out: list[Person] = []
        append = out.append
        for _ in range(size):
            # Selection sampling: exact totals per state, uniformly spread.
            pick = rand() * left
            left -= 1
            last, first, middle = female if rand() < _FEMALE_SHARE else male
            name = f"{last[bits(name_bits)]} {first[bits(name_bits)]} {middle[bits(name_bits)]}"
            born = birth_low + int(rand() * birth_span)
            passport = (
                f"{regions[bits(_REGION_BITS)]}{issue_yy[born]} {int(rand() * 1_000_000):06d}"
            )
            address = (
                f"{heads[bits(head_bits)]}, {houses[bits(_HOUSE_BITS)]}{flats[bits(_FLAT_BITS)]}"
            )
            start_low = born + _ADULT_DAYS
            if start_low < first_contract:
                start_low = first_contract
            started = start_low + int(rand() * (as_of - start_low))
            if pick < left_inc:
                left_inc -= 1
                append(_incomplete(bits(2), name, days[born], passport, address, days[started]))
            elif pick < left_inc + left_term:
                left_term -= 1
                ended = started + 1 + int(rand() * (as_of - started))
                append(
                    (name, days[born], passport, address, days[started], days[ended], 1,
                     "terminated", SOURCE, updated_at)
                )  # fmt: skip
            else:
                append(
                    (name, days[born], passport, address, days[started], None, 1,
                     "active", SOURCE, updated_at)
                )  # fmt: skip
        self._left, self._left_incomplete, self._left_terminated = left, left_inc, left_term
        return out


def _incomplete(
    pattern: int, name: str, born: str, passport: str, address: str, started: str
) -> Person:
    """An active subscriber whose record lacks what identification needs."""
    if pattern == 0:
        passport_or_none, born_or_none, address_or_none = None, born, address
    elif pattern == 1:
        passport_or_none, born_or_none, address_or_none = passport, None, address
    elif pattern == 2:
        passport_or_none, born_or_none, address_or_none = None, born, None
    else:
        passport_or_none, born_or_none, address_or_none = None, None, address
    return (
        name, born_or_none, passport_or_none, address_or_none, started, None, 0,
        "active", SOURCE, _UPDATED_AT_MS,
    )  # fmt: skip
