"""A full or failing disk: 503 storage_unavailable with Retry-After, /readyz tells, recovery.

The disk is made "full" without a small file system: ``PRAGMA max_page_count`` lowered to
the database's current size on the server's own connection (run as a unit, like every
statement of the server), so that any write needing a new page fails; raising it again
is the space coming back.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest

from operator_sim import errors
from operator_sim.server.services import SERVICES, Services
from operator_sim.store import Conn, Database
from tests.conftest import Sim

PRESENT = "+79000000001"


def _db(sim: Sim) -> Database:
    app = sim.client.app
    assert app is not None
    services: Services = app[SERVICES]
    return services.db


async def _max_pages(db: Database, pages: int | None) -> tuple[int, int]:
    """Set ``max_page_count`` (None: to the current page count); returns (old, new)."""

    async def unit(conn: Conn) -> tuple[int, int]:
        async with conn.execute("PRAGMA max_page_count") as cur:
            old = int((await cur.fetchone())[0])
        if pages is None:
            async with conn.execute("PRAGMA page_count") as cur:
                target = int((await cur.fetchone())[0])
        else:
            target = pages
        # SQLite never sets it below the current size; it answers with what it set.
        async with conn.execute(f"PRAGMA max_page_count = {target}") as cur:
            return old, int((await cur.fetchone())[0])

    return await db.run(unit)


async def _fill(sim: Sim, limit: int = 2000) -> tuple[list[str], Any]:
    """POST until one is refused; returns the ids created before that and the refusal."""
    created: list[str] = []
    for i in range(limit):
        resp = await sim.identify(f"+7950{i:07d}")
        if resp.status != 201:
            return created, resp
        created.append((await resp.json())["id"])
    raise AssertionError(f"{limit} POSTs all succeeded on a full database")


async def _readyz(sim: Sim) -> tuple[int, dict[str, Any]]:
    resp = await sim.client.get("/readyz")
    body: dict[str, Any] = await resp.json()
    return resp.status, body


async def test_full_disk_is_503_and_not_ready_until_space_is_back(sim: Sim) -> None:
    before = await sim.identify_ok(PRESENT)
    assert await _readyz(sim) == (200, {"status": "ready"})
    db = _db(sim)
    original, lowered = await _max_pages(db, None)
    assert lowered < original

    created, refused = await _fill(sim)
    assert refused.status == 503, await refused.text()
    problem = await refused.json()
    assert problem["code"] == "storage_unavailable"
    assert refused.headers["Retry-After"].isdigit()
    assert refused.headers["Content-Type"].startswith("application/problem+json")
    # Every later write is refused the same way, never as a 500.
    for i in range(20):
        again = await sim.identify(f"+7951{i:07d}")
        assert again.status == 503, await again.text()
        assert (await again.json())["code"] == "storage_unavailable"

    # What SQLite says when max_page_count is reached is SQLITE_FULL ("database or disk
    # is full"), the very error a full file system gives: the store turns it into
    # StorageUnavailable, keeping the SQLite error as the cause.
    async def big_write(conn: Conn) -> None:
        await conn.execute("INSERT INTO meta (key, value) VALUES ('filler', ?)", ("0" * 100_000,))

    with pytest.raises(errors.StorageUnavailable) as caught:
        await db.run(big_write)
    cause = caught.value.__cause__
    assert isinstance(cause, sqlite3.Error)
    assert cause.sqlite_errorcode == sqlite3.SQLITE_FULL

    # Not ready while writes fail: /readyz probes with a page-sized write of its own (a
    # refused call's small journal entry may still fit, so that one proves nothing).
    for _ in range(3):
        assert await _readyz(sim) == (503, {"status": "not_ready"})

    # Everything acknowledged is there (the admin's reads write nothing).
    listed = (await sim.admin_ok("GET", "/requests?limit=1000"))["requests"]
    assert {entry["id"] for entry in listed} >= {before["id"], *created}
    assert all(entry["status"] == "answered" for entry in listed if entry["id"] in created)
    count = await sim.admin_ok("GET", "/requests/count")
    assert count["count"] == 1 + len(created)

    # Space comes back: /readyz alone (no other traffic) finds out, and writes succeed.
    await _max_pages(db, original)
    assert await _readyz(sim) == (200, {"status": "ready"})
    assert db.writable is True
    after = await sim.identify_ok(PRESENT)
    assert (await sim.get_request(after["id"]))["status"] == "answered"
    count = await sim.admin_ok("GET", "/requests/count")
    assert count["count"] == 2 + len(created)


async def test_readiness_comes_back_with_the_space_not_with_a_small_write(sim: Sim) -> None:
    db = _db(sim)
    original, _ = await _max_pages(db, None)
    _, refused = await _fill(sim)
    assert refused.status == 503
    assert await _readyz(sim) == (503, {"status": "not_ready"})
    assert db.writable is False
    await _max_pages(db, original)
    # Writes go through as soon as there is room; readiness follows its own probe.
    await sim.identify_ok(PRESENT)
    assert await _readyz(sim) == (200, {"status": "ready"})
    assert db.writable is True
