"""Database.run: units queued together run in one batch on the database thread."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections import Counter
from pathlib import Path

import aiosqlite
import pytest

from operator_sim.errors import StoreError
from operator_sim.server.services import SERVICES
from operator_sim.store import Conn, Database, Unit, meta, open_database
from tests.conftest import Sim


async def _meta(db: Database, key: str) -> str | None:
    return await db.read(lambda conn: meta.get_meta(conn, key))


def test_aiosqlite_still_has_the_call_it_relies_on() -> None:
    assert callable(getattr(aiosqlite.Connection, "_execute", None))


async def test_queued_units_run_and_return_in_one_batch(tmp_path: Path) -> None:
    db = await open_database(tmp_path / "b.db")
    seen: list[int] = []

    def unit(i: int) -> Unit[str]:
        async def run(conn: Conn) -> str:
            seen.append(i)
            await meta.set_meta(conn, f"k{i}", str(i))
            return f"done {i}"

        return run

    results = await asyncio.gather(*(db.run(unit(i)) for i in range(20)))
    assert results == [f"done {i}" for i in range(20)]
    assert seen == list(range(20))  # in order, each once
    assert [await _meta(db, f"k{i}") for i in range(20)] == [str(i) for i in range(20)]
    await db.close()


async def test_a_unit_refusing_before_it_writes_fails_alone_and_runs_once(tmp_path: Path) -> None:
    db = await open_database(tmp_path / "b.db")
    runs: Counter[str] = Counter()

    async def good(conn: Conn) -> None:
        runs["good"] += 1
        await meta.set_meta(conn, "good", "yes")

    async def refuses(conn: Conn) -> None:
        runs["refuses"] += 1
        if await meta.get_meta(conn, "anything") is None:
            raise LookupError("refused")

    outcomes = await asyncio.gather(db.run(good), db.run(refuses), return_exceptions=True)
    assert outcomes[0] is None
    assert isinstance(outcomes[1], LookupError)
    assert runs == {"good": 1, "refuses": 1}
    assert await _meta(db, "good") == "yes"
    await db.close()


async def test_a_unit_failing_after_it_wrote_is_undone_alone(tmp_path: Path) -> None:
    db = await open_database(tmp_path / "b.db")
    runs: Counter[str] = Counter()

    async def before(conn: Conn) -> None:
        runs["before"] += 1
        await meta.set_meta(conn, "before", "kept")

    async def half(conn: Conn) -> None:
        runs["half"] += 1
        await meta.set_meta(conn, "half", "written")
        raise LookupError("failed after writing")

    async def after(conn: Conn) -> None:
        runs["after"] += 1
        await meta.set_meta(conn, "after", "kept")

    outcomes = await asyncio.gather(
        db.run(before), db.run(half), db.run(after), return_exceptions=True
    )
    assert outcomes[0] is None
    assert outcomes[2] is None
    assert isinstance(outcomes[1], LookupError)
    assert await _meta(db, "before") == "kept"
    assert await _meta(db, "after") == "kept"
    assert await _meta(db, "half") is None
    # The batch ran again with a savepoint per unit; the unit after the failure ran once.
    assert runs == {"before": 2, "half": 2, "after": 1}
    await db.close()


async def test_a_unit_that_awaits_the_event_loop_is_refused_and_undone(tmp_path: Path) -> None:
    db = await open_database(tmp_path / "b.db")

    async def sleeps(conn: Conn) -> None:
        await meta.set_meta(conn, "x", "y")
        await asyncio.sleep(0)

    with pytest.raises(RuntimeError, match="awaited something other than the store"):
        await db.run(sleeps)
    assert await _meta(db, "x") is None
    await db.close()


async def test_a_caller_cancelled_while_queued_is_left_out(tmp_path: Path) -> None:
    db = await open_database(tmp_path / "b.db")

    def write(key: str) -> Unit[None]:
        async def run(conn: Conn) -> None:
            await meta.set_meta(conn, key, "1")

        return run

    entered, gate = threading.Event(), threading.Event()

    async def holder(conn: Conn) -> None:
        await meta.set_meta(conn, "holder", "1")
        entered.set()
        gate.wait(30)  # holds the database thread: the units below queue up

    held = asyncio.ensure_future(db.run(holder))
    for _ in range(3000):  # bounded poll: until the holder's batch is on the thread
        if entered.is_set():
            break
        await asyncio.sleep(0.001)
    kept = asyncio.ensure_future(db.run(write("kept")))
    dropped = asyncio.ensure_future(db.run(write("dropped")))
    await asyncio.sleep(0)
    dropped.cancel()
    gate.set()
    await held
    await kept
    with pytest.raises(asyncio.CancelledError):
        await dropped
    assert await _meta(db, "kept") == "1"
    assert await _meta(db, "dropped") is None
    await db.close()


async def test_close_waits_for_queued_units(tmp_path: Path) -> None:
    db = await open_database(tmp_path / "b.db")

    async def write(conn: Conn) -> None:
        await meta.set_meta(conn, "late", "written")

    pending = asyncio.ensure_future(db.run(write))
    await asyncio.sleep(0)
    await db.close()
    await pending
    again = await open_database(tmp_path / "b.db")
    assert await _meta(again, "late") == "written"
    await again.close()


async def test_scheduled_answers_fired_in_a_batch_that_runs_twice_are_announced_once(
    sim: Sim,
) -> None:
    created = await sim.identify_ok("+79000000009")  # answered present after 5 minutes
    app = sim.client.app
    assert app is not None
    services = app[SERVICES]
    identification, db = services.identification, services.db
    later = services.clock.now_ms() + 6 * 60 * 1000

    async def fails_after_writing(conn: Conn) -> None:
        await meta.set_meta(conn, "half", "written")
        raise LookupError("failed after writing")

    # Queued together: one batch, which runs again with a savepoint per unit.
    fired: int | BaseException
    failed: BaseException | None
    fired, failed = await asyncio.gather(
        identification.fire_due(later), db.run(fails_after_writing), return_exceptions=True
    )
    assert fired == 1
    assert isinstance(failed, LookupError)
    with sqlite3.connect(sim.db_path) as conn:
        bodies = [r[0] for r in conn.execute("SELECT body FROM events")]
    assert len(bodies) == 1
    assert created["id"] in bodies[0]
    metrics = await (await sim.client.get("/metrics")).text()
    assert 'operator_sim_events_total{type="identification.answered"} 1.0' in metrics


async def test_a_unit_after_close_is_refused_at_once(tmp_path: Path) -> None:
    db = await open_database(tmp_path / "b.db")
    await db.close()

    async def unit(conn: Conn) -> None:
        await meta.set_meta(conn, "x", "y")

    with pytest.raises(StoreError, match="closed"):
        await asyncio.wait_for(db.run(unit), 5)


async def test_a_database_error_in_a_unit_reaches_its_caller_as_a_store_error(
    tmp_path: Path,
) -> None:
    db = await open_database(tmp_path / "b.db")

    async def bad_sql(conn: Conn) -> None:
        await conn.execute("SELECT * FROM no_such_table")

    async def fine(conn: Conn) -> str:
        await meta.set_meta(conn, "fine", "yes")
        return "ok"

    try:
        outcomes = await asyncio.gather(db.run(bad_sql), db.run(fine), return_exceptions=True)
        assert isinstance(outcomes[0], StoreError)
        assert isinstance(outcomes[0].__cause__, sqlite3.Error)
        assert outcomes[1] == "ok"
        assert await _meta(db, "fine") == "yes"
    finally:
        await db.close()
