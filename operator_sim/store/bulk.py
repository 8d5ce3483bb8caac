"""Bulk subscriber writes for seeding: a dedicated synchronous connection, batch transactions.

Seeding inserts millions of rows, so it uses the stdlib ``sqlite3`` directly (no thread
hop per statement) on its own connection. Each batch is one ``BEGIN IMMEDIATE``
transaction, so a server on the same WAL database keeps reading throughout and its
writes wait at most one batch (its ``busy_timeout`` is far longer than that).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

from operator_sim.errors import StoreError
from operator_sim.store.database import open_database

__all__ = [
    "INSERT_SUBSCRIBERS",
    "SUBSCRIBER_ROW_COLUMNS",
    "BulkWriter",
    "prepare_database",
    "query_plan",
    "read_subscribers",
    "sample_msisdns",
]

SUBSCRIBER_ROW_COLUMNS = (
    "msisdn",
    "operator_id",
    "full_name",
    "birth_date",
    "passport",
    "address",
    "contract_start",
    "contract_end",
    "data_complete",
    "status",
    "source",
    "updated_at",
)
"""The order of the values in a subscriber row tuple, as ``insert_subscribers`` takes them."""

INSERT_SUBSCRIBERS = (
    f"INSERT INTO subscribers ({', '.join(SUBSCRIBER_ROW_COLUMNS)}) "  # noqa: S608 (constant columns)
    f"VALUES ({', '.join('?' for _ in SUBSCRIBER_ROW_COLUMNS)})"
)
"""The plain insert of one subscriber row (exported so a benchmark can time it bare)."""

# A server holding the write lock finishes one unit of work in milliseconds; waiting
# this long for it means something is wrong, and the error says so.
_BUSY_TIMEOUT_MS = 10_000
# Page cache of the seeding connection, in KiB (negative cache_size). Appends touch only
# the right edge of the subscribers B-tree, so more cache buys no speed (measured: 2 MiB
# to 32 MiB seed a million rows equally fast); it just bounds memory.
_CACHE_KIB = 8 * 1024


async def _open_and_close(path: str) -> None:
    db = await open_database(path)
    await db.close()


def prepare_database(path: str | Path) -> None:
    """Create and migrate the database exactly as the server would (``open_database``).

    Runs the store's own migration code on a private event loop in a helper thread, so it
    works from plain code and from inside a running loop alike. Raises ``SchemaError``.
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="operator-sim-migrate") as pool:
        pool.submit(asyncio.run, _open_and_close(str(path))).result()


class BulkWriter:
    """A dedicated connection for bulk subscriber inserts, one batch per transaction."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        try:
            self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            mode = self._conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            # NORMAL in WAL mode: a crash loses at most the last batches, never corrupts.
            self._conn.execute("PRAGMA synchronous = NORMAL")
            self._conn.execute(f"PRAGMA cache_size = -{_CACHE_KIB}")
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot open for seeding: {exc}") from exc
        if str(mode).lower() != "wal":
            self._conn.close()
            raise StoreError(f"{self.path}: cannot switch to WAL journal mode (got {mode})")

    def __enter__(self) -> BulkWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Roll back anything left open and close the connection."""
        if self._conn.in_transaction:
            self._conn.rollback()
        self._conn.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One write transaction (BEGIN IMMEDIATE): committed on success, else rolled back."""
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot begin a transaction: {exc}") from exc
        try:
            yield
        except BaseException:
            self._conn.rollback()
            raise
        try:
            self._conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self._conn.rollback()
            raise StoreError(f"{self.path}: commit failed: {exc}") from exc

    def msisdns_between(self, low: str, high: str) -> list[str]:
        """Stored numbers from ``low`` to ``high`` inclusive (both of the same length)."""
        try:
            rows = self._conn.execute(
                "SELECT msisdn FROM subscribers WHERE msisdn BETWEEN ? AND ?", (low, high)
            ).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot read subscribers: {exc}") from exc
        return [str(row[0]) for row in rows]

    def count_between(self, low: str, high: str) -> int:
        """How many stored numbers lie from ``low`` to ``high`` inclusive (same length)."""
        try:
            row = self._conn.execute(
                "SELECT count(*) FROM subscribers WHERE msisdn BETWEEN ? AND ?", (low, high)
            ).fetchone()
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot count subscribers: {exc}") from exc
        return int(row[0])

    def insert_subscribers(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """Insert new subscriber rows (values in ``SUBSCRIBER_ROW_COLUMNS`` order)."""
        try:
            self._conn.executemany(INSERT_SUBSCRIBERS, rows)
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot insert subscribers: {exc}") from exc


def read_subscribers(path: str | Path, *, source: str | None = None) -> list[tuple[Any, ...]]:
    """Every subscriber row (``SUBSCRIBER_ROW_COLUMNS`` order) in number order, for checks."""
    columns = ", ".join(SUBSCRIBER_ROW_COLUMNS)
    where, params = ("WHERE source = ?", (source,)) if source is not None else ("", ())
    conn = sqlite3.connect(str(path))
    try:
        return conn.execute(
            f"SELECT {columns} FROM subscribers {where} ORDER BY msisdn",  # noqa: S608 (constant text)
            params,
        ).fetchall()
    finally:
        conn.close()


def query_plan(path: str | Path, sql: str, params: Sequence[Any] = ()) -> list[str]:
    """The ``EXPLAIN QUERY PLAN`` lines of a statement (benchmarks print them)."""
    conn = sqlite3.connect(str(path))
    try:
        rows = conn.execute(f"EXPLAIN QUERY PLAN {sql}", tuple(params)).fetchall()
    finally:
        conn.close()
    return [str(row[3]) for row in rows]


def sample_msisdns(path: str | Path, limit: int) -> list[str]:
    """Up to ``limit`` stored numbers picked at random (benchmarks look these up)."""
    conn = sqlite3.connect(str(path))
    try:
        rows = conn.execute(
            "SELECT msisdn FROM subscribers ORDER BY random() LIMIT ?", (limit,)
        ).fetchall()
    finally:
        conn.close()
    return [str(row[0]) for row in rows]
