"""The ``meta`` key-value table and the ``clock`` row: what the database says of itself."""

from __future__ import annotations

from operator_sim.clock import ClockState
from operator_sim.store.conn import Conn


async def get_meta(conn: Conn, key: str) -> str | None:
    """A metadata value."""
    async with conn.execute("SELECT value FROM meta WHERE key = ?", (key,)) as cur:
        row = await cur.fetchone()
    return None if row is None else str(row[0])


async def set_meta(conn: Conn, key: str, value: str) -> None:
    """Store a metadata value."""
    await conn.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (key, value),
    )


async def load_clock(conn: Conn) -> ClockState | None:
    """The stored clock, or None on a new database."""
    async with conn.execute(
        "SELECT mode, scale, sim_anchor_ms, wall_anchor FROM clock WHERE id = 1"
    ) as cur:
        row = await cur.fetchone()
    if row is None:
        return None
    return ClockState(row["mode"], row["scale"], row["sim_anchor_ms"], row["wall_anchor"])


async def save_clock(conn: Conn, state: ClockState) -> None:
    """Store the clock's anchor."""
    await conn.execute(
        "INSERT INTO clock (id, mode, scale, sim_anchor_ms, wall_anchor) VALUES (1, ?, ?, ?, ?) "
        "ON CONFLICT (id) DO UPDATE SET mode = excluded.mode, scale = excluded.scale, "
        "sim_anchor_ms = excluded.sim_anchor_ms, wall_anchor = excluded.wall_anchor",
        (state.mode, state.scale, state.sim_anchor_ms, state.wall_anchor),
    )


async def ping(conn: Conn) -> None:
    """A statement that touches the database file: raises if it cannot be read."""
    async with conn.execute("SELECT count(*) FROM meta") as cur:
        await cur.fetchone()


_FEED_SECRET = "feed_secret"  # noqa: S105 (the name of the meta row, not a secret)


def _epoch_key(messenger_id: str) -> str:
    return f"feed_epoch/{messenger_id}"


async def feed_secret(conn: Conn) -> bytes | None:
    """The database's secret that feed cursors are signed with."""
    value = await get_meta(conn, _FEED_SECRET)
    return None if value is None else bytes.fromhex(value)


async def set_feed_secret(conn: Conn, secret: bytes) -> None:
    """Replace the feed secret: every cursor issued before stops being valid."""
    await set_meta(conn, _FEED_SECRET, secret.hex())


async def feed_epoch(conn: Conn, messenger_id: str) -> int:
    """How many times this messenger's feeds were reset."""
    value = await get_meta(conn, _epoch_key(messenger_id))
    return 0 if value is None else int(value)


async def next_feed_epoch(conn: Conn, messenger_id: str) -> None:
    """Start a new epoch of this messenger's feeds: its earlier cursors stop being valid."""
    await set_meta(conn, _epoch_key(messenger_id), str(await feed_epoch(conn, messenger_id) + 1))


_PROBE_KEY = "storage_probe"


async def probe_write(conn: Conn) -> None:
    """Write about a page and take it back: raises if the database has no room to grow.

    Rewriting a small value in place needs no new page and succeeds on a full database;
    a page-sized value needs one (from the free list, else by growing the file), as an
    ordinary write that fills a page does. The freed page stays for the next write.
    """
    async with conn.execute("PRAGMA page_size") as cur:
        row = await cur.fetchone()
    size = int(row[0]) if row is not None else 4096
    await conn.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (_PROBE_KEY, "0" * size),
    )
    await conn.execute("DELETE FROM meta WHERE key = ?", (_PROBE_KEY,))
