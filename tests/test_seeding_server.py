"""Seeding next to a running server: it keeps answering, magic numbers work, lookups index."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

from operator_sim.seeding import SeedSummary, seed_database
from operator_sim.server import create_app
from operator_sim.settings import Settings
from operator_sim.store import open_database, subscribers
from operator_sim.store.bulk import SUBSCRIBER_ROW_COLUMNS, read_subscribers
from operator_sim.store.inline import raw_connection, run_batch
from tests.conftest import DEMO_KEY, AiohttpClient, Sim

COLUMN = {name: i for i, name in enumerate(SUBSCRIBER_ROW_COLUMNS)}
LARGE_FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "large.toml"

# Two operators over 1,100 numbers, the demo messenger, two fixture subscribers and an
# exact-number rule: seeding can fill it completely around the magic numbers.
TINY_FIXTURE = """
name = "tiny"
demo_admin_token = "demo-admin-token-not-secret"

[[operators]]
id = "one"
name = "One"
ranges = [{ from = "+79000000000", to = "+79000000499" }]

[[operators]]
id = "two"
name = "Two"
ranges = [
  { from = "+79000000500", to = "+79000000999" },
  { from = "+791000000", to = "+791000099" },
]

[[messengers]]
id = "demo"
name = "Demo Messenger"
api_key = "demo-messenger-key-not-secret"
demo = true

[[subscribers]]
msisdn = "+79000000001"
operator_id = "one"
full_name = "Иванов Иван Иванович"
birth_date = "1985-04-12"
passport = "4510 123456"

[[subscribers]]
msisdn = "+79000000003"
operator_id = "one"
full_name = "Петрова Анна Сергеевна"
data_complete = false

[[rules]]
id = "never"
match = { msisdn = "+79000000555" }
action = { type = "never" }
"""


async def _start(aiohttp_client: AiohttpClient, db: Path, fixture: Path | None = None) -> Sim:
    app = create_app(Settings(db=db, fixture=fixture, clock="manual"))
    return Sim(await aiohttp_client(app), db)


def _first(rows: list[tuple[Any, ...]], *, status: str, complete: int) -> tuple[Any, ...]:
    return next(
        r for r in rows if r[COLUMN["status"]] == status and r[COLUMN["data_complete"]] == complete
    )


async def test_server_keeps_answering_and_writing_while_seeding(
    aiohttp_client: AiohttpClient, db_path: Path
) -> None:
    sim = await _start(aiohttp_client, db_path)
    batch = 2_000
    first_batch_committed = threading.Event()
    server_served = threading.Event()

    def progress(done: int, _total: int) -> None:
        # Seeding pauses after its first batch until the server has answered and
        # written in between: interleaving is guaranteed, not left to timing.
        if done == batch:
            first_batch_committed.set()
            server_served.wait(timeout=60)

    seeding = asyncio.create_task(
        asyncio.to_thread(
            seed_database,
            db_path=db_path,
            count=20_000,
            batch_size=batch,
            incomplete_share=0.1,
            terminated_share=0.1,
            progress=progress,
        )
    )
    try:
        assert await asyncio.to_thread(first_batch_committed.wait, 60)
        # Mid-seeding: a magic number, a row of the committed batch, and an admin write.
        assert (await sim.identify_ok("+79000000001"))["result"] == "present"
        present = _first(read_subscribers(db_path, source="seed"), status="active", complete=1)
        body = await sim.identify_ok(present[0], operator=present[1])
        assert body["result"] == "present"
        await sim.add_subscribers({"msisdn": "+79161112233", "operator_id": "beta"})
    finally:
        server_served.set()
    while not seeding.done():
        assert (await sim.identify_ok("+79000000001"))["result"] == "present"
    summary: SeedSummary = await seeding
    assert summary.count == 20_000
    rows = read_subscribers(db_path, source="seed")
    assert len(rows) == 20_000
    assert "+79161112233" not in {r[0] for r in rows}


async def test_seeded_subscribers_are_answered_by_their_state(
    aiohttp_client: AiohttpClient, db_path: Path
) -> None:
    sim = await _start(aiohttp_client, db_path)
    await asyncio.to_thread(
        seed_database, db_path=db_path, count=2_000, incomplete_share=0.2, terminated_share=0.2
    )
    rows = read_subscribers(db_path, source="seed")
    present = _first(rows, status="active", complete=1)
    incomplete = _first(rows, status="active", complete=0)
    terminated = _first(rows, status="terminated", complete=1)
    for row, expected in ((present, "present"), (incomplete, "absent"), (terminated, "absent")):
        body = await sim.identify_ok(row[0], operator=row[1])
        assert (body["status"], body["result"]) == ("answered", expected), row
    other = next(op for op in ("alfa", "beta") if op != present[1])
    assert (await sim.identify_ok(present[0], operator=other))["result"] == "absent"
    routing = await sim.client.get(f"/v1/routing/{present[0]}", headers=sim.auth(DEMO_KEY))
    assert await routing.json() == {
        "msisdn": present[0],
        "operator_id": present[1],
        "ported": False,
    }


async def test_filling_the_ranges_leaves_magic_numbers_alone(
    aiohttp_client: AiohttpClient, db_path: Path, tmp_path: Path
) -> None:
    fixture = tmp_path / "tiny.toml"
    fixture.write_text(TINY_FIXTURE, encoding="utf-8")
    sim = await _start(aiohttp_client, db_path, fixture)
    before = read_subscribers(db_path, source="fixture")
    assert [r[0] for r in before] == ["+79000000001", "+79000000003"]
    # 1,100 numbers minus two reserved blocks of ten: fill every free one.
    summary = await asyncio.to_thread(
        seed_database, db_path=db_path, count=1_080, fixture_path=fixture
    )
    assert summary.count == 1_080
    assert read_subscribers(db_path, source="fixture") == before
    seeded = {r[0] for r in read_subscribers(db_path, source="seed")}
    assert seeded.isdisjoint({f"+7900000000{d}" for d in range(10)})
    assert seeded.isdisjoint({f"+7900000055{d}" for d in range(10)})
    assert (await sim.identify_ok("+79000000001", operator="one"))["result"] == "present"
    for absent in ("+79000000002", "+79000000003"):
        assert (await sim.identify_ok(absent, operator="one"))["result"] == "absent"
    assert (await sim.identify_ok("+79000000555", operator="two"))["status"] == "pending"


async def test_point_lookup_uses_the_primary_key_index(db_path: Path) -> None:
    await asyncio.to_thread(seed_database, db_path=db_path, count=2_000)
    msisdn = read_subscribers(db_path, source="seed")[1234][0]
    await (await open_database(db_path)).close()  # migrated, as the server opens it
    raw = raw_connection(db_path)
    try:
        statements: list[str] = []
        # Capture the very statement the server's lookup runs, then ask for its plan.
        raw.set_trace_callback(statements.append)
        [(ran, standing)] = run_batch(
            raw, [lambda conn: subscribers.subscriber_standing(conn, msisdn)], write=False
        )
        (lookup,) = [s for s in statements if "FROM subscribers" in s]
        plan = [str(row[3]) for row in raw.execute(f"EXPLAIN QUERY PLAN {lookup}")]
    finally:
        raw.close()
    assert ran
    assert standing is not None
    assert plan == ["SEARCH subscribers USING PRIMARY KEY (msisdn=?)"]


async def test_large_fixture_serves_its_operators_and_magic_numbers(
    aiohttp_client: AiohttpClient, db_path: Path
) -> None:
    large = LARGE_FIXTURE
    sim = await _start(aiohttp_client, db_path, large)
    operators = (await sim.admin_ok("GET", "/operators"))["operators"]
    assert [op["id"] for op in operators] == ["sever", "yug", "volga", "ural", "sibir", "baikal"]
    assert sum(len(op["ranges"]) for op in operators) == 297
    await asyncio.to_thread(seed_database, db_path=db_path, count=3_000, fixture_path=large)
    assert (await sim.identify_ok("+79000000001", operator="sever"))["result"] == "present"
    assert (await sim.identify_ok("+79000000002", operator="sever"))["result"] == "absent"
    # A number in an MVNO sub-block routes to the MVNO, not to the block's owner.
    routing = await sim.client.get("/v1/routing/+79012200123", headers=sim.auth(DEMO_KEY))
    assert (await routing.json())["operator_id"] == "baikal"
