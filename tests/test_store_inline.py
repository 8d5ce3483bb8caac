"""Units of work run inline on the database thread: same query code, one hop."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiosqlite
import pytest

from operator_sim.store import catalog, open_database
from operator_sim.store.inline import run_inline


def test_aiosqlite_still_has_the_call_it_relies_on() -> None:
    assert callable(getattr(aiosqlite.Connection, "_execute", None))


async def test_a_unit_of_several_statements_runs_and_returns(tmp_path: Path) -> None:
    db = await open_database(tmp_path / "inline.db")

    async def unit(conn: aiosqlite.Connection) -> str | None:
        await catalog.set_meta(conn, "a", "1")
        await catalog.set_meta(conn, "a", "2")
        return await catalog.get_meta(conn, "a")

    async with db.write() as conn:
        assert await run_inline(conn, unit) == "2"
    async with db.read() as conn:
        assert await catalog.get_meta(conn, "a") == "2"
    await db.close()


async def test_an_error_in_the_unit_reaches_the_caller_and_rolls_back(tmp_path: Path) -> None:
    db = await open_database(tmp_path / "inline.db")

    async def unit(conn: aiosqlite.Connection) -> None:
        await catalog.set_meta(conn, "half", "done")
        raise LookupError("boom")

    with pytest.raises(LookupError, match="boom"):
        async with db.write() as conn:
            await run_inline(conn, unit)
    async with db.read() as conn:
        assert await catalog.get_meta(conn, "half") is None
    await db.close()


async def test_a_unit_that_awaits_the_event_loop_is_refused(tmp_path: Path) -> None:
    db = await open_database(tmp_path / "inline.db")

    async def unit(conn: aiosqlite.Connection) -> None:
        await catalog.set_meta(conn, "x", "y")
        await asyncio.sleep(0)

    with pytest.raises(RuntimeError, match="awaited something other than the store"):
        async with db.write() as conn:
            await run_inline(conn, unit)
    async with db.read() as conn:
        assert await catalog.get_meta(conn, "x") is None
    await db.close()
