"""Termination, porting and the pull feed: one event per code, to the right messenger only."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

from operator_sim.server.services import SERVICES
from tests.conftest import DEMO_KEY, Sim

NUMBER = "+79000000001"


def _ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def feed(
    sim: Sim, key: str = DEMO_KEY, operator: str = "alfa", query: str = "", **headers: str
) -> dict[str, Any]:
    resp = await sim.client.get(
        f"/operators/{operator}/v1/events{query}", headers={**sim.auth(key), **headers}
    )
    assert resp.status == 200, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


def of_type(page: dict[str, Any], type_: str) -> list[dict[str, Any]]:
    return [e for e in page["events"] if e["type"] == type_]


async def identified(sim: Sim, code: str, key: str = DEMO_KEY, msisdn: str = NUMBER) -> str:
    request = await sim.identify_ok(msisdn, key=key)
    assert request["result"] == "present"
    resp = await sim.register_code(request["id"], code, key=key)
    assert resp.status == 201, await resp.text()
    return str(request["id"])


async def test_terminate_emits_one_event_per_code_to_its_messenger_only(sim: Sim) -> None:
    other = await sim.new_messenger("other")
    bystander = await sim.new_messenger("bystander")
    await identified(sim, "demo-code-0001")
    await identified(sim, "other-code-0001", key=other["api_key"])

    result = await sim.admin_ok("POST", f"/subscribers/{NUMBER}/terminate")
    assert result == {"msisdn": NUMBER, "operator_id": "alfa", "status": "terminated", "events": 2}

    mine = of_type(await feed(sim), "subscriber.contract_terminated")
    theirs = of_type(await feed(sim, other["api_key"]), "subscriber.contract_terminated")
    assert [e["data"] for e in mine] == [{"msisdn": NUMBER, "code": "demo-code-0001"}]
    assert [e["data"] for e in theirs] == [{"msisdn": NUMBER, "code": "other-code-0001"}]
    assert (await feed(sim, bystander["api_key"]))["events"] == []
    event = mine[0]
    assert event["operator_id"] == "alfa"
    assert _ts(event["deliver_by"]) - _ts(event["occurred_at"]) == timedelta(hours=24)
    assert set(event) == {"id", "type", "operator_id", "occurred_at", "deliver_by", "data"}


async def test_after_termination_the_number_is_absent_and_codes_are_refused(sim: Sim) -> None:
    request_id = await identified(sim, "demo-code-0002")
    await sim.admin_ok("POST", f"/subscribers/{NUMBER}/terminate")
    assert (await sim.identify_ok(NUMBER))["result"] == "absent"
    fresh = await sim.identify_ok("+79000000009")  # a timely present answered later...
    await sim.admin_ok("POST", "/subscribers/+79000000009/terminate")
    await sim.advance(300)  # ...is absent, since the contract ended before the answer
    assert (await sim.get_request(fresh["id"]))["result"] == "absent"
    # The old request was a timely present, but the contract has ended since.
    assert (await sim.register_code(request_id, "demo-code-0003")).status == 409


async def test_terminating_twice_notifies_once(sim: Sim) -> None:
    await identified(sim, "demo-code-0004")
    first = await sim.admin_ok("POST", f"/subscribers/{NUMBER}/terminate")
    second = await sim.admin_ok("POST", f"/subscribers/{NUMBER}/terminate", {})
    assert (first["events"], second["events"]) == (1, 0)
    assert len(of_type(await feed(sim), "subscriber.contract_terminated")) == 1


async def test_terminate_unknown_subscriber_is_404(sim: Sim) -> None:
    resp = await sim.admin("POST", "/subscribers/+79000000002/terminate")
    assert resp.status == 404


async def test_port_moves_routing_and_answers_and_notifies_from_the_old_operator(sim: Sim) -> None:
    other = await sim.new_messenger("other")
    await identified(sim, "demo-code-0005")
    await identified(sim, "other-code-0005", key=other["api_key"])

    result = await sim.admin_ok("POST", f"/subscribers/{NUMBER}/port", {"to_operator_id": "beta"})
    assert result == {"msisdn": NUMBER, "operator_id": "beta", "status": "active", "events": 2}

    routing = await sim.client.get(f"/v1/routing/{NUMBER}", headers=sim.auth(DEMO_KEY))
    assert await routing.json() == {"msisdn": NUMBER, "operator_id": "beta", "ported": True}
    assert (await sim.identify_ok(NUMBER, operator="alfa"))["result"] == "absent"
    renewed = await sim.identify_ok(NUMBER, operator="beta")
    assert renewed["result"] == "present"
    assert (await sim.register_code(renewed["id"], "demo-code-0006", operator="beta")).status == 201

    mine = of_type(await feed(sim, operator="alfa"), "subscriber.number_ported")
    assert [(e["operator_id"], e["data"]) for e in mine] == [
        ("alfa", {"msisdn": NUMBER, "code": "demo-code-0005"})
    ]
    theirs = of_type(await feed(sim, other["api_key"], operator="alfa"), "subscriber.number_ported")
    assert [e["data"]["code"] for e in theirs] == ["other-code-0005"]
    assert of_type(await feed(sim, operator="beta"), "subscriber.number_ported") == []


async def test_port_refusals(sim: Sim) -> None:
    same = await sim.admin("POST", f"/subscribers/{NUMBER}/port", {"to_operator_id": "alfa"})
    assert same.status == 409
    unknown_op = await sim.admin("POST", f"/subscribers/{NUMBER}/port", {"to_operator_id": "omega"})
    assert unknown_op.status == 422
    unknown_sub = await sim.admin(
        "POST", "/subscribers/+79000000002/port", {"to_operator_id": "beta"}
    )
    assert unknown_sub.status == 404
    bad_body = await sim.admin("POST", f"/subscribers/{NUMBER}/port", {"to": "beta"})
    assert bad_body.status == 422
    routing = await sim.client.get(f"/v1/routing/{NUMBER}", headers=sim.auth(DEMO_KEY))
    assert (await routing.json())["operator_id"] == "alfa"


async def test_answers_and_expiries_are_events(sim: Sim) -> None:
    answered = await sim.identify_ok(NUMBER)
    pending = await sim.identify_ok("+79000000005")
    await sim.advance(1200)
    events = of_type(await feed(sim), "identification.answered")
    assert [(e["data"]["id"], e["data"]["status"], e["data"]["result"]) for e in events] == [
        (answered["id"], "answered", "present"),
        (pending["id"], "expired", None),
    ]
    assert events[0]["data"] == answered
    assert events[1]["occurred_at"] == events[1]["data"]["due_at"]


async def test_feed_pages_with_an_opaque_cursor_in_a_stable_order(sim: Sim) -> None:
    ids = [(await sim.identify_ok(NUMBER))["id"] for _ in range(5)]
    first = await feed(sim, query="?limit=2")
    second = await feed(sim, query=f"?limit=2&after={first['next_cursor']}")
    third = await feed(sim, query=f"?limit=2&after={second['next_cursor']}")
    empty = await feed(sim, query=f"?after={third['next_cursor']}")
    seen = [e["data"]["id"] for page in (first, second, third) for e in page["events"]]
    assert seen == ids
    assert empty == {"events": [], "next_cursor": third["next_cursor"]}
    again = await feed(sim, query=f"?limit=2&after={first['next_cursor']}")
    assert again == second  # at-least-once: a cursor can be re-read


async def test_feed_is_per_messenger_and_per_operator(sim: Sim) -> None:
    other = await sim.new_messenger("other")
    await sim.identify_ok(NUMBER)
    await sim.identify_ok(NUMBER, operator="beta")
    assert len((await feed(sim))["events"]) == 1
    assert len((await feed(sim, operator="beta"))["events"]) == 1
    assert (await feed(sim, other["api_key"]))["events"] == []


async def test_feed_rejects_bad_cursors_and_limits(sim: Sim) -> None:
    for query in ["?after=nonsense", "?after=%00", "?limit=0", "?limit=1001", "?limit=x"]:
        resp = await sim.client.get(f"/operators/alfa/v1/events{query}", headers=sim.auth(DEMO_KEY))
        assert resp.status == 422, query
        assert (await resp.json())["code"] == "validation_error"
    unknown = await sim.client.get("/operators/omega/v1/events", headers=sim.auth(DEMO_KEY))
    assert unknown.status == 404


async def test_long_poll_returns_as_soon_as_an_event_is_written(sim: Sim) -> None:
    start = await feed(sim)
    poll = asyncio.create_task(feed(sim, query=f"?after={start['next_cursor']}", Prefer="wait=30"))
    await asyncio.sleep(0)  # let the poll reach the server
    for _ in range(100):
        if len(sim.client.app[SERVICES].waiters) > 0:
            break
        await asyncio.sleep(0.01)
    assert not poll.done()
    await sim.identify_ok(NUMBER)
    # Woken by the event, not by its 30-second wait running out.
    async with asyncio.timeout(5):
        page = await poll
    assert [e["type"] for e in page["events"]] == ["identification.answered"]


async def test_feed_delivery_is_recorded_with_its_deadline(sim: Sim) -> None:
    await sim.identify_ok(NUMBER)
    before = (await sim.admin_ok("GET", "/deliveries"))["deliveries"][0]
    assert before["feed"] == {"delivered_at": None, "met_deadline": None}
    assert before["webhook"] is None
    await feed(sim)
    after = (await sim.admin_ok("GET", "/deliveries?messenger_id=demo"))["deliveries"][0]
    assert after["feed"]["met_deadline"] is True
    assert after["event_id"] == before["event_id"]


async def test_feed_delivery_after_the_window_is_marked_missed(sim: Sim) -> None:
    await sim.identify_ok(NUMBER)
    await sim.advance(25 * 3600)
    await feed(sim)
    delivery = (await sim.admin_ok("GET", "/deliveries"))["deliveries"][0]
    assert delivery["feed"]["met_deadline"] is False


async def test_reset_clears_events(sim: Sim) -> None:
    await sim.identify_ok(NUMBER)
    await sim.admin("POST", "/reset")
    assert (await feed(sim))["events"] == []
    assert (await sim.admin_ok("GET", "/deliveries"))["deliveries"] == []
