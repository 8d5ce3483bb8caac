"""Group commit: units share a transaction, and one unit's cancellation stays its own."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from operator_sim.store.database import Database, open_database


async def _table(tmp_path: Path) -> tuple[Database, Path]:
    path = tmp_path / "batch.db"
    return await open_database(path, migrations=["CREATE TABLE t (x INTEGER);"]), path


def _rows(path: Path) -> list[int]:
    with sqlite3.connect(path) as conn:
        return [r[0] for r in conn.execute("SELECT x FROM t ORDER BY x")]


async def test_queued_units_share_one_batch_and_all_commit(tmp_path: Path) -> None:
    db, path = await _table(tmp_path)

    async def unit(value: int) -> int:
        async with db.write() as conn:
            await conn.execute("INSERT INTO t VALUES (?)", (value,))
        return value

    assert await asyncio.gather(*(unit(i) for i in range(20))) == list(range(20))
    await db.close()
    assert _rows(path) == list(range(20))


async def test_cancelling_one_waiting_unit_does_not_fail_the_others(tmp_path: Path) -> None:
    db, path = await _table(tmp_path)
    gate = asyncio.Event()

    async def unit(value: int, *, last: bool = False) -> int:
        async with db.write() as conn:
            await conn.execute("INSERT INTO t VALUES (?)", (value,))
            if last:
                await gate.wait()  # hold the lock: the others wait for this unit's commit
        return value

    first = asyncio.create_task(unit(1))
    second = asyncio.create_task(unit(2))
    committer = asyncio.create_task(unit(3, last=True))
    for _ in range(2000):  # bounded poll: until all three are in the batch
        if db._batch_size >= 3:
            break
        await asyncio.sleep(0.001)
    assert not first.done()  # the first unit is waiting for the committer's commit
    first.cancel()
    gate.set()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await second == 2
    assert await committer == 3
    await db.close()
    assert _rows(path) == [1, 2, 3]


async def test_a_failing_unit_rolls_back_alone(tmp_path: Path) -> None:
    db, path = await _table(tmp_path)

    async def good(value: int) -> None:
        async with db.write() as conn:
            await conn.execute("INSERT INTO t VALUES (?)", (value,))

    async def bad() -> None:
        async with db.write() as conn:
            await conn.execute("INSERT INTO t VALUES (99)")
            raise ValueError("no")

    results = await asyncio.gather(good(1), bad(), good(2), return_exceptions=True)
    assert isinstance(results[1], ValueError)
    await db.close()
    assert _rows(path) == [1, 2]
