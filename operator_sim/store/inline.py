"""Running whole batches of units of work on the database thread, in one hop.

The store's queries are coroutines written against aiosqlite. Each awaited statement is a
round trip between the event loop and the connection's thread, and a unit of several
statements pays several. :func:`run_batch` instead runs the units' coroutines *on* the
connection's thread against :class:`InlineConnection`, an aiosqlite-shaped face over the
plain sqlite3 connection whose awaitables complete at once, so each coroutine finishes in
one step: the same query code, one round trip for a whole batch, one transaction and one
commit (:meth:`operator_sim.store.Database.run` feeds it).

A unit run this way must only await the store (never the event loop: no sleeps, tasks or
events); if it suspends, it is refused. This is the only way into the server's database:
every read and write of the server is a unit run here.

aiosqlite has no public call for "run this function on the connection's thread": its
private ``_execute`` is that call (present since its first releases), and
``tests/test_store_batches.py`` fails loudly if a new aiosqlite drops it.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Coroutine, Generator, Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar, cast

from operator_sim.errors import StoreError
from operator_sim.store.conn import Conn, Unit

T = TypeVar("T")
Outcome = tuple[bool, Any]
"""(True, value) for a unit that returned, (False, exception) for one that raised."""


class _Cursor:
    """An aiosqlite-shaped cursor whose reads complete at once."""

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount


class _Statement:
    """What ``execute`` returns: awaitable, or usable as ``async with ... as cursor``."""

    def __init__(self, raw: sqlite3.Connection, sql: str, parameters: Any) -> None:
        self._raw, self._sql, self._parameters = raw, sql, parameters
        self._cursor: sqlite3.Cursor | None = None

    def _run(self) -> _Cursor:
        self._cursor = self._raw.execute(self._sql, self._parameters)
        return _Cursor(self._cursor)

    def __await__(self) -> Generator[Any, None, _Cursor]:
        # A generator that finishes at its first step: no coroutine of its own to create.
        return self._run()
        yield  # makes this a generator function; never reached

    async def __aenter__(self) -> _Cursor:
        return self._run()

    async def __aexit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        if self._cursor is not None:
            self._cursor.close()


class InlineConnection:
    """:class:`~operator_sim.store.conn.Conn` over a plain sqlite3 connection, on its thread."""

    def __init__(self, raw: sqlite3.Connection) -> None:
        self._raw = raw

    def execute(self, sql: str, parameters: Any = ()) -> _Statement:
        return _Statement(self._raw, sql, parameters)

    async def executemany(self, sql: str, parameters: Iterable[Any]) -> _Cursor:
        return _Cursor(self._raw.executemany(sql, parameters))

    @property
    def in_transaction(self) -> bool:
        return self._raw.in_transaction


def raw_connection(path: str | Path) -> sqlite3.Connection:
    """A plain connection set up as the server's is (transactions by hand, rows by name),
    for tools that run store functions through :func:`run_batch` on their own thread."""
    raw = sqlite3.connect(path, isolation_level=None)
    raw.row_factory = sqlite3.Row
    return raw


def _drive(coro: Coroutine[Any, Any, T]) -> T:
    """Finish a coroutine that never suspends, synchronously."""
    try:
        coro.send(None)
    except StopIteration as done:
        return cast(T, done.value)
    coro.close()
    raise RuntimeError("a unit of work run inline awaited something other than the store")


def run_batch(
    raw: sqlite3.Connection, units: Sequence[Unit[Any]], *, write: bool = True
) -> list[Outcome]:
    """Run ``units`` in one transaction and commit once; a unit that raises changes nothing.

    Runs on the connection's thread. A batch of reads only (``write=False``) begins a
    deferred transaction: it takes no write lock, so it never waits for another
    connection's writer (a seeder next to the server).

    Units run without savepoints first: a savepoint costs every unit two statements and a
    copy of each page it touches, about a fifth of the work of an identification. A unit
    that raises before writing anything (every refusal the flow makes) needs no undoing:
    its exception is its outcome. Should a unit raise after writing (a database error
    mid-unit), the batch is rolled back and run again with each unit in its own savepoint,
    where that unit is undone alone; its Python runs twice then, and so does that of the
    units before it in the batch, a price paid only on that failure. Units therefore keep
    nothing outside themselves: what they produce is their return value, and what they
    read (fault rules' random draws included) comes from the database.

    If the transaction itself fails (it cannot begin, a savepoint cannot be undone, the
    commit fails), nothing of the batch is kept and every unit's outcome is the error.
    """
    try:
        try:
            return _run_units(raw, units, isolated=False, write=write)
        except _NeedsIsolation:
            # The second run fails as a whole just like the first (a full disk at COMMIT).
            return _run_units(raw, units, isolated=True, write=write)
    except sqlite3.Error as exc:
        return [(False, _failed(exc)) for _ in units]


class _NeedsIsolation(Exception):
    """A unit raised after writing, outside a savepoint: the batch was rolled back."""


def _run_units(
    raw: sqlite3.Connection, units: Sequence[Unit[Any]], *, isolated: bool, write: bool
) -> list[Outcome]:
    conn: Conn = InlineConnection(raw)
    outcomes: list[Outcome] = []
    try:
        raw.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        for unit in units:
            if isolated:
                raw.execute("SAVEPOINT unit")
            changes = raw.total_changes
            try:
                value = _drive(unit(conn))
            except Exception as exc:
                if not raw.in_transaction:  # SQLite gave up the whole transaction
                    if isinstance(exc, sqlite3.Error):
                        raise
                    raise _gone(exc) from exc
                if isolated:
                    raw.execute("ROLLBACK TO unit")
                    raw.execute("RELEASE unit")
                elif raw.total_changes != changes:
                    raise _NeedsIsolation from exc
                outcomes.append((False, exc))
            else:
                if not raw.in_transaction:  # ended under a unit that caught the error
                    raise _gone(RuntimeError("a unit carried on after its transaction ended"))
                if isolated:
                    raw.execute("RELEASE unit")
                outcomes.append((True, value))
        raw.execute("COMMIT")
    except BaseException:
        if raw.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                raw.execute("ROLLBACK")
        raise
    return outcomes


def _gone(exc: Exception) -> sqlite3.Error:
    return sqlite3.OperationalError(f"the transaction ended under a unit: {exc!r}")


def _failed(exc: sqlite3.Error) -> StoreError:
    failed = StoreError(f"transaction failed: {exc}")
    failed.__cause__ = exc
    return failed
