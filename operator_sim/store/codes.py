"""Identification codes (``identification_codes``): one per request, per messenger."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from operator_sim.clock import ms_to_datetime
from operator_sim.store.conn import Conn
from operator_sim.wire import CodeView, IdentificationCode


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


async def insert_code(conn: Conn, code: StoredCode) -> None:
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


async def find_code(conn: Conn, messenger_id: str, code: str) -> StoredCode | None:
    """A messenger's code."""
    async with conn.execute(
        f"SELECT {_CODE_COLUMNS} FROM identification_codes WHERE messenger_id = ? AND code = ?",  # noqa: S608 (constant columns)
        (messenger_id, code),
    ) as cur:
        row = await cur.fetchone()
    return None if row is None else StoredCode(*(row[i] for i in range(6)))


async def find_code_for_request(conn: Conn, request_id: str) -> StoredCode | None:
    """The code registered for a request, if any."""
    async with conn.execute(
        f"SELECT {_CODE_COLUMNS} FROM identification_codes WHERE request_id = ?",  # noqa: S608 (constant columns)
        (request_id,),
    ) as cur:
        row = await cur.fetchone()
    return None if row is None else StoredCode(*(row[i] for i in range(6)))


async def delete_code(conn: Conn, messenger_id: str, code: str) -> bool:
    """Remove a messenger's code; False when it had none by that name."""
    cur = await conn.execute(
        "DELETE FROM identification_codes WHERE messenger_id = ? AND code = ?", (messenger_id, code)
    )
    return cur.rowcount > 0


async def end_code(conn: Conn, code: StoredCode, *, at: int, by: str) -> None:
    """End a live code: it leaves the live codes and is kept with how and when it ended."""
    await conn.execute(
        "DELETE FROM identification_codes WHERE messenger_id = ? AND code = ?",
        (code.messenger_id, code.code),
    )
    await conn.execute(
        f"INSERT INTO ended_codes ({_CODE_COLUMNS}, ended_at, ended_by) "  # noqa: S608 (constant columns)
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            code.messenger_id,
            code.code,
            code.request_id,
            code.operator_id,
            code.msisdn,
            code.registered_at,
            at,
            by,
        ),
    )


async def take_codes_of_number(
    conn: Conn, *, msisdn: str, operator_id: str, at: int, by: str
) -> list[StoredCode]:
    """End and return every code registered for a number at one operator."""
    async with conn.execute(
        f"SELECT {_CODE_COLUMNS} FROM identification_codes WHERE msisdn = ? AND operator_id = ? "  # noqa: S608 (constant columns)
        "ORDER BY registered_at, messenger_id, code",
        (msisdn, operator_id),
    ) as cur:
        rows = await cur.fetchall()
    taken = [StoredCode(*(row[i] for i in range(6))) for row in rows]
    for code in taken:
        await end_code(conn, code, at=at, by=by)
    return taken


@dataclass(frozen=True, slots=True)
class CodeFilter:
    """Which codes the admin's view selects; None matches everything."""

    messenger_id: str | None = None
    operator_id: str | None = None
    msisdn: str | None = None
    state: str | None = None
    """``live``, ``ended``, or None for both."""


async def list_codes(conn: Conn, selection: CodeFilter, *, limit: int) -> list[CodeView]:
    """Live and ended codes, the newest registrations first."""
    terms: list[str] = []
    params: list[object] = []
    for term, value in (
        ("messenger_id = ?", selection.messenger_id),
        ("operator_id = ?", selection.operator_id),
        ("msisdn = ?", selection.msisdn),
    ):
        if value is not None:
            terms.append(term)
            params.append(value)
    where = f"WHERE {' AND '.join(terms)}" if terms else ""
    parts = []
    if selection.state in (None, "live"):
        parts.append(
            f"SELECT {_CODE_COLUMNS}, NULL AS ended_at, NULL AS ended_by "  # noqa: S608 (constant columns and placeholders)
            f"FROM identification_codes {where}"
        )
    if selection.state in (None, "ended"):
        parts.append(
            f"SELECT {_CODE_COLUMNS}, ended_at, ended_by FROM ended_codes {where}"  # noqa: S608 (constant columns and placeholders)
        )
    sql = " UNION ALL ".join(parts) + " ORDER BY registered_at DESC, code LIMIT ?"
    async with conn.execute(sql, [*params * len(parts), limit]) as cur:
        rows = await cur.fetchall()
    return [
        CodeView(
            code=row["code"],
            messenger_id=row["messenger_id"],
            operator_id=row["operator_id"],
            msisdn=row["msisdn"],
            request_id=row["request_id"],
            registered_at=ms_to_datetime(row["registered_at"]),
            ended_at=None if row["ended_at"] is None else ms_to_datetime(row["ended_at"]),
            ended_by=row["ended_by"],
        )
        for row in rows
    ]


async def requests_with_codes(conn: Conn, request_ids: Sequence[str]) -> set[str]:
    """Which of these requests a registered code points to."""
    if not request_ids:
        return set()
    marks = ", ".join("?" for _ in request_ids)
    async with conn.execute(
        f"SELECT request_id FROM identification_codes WHERE request_id IN ({marks})",  # noqa: S608 (placeholders only)
        list(request_ids),
    ) as cur:
        return {str(row[0]) for row in await cur.fetchall()}


async def prune_ended(conn: Conn, *, before_ms: int, limit: int) -> int:
    """Forget up to ``limit`` codes that ended before ``before_ms``; returns how many."""
    cur = await conn.execute(
        "DELETE FROM ended_codes WHERE rowid IN "
        "(SELECT rowid FROM ended_codes WHERE ended_at < ? LIMIT ?)",
        (before_ms, limit),
    )
    return max(cur.rowcount, 0)
