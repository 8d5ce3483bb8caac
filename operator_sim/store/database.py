"""Opening the database, migrating it, and one-writer transactions."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

import aiosqlite

from operator_sim.errors import SchemaError, StoreError
from operator_sim.store.inline import Outcome, Unit, run_batch
from operator_sim.store.schema import APPLICATION_ID, MIGRATIONS

T = TypeVar("T")

Synchronous = Literal["off", "normal", "full"]


class Database:
    """One SQLite connection shared by the whole server, one unit of work at a time.

    aiosqlite runs the connection on its own thread; a lock keeps the statements of one
    unit of work from interleaving with another's (SQLite has one writer).

    Writes are group-committed: units that queue up behind each other share one
    transaction, each inside its own savepoint (a failing unit rolls back alone), and the
    last unit of the burst commits. Every unit waits for that commit before it returns,
    so nothing is acknowledged before it is durable. Reads first commit an open batch, so
    they only ever see committed data.

    :meth:`run` is the fast path for the busiest units (identification requests, codes,
    the scheduler): the unit is queued, and a drainer hands everything queued to the
    database thread as one batch, run and committed there in one round trip (see
    :func:`operator_sim.store.inline.run_batch`). While a batch runs, the next one
    queues up.
    """

    _MAX_BATCH = 256

    def __init__(self, conn: aiosqlite.Connection, path: str) -> None:
        self._conn = conn
        self._lock = asyncio.Lock()
        self._queued = 0
        self._batch: asyncio.Future[None] | None = None
        self._batch_size = 0
        self._pipelined: list[asyncio.Future[object]] = []
        self._flushers: set[asyncio.Task[None]] = set()
        self._queue: list[tuple[Unit, asyncio.Future[Any]]] = []
        self._drainer: asyncio.Task[None] | None = None
        self._closed = False
        self.path = path

    async def run(self, unit: Callable[[aiosqlite.Connection], Coroutine[Any, Any, T]]) -> T:
        """Run ``unit`` on the database thread in a batch; return once the batch committed.

        The unit must only await the store (see :mod:`operator_sim.store.inline`). If it
        raises, its writes are undone and the exception reaches the caller here (a database
        error as ``StoreError``). It may run twice (see
        :func:`operator_sim.store.inline.run_batch`), so it keeps nothing outside itself:
        everything it produces is its return value. Whatever it read or wrote is returned
        only after the commit, so nothing uncommitted is ever announced. A caller cancelled
        before its batch was sent is dropped from it; one cancelled later still has its unit
        committed.
        """
        if self._closed:
            raise StoreError("the database is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.append((unit, future))
        if self._drainer is None:
            self._drainer = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._queue:
                async with self._lock:
                    await self._commit()  # a batch of write() units first, in order
                    taken = self._queue[: self._MAX_BATCH]
                    del self._queue[: self._MAX_BATCH]
                    live = [(unit, future) for unit, future in taken if not future.done()]
                    if live:
                        await self._send_batch(live)
        except BaseException as exc:
            queued, self._queue = self._queue, []
            for _, future in queued:
                if not future.done():
                    future.set_exception(StoreError(f"the database stopped: {exc!r}"))
            raise
        finally:
            self._drainer = None

    async def _send_batch(self, items: list[tuple[Unit, asyncio.Future[Any]]]) -> None:
        """Run one batch on the database thread and resolve every caller's future."""
        outcomes: list[Outcome] | None = None
        failure: BaseException | None = None
        cancelled = False
        try:
            # aiosqlite's private call for "run this on the connection's thread" (inline.py).
            call = self._conn._execute(  # type: ignore[no-untyped-call]
                run_batch, self._conn._conn, [unit for unit, _ in items]
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
        for index, (_, future) in enumerate(items):
            if future.done():
                continue
            if outcomes is None:
                future.set_exception(StoreError(f"database error: {failure!r}"))
            elif outcomes[index][0]:
                future.set_result(outcomes[index][1])
            else:
                future.set_exception(_as_store_error(outcomes[index][1]))
        if cancelled:
            raise asyncio.CancelledError

    async def _send(self, sql: str) -> None:
        # Queue a statement on the connection's thread without waiting for it: the task's
        # first step puts it in aiosqlite's queue, so it runs before anything queued later.
        self._pipelined.append(asyncio.ensure_future(self._conn.execute(sql)))
        await asyncio.sleep(0)

    async def _commit(self) -> None:
        """Commit the open batch (lock held) and tell every unit in it.

        The commit runs in a task of its own, shielded: cancelling the caller (a unit or a
        reader) must neither roll back nor misreport everyone else's committed work.
        """
        if self._batch is None:
            return
        task = asyncio.get_running_loop().create_task(self._commit_batch())
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            # Hold the lock until the commit is through, then let the cancellation go on:
            # otherwise the next unit could join a batch that is being committed.
            while not task.done():
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.shield(task)
            raise

    async def _commit_batch(self) -> None:
        batch, pipelined = self._batch, self._pipelined
        if batch is None:
            return
        try:
            await asyncio.gather(*pipelined)
            await self._conn.commit()
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                await self._conn.rollback()
            self._abort(exc)
            return
        self._batch, self._batch_size, self._pipelined = None, 0, []
        if not batch.done():
            batch.set_result(None)

    async def _begin(self) -> asyncio.Future[None]:
        if self._batch is None:
            self._batch = asyncio.get_running_loop().create_future()
            self._batch_size = 0
            try:
                await self._conn.execute("BEGIN IMMEDIATE")
            except BaseException as exc:
                # Cancelled with BEGIN still queued: the rollback queued after it ends it.
                with contextlib.suppress(sqlite3.Error):
                    await self._conn.rollback()
                self._abort(exc)
                if isinstance(exc, sqlite3.Error):
                    raise StoreError(f"cannot begin a transaction: {exc}") from exc
                raise
        return self._batch

    def _abort(self, exc: BaseException) -> None:
        """Give up the open batch: its units fail (the caller rolls back)."""
        batch, self._batch, self._batch_size, self._pipelined = self._batch, None, 0, []
        if batch is not None and not batch.done():
            batch.set_exception(StoreError(f"transaction failed: {exc}"))
            batch.exception()  # retrieved here too: not every unit may be left to await it

    async def _flush_later(self, batch: asyncio.Future[None]) -> None:
        # Safety net: if the unit expected to commit a batch never came (it was cancelled
        # while queued), commit shortly anyway so nobody waits for ever.
        await asyncio.sleep(0.005)
        async with self._lock:
            if self._batch is batch:
                await self._commit()

    async def _undo_unit(self) -> None:
        try:
            await self._conn.execute("ROLLBACK TO unit")
            await self._send("RELEASE unit")
        except sqlite3.Error as exc:  # the whole transaction is gone (SQLite rolled it back)
            with contextlib.suppress(sqlite3.Error):
                await self._conn.rollback()
            self._abort(exc)

    @asynccontextmanager
    async def write(self) -> AsyncIterator[aiosqlite.Connection]:
        """A unit of work in the current batch; returns once its batch has committed."""
        self._queued += 1
        try:
            await self._lock.acquire()
        finally:
            self._queued -= 1
        failure: BaseException | None = None
        batch: asyncio.Future[None] | None = None
        try:
            batch = await self._begin()
            self._batch_size += 1
            try:
                await self._send("SAVEPOINT unit")
                yield self._conn
            except BaseException as exc:  # noqa: BLE001 (re-raised below, after the rollback)
                failure = exc
                await self._undo_unit()
            else:
                await self._send("RELEASE unit")
            if self._batch is batch and (self._queued == 0 or self._batch_size >= self._MAX_BATCH):
                await self._commit()
        finally:
            if batch is not None and self._batch is batch:
                # Someone queued behind us commits the batch; if they never come, this does.
                task = asyncio.get_running_loop().create_task(self._flush_later(batch))
                self._flushers.add(task)
                task.add_done_callback(self._flushers.discard)
            self._lock.release()
        if failure is not None:
            raise _as_store_error(failure)
        # Shielded: every unit of the batch awaits this one future, and cancelling one unit
        # must not cancel it for the others.
        await asyncio.shield(batch)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[aiosqlite.Connection]:
        """Exclusive use of the connection for reads, after any open batch has committed."""
        async with self._lock:
            await self._commit()
            yield self._conn

    async def close(self) -> None:
        """Close the connection (waits for the current unit of work and queued batches)."""
        self._closed = True
        while self._drainer is not None:
            await asyncio.wait({self._drainer})
        async with self._lock:
            await self._commit()
            flushers = list(self._flushers)
            for task in flushers:
                task.cancel()
            await asyncio.gather(*flushers, return_exceptions=True)
            await self._conn.close()


def _as_store_error(exc: BaseException) -> BaseException:
    """A unit's database error as ``StoreError``; any other exception as it is."""
    if isinstance(exc, sqlite3.Error):
        wrapped = StoreError(f"database error: {exc}")
        wrapped.__cause__ = exc
        return wrapped
    return exc


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
