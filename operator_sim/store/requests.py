"""Identification requests, codes, idempotency keys, the journal and scheduled jobs."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Literal

import aiosqlite

from operator_sim.clock import ms_to_datetime
from operator_sim.wire import IdentificationCode, IdentificationRequest, JournalEntry, format_ms


def _ts(ms: int | None) -> object:
    return None if ms is None else ms_to_datetime(ms)


@dataclass(frozen=True, slots=True)
class StoredRequest:
    """An identification request as stored, with its owner."""

    id: str
    messenger_id: str
    operator_id: str
    msisdn: str
    status: Literal["pending", "answered", "expired"]
    result: Literal["present", "absent"] | None
    received_at: int
    due_at: int
    answered_at: int | None
    rule_id: str | None

    def to_wire(self) -> IdentificationRequest:
        """The messenger-facing resource."""
        return IdentificationRequest.model_validate(
            {
                "id": self.id,
                "operator_id": self.operator_id,
                "msisdn": self.msisdn,
                "status": self.status,
                "result": self.result,
                "received_at": ms_to_datetime(self.received_at),
                "due_at": ms_to_datetime(self.due_at),
                "answered_at": _ts(self.answered_at),
            }
        )

    def to_json(self) -> str:
        """:meth:`to_wire` rendered as JSON: the same bytes, several times faster.

        Safe to assemble by hand because every string in it is validated on the way in
        (ids, E.164 numbers, fixed status and result words) and needs no escaping; a
        property test holds the bytes equal to the model's for every valid value.
        """
        result = "null" if self.result is None else f'"{self.result}"'
        answered = "null" if self.answered_at is None else f'"{format_ms(self.answered_at)}"'
        return (
            f'{{"id":"{self.id}","operator_id":"{self.operator_id}","msisdn":"{self.msisdn}",'
            f'"status":"{self.status}","result":{result},'
            f'"received_at":"{format_ms(self.received_at)}","due_at":"{format_ms(self.due_at)}",'
            f'"answered_at":{answered}}}'
        )

    @property
    def timely_present(self) -> bool:
        """Answered ``present`` within the deadline: the only basis for a code."""
        return (
            self.status == "answered"
            and self.result == "present"
            and self.answered_at is not None
            and self.answered_at <= self.due_at
        )


_REQUEST_COLUMNS = (
    "id, messenger_id, operator_id, msisdn, status, result, received_at, due_at, answered_at, "
    "rule_id"
)


def _request(row: sqlite3.Row) -> StoredRequest:
    return StoredRequest(*(row[i] for i in range(10)))


async def insert_request(conn: aiosqlite.Connection, req: StoredRequest) -> None:
    """Store a new request."""
    await conn.execute(
        f"INSERT INTO identification_requests ({_REQUEST_COLUMNS}) "  # noqa: S608 (constant columns)
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            req.id,
            req.messenger_id,
            req.operator_id,
            req.msisdn,
            req.status,
            req.result,
            req.received_at,
            req.due_at,
            req.answered_at,
            req.rule_id,
        ),
    )


async def get_request(conn: aiosqlite.Connection, request_id: str) -> StoredRequest | None:
    """A request by id, whoever owns it (callers check the owner)."""
    async with conn.execute(
        f"SELECT {_REQUEST_COLUMNS} FROM identification_requests WHERE id = ?",  # noqa: S608 (constant columns)
        (request_id,),
    ) as cur:
        row = await cur.fetchone()
    return None if row is None else _request(row)


async def set_answer(
    conn: aiosqlite.Connection,
    request_id: str,
    *,
    status: Literal["answered", "expired"],
    result: Literal["present", "absent"] | None,
    answered_at: int | None,
) -> None:
    """Record an answer or an expiry."""
    await conn.execute(
        "UPDATE identification_requests SET status = ?, result = ?, answered_at = ? WHERE id = ?",
        (status, result, answered_at, request_id),
    )


# --- idempotency ---------------------------------------------------------------------


async def find_idempotency_key(
    conn: aiosqlite.Connection, messenger_id: str, key: str
) -> tuple[str, str] | None:
    """(fingerprint, request id) bound to this messenger's key, if any."""
    async with conn.execute(
        "SELECT fingerprint, request_id FROM idempotency_keys WHERE messenger_id = ? AND key = ?",
        (messenger_id, key),
    ) as cur:
        row = await cur.fetchone()
    return None if row is None else (str(row[0]), str(row[1]))


async def bind_idempotency_key(
    conn: aiosqlite.Connection,
    *,
    messenger_id: str,
    key: str,
    fingerprint: str,
    request_id: str,
    now_ms: int,
) -> None:
    """Bind a key to the request it created."""
    await conn.execute(
        "INSERT INTO idempotency_keys (messenger_id, key, fingerprint, request_id, created_at) "
        "VALUES (?, ?, ?, ?, ?)",
        (messenger_id, key, fingerprint, request_id, now_ms),
    )


# --- journal -------------------------------------------------------------------------


async def add_journal(
    conn: aiosqlite.Connection,
    *,
    messenger_id: str,
    operator_id: str,
    msisdn: str,
    request_id: str | None,
    http_status: int,
    rule_id: str | None,
    replayed: bool,
    received_at: int,
    cap: int | None = None,
) -> int:
    """Record one identification POST, keeping about ``cap`` entries. Returns how many dropped.

    Ids only grow, so the oldest entries beyond the cap are one range of the primary key:
    the delete is a short index range, not a scan. It runs once per ``trim_step(cap)``
    inserts, taking the journal back to ``cap`` entries: one delete of a thousand
    neighbouring rows costs far less than a thousand deletes of one (at most ``cap`` plus
    1% are kept meanwhile; under 200 the cap holds exactly).
    """
    cur = await conn.execute(
        "INSERT INTO journal (messenger_id, operator_id, msisdn, request_id, http_status, "
        "rule_id, replayed, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            messenger_id,
            operator_id,
            msisdn,
            request_id,
            http_status,
            rule_id,
            int(replayed),
            received_at,
        ),
    )
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
            ("j.received_at >= ?", self.since_ms),
            ("j.received_at < ?", self.until_ms),
        ):
            if value is not None:
                terms.append(term)
                params.append(value)
        return (f"WHERE {' AND '.join(terms)}" if terms else ""), params


async def count_journal(conn: aiosqlite.Connection, selection: JournalFilter) -> int:
    """How many journal entries match."""
    clause, params = selection.where()
    async with conn.execute(f"SELECT count(*) FROM journal j {clause}", params) as cur:  # noqa: S608 (see JournalFilter.where)
        row = await cur.fetchone()
    return 0 if row is None else int(row[0])


async def list_journal(
    conn: aiosqlite.Connection,
    *,
    messenger_id: str | None,
    msisdn: str | None,
    operator_id: str | None,
    limit: int,
    since_ms: int | None = None,
    until_ms: int | None = None,
) -> list[JournalEntry]:
    """Journal entries, newest first, with the current state of the requests they made."""
    clause, params = JournalFilter(
        messenger_id=messenger_id,
        msisdn=msisdn,
        operator_id=operator_id,
        since_ms=since_ms,
        until_ms=until_ms,
    ).where()
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


# --- codes ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredCode:
    """A registered identification code with its owner."""

    messenger_id: str
    code: str
    request_id: str
    operator_id: str
    msisdn: str
    registered_at: int

    def to_wire(self) -> IdentificationCode:
        """The messenger-facing resource."""
        return IdentificationCode(
            code=self.code,
            msisdn=self.msisdn,
            operator_id=self.operator_id,
            request_id=self.request_id,
            registered_at=ms_to_datetime(self.registered_at),
        )


_CODE_COLUMNS = "messenger_id, code, request_id, operator_id, msisdn, registered_at"


async def insert_code(conn: aiosqlite.Connection, code: StoredCode) -> None:
    """Register a code."""
    await conn.execute(
        f"INSERT INTO identification_codes ({_CODE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",  # noqa: S608 (constant columns)
        (
            code.messenger_id,
            code.code,
            code.request_id,
            code.operator_id,
            code.msisdn,
            code.registered_at,
        ),
    )


async def find_code(conn: aiosqlite.Connection, messenger_id: str, code: str) -> StoredCode | None:
    """A messenger's code."""
    async with conn.execute(
        f"SELECT {_CODE_COLUMNS} FROM identification_codes WHERE messenger_id = ? AND code = ?",  # noqa: S608 (constant columns)
        (messenger_id, code),
    ) as cur:
        row = await cur.fetchone()
    return None if row is None else StoredCode(*(row[i] for i in range(6)))


async def find_code_for_request(conn: aiosqlite.Connection, request_id: str) -> StoredCode | None:
    """The code registered for a request, if any."""
    async with conn.execute(
        f"SELECT {_CODE_COLUMNS} FROM identification_codes WHERE request_id = ?",  # noqa: S608 (constant columns)
        (request_id,),
    ) as cur:
        row = await cur.fetchone()
    return None if row is None else StoredCode(*(row[i] for i in range(6)))


async def delete_code(conn: aiosqlite.Connection, messenger_id: str, code: str) -> bool:
    """Remove a messenger's code; False when it had none by that name."""
    cur = await conn.execute(
        "DELETE FROM identification_codes WHERE messenger_id = ? AND code = ?", (messenger_id, code)
    )
    return cur.rowcount > 0


# --- scheduled jobs ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Job:
    """A unit of scheduled work."""

    id: int
    due_at: int
    kind: str
    ref: str
    payload: str | None


async def add_job(
    conn: aiosqlite.Connection, *, due_at: int, kind: str, ref: str, payload: str | None = None
) -> None:
    """Schedule work at a simulation time."""
    await conn.execute(
        "INSERT INTO jobs (due_at, kind, ref, payload) VALUES (?, ?, ?, ?)",
        (due_at, kind, ref, payload),
    )


async def next_due(conn: aiosqlite.Connection) -> int | None:
    """The earliest due time of any job."""
    async with conn.execute("SELECT min(due_at) FROM jobs") as cur:
        row = await cur.fetchone()
    return None if row is None or row[0] is None else int(row[0])


async def due_jobs(conn: aiosqlite.Connection, now_ms: int, limit: int) -> list[Job]:
    """Jobs due by ``now_ms``, in firing order."""
    async with conn.execute(
        "SELECT id, due_at, kind, ref, payload FROM jobs WHERE due_at <= ? "
        "ORDER BY due_at, id LIMIT ?",
        (now_ms, limit),
    ) as cur:
        rows = await cur.fetchall()
    return [Job(row[0], row[1], row[2], row[3], row[4]) for row in rows]


async def delete_job(conn: aiosqlite.Connection, job_id: int) -> None:
    """Remove fired work."""
    await conn.execute("DELETE FROM jobs WHERE id = ?", (job_id,))


async def count_jobs(conn: aiosqlite.Connection) -> int:
    """How much work is scheduled."""
    async with conn.execute("SELECT count(*) FROM jobs") as cur:
        row = await cur.fetchone()
    return 0 if row is None else int(row[0])


# --- reset ---------------------------------------------------------------------------

_FLOW_TABLES = (
    "identification_requests",
    "identification_codes",
    "idempotency_keys",
    "journal",
    "jobs",
    "rule_counters",
    "events",
    "delivery_attempts",
)


async def clear_messenger_state(conn: aiosqlite.Connection, messenger_id: str) -> None:
    """Forget one messenger's requests, codes, keys, journal, scheduled work and events."""
    params = (messenger_id,)
    mine = "SELECT id FROM identification_requests WHERE messenger_id = ?"
    await conn.execute(f"DELETE FROM jobs WHERE ref IN ({mine})", params)  # noqa: S608 (constant)
    for table in ("identification_codes", "idempotency_keys", "identification_requests"):
        await conn.execute(f"DELETE FROM {table} WHERE messenger_id = ?", params)  # noqa: S608 (constant table names)
    await conn.execute("DELETE FROM journal WHERE messenger_id = ?", params)
    events = "SELECT id FROM events WHERE messenger_id = ?"
    await conn.execute(f"DELETE FROM jobs WHERE ref IN ({events})", params)  # noqa: S608 (constant)
    await conn.execute(f"DELETE FROM delivery_attempts WHERE event_id IN ({events})", params)  # noqa: S608 (constant)
    await conn.execute("DELETE FROM events WHERE messenger_id = ?", params)


async def clear_flow_state(conn: aiosqlite.Connection) -> None:
    """Forget every request, code, key, journal entry, job and counter; drop runtime rules."""
    for table in _FLOW_TABLES:
        await conn.execute(f"DELETE FROM {table}")  # noqa: S608 (constant table names)
    await conn.execute("DELETE FROM rules WHERE source = 'runtime'")
