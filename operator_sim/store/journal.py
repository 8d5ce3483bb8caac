"""The journal of messenger-facing calls (``journal``), kept to about ``--journal-cap`` rows."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import NamedTuple

from operator_sim.clock import ms_to_datetime
from operator_sim.store.conn import Conn
from operator_sim.wire import CallEntry, JournalEntry

IDENTIFICATION_CREATE = "identification.create"


def _ts(ms: int | None) -> object:
    return None if ms is None else ms_to_datetime(ms)


class Entry(NamedTuple):
    """One messenger-facing call as the journal keeps it."""

    messenger_id: str
    endpoint: str
    method: str
    path: str
    http_status: int
    received_at: int
    operator_id: str | None = None
    msisdn: str | None = None
    request_id: str | None = None
    """The identification request a call created or read, when there is one."""
    rule_id: str | None = None
    replayed: bool = False


_INSERT_ENTRY = (
    f"INSERT INTO journal ({', '.join(Entry._fields)}) "  # noqa: S608 (constant columns)
    f"VALUES ({', '.join('?' * len(Entry._fields))})"
)
"""An entry's fields are the table's columns of the same names: the entry is the row."""


async def add(conn: Conn, entry: Entry, *, cap: int | None = None) -> int:
    """Record one call, keeping about ``cap`` entries. Returns how many were dropped.

    Ids only grow, so the oldest entries beyond the cap are one range of the primary key:
    the delete is a short index range, not a scan. It runs once per ``trim_step(cap)``
    inserts, taking the journal back to ``cap`` entries: one delete of a thousand
    neighbouring rows costs far less than a thousand deletes of one (at most ``cap`` plus
    1% are kept meanwhile; under 200 the cap holds exactly).
    """
    cur = await conn.execute(_INSERT_ENTRY, entry)
    newest = cur.lastrowid
    if cap is None or newest is None or newest <= cap or newest % trim_step(cap):
        return 0
    dropped = await conn.execute("DELETE FROM journal WHERE id <= ?", (newest - cap,))
    return max(dropped.rowcount, 0)


def trim_step(cap: int) -> int:
    """How many journal inserts apart the journal is trimmed back to ``cap`` entries."""
    return max(1, cap // 100)


@dataclass(frozen=True, slots=True)
class JournalFilter:
    """Which journal entries a query selects; None matches everything."""

    messenger_id: str | None = None
    msisdn: str | None = None
    operator_id: str | None = None
    endpoint: str | None = None
    requests_only: bool = False
    """Only identification POSTs that created (or replayed) a request or that a fault rule
    refused: what ``/admin/v1/requests`` has always listed."""
    since_ms: int | None = None
    """Received at or after (simulation time)."""
    until_ms: int | None = None
    """Received before (simulation time)."""

    def where(self) -> tuple[str, list[object]]:
        """The WHERE clause over ``journal j`` (fixed columns and placeholders only)."""
        terms: list[str] = []
        params: list[object] = []
        for term, value in (
            ("j.messenger_id = ?", self.messenger_id),
            ("j.msisdn = ?", self.msisdn),
            ("j.operator_id = ?", self.operator_id),
            ("j.endpoint = ?", self.endpoint),
            ("j.received_at >= ?", self.since_ms),
            ("j.received_at < ?", self.until_ms),
        ):
            if value is not None:
                terms.append(term)
                params.append(value)
        if self.requests_only:
            terms.append(
                f"j.endpoint = '{IDENTIFICATION_CREATE}' "
                "AND (j.request_id IS NOT NULL OR j.rule_id IS NOT NULL)"
            )
        return (f"WHERE {' AND '.join(terms)}" if terms else ""), params


async def count_journal(conn: Conn, selection: JournalFilter) -> int:
    """How many journal entries match."""
    clause, params = selection.where()
    async with conn.execute(f"SELECT count(*) FROM journal j {clause}", params) as cur:  # noqa: S608 (see JournalFilter.where)
        row = await cur.fetchone()
    return 0 if row is None else int(row[0])


async def list_requests(conn: Conn, selection: JournalFilter, *, limit: int) -> list[JournalEntry]:
    """Identification POSTs of the journal, newest first, with the current state of the
    requests they made (``selection.endpoint`` is set to ``identification.create``)."""
    selection = replace(selection, requests_only=True)
    clause, params = selection.where()
    # Only fixed column names and placeholders are joined into the statement.
    sql = (
        "SELECT j.id AS journal_id, j.request_id, j.messenger_id, j.operator_id, j.msisdn, "  # noqa: S608
        "j.http_status, j.rule_id, j.replayed, j.received_at, r.status, r.result, r.due_at, "
        "r.answered_at FROM journal j LEFT JOIN identification_requests r ON r.id = j.request_id "
        f"{clause} ORDER BY j.id DESC LIMIT ?"
    )
    params.append(limit)
    async with conn.execute(sql, params) as cur:
        rows = await cur.fetchall()
    return [
        JournalEntry.model_validate(
            {
                "journal_id": row["journal_id"],
                "id": row["request_id"],
                "messenger_id": row["messenger_id"],
                "operator_id": row["operator_id"],
                "msisdn": row["msisdn"],
                "http_status": row["http_status"],
                "rule_id": row["rule_id"],
                "replayed": bool(row["replayed"]),
                "status": row["status"],
                "result": row["result"],
                "received_at": ms_to_datetime(row["received_at"]),
                "due_at": _ts(row["due_at"]),
                "answered_at": _ts(row["answered_at"]),
            }
        )
        for row in rows
    ]


async def list_calls(conn: Conn, selection: JournalFilter, *, limit: int) -> list[CallEntry]:
    """Every kind of call in the journal, newest first."""
    clause, params = selection.where()
    sql = (
        "SELECT j.id, j.received_at, j.messenger_id, j.operator_id, j.endpoint, j.method, "  # noqa: S608 (see JournalFilter.where)
        f"j.path, j.msisdn, j.http_status, j.rule_id, j.replayed, j.request_id "
        f"FROM journal j {clause} "
        "ORDER BY j.id DESC LIMIT ?"
    )
    params.append(limit)
    async with conn.execute(sql, params) as cur:
        rows = await cur.fetchall()
    return [
        CallEntry(
            journal_id=row[0],
            at=ms_to_datetime(row[1]),
            messenger_id=row[2],
            operator_id=row[3],
            endpoint=row[4],
            method=row[5],
            path=row[6],
            msisdn=row[7],
            http_status=row[8],
            rule_id=row[9],
            replayed=bool(row[10]),
            request_id=row[11],
        )
        for row in rows
    ]
