"""Numbers of each kind picked from the rows a seeding run writes (``--print-sample``).

The run knows in advance how many rows of each kind it deals (``people.state_counts``), so
the positions to keep are drawn up front: each row then costs a kind check and a counter,
and the same seed picks the same numbers.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from typing import Any

from operator_sim.seeding.people import STATES

__all__ = ["SampleTaker", "row_kind"]

# Positions in a subscriber row (store.bulk.SUBSCRIBER_ROW_COLUMNS).
_MSISDN, _OPERATOR, _COMPLETE, _STATUS = 0, 1, 8, 9


def row_kind(row: Sequence[Any]) -> str:
    """``present`` (active, complete data), ``incomplete`` or ``terminated``."""
    if row[_STATUS] == "terminated":
        return "terminated"
    return "present" if row[_COMPLETE] else "incomplete"


class SampleTaker:
    """Keeps ``per_kind`` random rows of each kind, as (kind, msisdn, operator_id)."""

    def __init__(self, counts: dict[str, int], per_kind: int, rng: random.Random) -> None:
        self._wanted = {
            kind: frozenset(rng.sample(range(counts[kind]), min(per_kind, counts[kind])))
            for kind in STATES
        }
        self._seen = dict.fromkeys(STATES, 0)
        self._kept: list[tuple[str, str, str]] = []

    def see(self, rows: Iterable[Sequence[Any]]) -> None:
        """Look at the next rows of the run, in the order they are written."""
        seen, wanted, kept = self._seen, self._wanted, self._kept
        for row in rows:
            kind = row_kind(row)
            position = seen[kind]
            seen[kind] = position + 1
            if position in wanted[kind]:
                kept.append((kind, row[_MSISDN], row[_OPERATOR]))

    def taken(self) -> tuple[tuple[str, str, str], ...]:
        """What was kept, by kind (present, incomplete, terminated), then by number."""
        order = {kind: i for i, kind in enumerate(STATES)}
        return tuple(sorted(self._kept, key=lambda item: (order[item[0]], item[1])))
