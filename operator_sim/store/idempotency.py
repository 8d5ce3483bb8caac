"""Idempotency keys (``idempotency_keys``): each bound to the request it created."""

from __future__ import annotations

from collections.abc import Sequence

from operator_sim.store.conn import Conn


async def find_idempotency_key(conn: Conn, messenger_id: str, key: str) -> tuple[str, str] | None:
    """(fingerprint, request id) bound to this messenger's key, if any."""
    async with conn.execute(
        "SELECT fingerprint, request_id FROM idempotency_keys WHERE messenger_id = ? AND key = ?",
        (messenger_id, key),
    ) as cur:
        row = await cur.fetchone()
    return None if row is None else (str(row[0]), str(row[1]))


async def bind_idempotency_key(
    conn: Conn,
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


async def delete_keys_of_requests(conn: Conn, request_ids: Sequence[str]) -> int:
    """Remove the keys bound to these requests (found by their own index); returns how many."""
    cur = await conn.executemany(
        "DELETE FROM idempotency_keys WHERE request_id = ?", [(i,) for i in request_ids]
    )
    return max(cur.rowcount, 0)
