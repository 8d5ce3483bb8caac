"""Identification codes (``identification_codes``): one per request, per messenger."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from operator_sim.clock import ms_to_datetime
from operator_sim.store.conn import Conn
from operator_sim.wire import IdentificationCode


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


async def take_codes_of_number(conn: Conn, *, msisdn: str, operator_id: str) -> list[StoredCode]:
    """Remove and return every code registered for a number at one operator."""
    async with conn.execute(
        "SELECT messenger_id, code, request_id, operator_id, msisdn, registered_at "
        "FROM identification_codes WHERE msisdn = ? AND operator_id = ? "
        "ORDER BY registered_at, messenger_id, code",
        (msisdn, operator_id),
    ) as cur:
        rows = await cur.fetchall()
    await conn.execute(
        "DELETE FROM identification_codes WHERE msisdn = ? AND operator_id = ?",
        (msisdn, operator_id),
    )
    return [StoredCode(*(row[i] for i in range(6))) for row in rows]


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
