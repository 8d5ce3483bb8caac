"""The admin API: operators, messengers, subscribers, the journal, the clock and reset."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from tests.conftest import ADMIN_TOKEN, DEMO_KEY, Sim


def _ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def test_operators_lists_at_least_three_with_ranges(sim: Sim) -> None:
    body = await sim.admin_ok("GET", "/operators")
    ids = [op["id"] for op in body["operators"]]
    assert ids[:4] == ["alfa", "beta", "gamma", "delta"]
    alfa = body["operators"][0]
    assert {"from": "+79000000000", "to": "+79029999999"} in alfa["ranges"]


async def test_messenger_registration_shows_secrets_once(sim: Sim) -> None:
    created = await sim.new_messenger("acme", webhook_url="http://127.0.0.1:9/hook")
    assert created["api_key"].startswith("osk_")
    assert created["webhook_secret"].startswith("whsec_")
    listed = await sim.admin_ok("GET", "/messengers")
    acme = next(m for m in listed["messengers"] if m["id"] == "acme")
    assert set(acme) == {"id", "name", "webhook_url", "created_at"}
    # The new key works at once.
    assert (await sim.identify("+79000000001", key=created["api_key"])).status == 201


async def test_duplicate_messenger_is_409(sim: Sim) -> None:
    await sim.new_messenger("acme")
    resp = await sim.admin("POST", "/messengers", {"id": "acme", "name": "Again"})
    assert resp.status == 409


async def test_webhook_url_must_be_http(sim: Sim) -> None:
    for url in ["ftp://example.test/x", "not a url", "http://"]:
        resp = await sim.admin("POST", "/messengers", {"id": "w", "name": "W", "webhook_url": url})
        assert resp.status == 422, url


async def test_api_keys_are_stored_hashed(sim: Sim) -> None:
    import sqlite3

    created = await sim.new_messenger("acme")
    with sqlite3.connect(sim.db_path) as conn:
        dump = "\n".join(conn.iterdump())
    assert created["api_key"] not in dump
    assert DEMO_KEY not in dump


async def test_subscriber_upsert_then_get_with_personal_data(sim: Sim) -> None:
    subscriber = {
        "msisdn": "+79001112233",
        "operator_id": "alfa",
        "full_name": "Тестов Тест Тестович",
        "birth_date": "1990-05-06",
        "passport": "4501 123123",
        "address": "г. Тула, ул. Ленина, д. 2",
    }
    result = await sim.admin_ok("POST", "/subscribers", {"subscribers": [subscriber]})
    assert result == {"upserted": 1, "created": 1, "updated": 0, "events": 0}
    got = await sim.admin_ok("GET", "/subscribers/+79001112233")
    assert got["full_name"] == "Тестов Тест Тестович"
    assert got["data_complete"] is True
    assert got["status"] == "active"
    again = await sim.admin_ok("POST", "/subscribers", {"subscribers": [subscriber]})
    assert again == {"upserted": 1, "created": 0, "updated": 1, "events": 0}
    assert (await sim.identify_ok("+79001112233"))["result"] == "present"


async def test_subscriber_without_documents_is_incomplete_by_default(sim: Sim) -> None:
    await sim.add_subscribers({"msisdn": "+79001112244", "operator_id": "alfa"})
    got = await sim.admin_ok("GET", "/subscribers/+79001112244")
    assert got["data_complete"] is False
    assert (await sim.identify_ok("+79001112244"))["result"] == "absent"


async def test_explicit_data_complete_wins(sim: Sim) -> None:
    await sim.add_subscribers(
        {"msisdn": "+79001112255", "operator_id": "alfa", "data_complete": True}
    )
    assert (await sim.identify_ok("+79001112255"))["result"] == "present"


async def test_upsert_with_an_unknown_operator_changes_nothing(sim: Sim) -> None:
    resp = await sim.admin(
        "POST",
        "/subscribers",
        {
            "subscribers": [
                {"msisdn": "+79001112266", "operator_id": "alfa"},
                {"msisdn": "+79001112277", "operator_id": "nope"},
            ]
        },
    )
    assert resp.status == 422
    assert (await sim.admin("GET", "/subscribers/+79001112266")).status == 404


async def test_unknown_subscriber_is_404(sim: Sim) -> None:
    resp = await sim.admin("GET", "/subscribers/+79001119999")
    assert resp.status == 404


async def test_journal_is_newest_first_with_messenger_and_filters(sim: Sim) -> None:
    other = await sim.new_messenger("other")
    await sim.identify_ok("+79000000001")
    await sim.identify_ok("+79000000002", key=other["api_key"])
    await sim.identify_ok("+79000000001", operator="beta")
    everything = (await sim.admin_ok("GET", "/requests"))["requests"]
    assert [(e["msisdn"], e["messenger_id"], e["operator_id"]) for e in everything] == [
        ("+79000000001", "demo", "beta"),
        ("+79000000002", "other", "alfa"),
        ("+79000000001", "demo", "alfa"),
    ]
    mine = (await sim.admin_ok("GET", "/requests?messenger_id=demo"))["requests"]
    assert {e["messenger_id"] for e in mine} == {"demo"}
    by_number = (await sim.admin_ok("GET", "/requests?msisdn=+79000000001"))["requests"]
    assert len(by_number) == 2
    by_operator = (await sim.admin_ok("GET", "/requests?operator_id=beta"))["requests"]
    assert len(by_operator) == 1
    limited = (await sim.admin_ok("GET", "/requests?limit=1"))["requests"]
    assert len(limited) == 1


async def test_journal_shows_current_state(sim: Sim) -> None:
    req = await sim.identify_ok("+79000000005")
    await sim.advance(1200)
    entry = (await sim.admin_ok("GET", "/requests"))["requests"][0]
    assert entry["id"] == req["id"]
    assert entry["status"] == "expired"


async def test_journal_limit_is_validated(sim: Sim) -> None:
    for bad in ["0", "1001", "x", "-1"]:
        resp = await sim.admin("GET", f"/requests?limit={bad}")
        assert resp.status == 422, bad


async def test_clock_get_set_and_advance(sim: Sim) -> None:
    clock = await sim.admin_ok("GET", "/clock")
    assert clock["mode"] == "manual"
    before = _ts(clock["now"])
    advanced = await sim.advance(3600)
    assert _ts(advanced["now"]) - before == timedelta(hours=1)
    scaled = await sim.admin_ok("PUT", "/clock", {"mode": "scaled", "scale": 60})
    assert (scaled["mode"], scaled["scale"]) == ("scaled", 60)
    assert _ts(scaled["now"]) >= before + timedelta(hours=1)
    manual = await sim.admin_ok("PUT", "/clock", {"mode": "manual"})
    assert _ts(manual["now"]) >= _ts(scaled["now"])


async def test_advance_accepts_iso_durations(sim: Sim) -> None:
    before = _ts((await sim.admin_ok("GET", "/clock"))["now"])
    after = await sim.admin_ok("POST", "/clock/advance", {"by": "PT20M"})
    assert _ts(after["now"]) - before == timedelta(minutes=20)


async def test_clock_rejects_bad_input(sim: Sim) -> None:
    assert (await sim.admin("PUT", "/clock", {"mode": "scaled", "scale": "60"})).status == 422
    assert (await sim.admin("PUT", "/clock", {"mode": "warp"})).status == 422
    assert (await sim.admin("PUT", "/clock", {"mode": "scaled", "scale": 0})).status == 422
    assert (await sim.admin("POST", "/clock/advance", {"by": -5})).status == 422
    assert (await sim.admin("POST", "/clock/advance", {"by": "soon"})).status == 422


@pytest.mark.parametrize("by", [-9.077677060467006e-257, -0.0004, "-PT1S", "P-1D", "PT-0S", True])
async def test_a_negative_advance_is_refused_however_small(sim: Sim, by: object) -> None:
    before = (await sim.admin_ok("GET", "/clock"))["now"]
    resp = await sim.admin("POST", "/clock/advance", {"by": by})
    assert resp.status == 422, await resp.text()
    assert (await resp.json())["code"] == "validation_error"
    assert (await sim.admin_ok("GET", "/clock"))["now"] == before


async def test_reset_clears_flow_state_and_keeps_messengers(sim: Sim) -> None:
    other = await sim.new_messenger("other")
    await sim.add_subscribers(
        {"msisdn": "+79001113344", "operator_id": "alfa", "data_complete": True}
    )
    await sim.add_subscribers(
        {"msisdn": "+79000000001", "operator_id": "alfa", "status": "terminated"}
    )
    headers = {"Idempotency-Key": "before-reset"}
    pending = await sim.identify_ok("+79000000005", headers=headers)
    assert (await sim.identify("+79000000008")).status == 429
    resp = await sim.admin("POST", "/reset")
    assert resp.status == 204
    assert (await sim.admin_ok("GET", "/requests"))["requests"] == []
    gone = await sim.client.get(
        f"/operators/alfa/v1/identification-requests/{pending['id']}", headers=sim.auth(DEMO_KEY)
    )
    assert gone.status == 404
    # Fixture subscriber restored, admin-added one kept, messenger kept, counters restarted.
    assert (await sim.identify_ok("+79000000001"))["result"] == "present"
    assert (await sim.identify_ok("+79001113344"))["result"] == "present"
    assert (await sim.identify("+79000000001", key=other["api_key"])).status == 201
    assert (await sim.identify("+79000000008")).status == 429
    # The idempotency key is free again, and nothing fires for the cleared request.
    assert (await sim.identify_ok("+79000000001", headers=headers))["id"] != pending["id"]
    assert (await sim.advance(3600))["fired"] == 0


async def test_reset_accepts_an_empty_object_and_refuses_input(sim: Sim) -> None:
    assert (await sim.admin("POST", "/reset", {})).status == 204
    assert (await sim.admin("POST", "/reset", {"all": True})).status == 422
    resp = await sim.client.post(
        "/admin/v1/reset",
        data=b"x=1",
        headers={**sim.auth(ADMIN_TOKEN), "Content-Type": "text/plain"},
    )
    assert resp.status == 415


async def test_admin_api_refuses_messenger_keys(sim: Sim) -> None:
    resp = await sim.client.get("/admin/v1/operators", headers=sim.auth(DEMO_KEY))
    assert resp.status == 401
    assert resp.headers["WWW-Authenticate"] == "Bearer"


async def test_messenger_api_refuses_the_admin_token(sim: Sim) -> None:
    assert (await sim.identify("+79000000001", key=ADMIN_TOKEN)).status == 401


async def test_repeated_number_in_one_upsert_keeps_the_last(sim: Sim) -> None:
    result = await sim.admin_ok(
        "POST",
        "/subscribers",
        {
            "subscribers": [
                {"msisdn": "+79001110000", "operator_id": "alfa"},
                {"msisdn": "+79001110000", "operator_id": "beta", "data_complete": True},
            ]
        },
    )
    assert result == {"upserted": 1, "created": 1, "updated": 0, "events": 0}
    assert (await sim.admin_ok("GET", "/subscribers/+79001110000"))["operator_id"] == "beta"


async def test_bulk_upsert_may_exceed_the_64_kib_limit_of_other_calls(sim: Sim) -> None:
    subscribers = [
        {
            "msisdn": f"+7900111{i:04d}",
            "operator_id": "alfa",
            "full_name": "Ф" * 200,
            "address": "А" * 200,
        }
        for i in range(1000)
    ]
    result = await sim.admin_ok("POST", "/subscribers", {"subscribers": subscribers})
    assert result["created"] == 1000


async def test_scaled_clock_without_scale_takes_sixty(sim: Sim) -> None:
    clock = await sim.admin_ok("PUT", "/clock", {"mode": "scaled"})
    assert (clock["mode"], clock["scale"]) == ("scaled", 60)
    faster = await sim.admin_ok("PUT", "/clock", {"mode": "scaled", "scale": 600})
    again = await sim.admin_ok("PUT", "/clock", {"mode": "scaled"})
    assert faster["scale"] == again["scale"] == 600
