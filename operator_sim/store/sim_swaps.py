"""SIM swaps (``sim_swaps``): when each number's SIM last changed."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from operator_sim.store.conn import Conn

__all__ = ["forget_swaps", "latest_swap", "record_swap"]

Source = Literal["fixture", "admin"]


async def record_swap(conn: Conn, msisdn: str, *, at_ms: int, source: Source) -> int:
    """Record a swap; the latest one is kept. Returns the latest swap's time."""
    await conn.execute(
        "INSERT INTO sim_swaps (msisdn, swapped_at, source) VALUES (?, ?, ?) "
        "ON CONFLICT (msisdn) DO UPDATE SET swapped_at = excluded.swapped_at, "
        "source = excluded.source WHERE excluded.swapped_at >= sim_swaps.swapped_at",
        (msisdn, at_ms, source),
    )
    latest = await latest_swap(conn, msisdn)
    return at_ms if latest is None else latest


async def latest_swap(conn: Conn, msisdn: str) -> int | None:
    """When the number's SIM last changed, if ever."""
    async with conn.execute("SELECT swapped_at FROM sim_swaps WHERE msisdn = ?", (msisdn,)) as cur:
        row = await cur.fetchone()
    return None if row is None else int(row[0])


async def forget_swaps(conn: Conn, msisdns: Iterable[str]) -> None:
    """Forget the swaps of these numbers (their records are being restored)."""
    await conn.executemany("DELETE FROM sim_swaps WHERE msisdn = ?", [(m,) for m in msisdns])
