"""The journal's time filters, its count endpoint and cap; reset of one messenger."""

from __future__ import annotations

import functools
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

from operator_sim.server import create_app
from operator_sim.settings import Settings
from operator_sim.store import Database, open_database
from operator_sim.store.journal import Entry, add, trim_step
from operator_sim.wire import format_timestamp
from tests.conftest import AiohttpClient, Sim

NUMBER = "+79011110001"
OTHER_NUMBER = "+79011110002"


def q(value: str) -> str:
    """Percent-encode a query value."""
    return quote(value, safe="")


async def journal(sim: Sim, query: str = "") -> list[dict[str, Any]]:
    """GET /requests with a raw query string."""
    body: dict[str, Any] = await sim.admin_ok("GET", f"/requests?{query}")
    return list(body["requests"])


async def count(sim: Sim, query: str = "") -> int:
    """GET /requests/count with a raw query string."""
    body: dict[str, Any] = await sim.admin_ok("GET", f"/requests/count?{query}")
    assert set(body) == {"count"}
    return int(body["count"])


async def test_since_and_until_select_by_simulation_time(sim: Sim) -> None:
    first = await sim.identify_ok(NUMBER)
    await sim.advance(600)
    second = await sim.identify_ok(NUMBER)
    t1 = datetime.fromisoformat(second["received_at"])
    since = await journal(sim, f"since={q(format_timestamp(t1))}")
    assert [e["id"] for e in since] == [second["id"]]
    until = await journal(sim, f"until={q(format_timestamp(t1))}")
    assert [e["id"] for e in until] == [first["id"]]
    both = f"since={q(first['received_at'])}&until={q(format_timestamp(t1 + timedelta(seconds=1)))}"
    assert [e["id"] for e in await journal(sim, both)] == [second["id"], first["id"]]
    assert await count(sim, both) == 2
    assert await count(sim, f"since={q(format_timestamp(t1 + timedelta(seconds=1)))}") == 0


async def test_time_filters_take_any_offset_even_with_an_unencoded_plus(sim: Sim) -> None:
    req = await sim.identify_ok(NUMBER)
    t0 = datetime.fromisoformat(req["received_at"])
    moscow = (t0 - timedelta(seconds=1)).astimezone(
        datetime.fromisoformat("2026-01-01T00:00:00+03:00").tzinfo
    )
    assert await count(sim, f"since={moscow.isoformat()}") == 1  # '+' decodes as a space
    assert await count(sim, f"until={q(moscow.isoformat())}") == 0


async def test_bad_timestamps_are_422(sim: Sim) -> None:
    for bad in ("yesterday", "2026-01-01T00:00:00", "2026-13-01T00:00:00Z"):
        for path in ("/requests", "/requests/count"):
            resp = await sim.admin("GET", f"{path}?since={q(bad)}")
            assert resp.status == 422, bad
            assert (await resp.json())["code"] == "validation_error"


async def test_count_tells_how_many_requests_a_messenger_sent_for_a_number(sim: Sim) -> None:
    other = await sim.new_messenger("other")
    for _ in range(3):
        await sim.identify_ok(NUMBER)
    await sim.identify_ok(OTHER_NUMBER)
    for _ in range(2):
        await sim.identify_ok(NUMBER, key=other["api_key"])
    await sim.identify_ok(NUMBER, operator="beta")
    assert await count(sim, f"messenger_id=demo&msisdn={q(NUMBER)}&operator_id=alfa") == 3
    assert await count(sim, f"messenger_id=demo&msisdn={q(NUMBER)}") == 4
    assert await count(sim, f"msisdn={q(NUMBER)}") == 6
    assert await count(sim, "messenger_id=other") == 2
    assert await count(sim) == 7
    assert await count(sim, "messenger_id=nobody") == 0


async def test_count_rejects_bad_filters(sim: Sim) -> None:
    assert (await sim.admin("GET", "/requests/count?msisdn=8916")).status == 422
    assert (await sim.admin("GET", "/requests/count?messenger_id=Not%20An%20Id")).status == 422


async def test_the_journal_keeps_its_cap_dropping_the_oldest_and_counting_them(
    aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    app = create_app(Settings(db=tmp_path / "cap.db", clock="manual", journal_cap=5))
    sim = Sim(await aiohttp_client(app), tmp_path / "cap.db")
    ids = [(await sim.identify_ok(f"+7901111{i:04d}"))["id"] for i in range(8)]
    kept = await journal(sim)
    assert [e["id"] for e in kept] == ids[:2:-1]  # the newest five, newest first
    assert await count(sim) == 5
    metrics = await (await sim.client.get("/metrics")).text()
    assert "operator_sim_journal_dropped_total 3.0" in metrics
    # The requests themselves are not dropped with their journal entries.
    assert (await sim.get_request(ids[0]))["id"] == ids[0]


# --- reset of one messenger -------------------------------------------------------------


def rows(db: Path, sql: str, *params: object) -> int:
    """A count straight from the database file."""
    with sqlite3.connect(db) as conn:
        return int(conn.execute(sql, params).fetchone()[0])


async def test_messenger_reset_clears_only_that_messenger(sim: Sim) -> None:
    other = await sim.new_messenger("other")
    okey = other["api_key"]
    for messenger in ("demo", "other"):
        await sim.admin_ok(
            "POST",
            "/rules",
            {
                "id": f"own-{messenger}",
                "match": {"messenger_id": messenger, "msisdn": "+7902*"},
                "action": {"type": "never"},
            },
        )
    # State of both messengers: a pending answer (a job), a code, a key, journal, counters.
    demo_slow = await sim.identify_ok("+79000000009")
    other_slow = await sim.identify_ok("+79000000009", key=okey)
    demo_present = await sim.identify_ok("+79000000001", headers={"Idempotency-Key": "k1"})
    assert (await sim.register_code(demo_present["id"], "demo-code-1")).status == 201
    assert (await sim.identify("+79000000007")).status == 503
    assert (await sim.identify("+79000000007", key=okey)).status == 503

    assert (await sim.admin("POST", "/messengers/demo/reset")).status == 204

    assert await count(sim, "messenger_id=demo") == 0
    assert await count(sim, "messenger_id=other") == 2
    assert (
        await sim.client.get(
            f"/operators/alfa/v1/identification-requests/{demo_slow['id']}",
            headers=sim.auth("demo-messenger-key-not-secret"),
        )
    ).status == 404
    assert (
        rows(sim.db_path, "SELECT count(*) FROM identification_codes WHERE messenger_id = 'demo'")
        == 0
    )
    assert rows(sim.db_path, "SELECT count(*) FROM jobs WHERE ref = ?", demo_slow["id"]) == 0
    rules = {r["id"] for r in (await sim.admin_ok("GET", "/rules"))["rules"]}
    assert "own-demo" not in rules
    assert "own-other" in rules
    # The idempotency key is free again: another body is a new request, not a 422.
    reused = await sim.identify("+79000000002", headers={"Idempotency-Key": "k1"})
    assert reused.status == 201
    # demo's magic 503 counter starts again; other's goes on where it stood.
    assert [(await sim.identify("+79000000007")).status for _ in range(3)] == [503, 503, 201]
    assert [(await sim.identify("+79000000007", key=okey)).status for _ in range(2)] == [503, 201]
    # other's scheduled answer still fires.
    await sim.advance(300)
    answered = await sim.get_request(other_slow["id"], key=okey)
    assert answered["status"] == "answered"


async def test_messenger_reset_of_an_unknown_messenger_is_404(sim: Sim) -> None:
    resp = await sim.admin("POST", "/messengers/nobody/reset")
    assert resp.status == 404
    assert (await resp.json())["code"] == "not_found"


async def test_messenger_reset_takes_no_input(sim: Sim) -> None:
    await sim.identify_ok(NUMBER)
    resp = await sim.admin("POST", "/messengers/demo/reset", {"everything": True})
    assert resp.status == 422
    assert await count(sim) == 1
    assert (await sim.admin("POST", "/messengers/demo/reset", {})).status == 204
    assert await count(sim) == 0


async def test_messenger_reset_restarts_that_messengers_random_draws(sim: Sim) -> None:
    await sim.admin_ok(
        "POST",
        "/rules",
        {
            "id": "flaky",
            "match": {"msisdn": "+7901444*"},
            "action": {"type": "http_error", "status": 503},
            "probability": 0.5,
        },
    )

    async def pattern() -> list[int]:
        return [(await sim.identify(f"+7901444{i:04d}")).status for i in range(40)]

    first = await pattern()
    assert (await sim.admin("POST", "/messengers/demo/reset")).status == 204
    assert await pattern() == first


async def test_a_large_journal_is_trimmed_back_to_its_cap_every_hundredth_of_it(
    tmp_path: Path,
) -> None:
    db = await open_database(tmp_path / "trim.db")
    try:
        await _fill_journal(db, tmp_path / "trim.db")
    finally:
        await db.close()


async def _fill_journal(db: Database, path: Path) -> None:
    cap = 300  # trimmed every 3 inserts
    assert trim_step(cap) == 3
    sizes, dropped = [], []
    for i in range(1, 310):
        entry = Entry(
            messenger_id="demo",
            endpoint="identification.create",
            method="POST",
            path="/operators/alfa/v1/identification-requests",
            operator_id="alfa",
            msisdn="+79011110000",
            http_status=201,
            received_at=i,
        )
        dropped.append(await db.run(functools.partial(add, entry=entry, cap=cap)))
        sizes.append(rows(path, "SELECT count(*) FROM journal"))
    assert max(sizes) <= cap + trim_step(cap) - 1
    assert sizes[299:] == [300, 301, 302, 300, 301, 302, 300, 301, 302, 300]
    assert sum(dropped) == 309 - 300
    oldest = rows(path, "SELECT min(received_at) FROM journal")
    assert oldest == 309 - 300 + 1  # exactly the oldest were dropped
