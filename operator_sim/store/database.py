"""Opening the database, migrating it, and running units of work on it."""

from __future__ import annotations

import asyncio
import functools
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

import aiosqlite

from operator_sim.errors import SchemaError, StorageUnavailable, StoreError
from operator_sim.store import meta
from operator_sim.store.conn import Unit
from operator_sim.store.inline import Outcome, run_batch
from operator_sim.store.schema import APPLICATION_ID, MIGRATIONS

T = TypeVar("T")

Synchronous = Literal["off", "normal", "full"]


class Database:
    """One SQLite connection shared by the whole server; every read and write is a unit.

    A unit of work (:data:`operator_sim.store.conn.Unit`) is queued; a drainer hands
    everything queued to the database thread as one batch, run and committed there in
    one round trip (:func:`operator_sim.store.inline.run_batch`), and resolves each
    caller after the commit. While a batch runs, the next one queues up. Nothing is
    acknowledged before it is durable, and a read sees only committed data.

    A disk that is full or failing (SQLite's ``SQLITE_FULL`` and the ``SQLITE_IOERR``
    family) reaches callers as ``StorageUnavailable``, any other database error as
    ``StoreError``. A write batch failing that way marks the database unwritable
    (:attr:`writable`) until :meth:`check_writable` (``/readyz``) finds room again.
    """

    _MAX_BATCH = 256

    def __init__(self, conn: aiosqlite.Connection, path: str) -> None:
        self._conn = conn
        self._queue: list[tuple[Unit[Any], asyncio.Future[Any], bool]] = []
        self._drainer: asyncio.Task[None] | None = None
        self._closed = False
        self._writable = True
        self.path = path

    @property
    def writable(self) -> bool:
        """False since a write failed for want of storage, until a write commits again."""
        return self._writable

    async def check_writable(self) -> bool:
        """Try a small write now, then settle the write-ahead log; returns :attr:`writable`.

        The write (:func:`operator_sim.store.meta.probe_write`) needs a page of room. On a
        full file system it may still fit into what the log file already holds (a failed
        batch leaves its frames' space behind), so the log is also checkpointed into the
        database file: that fails while the file cannot grow to take what was committed.
        """
        try:
            await self.run(meta.probe_write)
            await self._checkpoint()
        except StorageUnavailable:
            self._writable = False
        else:
            self._writable = True
        return self._writable

    async def _checkpoint(self) -> None:
        """A passive checkpoint, between batches (never inside one's transaction)."""
        call = self._conn._execute(_passive_checkpoint, self._conn._conn)  # type: ignore[no-untyped-call]
        try:
            await call
        except sqlite3.Error as exc:
            raise _as_store_error(exc) from None

    async def run(self, unit: Unit[T]) -> T:
        """Run ``unit`` (which may write) in a batch; return once the batch committed.

        The unit must only await the store (see :mod:`operator_sim.store.inline`). If it
        raises, its writes are undone and the exception reaches the caller here (a database
        error as ``StoreError``). It may run twice (see
        :func:`operator_sim.store.inline.run_batch`), so it keeps nothing outside itself:
        everything it produces is its return value. Whatever it read or wrote is returned
        only after the commit, so nothing uncommitted is ever announced. A caller cancelled
        before its batch was sent is dropped from it; one cancelled later still has its unit
        committed.
        """
        return await self._submit(unit, write=True)

    async def read(self, unit: Unit[T]) -> T:
        """Run ``unit``, which only reads, in a batch: the same queue as :meth:`run`.

        A batch of reads alone takes no write lock, so it never waits for a writer on
        another connection (a seeder next to the server).
        """
        return await self._submit(unit, write=False)

    async def _submit(self, unit: Unit[T], *, write: bool) -> T:
        if self._closed:
            raise StoreError("the database is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.append((unit, future, write))
        if self._drainer is None:
            self._drainer = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._queue:
                taken = self._queue[: self._MAX_BATCH]
                del self._queue[: self._MAX_BATCH]
                live = [item for item in taken if not item[1].done()]
                if live:
                    await self._send_batch(live)
        except BaseException as exc:
            queued, self._queue = self._queue, []
            for _, future, _ in queued:
                if not future.done():
                    future.set_exception(StoreError(f"the database stopped: {exc!r}"))
            raise
        finally:
            self._drainer = None

    async def _send_batch(self, items: list[tuple[Unit[Any], asyncio.Future[Any], bool]]) -> None:
        """Run one batch on the database thread and resolve every caller's future."""
        outcomes: list[Outcome] | None = None
        failure: BaseException | None = None
        cancelled = False
        write = any(w for _, _, w in items)
        try:
            # aiosqlite's private call for "run this on the connection's thread" (inline.py).
            call = self._conn._execute(  # type: ignore[no-untyped-call]
                functools.partial(run_batch, write=write),
                self._conn._conn,
                [unit for unit, _, _ in items],
            )
            sent: asyncio.Future[Any] = asyncio.ensure_future(call)
            while not sent.done():
                try:
                    await asyncio.wait({sent})
                except asyncio.CancelledError:
                    cancelled = True  # the batch runs anyway: hand out its outcomes first
            if sent.cancelled():
                failure = asyncio.CancelledError()
            elif (failure := sent.exception()) is None:
                outcomes = cast(list[Outcome], sent.result())
        except Exception as exc:  # noqa: BLE001 (handed to every caller below)
            failure = exc  # the connection is closed, for one
        if write:
            self._note_writability(outcomes, failure)
        for index, (_, future, _) in enumerate(items):
            if future.done():
                continue
            if outcomes is None:
                future.set_exception(_batch_error(failure))
            elif outcomes[index][0]:
                future.set_result(outcomes[index][1])
            else:
                future.set_exception(_as_store_error(outcomes[index][1]))
        if cancelled:
            raise asyncio.CancelledError

    def _note_writability(
        self, outcomes: list[Outcome] | None, failure: BaseException | None
    ) -> None:
        """Unwritable after a storage failure, until :meth:`check_writable` finds room.

        A batch that commits afterwards proves little: a small write (a refused call's
        journal entry) can still fit into a page with room on a full disk.
        """
        errors = [failure] if outcomes is None else [exc for ok, exc in outcomes if not ok]
        if any(_storage_failure(exc) is not None for exc in errors):
            self._writable = False

    async def close(self) -> None:
        """Close the connection once every queued unit has run."""
        self._closed = True
        while self._drainer is not None:
            await asyncio.wait({self._drainer})
        await self._conn.close()


_STORAGE_CODES = frozenset({sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR})
"""Primary result codes that mean the disk is full or failing, not the statement wrong."""


def _passive_checkpoint(raw: sqlite3.Connection) -> None:
    raw.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()


def _storage_failure(exc: BaseException | None) -> sqlite3.Error | None:
    """The SQLite error under ``exc`` when it says the storage is full or failing."""
    found = exc.__cause__ if isinstance(exc, StoreError) else exc
    if not isinstance(found, sqlite3.Error):
        return None
    # Extended codes (SQLITE_IOERR_WRITE, SQLITE_IOERR_FSYNC...) keep the primary code
    # in their low byte.
    code = getattr(found, "sqlite_errorcode", None)
    return found if isinstance(code, int) and code & 0xFF in _STORAGE_CODES else None


def _as_store_error(exc: BaseException) -> BaseException:
    """A unit's exception as its caller sees it: SQLite errors translated, others as raised.

    The one place SQLite errors are translated: a full or failing disk is
    ``StorageUnavailable``, any other database error ``StoreError``, the SQLite error
    being the cause of either.
    """
    if isinstance(exc, StorageUnavailable):
        return exc
    storage = _storage_failure(exc)
    if storage is not None:
        return _unavailable(storage)
    if isinstance(exc, sqlite3.Error):
        wrapped = StoreError(f"database error: {exc}")
        wrapped.__cause__ = exc
        return wrapped
    return exc


def _batch_error(failure: BaseException | None) -> StoreError:
    """What each caller of a batch that failed as a whole gets (a fresh exception each)."""
    storage = _storage_failure(failure)
    if storage is not None:
        return _unavailable(storage)
    return StoreError(f"database error: {failure!r}")


def _unavailable(storage: sqlite3.Error) -> StorageUnavailable:
    name = getattr(storage, "sqlite_errorname", "an I/O error")
    unavailable = StorageUnavailable(
        f"the database cannot be written now ({name}): nothing was kept; retry later"
    )
    unavailable.__cause__ = storage
    return unavailable


async def _schema_version(conn: aiosqlite.Connection, path: str, latest: int) -> int:
    """The file's schema version; refuses another program's database or a newer schema.

    Reads only: it runs before anything (even the journal mode) is changed.
    """
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
    return version


async def _migrate(
    conn: aiosqlite.Connection, path: str, version: int, migrations: Sequence[str]
) -> None:
    latest = len(migrations)
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
        version = await _schema_version(conn, where, len(migrations))
        async with conn.execute("PRAGMA journal_mode = WAL") as cur:
            mode = (await cur.fetchone() or ("",))[0]
        if str(mode).lower() != "wal" and where != ":memory:":
            raise SchemaError(f"{where}: cannot switch to WAL journal mode (got {mode})")
        await conn.execute(f"PRAGMA synchronous = {synchronous.upper()}")
        await conn.execute("PRAGMA temp_store = MEMORY")
        await _migrate(conn, where, version, migrations)
    except sqlite3.DatabaseError as exc:
        await conn.close()
        raise SchemaError(f"{where} is not a usable SQLite database: {exc}") from exc
    except BaseException:
        await conn.close()
        raise
    return Database(conn, where)
