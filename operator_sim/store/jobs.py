"""Scheduled work (``jobs``): answers and expiries, fired in (due_at, id) order."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from operator_sim.store.conn import Conn


@dataclass(frozen=True, slots=True)
class Job:
    """A unit of scheduled work."""

    id: int
    due_at: int
    kind: str
    ref: str
    payload: str | None


async def add_job(
    conn: Conn, *, due_at: int, kind: str, ref: str, payload: str | None = None
) -> None:
    """Schedule work at a simulation time."""
    await conn.execute(
        "INSERT INTO jobs (due_at, kind, ref, payload) VALUES (?, ?, ?, ?)",
        (due_at, kind, ref, payload),
    )


async def next_due(conn: Conn) -> int | None:
    """The earliest due time of any job."""
    async with conn.execute("SELECT min(due_at) FROM jobs") as cur:
        row = await cur.fetchone()
    return None if row is None or row[0] is None else int(row[0])


async def due_jobs(conn: Conn, now_ms: int, limit: int) -> list[Job]:
    """Jobs due by ``now_ms``, in firing order."""
    async with conn.execute(
        "SELECT id, due_at, kind, ref, payload FROM jobs WHERE due_at <= ? "
        "ORDER BY due_at, id LIMIT ?",
        (now_ms, limit),
    ) as cur:
        rows = await cur.fetchall()
    return [Job(row[0], row[1], row[2], row[3], row[4]) for row in rows]


async def delete_job(conn: Conn, job_id: int) -> None:
    """Remove fired work."""
    await conn.execute("DELETE FROM jobs WHERE id = ?", (job_id,))


async def count_jobs(conn: Conn) -> int:
    """How much work is scheduled."""
    async with conn.execute("SELECT count(*) FROM jobs") as cur:
        row = await cur.fetchone()
    return 0 if row is None else int(row[0])


async def refs_with_jobs(conn: Conn, refs: Sequence[str]) -> set[str]:
    """Which of these requests still have work scheduled."""
    if not refs:
        return set()
    marks = ", ".join("?" for _ in refs)
    async with conn.execute(
        f"SELECT DISTINCT ref FROM jobs WHERE ref IN ({marks})",  # noqa: S608 (placeholders only)
        list(refs),
    ) as cur:
        return {str(row[0]) for row in await cur.fetchall()}
