"""Opening the database, migrating it, and one-writer transactions."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Literal

import aiosqlite

from operator_sim.errors import SchemaError, StoreError
from operator_sim.store.schema import APPLICATION_ID, MIGRATIONS

Synchronous = Literal["off", "normal", "full"]


class Database:
    """One SQLite connection shared by the whole server, one unit of work at a time.

    aiosqlite runs the connection on its own thread; the lock keeps the statements of
    one unit of work from interleaving with another's, so readers never see a
    transaction that is still open and writers are serialised (SQLite has one writer).
    """

    def __init__(self, conn: aiosqlite.Connection, path: str) -> None:
        self._conn = conn
        self._lock = asyncio.Lock()
        self.path = path

    @asynccontextmanager
    async def write(self) -> AsyncIterator[aiosqlite.Connection]:
        """A write transaction (BEGIN IMMEDIATE), committed on success, rolled back on error."""
        async with self._lock:
            conn = self._conn
            # BEGIN is inside the try: if this task is cancelled while BEGIN is queued on
            # the connection's thread, the rollback queued after it still ends the transaction.
            try:
                await conn.execute("BEGIN IMMEDIATE")
                yield conn
            except BaseException as exc:
                await conn.rollback()
                if isinstance(exc, sqlite3.Error):
                    raise StoreError(f"database error: {exc}") from exc
                raise
            try:
                await conn.commit()
            except sqlite3.Error as exc:
                await conn.rollback()
                raise StoreError(f"commit failed: {exc}") from exc

    @asynccontextmanager
    async def read(self) -> AsyncIterator[aiosqlite.Connection]:
        """Exclusive use of the connection for reads (no transaction is left open)."""
        async with self._lock:
            yield self._conn

    async def close(self) -> None:
        """Close the connection (waits for the current unit of work)."""
        async with self._lock:
            await self._conn.close()


async def _migrate(conn: aiosqlite.Connection, path: str, migrations: Sequence[str]) -> None:
    latest = len(migrations)
    async with conn.execute("PRAGMA user_version") as cur:
        version = int((await cur.fetchone() or (0,))[0])
    async with conn.execute("PRAGMA application_id") as cur:
        app_id = int((await cur.fetchone() or (0,))[0])
    async with conn.execute("SELECT count(*) FROM sqlite_master") as cur:
        objects = int((await cur.fetchone() or (0,))[0])
    if objects and app_id != APPLICATION_ID:
        raise SchemaError(f"{path} is an SQLite database of another program; refusing to touch it")
    if version > latest:
        raise SchemaError(
            f"{path} has schema version {version}, newer than this operator-sim understands "
            f"({latest}); upgrade operator-sim or use another --db"
        )
    for step in range(version, latest):
        script = (
            "BEGIN IMMEDIATE;\n"
            f"{migrations[step]}\n"
            f"PRAGMA application_id = {APPLICATION_ID};\n"
            f"PRAGMA user_version = {step + 1};\n"
            "COMMIT;"
        )
        try:
            await conn.executescript(script)
        except sqlite3.Error as exc:
            if conn.in_transaction:
                await conn.rollback()
            raise SchemaError(
                f"{path}: migration to schema version {step + 1} failed ({exc}); "
                f"the database stays at version {step}"
            ) from exc


async def open_database(
    path: str | Path,
    *,
    synchronous: Synchronous = "normal",
    migrations: Sequence[str] = MIGRATIONS,
) -> Database:
    """Open (creating if needed) and migrate the database at ``path``.

    Raises ``SchemaError`` for a file that is not an operator-sim database or is newer
    than this version.
    """
    where = str(path)
    try:
        conn = await aiosqlite.connect(where, isolation_level=None)
    except sqlite3.Error as exc:
        raise SchemaError(f"{where}: cannot open: {exc}") from exc
    conn.row_factory = sqlite3.Row
    try:
        await conn.execute("PRAGMA busy_timeout = 10000")
        async with conn.execute("PRAGMA journal_mode = WAL") as cur:
            mode = (await cur.fetchone() or ("",))[0]
        if str(mode).lower() != "wal" and where != ":memory:":
            raise SchemaError(f"{where}: cannot switch to WAL journal mode (got {mode})")
        await conn.execute(f"PRAGMA synchronous = {synchronous.upper()}")
        await conn.execute("PRAGMA temp_store = MEMORY")
        await _migrate(conn, where, migrations)
    except sqlite3.DatabaseError as exc:
        await conn.close()
        raise SchemaError(f"{where} is not a usable SQLite database: {exc}") from exc
    except BaseException:
        await conn.close()
        raise
    return Database(conn, where)
