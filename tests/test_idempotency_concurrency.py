"""Idempotency under concurrency: 50 simultaneous POSTs with one key create one request.

Per the IETF Idempotency-Key draft, the others get the same request (a replay) or
``409`` while the first is still in flight; never a second request.
"""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

import pytest

from tests.conftest import Sim

CONCURRENCY = 50


def _created(sim: Sim) -> int:
    with sqlite3.connect(sim.db_path) as conn:
        count: int = conn.execute(
            "SELECT count(*) FROM identification_requests WHERE messenger_id = 'demo'"
        ).fetchone()[0]
    return count


async def _post(sim: Sim, msisdn: str, key: str, wait: int) -> tuple[int, dict[str, Any]]:
    headers = {"Idempotency-Key": key}
    if wait:
        headers["Prefer"] = f"wait={wait}"
    resp = await sim.identify(msisdn, headers=headers)
    return resp.status, await resp.json()


@pytest.mark.parametrize("wait", [0, 1], ids=["plain", "long-poll"])
async def test_fifty_concurrent_posts_with_one_key_create_one_request(sim: Sim, wait: int) -> None:
    # +79000000009 is answered after 5 simulated minutes: with Prefer: wait the first
    # POST is still in flight (held) while the others arrive.
    results = await asyncio.gather(
        *(_post(sim, "+79000000009", "one-key", wait) for _ in range(CONCURRENCY))
    )
    statuses = [status for status, _ in results]
    assert set(statuses) <= {201, 409}, statuses
    ids = {body["id"] for status, body in results if status == 201}
    assert len(ids) == 1
    assert statuses.count(201) >= 1
    for status, body in results:
        if status == 409:
            assert body["code"] == "conflict"
    assert _created(sim) == 1
    journal = await sim.admin_ok("GET", "/requests?messenger_id=demo&limit=1000")
    fresh = [entry for entry in journal["requests"] if not entry["replayed"]]
    assert len(fresh) == 1


async def test_concurrent_posts_with_one_key_and_different_bodies_bind_one(sim: Sim) -> None:
    numbers = [f"+7900000000{1 + i % 2}" for i in range(CONCURRENCY)]
    results = await asyncio.gather(*(_post(sim, n, "contested", 0) for n in numbers))
    winners = {body["msisdn"] for status, body in results if status == 201}
    assert len(winners) == 1
    losers = [body for status, body in results if status != 201]
    assert all(body["code"] in ("idempotency_key_reused", "conflict") for body in losers)
    assert len(losers) == CONCURRENCY // 2
    assert _created(sim) == 1
