"""Subscriber records (``subscribers``): the operators' databases; personal data stays here."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

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
    if row is None:
        return None
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


@dataclass(frozen=True, slots=True)
class Standing:
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
    """Move a subscriber record to another operator (a port)."""
    await conn.execute(
        "UPDATE subscribers SET operator_id = ?, updated_at = ? WHERE msisdn = ?",
        (operator_id, now_ms, msisdn),
    )
