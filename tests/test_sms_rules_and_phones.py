"""Fault rules on the SMS gateway, its webhook and feed, and the phones' inboxes."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from standardwebhooks import Webhook

from operator_sim.server.services import SERVICES
from tests.conftest import DEMO_KEY, Receiver, Sim
from tests.test_sms_api import events, inbox, read, send, send_ok

NUMBER = "+79011112233"


@pytest.fixture
async def subscriber(sim: Sim) -> str:
    """An ordinary active subscriber, with no magic."""
    await sim.add_subscribers({"msisdn": NUMBER, "operator_id": "alfa"})
    return NUMBER


async def parked(sim: Sim, count: int) -> None:
    """Wait (a bounded poll) until ``count`` long polls are parked on the server."""
    waiters = sim.client.app[SERVICES].waiters
    for _ in range(500):
        if len(waiters) >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{len(waiters)} long polls parked, not {count}")


async def add_rule(sim: Sim, action: dict[str, Any], **extra: Any) -> None:
    rule = {"id": "sms-rule", "match": {"endpoint": "sms.send", "msisdn": NUMBER}}
    await sim.admin_ok("POST", "/rules", {**rule, "action": action, **extra})


async def test_sms_unreachable_makes_any_number_behave_like_a_phone_switched_off(
    sim: Sim, subscriber: str
) -> None:
    await add_rule(sim, {"type": "sms_unreachable"})
    accepted = await send_ok(sim, subscriber, ttl="PT2M")
    await sim.advance(3600)
    done = await read(sim, accepted["id"])
    assert (done["status"], done["reason"]) == ("expired", "phone_unreachable")
    assert await inbox(sim, subscriber) == []


async def test_sms_delay_holds_the_delivery(sim: Sim, subscriber: str) -> None:
    await add_rule(sim, {"type": "sms_delay", "by": "PT10M"})
    accepted = await send_ok(sim, subscriber)
    await sim.advance(10 * 60)
    assert (await read(sim, accepted["id"]))["status"] == "sent"
    await sim.advance(1)
    assert (await read(sim, accepted["id"]))["status"] == "delivered"


async def test_sms_delay_on_an_unknown_number_delays_the_undelivered_report(sim: Sim) -> None:
    rule = {"id": "late-report", "match": {"endpoint": "sms.send", "msisdn": "+79000000012"}}
    await sim.admin_ok("POST", "/rules", {**rule, "action": {"type": "sms_delay", "by": 300}})
    accepted = await send_ok(sim, "+79000000012")
    await sim.advance(300)
    assert (await read(sim, accepted["id"]))["status"] == "sent"
    await sim.advance(1)
    assert (await read(sim, accepted["id"]))["reason"] == "unknown_subscriber"


async def test_sms_report_lost_delivers_silently(sim: Sim, subscriber: str) -> None:
    await add_rule(sim, {"type": "sms_report_lost"})
    accepted = await send_ok(sim, subscriber)
    await sim.advance(7200)
    assert (await read(sim, accepted["id"]))["status"] == "sent"
    assert [m["sms_id"] for m in await inbox(sim, subscriber)] == [accepted["id"]]


async def test_sms_blocked_rejects(sim: Sim, subscriber: str) -> None:
    await add_rule(sim, {"type": "sms_blocked"})
    accepted = await send_ok(sim, subscriber)
    await sim.advance(5)
    done = await read(sim, accepted["id"])
    assert (done["status"], done["reason"]) == ("rejected", "blocked")


async def test_a_rule_applies_times_times_then_lets_messages_through(
    sim: Sim, subscriber: str
) -> None:
    await add_rule(sim, {"type": "sms_blocked"}, times=1)
    blocked = await send_ok(sim, subscriber)
    passed = await send_ok(sim, subscriber)
    await sim.advance(10)
    assert (await read(sim, blocked["id"]))["status"] == "rejected"
    assert (await read(sim, passed["id"]))["status"] == "delivered"
    journal = await sim.admin_ok("GET", "/journal?endpoint=sms.send")
    assert [e["rule_id"] for e in journal["entries"]] == [None, "sms-rule"]


@pytest.mark.parametrize(
    "action",
    [
        {"type": "sms_unreachable"},
        {"type": "sms_delay", "by": "PT1M"},
        {"type": "sms_report_lost"},
        {"type": "sms_blocked"},
    ],
)
@pytest.mark.parametrize("endpoint", ["identification.create", "sms.get", "event.notify"])
async def test_sms_actions_act_on_sms_send_only(
    sim: Sim, action: dict[str, Any], endpoint: str
) -> None:
    rule = {"id": "misplaced", "match": {"endpoint": endpoint}, "action": action}
    resp = await sim.admin("POST", "/rules", rule)
    assert resp.status == 422
    assert (await resp.json())["code"] == "validation_error"
    assert [r["id"] for r in (await sim.admin_ok("GET", "/rules"))["rules"]].count("misplaced") == 0


async def test_sms_delay_is_bounded(sim: Sim) -> None:
    rule = {"id": "forever", "match": {"endpoint": "sms.send"}}
    resp = await sim.admin("POST", "/rules", {**rule, "action": {"type": "sms_delay", "by": "P8D"}})
    assert resp.status == 422


@pytest.mark.parametrize(
    ("endpoint", "method", "path"),
    [
        ("sms.send", "POST", "/sms/v1/messages"),
        ("sms.get", "GET", "/sms/v1/messages/{id}"),
        ("sms.events", "GET", "/sms/v1/events"),
    ],
)
async def test_http_error_rules_refuse_every_sms_call(
    sim: Sim, endpoint: str, method: str, path: str
) -> None:
    accepted = await send_ok(sim, "+79000000011")
    rule = {"id": "down", "match": {"endpoint": endpoint}}
    action = {"type": "http_error", "status": 503, "retry_after": 7}
    await sim.admin_ok("POST", "/rules", {**rule, "action": action})
    kwargs: dict[str, Any] = {"headers": sim.auth(DEMO_KEY)}
    if method == "POST":
        kwargs["json"] = {"to": "+79000000011", "text": "Code 111111"}
    resp = await sim.client.request(method, path.format(id=accepted["id"]), **kwargs)
    assert resp.status == 503
    assert resp.headers["Retry-After"] == "7"
    [entry] = (await sim.admin_ok("GET", f"/journal?endpoint={endpoint}"))["entries"][:1]
    assert (entry["http_status"], entry["rule_id"]) == (503, "down")


async def test_a_refused_send_sends_nothing(sim: Sim) -> None:
    rule = {"id": "busy", "match": {"endpoint": "sms.send"}}
    await sim.admin_ok("POST", "/rules", {**rule, "action": {"type": "drop"}})
    with pytest.raises(Exception):  # noqa: B017, PT011 (the connection is closed on the client)
        await send(sim, "+79000000011")
    await sim.advance(60)
    assert await inbox(sim, "+79000000011") == []
    assert await events(sim) == []


async def test_sms_events_go_to_the_webhook_signed(sim: Sim, receiver: Receiver) -> None:
    created = await sim.new_messenger("hooked", webhook_url=receiver.url)
    accepted = await send_ok(sim, "+79000000011", key=created["api_key"])
    await sim.advance(10)
    assert len(receiver.received) == 2
    verifier = Webhook(created["webhook_secret"])
    bodies = []
    for headers, body in receiver.received:
        verifier.verify(body, {k.lower(): v for k, v in headers.items()})
        bodies.append(json.loads(body))
    assert [(b["type"], b["data"]["id"], b["data"]["status"]) for b in bodies] == [
        ("sms.status_changed", accepted["id"], "sent"),
        ("sms.status_changed", accepted["id"], "delivered"),
    ]
    assert all("482913" not in body.decode() for _, body in receiver.received)
    deliveries = (await sim.admin_ok("GET", "/deliveries?messenger_id=hooked"))["deliveries"]
    assert {d["webhook"]["state"] for d in deliveries} == {"delivered"}


async def test_a_notification_rule_duplicates_sms_events(sim: Sim) -> None:
    rule = {
        "id": "twice",
        "match": {"endpoint": "event.notify", "event_type": "sms.status_changed"},
    }
    await sim.admin_ok("POST", "/rules", {**rule, "action": {"type": "duplicate", "copies": 2}})
    await send_ok(sim, "+79000000015")
    await sim.advance(10)
    found = await events(sim)
    assert [e["data"]["status"] for e in found] == ["rejected", "rejected"]
    assert found[0]["id"] == found[1]["id"]


async def test_the_sms_feed_pages_with_cursors_bound_to_it(sim: Sim) -> None:
    await send_ok(sim, "+79000000011")
    await sim.advance(10)
    auth = sim.auth(DEMO_KEY)
    first = await (await sim.client.get("/sms/v1/events?limit=1", headers=auth)).json()
    assert [e["data"]["status"] for e in first["events"]] == ["sent"]
    second = await (
        await sim.client.get(f"/sms/v1/events?after={first['next_cursor']}", headers=auth)
    ).json()
    assert [e["data"]["status"] for e in second["events"]] == ["delivered"]
    # A cursor of an operator's feed is not one of this feed's, and the other way round.
    operator = await (await sim.client.get("/operators/alfa/v1/events", headers=auth)).json()
    foreign = await sim.client.get(f"/sms/v1/events?after={operator['next_cursor']}", headers=auth)
    assert foreign.status == 409
    assert (await foreign.json())["code"] == "cursor_unknown"
    back = await sim.client.get(
        f"/operators/alfa/v1/events?after={second['next_cursor']}", headers=auth
    )
    assert back.status == 409
    malformed = await sim.client.get("/sms/v1/events?after=nope", headers=auth)
    assert malformed.status == 422


async def test_the_sms_feed_long_polls_for_the_next_status(sim: Sim) -> None:
    await send_ok(sim, "+79000000011")
    auth = {**sim.auth(DEMO_KEY), "Prefer": "wait=10"}
    waiting = asyncio.create_task(sim.client.get("/sms/v1/events", headers=auth))
    await parked(sim, 1)
    await sim.advance(1)
    resp = await asyncio.wait_for(waiting, 10)
    assert resp.headers["Preference-Applied"] == "wait=10"
    assert [e["data"]["status"] for e in (await resp.json())["events"]] == ["sent"]


async def test_the_inbox_long_polls_until_a_message_arrives(sim: Sim) -> None:
    await send_ok(sim, "+79000000011")
    admin = {**sim.auth("demo-admin-token-not-secret"), "Prefer": "wait=10"}
    waiting = asyncio.create_task(
        sim.client.get("/admin/v1/phones/+79000000011/messages", headers=admin)
    )
    otp = asyncio.create_task(sim.client.get("/admin/v1/phones/+79000000011/otp", headers=admin))
    await parked(sim, 2)
    assert not waiting.done()
    assert not otp.done()
    await sim.advance(5)
    inbox = await asyncio.wait_for(waiting, 10)
    assert inbox.headers["Preference-Applied"] == "wait=10"
    page = await inbox.json()
    assert [m["text"] for m in page["messages"]] == ["Your code is 482913. Do not share it."]
    code = await asyncio.wait_for(otp, 10)
    assert code.headers["Preference-Applied"] == "wait=10"
    assert (await code.json())["code"] == "482913"
    nothing = await sim.admin("GET", f"/phones/+79000000011/messages?after={page['next_cursor']}")
    assert "Preference-Applied" not in nothing.headers
    assert (await nothing.json())["messages"] == []


async def test_the_otp_after_a_message_is_the_code_of_a_later_one(sim: Sim) -> None:
    first = await send_ok(sim, "+79000000011", "Code 111111")
    await sim.advance(5)
    second = await send_ok(sim, "+79000000011", "Code 222222")
    path = f"/phones/+79000000011/otp?after={first['id']}"
    before = await sim.admin("GET", path)
    assert before.status == 404  # the second message is still on its way
    await sim.advance(5)
    assert (await sim.admin_ok("GET", path))["code"] == "222222"
    assert (await sim.admin_ok("GET", "/phones/+79000000011/otp"))["sms_id"] == second["id"]
    after_second = await sim.admin("GET", f"/phones/+79000000011/otp?after={second['id']}")
    assert after_second.status == 404
    elsewhere = await sim.admin("GET", f"/phones/+79000000001/otp?after={first['id']}")
    assert elsewhere.status == 404


async def test_the_otp_skips_messages_without_a_code(sim: Sim) -> None:
    await send_ok(sim, "+79000000011", "Code 3141")
    await sim.advance(5)
    await send_ok(sim, "+79000000011", "Welcome aboard, no code here")
    await send_ok(sim, "+79000000011", "Call +79001234567 about 123456789")
    await sim.advance(5)
    assert (await sim.admin_ok("GET", "/phones/+79000000011/otp"))["code"] == "3141"


async def test_the_inbox_pages_oldest_first(sim: Sim) -> None:
    for i in range(3):
        await send_ok(sim, "+79000000011", f"Message {i}")
    await sim.advance(5)
    page = await sim.admin_ok("GET", "/phones/+79000000011/messages?limit=2")
    assert [m["text"] for m in page["messages"]] == ["Message 0", "Message 1"]
    rest = await sim.admin_ok("GET", f"/phones/+79000000011/messages?after={page['next_cursor']}")
    assert [m["text"] for m in rest["messages"]] == ["Message 2"]
    bad = await sim.admin("GET", "/phones/+79000000011/messages?after=c1.xyz")
    assert bad.status == 422
    worse = await sim.admin("GET", "/phones/not-a-number/messages")
    assert (await worse.json())["code"] == "invalid_msisdn"


async def test_the_inbox_needs_the_admin_token(sim: Sim) -> None:
    resp = await sim.client.get(
        "/admin/v1/phones/+79000000011/messages", headers=sim.auth(DEMO_KEY)
    )
    assert resp.status == 401
