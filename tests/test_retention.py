"""Retention (``--retention``): what is pruned, what is kept, and what stays valid.

Time moves by advancing the manual clock; an advance wakes the pruning loop, and the
tests wait (bounded) for what it removes. Where a test shows that something is *kept*,
it first waits for a witness that the same pass looks at no earlier to be removed:
events are looked at in feed position order, so the kept event is made first; requests
in id order, which is creation time but random within a millisecond, and a unit of work
looks at 200 of them at once, so a kept request and its witness (fewer than 200 rows in
all) are looked at by the same unit.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from operator_sim.server import create_app
from operator_sim.server.services import SERVICES, Services
from operator_sim.settings import Settings
from tests.conftest import CODES_PATH, DEMO_KEY, IR_PATH, AiohttpClient, Receiver, Sim

PRESENT = "+79000000001"
NEVER_ANSWERED = "+79000000005"
LATE_ANSWER = "+79000000006"  # expires at 20 minutes, answered at 25
HOUR = 3600

Make = Callable[[str], Awaitable[Sim]]


@pytest.fixture
def make(aiohttp_client: AiohttpClient, tmp_path: Path) -> Make:
    """A server on the default fixture and a manual clock with the given ``--retention``."""

    async def build(retention: str) -> Sim:
        db = tmp_path / f"retention-{retention}.db"
        app = create_app(Settings(db=db, clock="manual", retention=retention))
        return Sim(await aiohttp_client(app), db)

    return build


def _services(sim: Sim) -> Services:
    app = sim.client.app
    assert app is not None
    services: Services = app[SERVICES]
    return services


async def _until(check: Callable[[], Awaitable[bool]], what: str, seconds: float = 15.0) -> None:
    """Poll ``check`` until it holds; fail after about ``seconds`` (real time)."""
    for _ in range(int(seconds / 0.02)):
        if await check():
            return
        await asyncio.sleep(0.02)
    assert await check(), what


async def _status(sim: Sim, request_id: str, *, key: str = DEMO_KEY) -> int:
    resp = await sim.client.get(
        f"{IR_PATH.format(operator='alfa')}/{request_id}", headers=sim.auth(key)
    )
    return resp.status


async def _pruned(sim: Sim, request_id: str, *, key: str = DEMO_KEY) -> None:
    async def gone() -> bool:
        return await _status(sim, request_id, key=key) == 404

    await _until(gone, f"{request_id} was not pruned")


async def _feed(sim: Sim, key: str, after: str | None = None) -> dict[str, Any]:
    query = "" if after is None else f"?after={after}"
    resp = await sim.client.get(f"/operators/alfa/v1/events{query}", headers=sim.auth(key))
    assert resp.status == 200, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def _pruned_counts(sim: Sim) -> dict[str, float]:
    text = await (await sim.client.get("/metrics")).text()
    return {
        table: float(value)
        for table, value in re.findall(
            r'^operator_sim_retention_pruned_total\{table="(\w+)"\} (\S+)$', text, re.M
        )
    }


async def _counted(sim: Sim, **expected: int) -> None:
    """Wait until the retention metric counts ``expected`` rows per table."""

    async def matches() -> bool:
        counts = await _pruned_counts(sim)
        return all(counts.get(table) == n for table, n in expected.items())

    await _until(matches, f"the metric does not count {expected}")


async def test_finished_requests_older_than_the_retention_are_pruned(make: Make) -> None:
    sim = await make("PT1H")
    old = await sim.identify_ok(PRESENT)
    await sim.advance(50 * 60)
    recent = await sim.identify_ok(PRESENT)
    assert (await sim.get_request(old["id"]))["status"] == "answered"
    await sim.advance(20 * 60)  # old is 70 minutes old, recent 20
    await _pruned(sim, old["id"])
    # The pass that removed it cut at "now - 1 hour" or earlier: the recent one is kept.
    assert (await sim.get_request(recent["id"]))["status"] == "answered"
    # A pruned request is unknown, to codes as to GETs.
    resp = await sim.register_code(old["id"], "code-for-a-pruned-request")
    assert resp.status == 404
    # With its identification.answered event (the demo messenger has no webhook).
    await _counted(sim, identification_requests=1, events=1)
    # The journal is capped separately: the POST is still there, without its request.
    journal = await sim.admin_ok("GET", "/requests")
    entry = next(e for e in journal["requests"] if e["id"] == old["id"])
    assert entry["status"] is None


async def test_pending_requests_are_kept_until_they_expire(make: Make) -> None:
    sim = await make("PT5M")
    pending = await sim.identify_ok(NEVER_ANSWERED)  # expires after 20 minutes
    witness = await sim.identify_ok(PRESENT)
    await sim.advance(10 * 60)
    await _pruned(sim, witness["id"])
    assert (await sim.get_request(pending["id"]))["status"] == "pending"
    await sim.advance(15 * 60)  # expired at 20 minutes: finished, and older than 5
    await _pruned(sim, pending["id"])


async def test_requests_with_a_scheduled_late_answer_are_kept(make: Make) -> None:
    sim = await make("PT5M")
    late = await sim.identify_ok(LATE_ANSWER)
    await sim.advance(60)
    witness = await sim.identify_ok(PRESENT)
    await sim.advance(21 * 60)  # 22 minutes: expired at 20, the late answer due at 25
    await _pruned(sim, witness["id"])
    assert (await sim.get_request(late["id"]))["status"] == "expired"
    await sim.advance(5 * 60)  # answered late at 25 minutes: nothing left to do
    await _pruned(sim, late["id"])


async def test_a_request_a_live_code_points_to_is_kept(make: Make) -> None:
    sim = await make("PT1H")
    coded = await sim.identify_ok(PRESENT)
    assert (await sim.register_code(coded["id"], "user-12345678")).status == 201
    witness = await sim.identify_ok(PRESENT)
    await sim.advance(2 * HOUR)
    await _pruned(sim, witness["id"])
    assert (await sim.get_request(coded["id"]))["status"] == "answered"
    # Once the code goes, so does the request.
    resp = await sim.client.delete(
        f"{CODES_PATH.format(operator='alfa')}/user-12345678", headers=sim.auth(DEMO_KEY)
    )
    assert resp.status == 204
    await sim.advance(1)
    await _pruned(sim, coded["id"])


async def test_kept_rows_are_looked_at_again_by_full_passes(make: Make) -> None:
    sim = await make("PT1H")
    coded = await sim.identify_ok(PRESENT)
    assert (await sim.register_code(coded["id"], "user-12345678")).status == 201
    witness = await sim.identify_ok(PRESENT)
    await sim.advance(2 * HOUR)
    await _pruned(sim, witness["id"])
    resp = await sim.client.delete(
        f"{CODES_PATH.format(operator='alfa')}/user-12345678", headers=sim.auth(DEMO_KEY)
    )
    assert resp.status == 204
    # The passes between full ones look only at what became old since the last pass
    # (what the load added), not again at every row kept...
    retention = _services(sim).retention
    assert sum((await retention.prune(full=False)).by_table().values()) == 0
    assert (await sim.get_request(coded["id"]))["status"] == "answered"
    # ...which a full pass does: after a clock advance, or within a minute.
    pruned = await retention.prune()
    assert pruned.identification_requests == 1
    assert await _status(sim, coded["id"]) == 404


async def test_the_idempotency_key_goes_with_its_request(make: Make) -> None:
    sim = await make("PT1H")
    kept = await sim.identify_ok(PRESENT, headers={"Idempotency-Key": "kept-key"})
    assert (await sim.register_code(kept["id"], "user-87654321")).status == 201
    first = await sim.identify_ok(PRESENT, headers={"Idempotency-Key": "pruned-key"})
    await sim.advance(2 * HOUR)
    await _pruned(sim, first["id"])
    await _counted(sim, identification_requests=1, idempotency_keys=1)
    # The key is free again: the same key makes a new request rather than replaying...
    resp = await sim.identify(PRESENT, headers={"Idempotency-Key": "pruned-key"})
    assert resp.status == 201
    again = await resp.json()
    assert again["id"] != first["id"]
    assert "Idempotent-Replayed" not in resp.headers
    # ...while the key of a request that is kept still replays it.
    resp = await sim.identify(PRESENT, headers={"Idempotency-Key": "kept-key"})
    assert resp.status == 201
    assert (await resp.json())["id"] == kept["id"]
    assert resp.headers["Idempotent-Replayed"] == "true"


async def test_events_are_kept_while_their_webhook_delivery_is_pending(
    make: Make, receiver: Receiver
) -> None:
    sim = await make("PT1H")
    hooked = await sim.new_messenger("hooked", webhook_url=receiver.url)
    receiver.statuses = [500] * 5  # attempts 1 to 5 fail; the 6th, 5 hours on, succeeds
    pending = await sim.identify_ok(PRESENT, key=hooked["api_key"])
    await sim.advance(0)  # attempt 1
    witness = await sim.identify_ok(PRESENT)  # the demo messenger has no webhook
    assert len((await _feed(sim, DEMO_KEY))["events"]) == 1
    await sim.advance(2 * HOUR)

    async def witness_event_gone() -> bool:
        return not (await _feed(sim, DEMO_KEY))["events"]

    await _until(witness_event_gone, "the settled event was not pruned")
    await _pruned(sim, witness["id"])
    # The hooked messenger's request is finished and pruned; its event is not.
    await _pruned(sim, pending["id"], key=hooked["api_key"])
    events = (await _feed(sim, hooked["api_key"]))["events"]
    assert len(events) == 1
    deliveries = await sim.admin_ok("GET", "/deliveries?messenger_id=hooked")
    (delivery,) = deliveries["deliveries"]
    assert delivery["event_id"] == events[0]["id"]
    assert delivery["webhook"]["state"] == "pending"
    attempts = len(delivery["webhook"]["attempts"])
    assert attempts >= 2

    await sim.advance(4 * HOUR)  # the 6th attempt (about 5 hours after the event) succeeds

    async def hooked_event_gone() -> bool:
        return not (await _feed(sim, hooked["api_key"]))["events"]

    await _until(hooked_event_gone, "the delivered event was not pruned")
    assert (await sim.admin_ok("GET", "/deliveries?messenger_id=hooked"))["deliveries"] == []
    assert len(receiver.received) >= attempts + 1
    await _counted(sim, events=2, delivery_attempts=len(receiver.received))


async def test_a_cursor_into_a_pruned_range_continues_with_the_oldest_event_kept(
    make: Make,
) -> None:
    sim = await make("PT1H")
    for _ in range(3):
        await sim.identify_ok(PRESENT)
    first = await _feed(sim, DEMO_KEY)
    assert len(first["events"]) == 3
    cursor_one = await sim.client.get(
        "/operators/alfa/v1/events?limit=1", headers=sim.auth(DEMO_KEY)
    )
    assert cursor_one.status == 200
    after_one = (await cursor_one.json())["next_cursor"]
    after_all = first["next_cursor"]
    await sim.advance(2 * HOUR)
    fresh = await sim.identify_ok(PRESENT)

    async def only_the_fresh_event() -> bool:
        return len((await _feed(sim, DEMO_KEY))["events"]) == 1

    await _until(only_the_fresh_event, "the old events were not pruned")
    for cursor in (after_one, after_all):
        page = await _feed(sim, DEMO_KEY, after=cursor)
        assert [e["data"]["id"] for e in page["events"]] == [fresh["id"]]
        # And the cursor the page returns carries on from there.
        assert (await _feed(sim, DEMO_KEY, after=page["next_cursor"]))["events"] == []


async def test_retention_zero_keeps_everything(make: Make) -> None:
    sim = await make("0")
    services = _services(sim)
    assert services.retention.enabled is False
    old = await sim.identify_ok(PRESENT, headers={"Idempotency-Key": "forever"})
    await sim.advance(30 * 24 * HOUR)
    pruned = await services.retention.prune()  # a pass, run here rather than waited for
    assert sum(pruned.by_table().values()) == 0
    assert (await sim.get_request(old["id"]))["status"] == "answered"
    assert len((await _feed(sim, DEMO_KEY))["events"]) == 1
    resp = await sim.identify(PRESENT, headers={"Idempotency-Key": "forever"})
    assert (await resp.json())["id"] == old["id"]
    assert await _pruned_counts(sim) == {}


async def test_a_pass_goes_through_many_units_and_counts_per_table(make: Make) -> None:
    sim = await make("PT1H")
    kept = await sim.identify_ok(PRESENT)
    assert (await sim.register_code(kept["id"], "user-00000001")).status == 201
    # More than two units' worth of rows (a unit looks at 200).
    ids = [(await sim.identify_ok(f"+7950{i:07d}"))["id"] for i in range(450)]
    await sim.advance(2 * HOUR)
    await _counted(sim, identification_requests=450, events=451)
    for request_id in ids:
        assert await _status(sim, request_id) == 404
    assert (await sim.get_request(kept["id"]))["status"] == "answered"
    # Nothing is left to do at this time.
    assert sum((await _services(sim).retention.prune()).by_table().values()) == 0


def test_the_retention_setting_takes_iso_8601_or_seconds(monkeypatch: Any) -> None:
    assert Settings().retention == timedelta(days=7)
    assert Settings(retention="PT10M").retention == timedelta(minutes=10)
    assert Settings(retention="600").retention == timedelta(minutes=10)
    assert Settings(retention="0").retention == timedelta(0)
    monkeypatch.setenv("OPERATOR_SIM_RETENTION", "P1D")
    assert Settings().retention == timedelta(days=1)
    for bad in ("-1", "soon", "P-1D"):
        with pytest.raises(ValidationError):
            Settings(retention=bad)
