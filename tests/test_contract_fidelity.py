"""Decree fidelity: no contract ends silently, cursors belong to their feed, resets wake polls."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from operator_sim.fixture import default_fixture_path
from operator_sim.server import create_app
from operator_sim.settings import Settings
from tests.conftest import CODES_PATH, DEMO_KEY, IR_PATH, AiohttpClient, Sim

NUMBER = "+79011112233"
CODE = "code-0123456789"
LONG_POLL_BOUND = 20  # seconds: the polls below ask for 60; a bound for a busy machine


def _subscriber(**changes: Any) -> dict[str, Any]:
    return {
        "msisdn": NUMBER,
        "operator_id": "alfa",
        "full_name": "Тестов Тест",
        "birth_date": "1990-01-01",
        "passport": "4500 000000",
        **changes,
    }


async def _identified(sim: Sim, key: str = DEMO_KEY, code: str = CODE) -> None:
    request = await sim.identify_ok(NUMBER, key=key)
    resp = await sim.register_code(request["id"], code, key=key)
    assert resp.status == 201, await resp.text()


async def _events(sim: Sim, key: str = DEMO_KEY, operator: str = "alfa") -> list[dict[str, Any]]:
    resp = await sim.client.get(f"/operators/{operator}/v1/events", headers=sim.auth(key))
    assert resp.status == 200, await resp.text()
    return [e for e in (await resp.json())["events"] if e["type"].startswith("subscriber.")]


async def _code_is_live(sim: Sim, code: str = CODE, key: str = DEMO_KEY) -> bool:
    resp = await sim.client.delete(
        f"{CODES_PATH.format(operator='alfa')}/{code}", headers=sim.auth(key)
    )
    assert resp.status in (204, 404)
    return resp.status == 204


# --- an upsert that ends a contract goes the way of /terminate and /port ----------------


async def test_an_upsert_that_terminates_the_contract_notifies_and_ends_the_code(
    sim: Sim,
) -> None:
    await sim.add_subscribers(_subscriber())
    await _identified(sim)
    result = await sim.admin_ok(
        "POST", "/subscribers", {"subscribers": [_subscriber(status="terminated")]}
    )
    assert result["events"] == 1
    [event] = await _events(sim)
    assert event["type"] == "subscriber.contract_terminated"
    assert event["data"] == {"msisdn": NUMBER, "code": CODE}
    assert not await _code_is_live(sim)
    stored = await sim.admin_ok("GET", f"/subscribers/{NUMBER}")
    assert stored["status"] == "terminated"


async def test_an_upsert_that_moves_the_number_is_a_port(sim: Sim) -> None:
    await sim.add_subscribers(_subscriber())
    await _identified(sim)
    result = await sim.admin_ok(
        "POST", "/subscribers", {"subscribers": [_subscriber(operator_id="beta")]}
    )
    assert result["events"] == 1
    [event] = await _events(sim)  # from the operator the number left
    assert event["type"] == "subscriber.number_ported"
    assert not await _code_is_live(sim)
    routed = await (
        await sim.client.get(f"/v1/routing/{NUMBER}", headers=sim.auth(DEMO_KEY))
    ).json()
    assert routed["operator_id"] == "beta"


async def test_an_upsert_that_does_both_is_one_port_per_code(sim: Sim) -> None:
    other = await sim.new_messenger("other")
    await sim.add_subscribers(_subscriber())
    await _identified(sim)
    await _identified(sim, key=other["api_key"], code="other-code-0001")
    result = await sim.admin_ok(
        "POST",
        "/subscribers",
        {"subscribers": [_subscriber(operator_id="beta", status="terminated")]},
    )
    assert result["events"] == 2
    for key in (DEMO_KEY, other["api_key"]):
        assert [e["type"] for e in await _events(sim, key)] == ["subscriber.number_ported"]


async def test_an_upsert_that_changes_nothing_that_ends_a_contract_notifies_nobody(
    sim: Sim,
) -> None:
    await sim.add_subscribers(_subscriber())
    await _identified(sim)
    result = await sim.admin_ok(
        "POST", "/subscribers", {"subscribers": [_subscriber(full_name="Другое Имя")]}
    )
    assert result["events"] == 0
    assert await _events(sim) == []
    assert await _code_is_live(sim)


async def test_a_fixture_that_ends_a_contract_notifies_when_applied(
    aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    db = tmp_path / "fx.db"
    base = default_fixture_path().read_text(encoding="utf-8")
    row = (
        '\n[[subscribers]]\nmsisdn = "+79011112233"\noperator_id = "alfa"\n'
        'full_name = "Тестов Тест"\nbirth_date = "1990-01-01"\npassport = "4500 000000"\n'
    )
    first, second = tmp_path / "first.toml", tmp_path / "second.toml"
    first.write_text(base + row, encoding="utf-8")
    second.write_text(base + row + 'status = "terminated"\n', encoding="utf-8")

    client = await aiohttp_client(create_app(Settings(db=db, clock="manual", fixture=first)))
    sim = Sim(client, db)
    await _identified(sim)
    await client.close()

    client = await aiohttp_client(create_app(Settings(db=db, clock="manual", fixture=second)))
    sim = Sim(client, db)
    [event] = await _events(sim)
    assert event["type"] == "subscriber.contract_terminated"
    assert not await _code_is_live(sim)


# --- feed cursors are bound to what issued them -----------------------------------------


async def _feed(sim: Sim, after: str | None, *, key: str = DEMO_KEY, operator: str = "alfa") -> Any:
    query = "" if after is None else f"?after={after}"
    return await sim.client.get(f"/operators/{operator}/v1/events{query}", headers=sim.auth(key))


async def _cursor(sim: Sim, *, key: str = DEMO_KEY, operator: str = "alfa") -> str:
    resp = await _feed(sim, None, key=key, operator=operator)
    cursor: str = (await resp.json())["next_cursor"]
    return cursor


async def _refused(resp: Any) -> None:
    assert resp.status == 409, await resp.text()
    problem = await resp.json()
    assert problem["code"] == "cursor_unknown"
    assert "without after" in problem["detail"]


async def test_a_made_up_cursor_is_409_and_events_after_it_are_not_lost(sim: Sim) -> None:
    await _refused(await _feed(sim, "c5"))
    await _refused(await _feed(sim, "c5.AAAAAAAAAAAAAAAA"))
    await sim.identify_ok("+79000000001")
    resp = await _feed(sim, None)  # the messenger restarts from the oldest event
    assert len((await resp.json())["events"]) == 1


async def test_a_cursor_that_is_not_one_at_all_stays_422(sim: Sim) -> None:
    resp = await _feed(sim, "not-a-cursor")
    assert resp.status == 422
    assert (await resp.json())["code"] == "validation_error"


async def test_a_cursor_is_refused_to_another_messenger_and_on_another_feed(sim: Sim) -> None:
    other = await sim.new_messenger("other")
    await sim.identify_ok("+79000000001")
    mine = await _cursor(sim)
    await _refused(await _feed(sim, mine, key=other["api_key"]))
    await _refused(await _feed(sim, mine, operator="beta"))
    assert (await _feed(sim, mine)).status == 200


async def test_a_cursor_from_another_database_is_refused(
    sim: Sim, aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    foreign = await _cursor(sim)
    other_db = tmp_path / "other.db"
    other = Sim(await aiohttp_client(create_app(Settings(db=other_db, clock="manual"))), other_db)
    await _refused(await _feed(other, foreign))


async def test_cursors_issued_before_a_reset_are_refused(sim: Sim) -> None:
    await sim.identify_ok("+79000000001")
    before_messenger_reset = await _cursor(sim)
    assert (await sim.admin("POST", "/messengers/demo/reset")).status == 204
    await _refused(await _feed(sim, before_messenger_reset))
    before_reset = await _cursor(sim)
    assert (await sim.admin("POST", "/reset")).status == 204
    await _refused(await _feed(sim, before_reset))
    assert (await _feed(sim, await _cursor(sim))).status == 200


async def test_a_cursor_survives_a_restart_on_the_same_database(
    aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    db = tmp_path / "same.db"
    client = await aiohttp_client(create_app(Settings(db=db, clock="manual")))
    sim = Sim(client, db)
    await sim.identify_ok("+79000000001")
    cursor = await _cursor(sim)
    await client.close()
    sim = Sim(await aiohttp_client(create_app(Settings(db=db, clock="manual"))), db)
    await sim.identify_ok("+79000000001")
    resp = await _feed(sim, cursor)
    assert resp.status == 200
    assert len((await resp.json())["events"]) == 1  # only the one after the cursor


# --- a reset wakes the long polls it makes pointless ---------------------------------------


async def test_a_messenger_reset_wakes_its_long_poll_on_a_request(sim: Sim) -> None:
    created = await sim.identify_ok("+79000000005")  # never answered
    poll = asyncio.ensure_future(
        sim.client.get(
            f"{IR_PATH.format(operator='alfa')}/{created['id']}",
            headers={**sim.auth(DEMO_KEY), "Prefer": "wait=60"},
        )
    )
    await _until_polling(sim)
    assert (await sim.admin("POST", "/messengers/demo/reset")).status == 204
    async with asyncio.timeout(LONG_POLL_BOUND):
        resp = await poll
    assert resp.status == 404


async def test_a_reset_wakes_a_long_poll_on_the_feed(sim: Sim) -> None:
    cursor = await _cursor(sim)
    poll = asyncio.ensure_future(
        sim.client.get(
            f"/operators/alfa/v1/events?after={cursor}",
            headers={**sim.auth(DEMO_KEY), "Prefer": "wait=60"},
        )
    )
    await _until_polling(sim)
    assert (await sim.admin("POST", "/reset")).status == 204
    async with asyncio.timeout(LONG_POLL_BOUND):
        resp = await poll
    await _refused(resp)  # its cursor went with the reset


async def _until_polling(sim: Sim) -> None:
    from operator_sim.server.services import SERVICES

    app = sim.client.app
    assert app is not None
    for _ in range(5000):  # bounded poll: until the long poll is parked
        if len(app[SERVICES].waiters) > 0:
            return
        await asyncio.sleep(0.001)
    raise AssertionError("the long poll never parked")
