"""What a unit of work sees of the database: the statements it may run, and nothing else.

The server hands the store *units of work*: coroutines taking a :class:`Conn` and calling
store functions with it (``await journal.add(conn, ...)``). It never sees the driver.
Today :class:`operator_sim.store.inline.InlineConnection` is the only implementation
(SQLite on the database thread); another backend implements this protocol and the store
functions, and the server does not change.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine, Iterable
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol, TypeVar

__all__ = ["Conn", "Cursor", "Statement", "Unit"]

T = TypeVar("T")


class Cursor(Protocol):
    """The rows a statement produced, and what it changed."""

    async def fetchone(self) -> Any:
        """The next row, or None (rows index by position and by column name)."""

    async def fetchall(self) -> list[Any]:
        """Every remaining row."""

    @property
    def lastrowid(self) -> int | None:
        """The rowid of the last row inserted."""

    @property
    def rowcount(self) -> int:
        """How many rows the statement changed."""


class Statement(Awaitable[Cursor], AbstractAsyncContextManager[Cursor], Protocol):
    """A statement run on ``await`` (or ``async with ... as cursor``, closing its cursor)."""


class Conn(Protocol):
    """A connection inside one unit of work; everything it runs commits (or not) together."""

    def execute(self, sql: str, parameters: Any = ()) -> Statement:
        """Run one statement with bound parameters."""

    async def executemany(self, sql: str, parameters: Iterable[Any]) -> Cursor:
        """Run one statement once per parameter set."""


Unit = Callable[[Conn], Coroutine[Any, Any, T]]
"""A unit of work: it awaits only the store, and returns everything it produced."""
