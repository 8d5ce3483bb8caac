"""Fault rules on every endpoint: refusals, dropped connections, broken bodies, slow
answers, and late or duplicated notifications."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from tests.conftest import CODES_PATH, DEMO_KEY, IR_PATH, Receiver, Sim

IR = IR_PATH.format(operator="alfa")
CODES = CODES_PATH.format(operator="alfa")
NUMBER = "+79011112233"


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


async def _rule(sim: Sim, spec: dict[str, Any]) -> None:
    resp = await sim.admin("POST", "/rules", spec)
    assert resp.status == 201, await resp.text()


async def _journal(sim: Sim, endpoint: str) -> list[tuple[int, str | None]]:
    entries = (await sim.admin_ok("GET", f"/journal?endpoint={endpoint}"))["entries"]
    return [(e["http_status"], e["rule_id"]) for e in reversed(entries)]


async def test_a_503_on_code_registration_registers_nothing_and_a_retry_succeeds(sim: Sim) -> None:
    await _rule(
        sim,
        {
            "id": "codes-down",
            "match": {"endpoint": "code.register"},
            "action": {"type": "http_error", "status": 503, "retry_after": 1},
            "times": 1,
        },
    )
    created = await sim.identify_ok("+79000000001")
    refused = await sim.register_code(created["id"], "retry-code-0001")
    assert refused.status == 503
    assert refused.headers["Retry-After"] == "1"
    assert (await sim.admin_ok("GET", "/codes"))["codes"] == []
    again = await sim.register_code(created["id"], "retry-code-0001")
    assert again.status == 201, await again.text()
    assert await _journal(sim, "code.register") == [(503, "codes-down"), (201, None)]


async def test_a_dropped_routing_call_answers_nothing_and_is_journalled(sim: Sim) -> None:
    await _rule(
        sim, {"id": "cut", "match": {"endpoint": "routing.get"}, "action": {"type": "drop"}}
    )
    with pytest.raises(aiohttp.ClientError):
        await sim.client.get("/v1/routing/+79000000001", headers=sim.auth(DEMO_KEY))
    assert await _journal(sim, "routing.get") == [(0, "cut")]


@pytest.mark.parametrize(
    ("endpoint", "status"),
    [("events.list", 200), ("identification.get", 200), ("code.delete", 204)],
)
async def test_malformed_answers_with_the_calls_own_success_status(
    sim: Sim, endpoint: str, status: int
) -> None:
    created = await sim.identify_ok("+79000000001")
    assert (await sim.register_code(created["id"], "broken-code-0001")).status == 201
    await _rule(
        sim,
        {
            "id": "garbled",
            "match": {"endpoint": endpoint},
            "action": {"type": "malformed", "body": "not_json"},
        },
    )
    path = {
        "events.list": "/operators/alfa/v1/events",
        "identification.get": f"{IR}/{created['id']}",
        "code.delete": f"{CODES}/broken-code-0001",
    }[endpoint]
    method = "DELETE" if endpoint == "code.delete" else "GET"
    resp = await sim.client.request(method, path, headers=sim.auth(DEMO_KEY))
    assert resp.status == status
    body = await resp.read()
    assert body == (b"" if status == 204 else b"<html><body><h1>502 Bad Gateway</h1></body></html>")
    assert await _journal(sim, endpoint) == [(status, "garbled")]
    if endpoint == "code.delete":  # nothing was done: the code is still live
        live = (await sim.admin_ok("GET", "/codes?state=live"))["codes"]
        assert [c["code"] for c in live] == ["broken-code-0001"]


async def test_a_delay_commits_first_so_a_retry_after_a_timeout_gets_the_replay(sim: Sim) -> None:
    await _rule(
        sim,
        {
            "id": "slow",
            "match": {"endpoint": "identification.create", "msisdn": NUMBER},
            "action": {"type": "delay", "seconds": 3},
        },
    )
    headers = {**sim.auth(DEMO_KEY), "Idempotency-Key": "slow-1"}
    with pytest.raises(TimeoutError):
        await sim.client.post(
            IR,
            json={"msisdn": NUMBER},
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=0.5),
        )
    # Committed before the answer was held: the journal and the request are there.
    [entry] = (await sim.admin_ok("GET", "/journal?endpoint=identification.create"))["entries"]
    assert (entry["http_status"], entry["rule_id"]) == (201, "slow")
    replay = await sim.client.post(IR, json={"msisdn": NUMBER}, headers=headers)
    assert replay.status == 201
    assert replay.headers["Idempotent-Replayed"] == "true"
    requests = (await sim.admin_ok("GET", "/requests"))["requests"]
    assert {r["id"] for r in requests} == {(await replay.json())["id"]}


async def test_a_delay_holds_the_answer_of_a_read(sim: Sim) -> None:
    await _rule(
        sim,
        {
            "id": "slow-get",
            "match": {"endpoint": "routing.get"},
            "action": {"type": "delay", "seconds": 3},
        },
    )
    with pytest.raises(TimeoutError):
        await sim.client.get(
            "/v1/routing/+79000000001",
            headers=sim.auth(DEMO_KEY),
            timeout=aiohttp.ClientTimeout(total=0.5),
        )
    assert await _journal(sim, "routing.get") == [(200, "slow-get")]


async def test_a_rule_naming_a_number_never_matches_the_events_feed(sim: Sim) -> None:
    await _rule(
        sim,
        {
            "id": "feed-by-number",
            "match": {"endpoint": "events.list", "msisdn": "+7*"},
            "action": {"type": "http_error", "status": 500},
        },
    )
    resp = await sim.client.get("/operators/alfa/v1/events", headers=sim.auth(DEMO_KEY))
    assert resp.status == 200


@pytest.mark.parametrize(
    "spec",
    [
        {"id": "x", "match": {"endpoint": "code.register"}, "action": {"type": "answer"}},
        {"id": "x", "match": {"endpoint": "routing.get"}, "action": {"type": "never"}},
        {
            "id": "x",
            "match": {"endpoint": "identification.create"},
            "action": {"type": "duplicate", "copies": 2},
        },
        {"id": "x", "match": {"endpoint": "event.notify"}, "action": {"type": "drop"}},
        {
            "id": "x",
            "match": {"endpoint": "routing.get", "event_type": "subscriber.number_ported"},
            "action": {"type": "drop"},
        },
        {"id": "x", "match": {"endpoint": "sms.explode"}, "action": {"type": "drop"}},
        {"id": "x", "action": {"type": "delay", "seconds": 61}},
        {"id": "x", "action": {"type": "delay", "seconds": 0}},
        {
            "id": "x",
            "match": {"endpoint": "event.notify"},
            "action": {"type": "notify_late", "by": "P31D"},
        },
        {
            "id": "x",
            "match": {"endpoint": "event.notify"},
            "action": {"type": "duplicate", "copies": 11},
        },
    ],
)
async def test_a_rule_whose_action_cannot_act_there_is_refused(
    sim: Sim, spec: dict[str, Any]
) -> None:
    resp = await sim.admin("POST", "/rules", spec)
    assert resp.status == 422, await resp.text()
    assert (await resp.json())["code"] == "validation_error"
    assert [
        r["id"] for r in (await sim.admin_ok("GET", "/rules"))["rules"] if r["source"] == "runtime"
    ] == []


# --- notifications -------------------------------------------------------------------------


async def _identified(sim: Sim, key: str = DEMO_KEY) -> None:
    await sim.add_subscribers({"msisdn": NUMBER, "operator_id": "alfa", "data_complete": True})
    created = await sim.identify_ok(NUMBER, key=key)
    assert (await sim.register_code(created["id"], "notice-code-0001", key=key)).status == 201


async def _feed(sim: Sim, key: str = DEMO_KEY) -> list[dict[str, Any]]:
    resp = await sim.client.get("/operators/alfa/v1/events", headers=sim.auth(key))
    return [e for e in (await resp.json())["events"] if e["type"].startswith("subscriber.")]


@pytest.mark.parametrize(("by", "met"), [("PT23H", True), ("P2D", False)])
async def test_a_late_notification_keeps_the_changes_times(
    sim: Sim, receiver: Receiver, by: str, met: bool
) -> None:
    messenger = await sim.new_messenger("hooked", webhook_url=receiver.url)
    await _identified(sim, messenger["api_key"])
    await sim.advance(0)  # the answer's own event is delivered first
    await _rule(
        sim,
        {
            "id": "slow-notice",
            "match": {"endpoint": "event.notify", "event_type": "subscriber.contract_terminated"},
            "action": {"type": "notify_late", "by": by},
        },
    )
    before = len(receiver.received)
    changed = _ts((await sim.admin_ok("GET", "/clock"))["now"])
    await sim.admin_ok("POST", f"/subscribers/{NUMBER}/terminate")
    assert await _feed(sim, messenger["api_key"]) == []
    await sim.advance(0)
    assert len(receiver.received) == before  # nothing until it falls due
    advanced = await sim.admin_ok("POST", "/clock/advance", {"by": by})
    assert advanced["webhooks_in_flight"] == 0
    [event] = await _feed(sim, messenger["api_key"])
    assert _ts(event["occurred_at"]) == changed
    assert _ts(event["deliver_by"]) - _ts(event["occurred_at"]) == timedelta(hours=24)
    assert len(receiver.received) == before + 1
    [delivery] = [
        d
        for d in (await sim.admin_ok("GET", "/deliveries?messenger_id=hooked"))["deliveries"]
        if d["type"] == "subscriber.contract_terminated"
    ]
    assert delivery["webhook"]["state"] == "delivered"
    assert delivery["webhook"]["met_deadline"] is met
    rules = {r["id"]: r for r in (await sim.admin_ok("GET", "/rules"))["rules"]}
    assert rules["slow-notice"]["hits"] == 1


async def test_a_duplicated_notification_comes_again_with_the_same_id(
    sim: Sim, receiver: Receiver
) -> None:
    messenger = await sim.new_messenger("hooked", webhook_url=receiver.url)
    await _identified(sim, messenger["api_key"])
    await sim.advance(0)
    before = len(receiver.received)
    await _rule(
        sim,
        {
            "id": "echo",
            "match": {"endpoint": "event.notify", "messenger_id": "hooked"},
            "action": {"type": "duplicate", "copies": 3},
        },
    )
    await sim.admin_ok("POST", f"/subscribers/{NUMBER}/terminate")
    events = await _feed(sim, messenger["api_key"])
    assert len(events) == 3
    assert len({e["id"] for e in events}) == 1
    for _ in range(3):
        await sim.advance(0)
    copies = receiver.received[before:]
    assert len(copies) == 3
    assert len({headers["webhook-id"] for headers, _ in copies}) == 1
    [delivery] = [
        d
        for d in (await sim.admin_ok("GET", "/deliveries?messenger_id=hooked"))["deliveries"]
        if d["type"] == "subscriber.contract_terminated"
    ]
    assert delivery["copies"] == 3
    assert delivery["webhook"]["state"] == "delivered"
    assert len(delivery["webhook"]["attempts"]) == 3


async def test_the_magic_numbers_still_act_on_identification_requests_only(sim: Sim) -> None:
    headers = sim.auth(DEMO_KEY)
    first = await sim.identify("+79000000007")
    assert first.status == 503
    routed = await sim.client.get("/v1/routing/+79000000007", headers=headers)
    assert routed.status == 200
