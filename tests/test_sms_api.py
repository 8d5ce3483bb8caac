"""The SMS gateway over HTTP: every magic number and status path, on a manual clock."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest
from aiohttp import ClientResponse

from tests.conftest import DEMO_KEY, Sim

CODE_TEXT = "Your code is 482913. Do not share it."
MESSAGES = "/sms/v1/messages"


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def send(
    sim: Sim,
    to: str,
    text: str = CODE_TEXT,
    *,
    key: str = DEMO_KEY,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> ClientResponse:
    """POST a message."""
    return await sim.client.post(
        MESSAGES,
        json={"to": to, "text": text, **extra},
        headers={**sim.auth(key), **(headers or {})},
    )


async def send_ok(sim: Sim, to: str, text: str = CODE_TEXT, **kwargs: Any) -> dict[str, Any]:
    """POST a message that must be accepted."""
    resp = await send(sim, to, text, **kwargs)
    assert resp.status == 202, await resp.text()
    body: dict[str, Any] = await resp.json()
    assert resp.headers["Location"] == f"{MESSAGES}/{body['id']}"
    return body


async def read(sim: Sim, sms_id: str, *, key: str = DEMO_KEY) -> dict[str, Any]:
    """GET a message that must exist."""
    resp = await sim.client.get(f"{MESSAGES}/{sms_id}", headers=sim.auth(key))
    assert resp.status == 200, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def inbox(sim: Sim, msisdn: str) -> list[dict[str, Any]]:
    """What the phone received."""
    body = await sim.admin_ok("GET", f"/phones/{msisdn}/messages")
    messages: list[dict[str, Any]] = body["messages"]
    return messages


async def events(sim: Sim, *, key: str = DEMO_KEY) -> list[dict[str, Any]]:
    """Every SMS event on the messenger's feed."""
    resp = await sim.client.get("/sms/v1/events", headers=sim.auth(key))
    assert resp.status == 200, await resp.text()
    found: list[dict[str, Any]] = (await resp.json())["events"]
    return found


async def test_a_message_is_accepted_then_sent_then_delivered_into_the_inbox(sim: Sim) -> None:
    accepted = await send_ok(sim, "+79000000011", client_ref="signup-42")
    assert accepted["status"] == "accepted"
    assert accepted["operator_id"] is None
    assert (accepted["text_length"], accepted["segments"], accepted["encoding"]) == (
        len(CODE_TEXT),
        1,
        "gsm7",
    )
    assert (accepted["sender"], accepted["client_ref"]) == ("OpSim", "signup-42")
    assert _at(accepted["expires_at"]) - _at(accepted["created_at"]) == timedelta(hours=1)
    assert "text" not in accepted
    assert "482913" not in json.dumps(accepted)

    await sim.advance(1)
    sent = await read(sim, accepted["id"])
    assert (sent["status"], sent["operator_id"]) == ("sent", "alfa")
    assert await inbox(sim, "+79000000011") == []

    await sim.advance(3)
    delivered = await read(sim, accepted["id"])
    assert (delivered["status"], delivered["reason"]) == ("delivered", None)
    assert _at(delivered["status_at"]) - _at(accepted["created_at"]) == timedelta(seconds=4)
    [received] = await inbox(sim, "+79000000011")
    assert (received["sms_id"], received["sender"], received["text"]) == (
        accepted["id"],
        "OpSim",
        CODE_TEXT,
    )
    assert received["received_at"] == delivered["status_at"]
    otp = await sim.admin_ok("GET", "/phones/+79000000011/otp")
    assert otp == {
        "code": "482913",
        "sms_id": accepted["id"],
        "received_at": received["received_at"],
    }


async def test_each_later_status_is_one_event_on_the_sms_feed(sim: Sim) -> None:
    accepted = await send_ok(sim, "+79000000011")
    await sim.advance(10)
    found = await events(sim)
    assert [(e["type"], e["operator_id"], e["data"]["status"]) for e in found] == [
        ("sms.status_changed", "@sms", "sent"),
        ("sms.status_changed", "@sms", "delivered"),
    ]
    assert {e["data"]["id"] for e in found} == {accepted["id"]}
    assert found[1]["data"] == await read(sim, accepted["id"])
    assert all(e["occurred_at"] == e["data"]["status_at"] for e in found)
    # The operators' own feeds carry none of them.
    operator_feed = await sim.client.get("/operators/alfa/v1/events", headers=sim.auth(DEMO_KEY))
    assert (await operator_feed.json())["events"] == []


async def test_a_number_without_a_record_is_undelivered_unknown_subscriber(sim: Sim) -> None:
    accepted = await send_ok(sim, "+79000000012")
    await sim.advance(10)
    done = await read(sim, accepted["id"])
    assert (done["status"], done["reason"], done["operator_id"]) == (
        "undelivered",
        "unknown_subscriber",
        "alfa",  # the range holder carries it
    )
    assert await inbox(sim, "+79000000012") == []
    assert (await sim.admin("GET", "/phones/+79000000012/otp")).status == 404


async def test_a_terminated_contract_is_undelivered_contract_terminated(sim: Sim) -> None:
    accepted = await send_ok(sim, "+79000000004")  # the fixture's terminated contract
    await sim.advance(10)
    done = await read(sim, accepted["id"])
    assert (done["status"], done["reason"]) == ("undelivered", "contract_terminated")
    assert await inbox(sim, "+79000000004") == []


async def test_an_active_record_with_incomplete_data_is_delivered(sim: Sim) -> None:
    accepted = await send_ok(sim, "+79000000003")  # identification says absent
    await sim.advance(10)
    assert (await read(sim, accepted["id"]))["status"] == "delivered"
    assert len(await inbox(sim, "+79000000003")) == 1


async def test_a_ported_number_is_carried_by_its_new_operator(sim: Sim) -> None:
    await sim.add_subscribers({"msisdn": "+79000000031", "operator_id": "alfa"})
    await sim.admin_ok("POST", "/subscribers/+79000000031/port", {"to_operator_id": "gamma"})
    accepted = await send_ok(sim, "+79000000031")
    await sim.advance(10)
    done = await read(sim, accepted["id"])
    assert (done["status"], done["operator_id"]) == ("delivered", "gamma")


async def test_a_number_no_operator_serves_is_undelivered_with_no_carrier(sim: Sim) -> None:
    accepted = await send_ok(sim, "+12025550123")
    await sim.advance(10)
    done = await read(sim, accepted["id"])
    assert (done["status"], done["reason"], done["operator_id"]) == (
        "undelivered",
        "unknown_subscriber",
        None,
    )


async def test_a_phone_switched_off_stays_sent_then_expires(sim: Sim) -> None:
    accepted = await send_ok(sim, "+79000000013", ttl="PT30M")
    await sim.advance(29 * 60)
    assert (await read(sim, accepted["id"]))["status"] == "sent"
    await sim.advance(60)
    done = await read(sim, accepted["id"])
    assert (done["status"], done["reason"]) == ("expired", "phone_unreachable")
    assert done["status_at"] == done["expires_at"]
    assert await inbox(sim, "+79000000013") == []
    assert [e["data"]["status"] for e in await events(sim)] == ["sent", "expired"]


async def test_a_slow_network_delivers_two_minutes_after_sent(sim: Sim) -> None:
    accepted = await send_ok(sim, "+79000000014")
    await sim.advance(1 + 119)
    assert (await read(sim, accepted["id"]))["status"] == "sent"
    assert await inbox(sim, "+79000000014") == []
    await sim.advance(1)
    done = await read(sim, accepted["id"])
    assert done["status"] == "delivered"
    assert _at(done["status_at"]) - _at(accepted["created_at"]) == timedelta(minutes=2, seconds=1)


async def test_a_delay_past_the_ttl_expires_the_message(sim: Sim) -> None:
    accepted = await send_ok(sim, "+79000000014", ttl="PT1M")
    await sim.advance(3600)
    done = await read(sim, accepted["id"])
    assert (done["status"], done["reason"]) == ("expired", "phone_unreachable")
    assert await inbox(sim, "+79000000014") == []


async def test_a_blocked_number_is_rejected_without_being_sent(sim: Sim) -> None:
    accepted = await send_ok(sim, "+79000000015")
    await sim.advance(60)
    done = await read(sim, accepted["id"])
    assert (done["status"], done["reason"], done["operator_id"]) == ("rejected", "blocked", None)
    assert [e["data"]["status"] for e in await events(sim)] == ["rejected"]
    assert await inbox(sim, "+79000000015") == []


async def test_16_refuses_the_first_post_of_each_try_per_messenger(sim: Sim) -> None:
    other = await sim.new_messenger("other-m")
    for key in (DEMO_KEY, other["api_key"], DEMO_KEY):
        refused = await send(sim, "+79000000016", key=key)
        assert refused.status == 429
        assert refused.headers["Retry-After"] == "1"
        assert (await refused.json())["code"] == "rate_limited"
        accepted = await send_ok(sim, "+79000000016", key=key)
        await sim.advance(10)
        assert (await read(sim, accepted["id"], key=key))["status"] == "delivered"


async def test_17_reaches_the_phone_but_its_report_never_comes(sim: Sim) -> None:
    accepted = await send_ok(sim, "+79000000017", ttl="PT5M")
    await sim.advance(10)
    [received] = await inbox(sim, "+79000000017")
    assert received["sms_id"] == accepted["id"]
    await sim.advance(2 * 3600)  # well past expires_at: still no report, not even an expiry
    assert (await read(sim, accepted["id"]))["status"] == "sent"
    assert [e["data"]["status"] for e in await events(sim)] == ["sent"]
    assert (await sim.admin_ok("GET", "/phones/+79000000017/otp"))["code"] == "482913"


async def test_18_is_delivered(sim: Sim) -> None:
    accepted = await send_ok(sim, "+79000000018")
    await sim.advance(10)
    assert (await read(sim, accepted["id"]))["status"] == "delivered"


async def test_another_messengers_message_is_not_found(sim: Sim) -> None:
    accepted = await send_ok(sim, "+79000000011")
    other = await sim.new_messenger("nosy")
    resp = await sim.client.get(f"{MESSAGES}/{accepted['id']}", headers=sim.auth(other["api_key"]))
    assert resp.status == 404
    assert (await resp.json())["code"] == "not_found"
    unknown = await sim.client.get(f"{MESSAGES}/sms_nope", headers=sim.auth(DEMO_KEY))
    assert unknown.status == 404
    await sim.advance(10)
    assert await events(sim, key=other["api_key"]) == []


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"to": "+79000000011", "text": ""}, "validation_error"),
        ({"to": "+79000000011", "text": "x" * 1601}, "validation_error"),
        ({"to": "+79000000011", "text": "hi", "sender": "TwelveLetter"}, "validation_error"),
        ({"to": "+79000000011", "text": "hi", "sender": "Op Sim"}, "validation_error"),
        ({"to": "+79000000011", "text": "hi", "sender": ""}, "validation_error"),
        ({"to": "+79000000011", "text": "hi", "client_ref": "r" * 65}, "validation_error"),
        ({"to": "+79000000011", "text": "hi", "ttl": "PT30S"}, "validation_error"),
        ({"to": "+79000000011", "text": "hi", "ttl": "PT73H"}, "validation_error"),
        ({"to": "+79000000011", "text": "hi", "colour": "red"}, "validation_error"),
        ({"to": "+79000000011", "text": 123456}, "validation_error"),
        ({"to": "89000000011", "text": "hi"}, "invalid_msisdn"),
        ({"text": "hi"}, "validation_error"),
    ],
)
async def test_bad_messages_are_refused_and_nothing_is_sent(
    sim: Sim, body: dict[str, Any], code: str
) -> None:
    resp = await sim.client.post(MESSAGES, json=body, headers=sim.auth(DEMO_KEY))
    assert resp.status == 422
    problem = await resp.json()
    assert problem["code"] == code
    assert "x" * 50 not in json.dumps(problem)
    await sim.advance(60)
    assert await events(sim) == []
    assert await inbox(sim, "+79000000011") == []


async def test_the_longest_text_and_a_minute_ttl_are_accepted(sim: Sim) -> None:
    accepted = await send_ok(sim, "+79000000011", "7" * 1600, ttl=60)
    assert (accepted["text_length"], accepted["segments"]) == (1600, 11)


@pytest.mark.parametrize(
    ("text", "segments", "encoding"),
    [
        ("a" * 160, 1, "gsm7"),
        ("a" * 161, 2, "gsm7"),
        ("€" * 80, 1, "gsm7"),  # extension characters take two septets
        ("€" * 81, 2, "gsm7"),
        ("Ваш код 123456", 1, "ucs2"),
        ("ж" * 70, 1, "ucs2"),
        ("ж" * 71, 2, "ucs2"),
        ("ж" * 134, 2, "ucs2"),
        ("ж" * 135, 3, "ucs2"),
    ],
)
async def test_segments_are_counted_as_the_network_splits_them(
    sim: Sim, text: str, segments: int, encoding: str
) -> None:
    accepted = await send_ok(sim, "+79000000011", text)
    assert (accepted["segments"], accepted["encoding"], accepted["text_length"]) == (
        segments,
        encoding,
        len(text),
    )


async def test_the_same_idempotency_key_replays_the_same_message(sim: Sim) -> None:
    key = {"Idempotency-Key": "otp-1"}
    first = await send_ok(sim, "+79000000011", headers=key)
    again = await send(sim, "+79000000011", headers=key)
    assert again.status == 202
    assert again.headers["Idempotent-Replayed"] == "true"
    assert (await again.json())["id"] == first["id"]
    other_text = await send(sim, "+79000000011", "Your code is 000000", headers=key)
    assert other_text.status == 422
    assert (await other_text.json())["code"] == "idempotency_key_reused"
    await sim.advance(10)
    assert len(await inbox(sim, "+79000000011")) == 1


async def test_an_idempotency_key_is_per_messenger_across_calls(sim: Sim) -> None:
    await sim.identify_ok("+79000000001", headers={"Idempotency-Key": "shared"})
    sms = await send(sim, "+79000000011", headers={"Idempotency-Key": "shared"})
    assert sms.status == 422
    assert (await sms.json())["code"] == "idempotency_key_reused"
    await send_ok(sim, "+79000000011", headers={"Idempotency-Key": "sms-first"})
    ident = await sim.identify("+79000000001", headers={"Idempotency-Key": "sms-first"})
    assert ident.status == 422
    assert (await ident.json())["code"] == "idempotency_key_reused"


async def test_the_throttle_counts_per_messenger_and_number(sim: Sim) -> None:
    for _ in range(5):
        await send_ok(sim, "+79000000011")
    await sim.advance(60)
    refused = await send(sim, "+79000000011")
    assert refused.status == 429
    assert (await refused.json())["code"] == "rate_limited"
    # A manual clock: the simulated seconds until the first message leaves the window.
    assert refused.headers["Retry-After"] == str(10 * 60 - 60)
    other = await sim.new_messenger("tenant-b")
    await send_ok(sim, "+79000000011", key=other["api_key"])  # another tenant is not throttled
    await send_ok(sim, "+79000000001")  # nor is another number
    await sim.advance(9 * 60)
    await send_ok(sim, "+79000000011")  # the first message left the window
    journal = await sim.admin_ok("GET", "/journal?endpoint=sms.send&msisdn=%2B79000000011")
    assert [e["http_status"] for e in journal["entries"]].count(429) == 1


async def test_a_retry_with_the_key_after_the_throttle_is_not_counted_again(sim: Sim) -> None:
    for i in range(5):
        await send_ok(sim, "+79000000011", headers={"Idempotency-Key": f"k{i}"})
    replay = await send(sim, "+79000000011", headers={"Idempotency-Key": "k4"})
    assert replay.status == 202


async def test_the_journal_records_every_sms_call_and_never_the_text(sim: Sim) -> None:
    accepted = await send_ok(sim, "+79000000011")
    await read(sim, accepted["id"])
    await events(sim)
    bad = await send(sim, "+79000000011", "")
    assert bad.status == 422
    journal = await sim.admin_ok("GET", "/journal")
    entries = [(e["endpoint"], e["http_status"], e["msisdn"]) for e in journal["entries"]]
    assert entries == [
        ("sms.send", 422, None),
        ("sms.events", 200, None),
        ("sms.get", 200, "+79000000011"),
        ("sms.send", 202, "+79000000011"),
    ]
    assert all(e["operator_id"] is None for e in journal["entries"])
    assert "482913" not in json.dumps(journal)


async def test_messenger_reset_forgets_its_messages_and_inboxes(sim: Sim) -> None:
    for _ in range(5):
        await send_ok(sim, "+79000000011")
    await sim.advance(10)
    await sim.admin("POST", "/messengers/demo/reset")
    assert await inbox(sim, "+79000000011") == []
    assert await events(sim) == []
    await send_ok(sim, "+79000000011")  # the throttle's count went with them


async def test_reset_clears_messages_inboxes_and_scheduled_sends(sim: Sim) -> None:
    accepted = await send_ok(sim, "+79000000011")
    await sim.admin("POST", "/reset")
    await sim.advance(10)
    gone = await sim.client.get(f"{MESSAGES}/{accepted['id']}", headers=sim.auth(DEMO_KEY))
    assert gone.status == 404
    assert await inbox(sim, "+79000000011") == []


async def test_the_deliveries_view_shows_sms_events_from_the_gateway(sim: Sim) -> None:
    await send_ok(sim, "+79000000011")
    await sim.advance(10)
    deliveries = (await sim.admin_ok("GET", "/deliveries"))["deliveries"]
    assert {(d["type"], d["operator_id"]) for d in deliveries} == {("sms.status_changed", "@sms")}
