"""Batches: units share a transaction, and one unit's cancellation or failure stays its own."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest

from operator_sim.store import Conn, Unit
from operator_sim.store.database import Database, open_database


async def _table(tmp_path: Path) -> tuple[Database, Path]:
    path = tmp_path / "batch.db"
    return await open_database(path, migrations=["CREATE TABLE t (x INTEGER);"]), path


def _rows(path: Path) -> list[int]:
    with sqlite3.connect(path) as conn:
        return [r[0] for r in conn.execute("SELECT x FROM t ORDER BY x")]


def _insert(value: int) -> Unit[int]:
    async def unit(conn: Conn) -> int:
        await conn.execute("INSERT INTO t VALUES (?)", (value,))
        return value

    return unit


async def test_queued_units_share_one_batch_and_all_commit(tmp_path: Path) -> None:
    db, path = await _table(tmp_path)
    results = await asyncio.gather(*(db.run(_insert(i)) for i in range(20)))
    assert results == list(range(20))
    await db.close()
    assert _rows(path) == list(range(20))


async def test_cancelling_one_unit_of_a_running_batch_does_not_fail_the_others(
    tmp_path: Path,
) -> None:
    db, path = await _table(tmp_path)
    entered, gate = threading.Event(), threading.Event()

    async def holder(conn: Conn) -> int:
        await conn.execute("INSERT INTO t VALUES (3)")
        entered.set()
        gate.wait(30)  # holds the database thread: the whole batch is under way
        return 3

    # Queued before the drainer runs: all four go in one batch.
    first = asyncio.ensure_future(db.run(_insert(1)))
    second = asyncio.ensure_future(db.run(_insert(2)))
    committer = asyncio.ensure_future(db.run(holder))
    for _ in range(3000):  # bounded poll: until the batch is on the database thread
        if entered.is_set():
            break
        await asyncio.sleep(0.001)
    assert entered.is_set()
    first.cancel()
    gate.set()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await second == 2
    assert await committer == 3
    await db.close()
    assert _rows(path) == [1, 2, 3]  # the cancelled caller's unit was already in the batch


async def test_a_failing_unit_rolls_back_alone(tmp_path: Path) -> None:
    db, path = await _table(tmp_path)

    async def bad(conn: Conn) -> None:
        await conn.execute("INSERT INTO t VALUES (99)")
        raise ValueError("no")

    results = await asyncio.gather(
        db.run(_insert(1)),
        db.run(bad),
        db.run(_insert(2)),
        return_exceptions=True,
    )
    assert isinstance(results[1], ValueError)
    await db.close()
    assert _rows(path) == [1, 2]
