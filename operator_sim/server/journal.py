"""The journal of messenger-facing calls, as the admin reads it."""

from __future__ import annotations

from operator_sim.store import Database, journal
from operator_sim.store.journal import JournalFilter
from operator_sim.wire import JournalEntry

__all__ = ["Journal", "JournalFilter"]


class Journal:
    """Reads the journal (entries are written by the calls themselves, in their units)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def entries(self, selection: JournalFilter, *, limit: int) -> list[JournalEntry]:
        """Entries matching ``selection``, newest first."""
        return await self._db.read(lambda conn: journal.list_journal(conn, selection, limit=limit))

    async def count(self, selection: JournalFilter) -> int:
        """How many entries match ``selection``."""
        return await self._db.read(lambda conn: journal.count_journal(conn, selection))
