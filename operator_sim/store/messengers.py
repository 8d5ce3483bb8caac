"""Registered messengers (``messengers``): their hashed keys, webhook URLs and secrets."""

from __future__ import annotations

import hashlib
import sqlite3
from dataclasses import dataclass

from operator_sim.clock import ms_to_datetime
from operator_sim.store.conn import Conn
from operator_sim.wire import Messenger


def hash_secret(secret: str) -> str:
    """SHA-256 of a high-entropy secret (API keys): what the database keeps."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class MessengerAuth:
    """What authentication needs to know of a messenger, found by one of its keys."""

    id: str
    api_key_hash: str
    """The hash of the key it was found by (current or previous)."""
    demo: bool
    valid_until_ms: int | None = None
    """Wall-clock epoch milliseconds until which that key works: None for the current key."""


@dataclass(frozen=True, slots=True)
class WebhookSecrets:
    """The secrets a messenger's webhooks are signed with."""

    current: str
    previous: str | None = None
    previous_until_ms: int | None = None
    """Wall-clock epoch milliseconds until which webhooks carry the previous signature too."""


async def insert_messenger(
    conn: Conn,
    *,
    messenger_id: str,
    name: str,
    webhook_url: str | None,
    api_key: str,
    webhook_secret: str,
    demo: bool,
    source: str,
    now_ms: int,
    replace: bool = False,
) -> bool:
    """Register a messenger; False when the id (or key) is taken and ``replace`` is off."""
    verb = "INSERT OR REPLACE" if replace else "INSERT"
    try:
        await conn.execute(
            f"{verb} INTO messengers (id, name, webhook_url, api_key_hash, webhook_secret, "
            "demo, source, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                messenger_id,
                name,
                webhook_url,
                hash_secret(api_key),
                webhook_secret,
                int(demo),
                source,
                now_ms,
            ),
        )
    except sqlite3.IntegrityError:
        return False
    return True


def _messenger(row: sqlite3.Row) -> Messenger:
    return Messenger(
        id=row["id"],
        name=row["name"],
        webhook_url=row["webhook_url"],
        created_at=ms_to_datetime(row["created_at"]),
    )


async def list_messengers(conn: Conn) -> list[Messenger]:
    """Every messenger, without secrets."""
    async with conn.execute(
        "SELECT id, name, webhook_url, created_at FROM messengers ORDER BY created_at, id"
    ) as cur:
        rows = await cur.fetchall()
    return [_messenger(row) for row in rows]


async def get_messenger(conn: Conn, messenger_id: str) -> Messenger | None:
    """One messenger, without secrets."""
    async with conn.execute(
        "SELECT id, name, webhook_url, created_at FROM messengers WHERE id = ?", (messenger_id,)
    ) as cur:
        row = await cur.fetchone()
    return None if row is None else _messenger(row)


async def update_messenger(
    conn: Conn,
    messenger_id: str,
    *,
    name: str | None = None,
    webhook_url: str | None = None,
    set_webhook_url: bool = False,
) -> None:
    """Change a messenger's name and/or webhook URL (``set_webhook_url``: even to None)."""
    if name is not None:
        await conn.execute("UPDATE messengers SET name = ? WHERE id = ?", (name, messenger_id))
    if set_webhook_url:
        await conn.execute(
            "UPDATE messengers SET webhook_url = ? WHERE id = ?", (webhook_url, messenger_id)
        )


async def messenger_exists(conn: Conn, messenger_id: str) -> bool:
    """Whether a messenger with this id is registered."""
    async with conn.execute("SELECT 1 FROM messengers WHERE id = ?", (messenger_id,)) as cur:
        return await cur.fetchone() is not None


async def messenger_by_key_hash(conn: Conn, key_hash: str) -> MessengerAuth | None:
    """The messenger whose current or previous API key hashes to ``key_hash``."""
    async with conn.execute(
        "SELECT id, api_key_hash, demo FROM messengers WHERE api_key_hash = ?", (key_hash,)
    ) as cur:
        row = await cur.fetchone()
    if row is not None:
        return MessengerAuth(row["id"], row["api_key_hash"], bool(row["demo"]))
    async with conn.execute(
        "SELECT id, previous_key_hash, previous_key_until, demo FROM messengers "
        "WHERE previous_key_hash = ?",
        (key_hash,),
    ) as cur:
        row = await cur.fetchone()
    if row is None:
        return None
    return MessengerAuth(
        row["id"], row["previous_key_hash"], bool(row["demo"]), int(row["previous_key_until"])
    )


async def rotate_key(
    conn: Conn, messenger_id: str, *, api_key: str, previous_until_ms: int | None
) -> bool:
    """Make ``api_key`` the messenger's key; the current one works until ``previous_until_ms``
    (None: it stops now). A key rotated out before stops at once. False for no messenger."""
    cursor = await conn.execute(
        "UPDATE messengers SET previous_key_hash = CASE WHEN ? IS NULL THEN NULL "
        "ELSE api_key_hash END, previous_key_until = ?, api_key_hash = ? WHERE id = ?",
        (previous_until_ms, previous_until_ms, hash_secret(api_key), messenger_id),
    )
    return cursor.rowcount > 0


async def rotate_webhook_secret(
    conn: Conn, messenger_id: str, *, secret: str, previous_until_ms: int | None
) -> bool:
    """Make ``secret`` the messenger's webhook secret; the current one signs too until
    ``previous_until_ms`` (None: it stops now). False for no messenger."""
    cursor = await conn.execute(
        "UPDATE messengers SET previous_webhook_secret = CASE WHEN ? IS NULL THEN NULL "
        "ELSE webhook_secret END, previous_secret_until = ?, webhook_secret = ? WHERE id = ?",
        (previous_until_ms, previous_until_ms, secret, messenger_id),
    )
    return cursor.rowcount > 0


async def webhook_secrets(conn: Conn, messenger_id: str) -> WebhookSecrets | None:
    """The secrets a messenger's webhooks are signed with."""
    async with conn.execute(
        "SELECT webhook_secret, previous_webhook_secret, previous_secret_until "
        "FROM messengers WHERE id = ?",
        (messenger_id,),
    ) as cur:
        row = await cur.fetchone()
    if row is None:
        return None
    return WebhookSecrets(
        str(row["webhook_secret"]), row["previous_webhook_secret"], row["previous_secret_until"]
    )
