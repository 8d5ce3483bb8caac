"""The journal of messenger-facing calls, as the admin reads it."""

from __future__ import annotations

from dataclasses import replace

from operator_sim.store import Database, codes, journal
from operator_sim.store.codes import CodeFilter
from operator_sim.store.journal import JournalFilter
from operator_sim.wire import CallEntry, CodeView, JournalEntry

__all__ = ["CodeFilter", "Journal", "JournalFilter"]


class Journal:
    """Reads the journal (entries are written by the calls themselves, in their units)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def requests(self, selection: JournalFilter, *, limit: int) -> list[JournalEntry]:
        """Identification POSTs matching ``selection``, newest first, with their requests."""
        return await self._db.read(lambda conn: journal.list_requests(conn, selection, limit=limit))

    async def count_requests(self, selection: JournalFilter) -> int:
        """How many identification POSTs match ``selection``."""
        only = replace(selection, requests_only=True)
        return await self._db.read(lambda conn: journal.count_journal(conn, only))

    async def count(self, selection: JournalFilter) -> int:
        """How many calls of any kind match ``selection``."""
        return await self._db.read(lambda conn: journal.count_journal(conn, selection))

    async def calls(self, selection: JournalFilter, *, limit: int) -> list[CallEntry]:
        """Calls of every kind matching ``selection``, newest first."""
        return await self._db.read(lambda conn: journal.list_calls(conn, selection, limit=limit))

    async def codes(self, selection: CodeFilter, *, limit: int) -> list[CodeView]:
        """Identification codes, live and ended, the newest registrations first."""
        return await self._db.read(lambda conn: codes.list_codes(conn, selection, limit=limit))
