"""Opening the messenger's SQLite database: private on disk, in WAL mode, up to date.

The schema has a version (``PRAGMA user_version``): :data:`BASE_SCHEMA` is version 0, and
each entry of ``_MIGRATIONS`` takes a database one version further, in one transaction,
so databases written by earlier versions of the library keep working.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import stat
from pathlib import Path

import aiosqlite

__all__ = ["BASE_SCHEMA", "connect"]

BASE_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    user_id     TEXT PRIMARY KEY,
    state       TEXT NOT NULL,
    reason      TEXT,
    msisdn      TEXT,
    operator_id TEXT,
    request_id  TEXT,
    code        TEXT,
    updated_at  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS history (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id     TEXT NOT NULL,
    at          TEXT NOT NULL,
    state       TEXT NOT NULL,
    reason      TEXT,
    msisdn      TEXT,
    operator_id TEXT,
    request_id  TEXT,
    code        TEXT
);
CREATE INDEX IF NOT EXISTS history_user ON history (user_id, seq);
-- Every code ever generated: the primary key keeps codes unique for good.
CREATE TABLE IF NOT EXISTS codes (
    code        TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL,
    state       TEXT NOT NULL,
    operator_id TEXT NOT NULL,
    request_id  TEXT NOT NULL,
    msisdn      TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    ended_reason TEXT
);
CREATE INDEX IF NOT EXISTS codes_state ON codes (state);
CREATE TABLE IF NOT EXISTS operators (
    operator_id TEXT PRIMARY KEY,
    cursor      TEXT
);
CREATE TABLE IF NOT EXISTS seen_events (
    event_id    TEXT PRIMARY KEY,
    seen_at     TEXT NOT NULL
);
"""

# Each entry takes the schema one version further (PRAGMA user_version).
_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (  # 1: several instances on one database; deletions at the operator that outlive a run
        "ALTER TABLE users ADD COLUMN owner TEXT",
        "ALTER TABLE codes ADD COLUMN owner TEXT",
        "CREATE TABLE owners (owner_id TEXT PRIMARY KEY, expires_at REAL NOT NULL)",
        "CREATE TABLE code_deletions (code TEXT PRIMARY KEY, operator_id TEXT NOT NULL, "
        "attempts INTEGER NOT NULL DEFAULT 0, next_at REAL NOT NULL, last_error TEXT)",
    ),
    (  # 2: proof of possession: one-time codes sent by SMS (kept as HMACs), and the numbers
        # each user confirmed; a per-database secret key for the HMACs
        "CREATE TABLE secret_keys (name TEXT PRIMARY KEY, value BLOB NOT NULL)",
        "CREATE TABLE verifications (user_id TEXT PRIMARY KEY, msisdn TEXT NOT NULL, "
        "nonce TEXT NOT NULL, code_mac TEXT NOT NULL, sms_id TEXT, sms_status TEXT, "
        "sent_at REAL NOT NULL, expires_at REAL NOT NULL, "
        "attempts INTEGER NOT NULL DEFAULT 0, state TEXT NOT NULL)",
        "CREATE INDEX verifications_sms ON verifications (sms_id)",
        "CREATE TABLE possessions (user_id TEXT PRIMARY KEY, msisdn TEXT NOT NULL, "
        "confirmed_at REAL NOT NULL)",
    ),
)
"""Version 0 of the schema: users, their history, codes, feed cursors, seen events."""


_log = logging.getLogger("operator_sim.messenger")


def _make_private(path: Path) -> None:
    """Create the database owner-only (SQLite gives -wal and -shm the same mode); tighten
    an existing one that others can read: it holds phone numbers and codes."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
    for part in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        try:
            mode = stat.S_IMODE(part.stat().st_mode)
        except FileNotFoundError:
            continue
        if mode & 0o077:
            part.chmod(0o600)
            _log.warning("database_made_private path=%s was=%o", part, mode)


async def _migrate(conn: aiosqlite.Connection) -> None:
    # The version is read inside the write transaction: two processes opening a database
    # at once migrate it once.
    await conn.execute("BEGIN IMMEDIATE")
    try:
        async with conn.execute("PRAGMA user_version") as cur:
            row = await cur.fetchone()
        version = 0 if row is None else int(row[0])
        for number, statements in enumerate(_MIGRATIONS[version:], start=version + 1):
            for statement in statements:
                await conn.execute(statement)
            await conn.execute(f"PRAGMA user_version = {number}")
    except BaseException:
        await conn.execute("ROLLBACK")
        raise
    await conn.execute("COMMIT")


async def connect(path: Path | str) -> aiosqlite.Connection:
    """Open (and create, or bring up to date) the database, readable by its owner only."""
    if str(path) != ":memory:":
        await asyncio.to_thread(_make_private, Path(path))
    conn = await aiosqlite.connect(str(path), isolation_level=None)
    try:
        await conn.execute("PRAGMA journal_mode=WAL")
        await conn.execute("PRAGMA synchronous=NORMAL")
        await conn.execute("PRAGMA busy_timeout=5000")
        await conn.executescript(BASE_SCHEMA)
        await _migrate(conn)
    except BaseException:
        await conn.close()
        raise
    return conn
