"""Subscriber records (``subscribers``): the operators' databases; personal data stays here."""

from __future__ import annotations

import heapq
from collections.abc import Container, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, NamedTuple

from operator_sim.clock import ms_to_datetime
from operator_sim.store.conn import Conn
from operator_sim.wire import Subscriber, SubscriberIn

_SUBSCRIBER_COLUMNS = (
    "msisdn, operator_id, full_name, birth_date, passport, address, data_complete, status, "
    "source, updated_at"
)


def effective_data_complete(sub: SubscriberIn) -> bool:
    """An explicit ``data_complete`` wins; otherwise name, birth date and passport must be given."""
    if sub.data_complete is not None:
        return sub.data_complete
    return sub.full_name is not None and sub.birth_date is not None and sub.passport is not None


async def upsert_subscribers(
    conn: Conn, subscribers: Iterable[SubscriberIn], *, source: str, now_ms: int
) -> tuple[int, int]:
    """Insert or replace subscriber records; returns (created, updated)."""
    rows = [
        (
            s.msisdn,
            s.operator_id,
            s.full_name,
            s.birth_date.isoformat() if s.birth_date else None,
            s.passport,
            s.address,
            int(effective_data_complete(s)),
            s.status,
            source,
            now_ms,
        )
        for s in subscribers
    ]
    placeholders = ", ".join("?" for _ in rows)
    async with conn.execute(
        f"SELECT count(*) FROM subscribers WHERE msisdn IN ({placeholders})",  # noqa: S608 (placeholders only)
        [r[0] for r in rows],
    ) as cur:
        existing = int((await cur.fetchone() or (0,))[0])
    await conn.executemany(
        f"INSERT OR REPLACE INTO subscribers ({_SUBSCRIBER_COLUMNS}) "  # noqa: S608 (constant columns)
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    return len(rows) - existing, existing


async def get_subscriber(conn: Conn, msisdn: str) -> Subscriber | None:
    """One subscriber record with personal data (admin use only)."""
    async with conn.execute(
        f"SELECT {_SUBSCRIBER_COLUMNS} FROM subscribers WHERE msisdn = ?",  # noqa: S608 (constant columns)
        (msisdn,),
    ) as cur:
        row = await cur.fetchone()
    return None if row is None else _subscriber(row)


@dataclass(frozen=True, slots=True)
class SubscriberFilter:
    """Which records a listing or a sample takes; every field given must match."""

    operator_id: str | None = None
    status: str | None = None
    data_complete: bool | None = None
    msisdn_prefix: str | None = None
    """``+`` and leading digits."""

    def matches(self, msisdn: str, operator_id: str, status: str, data_complete: bool) -> bool:
        """Whether a record with these fields passes every condition given."""
        return (
            self.operator_id in (None, operator_id)
            and self.status in (None, status)
            and self.data_complete in (None, data_complete)
            and (self.msisdn_prefix is None or msisdn.startswith(self.msisdn_prefix))
        )


Span = tuple[str, str]
"""Inclusive bounds of numbers in the table's key (text) order."""

_EVERY_NUMBER: Span = ("+", "+:")  # ':' follows '9': above every number
# The predicate of the partial index ``subscribers_unseeded`` (schema version 4): records
# that may lie outside their operator's ranges. Every other record lies inside them.
_UNSEEDED = "(source <> 'seed' OR moved = 1)"
_SEEDED = "source = 'seed' AND moved = 0"


def number_spans(ranges: Iterable[tuple[int, int]]) -> list[Span]:
    """Inclusive number ranges as spans of the key order, ascending, merged where they meet.

    A number of a range's length is in the range exactly when its text is in the span;
    numbers of other lengths may fall in a span too, and spans of ranges of different
    lengths may overlap: hence the merge.
    """
    merged: list[Span] = []
    for low, high in sorted((f"+{lo}", f"+{hi}") for lo, hi in ranges):
        if merged and low <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(high, merged[-1][1]))
        else:
            merged.append((low, high))
    return merged


@dataclass(frozen=True, slots=True)
class _Bounds:
    """One interval of numbers in key order (either end open or missing).

    Each query gets exactly one lower and one upper bound: given two lower bounds (a
    cursor and a span's start, say), SQLite seeks with one and filters with the other,
    and a page deep in a span would then walk the records before the cursor.
    """

    low: str | None = None
    low_inclusive: bool = True
    high: str | None = None
    high_inclusive: bool = True

    def above(self, value: str, *, inclusive: bool) -> _Bounds:
        """Narrowed to numbers at or above (``inclusive``) or above ``value``."""
        if self.low is not None and (
            value < self.low or (value == self.low and not self.low_inclusive)
        ):
            return self
        return _Bounds(value, inclusive, self.high, self.high_inclusive)

    def below(self, value: str, *, inclusive: bool) -> _Bounds:
        """Narrowed to numbers at or below (``inclusive``) or below ``value``."""
        if self.high is not None and (
            value > self.high or (value == self.high and not self.high_inclusive)
        ):
            return self
        return _Bounds(self.low, self.low_inclusive, value, inclusive)

    @property
    def empty(self) -> bool:
        """Whether no number lies within."""
        if self.low is None or self.high is None:
            return False
        return self.low > self.high or (
            self.low == self.high and not (self.low_inclusive and self.high_inclusive)
        )

    def conditions(self) -> tuple[list[str], list[Any]]:
        """As SQL conditions on ``msisdn``."""
        clauses: list[str] = []
        params: list[Any] = []
        if self.low is not None:
            clauses.append("msisdn >= ?" if self.low_inclusive else "msisdn > ?")
            params.append(self.low)
        if self.high is not None:
            clauses.append("msisdn <= ?" if self.high_inclusive else "msisdn < ?")
            params.append(self.high)
        return clauses, params


def _bounds(selection: SubscriberFilter, after: str | None) -> _Bounds:
    """The numbers a page may hold: after the cursor, and starting with the prefix.

    Numbers hold only digits after '+', and the character after '9' is ':', so raising the
    prefix's last character bounds it: '+7916' -> ['+7916', '+7917').
    """
    bounds = _Bounds()
    prefix = selection.msisdn_prefix
    if prefix is not None:
        bounds = bounds.above(prefix, inclusive=True).below(
            prefix[:-1] + chr(ord(prefix[-1]) + 1), inclusive=False
        )
    if after is not None:
        bounds = bounds.above(after, inclusive=False)
    return bounds


def _record_conditions(selection: SubscriberFilter) -> tuple[list[str], list[Any]]:
    """The filter's conditions on everything but the number."""
    clauses: list[str] = []
    params: list[Any] = []
    if selection.operator_id is not None:
        clauses.append("operator_id = ?")
        params.append(selection.operator_id)
    if selection.status is not None:
        clauses.append("status = ?")
        params.append(selection.status)
    if selection.data_complete is not None:
        clauses.append("data_complete = ?")
        params.append(int(selection.data_complete))
    return clauses, params


async def _select(
    conn: Conn,
    selection: SubscriberFilter,
    bounds: _Bounds,
    limit: int,
    *,
    extra: str = "",
    index: str = "",
) -> list[Subscriber]:
    clauses, params = _record_conditions(selection)
    number_clauses, number_params = bounds.conditions()
    clauses += number_clauses + ([extra] if extra else [])
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    async with conn.execute(
        f"SELECT {_SUBSCRIBER_COLUMNS} FROM subscribers {index} {where} "  # noqa: S608 (constant text)
        "ORDER BY msisdn LIMIT ?",
        (*params, *number_params, limit),
    ) as cur:
        rows = await cur.fetchall()
    return [_subscriber(row) for row in rows]


async def list_subscribers(
    conn: Conn,
    selection: SubscriberFilter,
    *,
    after: str | None,
    limit: int,
    operator_spans: Sequence[Span] = (),
) -> list[Subscriber]:
    """Records in number order after ``after``, at most ``limit`` (a keyset page).

    A page costs the same however many records there are. Without an operator it is one
    walk of the table's key. With one, ``operator_spans`` (its ranges, ``number_spans``)
    are walked in the key for its seeded records, and the partial index
    ``subscribers_unseeded`` gives the rest; the two are merged. The status and data
    filters are checked on the records the walks pass.
    """
    bounds = _bounds(selection, after)
    if bounds.empty:
        return []
    if selection.operator_id is None:
        return await _select(conn, selection, bounds, limit)
    unseeded = await _select(
        conn, selection, bounds, limit, extra=_UNSEEDED, index="INDEXED BY subscribers_unseeded"
    )
    seeded: list[Subscriber] = []
    for low, high in operator_spans:
        if len(seeded) == limit:
            break
        span = bounds.above(low, inclusive=True).below(high, inclusive=True)
        if span.empty:
            continue
        seeded += await _select(conn, selection, span, limit - len(seeded), extra=_SEEDED)
    return list(heapq.merge(unseeded, seeded, key=lambda record: record.msisdn))[:limit]


async def subscribers_by_number(conn: Conn, msisdns: Sequence[str]) -> list[Subscriber]:
    """The records of these numbers, in the order given (numbers without one are left out)."""
    if not msisdns:
        return []
    placeholders = ", ".join("?" for _ in msisdns)
    async with conn.execute(
        f"SELECT {_SUBSCRIBER_COLUMNS} FROM subscribers WHERE msisdn IN ({placeholders})",  # noqa: S608 (placeholders only)
        list(msisdns),
    ) as cur:
        found = {row["msisdn"]: _subscriber(row) for row in await cur.fetchall()}
    return [found[m] for m in msisdns if m in found]


_BATCH = 16


async def first_untaken(
    conn: Conn,
    point: str,
    selection: SubscriberFilter,
    taken: Container[str],
    *,
    spans: Sequence[Span] = (),
    window: int,
) -> tuple[str | None, bool]:
    """The number of the first record at or after ``point`` in ``spans`` (default: every
    number) that matches and is not ``taken``, going round to the first span after the last.

    Returns (that number or None, whether every record of the spans was looked at). Looks
    at no more than ``window`` records, a few fields of each: each step is a seek in the
    table's key.
    """
    spans = list(spans) or [_EVERY_NUMBER]
    at = next((i for i, (_, high) in enumerate(spans) if high >= point), 0)
    # (low, low inclusive, high, high inclusive): round once, from the point back to it.
    pieces: list[tuple[str, bool, str, bool]] = []
    low, high = spans[at]
    inside = low <= point <= high
    if inside:
        pieces.append((point, True, high, True))
    rest = spans[at + 1 :] + spans[:at] if inside else spans[at:] + spans[:at]
    pieces += [(lo, True, hi, True) for lo, hi in rest]
    if inside and low < point:
        pieces.append((low, True, point, False))
    seen = 0
    for low, low_inclusive, high, high_inclusive in pieces:
        start, inclusive = low, low_inclusive
        while True:
            want = min(_BATCH, window - seen)
            if want <= 0:
                return None, False
            async with conn.execute(
                "SELECT msisdn, operator_id, status, data_complete FROM subscribers "  # noqa: S608 (constant operators)
                f"WHERE msisdn {'>=' if inclusive else '>'} ? "
                f"AND msisdn {'<=' if high_inclusive else '<'} ? ORDER BY msisdn LIMIT ?",
                (start, high, want),
            ) as cur:
                batch = await cur.fetchall()
            seen += len(batch)
            for msisdn, operator_id, status, complete in batch:
                if msisdn not in taken and selection.matches(
                    msisdn, operator_id, status, bool(complete)
                ):
                    return msisdn, False
            if len(batch) < want:  # the end of this piece
                break
            start, inclusive = batch[-1][0], False
    return None, True


def _subscriber(row: Any) -> Subscriber:
    return Subscriber(
        msisdn=row["msisdn"],
        operator_id=row["operator_id"],
        full_name=row["full_name"],
        birth_date=date.fromisoformat(row["birth_date"]) if row["birth_date"] else None,
        passport=row["passport"],
        address=row["address"],
        data_complete=bool(row["data_complete"]),
        status=row["status"],
        source=row["source"],
        updated_at=ms_to_datetime(row["updated_at"]),
    )


class Standing(NamedTuple):
    """The fields presence is decided on; no personal data."""

    operator_id: str
    status: str
    data_complete: bool


async def subscriber_standing(conn: Conn, msisdn: str) -> Standing | None:
    """Who holds the number's record and whether it is active and complete."""
    async with conn.execute(
        "SELECT operator_id, status, data_complete FROM subscribers WHERE msisdn = ?", (msisdn,)
    ) as cur:
        row = await cur.fetchone()
    if row is None:
        return None
    return Standing(row["operator_id"], row["status"], bool(row["data_complete"]))


async def set_subscriber_status(
    conn: Conn, msisdn: str, *, status: str, contract_end: str | None, now_ms: int
) -> None:
    """End (or restore) a contract."""
    await conn.execute(
        "UPDATE subscribers SET status = ?, contract_end = ?, updated_at = ? WHERE msisdn = ?",
        (status, contract_end, now_ms, msisdn),
    )


async def set_subscriber_operator(
    conn: Conn, msisdn: str, *, operator_id: str, now_ms: int
) -> None:
    """Move a subscriber record to another operator (a port).

    ``moved`` puts the record in the index of records outside their operator's ranges.
    """
    await conn.execute(
        "UPDATE subscribers SET operator_id = ?, moved = 1, updated_at = ? WHERE msisdn = ?",
        (operator_id, now_ms, msisdn),
    )
