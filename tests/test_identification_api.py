"""Identification requests over HTTP: the decree's request, answer, deadline and magic numbers."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from operator_sim.fixture import default_fixture_path
from operator_sim.server import create_app
from operator_sim.settings import Settings
from tests.conftest import AiohttpClient, Sim


def _ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def test_present_subscriber_is_answered_present_at_once(sim: Sim) -> None:
    resp = await sim.identify("+79000000001")
    assert resp.status == 201
    body = await resp.json()
    assert body["status"] == "answered"
    assert body["result"] == "present"
    assert body["answered_at"] == body["received_at"]
    assert resp.headers["Location"] == f"/operators/alfa/v1/identification-requests/{body['id']}"
    assert body["id"].startswith("ir_")
    assert set(body) == {
        "id",
        "operator_id",
        "msisdn",
        "status",
        "result",
        "received_at",
        "due_at",
        "answered_at",
    }


async def test_due_at_is_twenty_minutes_after_receipt(sim: Sim) -> None:
    body = await sim.identify_ok("+79000000001")
    assert _ts(body["due_at"]) - _ts(body["received_at"]) == timedelta(minutes=20)
    assert body["received_at"].endswith("Z")


@pytest.mark.parametrize(
    "msisdn",
    ["+79000000002", "+79000000003", "+79000000004", "+79161234567"],
    ids=["no-record", "incomplete", "terminated", "unknown-in-range"],
)
async def test_absent_cases_say_only_absent(sim: Sim, msisdn: str) -> None:
    body = await sim.identify_ok(msisdn)
    assert (body["status"], body["result"]) == ("answered", "absent")


async def test_number_held_by_another_operator_is_absent(sim: Sim) -> None:
    body = await sim.identify_ok("+79000000001", operator="beta")
    assert body["result"] == "absent"


async def test_never_answered_number_expires_at_the_deadline(sim: Sim) -> None:
    body = await sim.identify_ok("+79000000005")
    assert body["status"] == "pending"
    await sim.advance(19 * 60 + 59)
    assert (await sim.get_request(body["id"]))["status"] == "pending"
    await sim.advance(1)
    after = await sim.get_request(body["id"])
    assert (after["status"], after["result"], after["answered_at"]) == ("expired", None, None)


async def test_late_answer_moves_expired_to_answered_after_the_deadline(sim: Sim) -> None:
    body = await sim.identify_ok("+79000000006")
    await sim.advance(20 * 60)
    assert (await sim.get_request(body["id"]))["status"] == "expired"
    await sim.advance(5 * 60)
    late = await sim.get_request(body["id"])
    assert (late["status"], late["result"]) == ("answered", "present")
    assert _ts(late["answered_at"]) - _ts(late["received_at"]) == timedelta(minutes=25)
    assert _ts(late["answered_at"]) > _ts(late["due_at"])


async def test_one_advance_past_both_fires_expiry_then_late_answer_in_order(sim: Sim) -> None:
    body = await sim.identify_ok("+79000000006")
    advanced = await sim.advance(3600)
    assert advanced["fired"] == 2
    late = await sim.get_request(body["id"])
    assert late["status"] == "answered"
    assert _ts(late["answered_at"]) == _ts(late["received_at"]) + timedelta(minutes=25)


async def test_slow_number_answers_present_after_five_minutes(sim: Sim) -> None:
    body = await sim.identify_ok("+79000000009")
    await sim.advance(4 * 60 + 59)
    assert (await sim.get_request(body["id"]))["status"] == "pending"
    await sim.advance(1)
    answered = await sim.get_request(body["id"])
    assert (answered["status"], answered["result"]) == ("answered", "present")
    assert _ts(answered["answered_at"]) - _ts(answered["received_at"]) == timedelta(minutes=5)


async def test_503_twice_then_present_and_again_after_a_success(sim: Sim) -> None:
    for _round in range(2):
        for _ in range(2):
            resp = await sim.identify("+79000000007")
            assert resp.status == 503
            assert resp.headers["Retry-After"] == "1"
            assert resp.content_type == "application/problem+json"
            assert (await resp.json())["code"] == "operator_unavailable"
        assert (await sim.identify_ok("+79000000007"))["result"] == "present"


async def test_429_once_then_present(sim: Sim) -> None:
    resp = await sim.identify("+79000000008")
    assert resp.status == 429
    assert resp.headers["Retry-After"] == "1"
    assert (await resp.json())["code"] == "rate_limited"
    assert (await sim.identify_ok("+79000000008"))["result"] == "present"
    assert (await sim.identify("+79000000008")).status == 429


async def test_magic_failures_are_counted_per_messenger(sim: Sim) -> None:
    other = await sim.new_messenger("other")
    assert (await sim.identify("+79000000008")).status == 429
    assert (await sim.identify("+79000000008", key=other["api_key"])).status == 429
    assert (await sim.identify("+79000000008")).status == 201


async def test_refused_post_creates_nothing(sim: Sim) -> None:
    await sim.identify("+79000000007")
    journal = await sim.admin_ok("GET", "/requests?msisdn=%2B79000000007")
    assert [e["id"] for e in journal["requests"]] == [None]
    assert journal["requests"][0]["http_status"] == 503
    assert journal["requests"][0]["rule_id"] == "magic-503-twice"


async def test_idempotency_key_returns_the_same_request(sim: Sim) -> None:
    headers = {"Idempotency-Key": "k-1"}
    first = await sim.identify_ok("+79000000009", headers=headers)
    await sim.advance(300)
    resp = await sim.identify("+79000000009", headers=headers)
    assert resp.status == 201
    assert resp.headers["Idempotent-Replayed"] == "true"
    again = await resp.json()
    assert again["id"] == first["id"]
    assert again["status"] == "answered"  # the request's current state


async def test_idempotency_key_with_another_body_is_422(sim: Sim) -> None:
    headers = {"Idempotency-Key": "k-2"}
    await sim.identify_ok("+79000000001", headers=headers)
    resp = await sim.identify("+79000000002", headers=headers)
    assert resp.status == 422
    problem = await resp.json()
    assert problem["code"] == "idempotency_key_reused"
    assert "another msisdn" in problem["detail"]


async def test_idempotency_key_sent_to_another_operator_says_so(sim: Sim) -> None:
    headers = {"Idempotency-Key": "k-3"}
    await sim.identify_ok("+79000000001", headers=headers)
    resp = await sim.identify("+79000000001", operator="beta", headers=headers)
    assert resp.status == 422
    problem = await resp.json()
    assert problem["code"] == "idempotency_key_reused"
    assert "a request to operator alfa" in problem["detail"]
    assert "body" not in problem["detail"]


async def test_idempotency_key_at_another_operator_is_another_body(sim: Sim) -> None:
    headers = {"Idempotency-Key": "k-3"}
    await sim.identify_ok("+79000000001", headers=headers)
    resp = await sim.identify("+79000000001", operator="beta", headers=headers)
    assert resp.status == 422


async def test_idempotency_keys_are_per_messenger(sim: Sim) -> None:
    other = await sim.new_messenger("other")
    headers = {"Idempotency-Key": "shared"}
    mine = await sim.identify_ok("+79000000001", headers=headers)
    theirs = await sim.identify_ok("+79000000002", headers=headers, key=other["api_key"])
    assert mine["id"] != theirs["id"]


async def test_refusal_does_not_consume_the_idempotency_key(sim: Sim) -> None:
    headers = {"Idempotency-Key": "retry-me"}
    assert (await sim.identify("+79000000008", headers=headers)).status == 429
    created = await sim.identify_ok("+79000000008", headers=headers)
    replay = await sim.identify_ok("+79000000008", headers=headers)
    assert replay["id"] == created["id"]


async def test_prefer_wait_holds_until_the_answer(sim: Sim) -> None:
    resp_task = asyncio.create_task(sim.identify("+79000000009", headers={"Prefer": "wait=30"}))
    # The POST is held; advancing the clock answers it and releases the response.
    for _ in range(200):
        journal = await sim.admin_ok("GET", "/requests?msisdn=%2B79000000009")
        if journal["requests"]:
            break
        await asyncio.sleep(0.01)
    assert not resp_task.done()
    await sim.advance(300)
    resp = await asyncio.wait_for(resp_task, 5)
    assert resp.status == 201
    assert resp.headers["Preference-Applied"] == "wait=30"
    body = await resp.json()
    assert (body["status"], body["result"]) == ("answered", "present")


async def test_prefer_wait_on_get_returns_after_n_seconds_when_still_pending(sim: Sim) -> None:
    body = await sim.identify_ok("+79000000005")
    resp = await sim.client.get(
        f"/operators/alfa/v1/identification-requests/{body['id']}",
        headers={**sim.auth("demo-messenger-key-not-secret"), "Prefer": "wait=1"},
    )
    assert resp.status == 200
    assert resp.headers["Preference-Applied"] == "wait=1"
    assert (await resp.json())["status"] == "pending"


async def test_prefer_wait_is_capped_at_sixty_seconds(sim: Sim) -> None:
    resp = await sim.identify("+79000000001", headers={"Prefer": "wait=600"})
    assert resp.headers["Preference-Applied"] == "wait=60"


async def test_another_messengers_request_is_not_found(sim: Sim) -> None:
    other = await sim.new_messenger("other")
    body = await sim.identify_ok("+79000000001")
    resp = await sim.client.get(
        f"/operators/alfa/v1/identification-requests/{body['id']}",
        headers=sim.auth(other["api_key"]),
    )
    assert resp.status == 404
    assert (await resp.json())["code"] == "not_found"


async def test_request_read_through_another_operator_is_not_found(sim: Sim) -> None:
    body = await sim.identify_ok("+79000000001")
    resp = await sim.client.get(
        f"/operators/beta/v1/identification-requests/{body['id']}",
        headers=sim.auth("demo-messenger-key-not-secret"),
    )
    assert resp.status == 404


async def test_unknown_operator_is_404(sim: Sim) -> None:
    resp = await sim.identify("+79000000001", operator="omega")
    assert resp.status == 404
    assert (await resp.json())["code"] == "not_found"


async def test_fixture_default_delay_applies_when_no_rule_matches(
    aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    text = default_fixture_path().read_text(encoding="utf-8")
    fixture = tmp_path / "slow.toml"
    fixture.write_text(
        text.replace('default_answer_delay = "PT0S"', 'default_answer_delay = "PT2M"')
    )
    app = create_app(Settings(db=tmp_path / "slow.db", fixture=fixture, clock="manual"))
    slow = Sim(await aiohttp_client(app), tmp_path / "slow.db")
    body = await slow.identify_ok("+79000000001")
    assert body["status"] == "pending"
    await slow.advance(120)
    assert (await slow.get_request(body["id"]))["result"] == "present"
