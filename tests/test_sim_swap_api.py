"""SIM swap over HTTP: the holder answers (CAMARA shapes), the admin records swaps."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from aiohttp import ClientResponse

from operator_sim.errors import FixtureError
from operator_sim.fixture import parse_fixture
from operator_sim.server import create_app
from operator_sim.settings import Settings
from tests.conftest import DEMO_KEY, AiohttpClient, Sim

SWAPPED = "+79000000018"
BASE = "/operators/{operator}/sim-swap/v1"


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def retrieve(sim: Sim, msisdn: str, *, operator: str = "alfa") -> ClientResponse:
    """POST retrieve-date."""
    return await sim.client.post(
        f"{BASE.format(operator=operator)}/retrieve-date",
        json={"phoneNumber": msisdn},
        headers=sim.auth(DEMO_KEY),
    )


async def check(
    sim: Sim, msisdn: str, max_age: Any = None, *, operator: str = "alfa"
) -> ClientResponse:
    """POST check (``maxAge`` left out when None)."""
    body: dict[str, Any] = {"phoneNumber": msisdn}
    if max_age is not None:
        body["maxAge"] = max_age
    return await sim.client.post(
        f"{BASE.format(operator=operator)}/check", json=body, headers=sim.auth(DEMO_KEY)
    )


async def swapped(sim: Sim, msisdn: str, max_age: Any = None) -> bool:
    """The check's answer, which must be 200."""
    resp = await check(sim, msisdn, max_age)
    assert resp.status == 200, await resp.text()
    body: dict[str, bool] = await resp.json()
    return body["swapped"]


async def test_18_was_swapped_an_hour_before_the_fixture_was_first_applied(sim: Sim) -> None:
    now = _at((await sim.admin_ok("GET", "/clock"))["now"])
    resp = await retrieve(sim, SWAPPED)
    assert resp.status == 200
    latest = _at((await resp.json())["latestSimChange"])
    # The fixture was applied as this server started, on the same (manual) clock.
    assert now - latest == timedelta(hours=1)
    assert await swapped(sim, SWAPPED, 2)
    assert await swapped(sim, SWAPPED)  # the default maxAge: 240 hours
    await sim.advance(3 * 3600)
    assert not await swapped(sim, SWAPPED, 2)
    assert await swapped(sim, SWAPPED, 5)


async def test_a_number_never_swapped_has_no_date(sim: Sim) -> None:
    resp = await retrieve(sim, "+79000000011")
    assert await resp.json() == {"latestSimChange": None}
    assert not await swapped(sim, "+79000000011", 2400)


async def test_a_number_in_the_range_without_a_record_is_answered_by_the_range_holder(
    sim: Sim,
) -> None:
    assert await (await retrieve(sim, "+79000000012")).json() == {"latestSimChange": None}


async def test_only_the_holder_answers(sim: Sim) -> None:
    for call in (retrieve(sim, SWAPPED, operator="beta"), check(sim, SWAPPED, operator="beta")):
        resp = await call
        assert resp.status == 404
        assert (await resp.json())["code"] == "not_found"
    unknown = await retrieve(sim, SWAPPED, operator="nobody")
    assert unknown.status == 404
    journal = await sim.admin_ok("GET", "/journal?endpoint=sim_swap.retrieve_date")
    assert [(e["operator_id"], e["http_status"], e["msisdn"]) for e in journal["entries"]][1] == (
        "beta",
        404,
        SWAPPED,
    )


async def test_after_a_port_the_new_holder_answers(sim: Sim) -> None:
    await sim.admin_ok("POST", f"/subscribers/{SWAPPED}/port", {"to_operator_id": "beta"})
    assert (await retrieve(sim, SWAPPED, operator="alfa")).status == 404
    assert (await retrieve(sim, SWAPPED, operator="beta")).status == 200


@pytest.mark.parametrize("max_age", [0, 2401, -1, 2.5, "24", True])
async def test_max_age_outside_1_to_2400_hours_is_refused(sim: Sim, max_age: Any) -> None:
    resp = await check(sim, SWAPPED, max_age)
    assert resp.status == 422
    assert (await resp.json())["code"] == "validation_error"


@pytest.mark.parametrize("max_age", [1, 2400, 24.0])
async def test_max_age_at_its_bounds_is_accepted(sim: Sim, max_age: Any) -> None:
    assert (await check(sim, SWAPPED, max_age)).status == 200


async def test_a_bad_phone_number_is_invalid_msisdn(sim: Sim) -> None:
    resp = await sim.client.post(
        f"{BASE.format(operator='alfa')}/check",
        json={"phoneNumber": "8 900 000-00-18"},
        headers=sim.auth(DEMO_KEY),
    )
    assert (resp.status, (await resp.json())["code"]) == (422, "invalid_msisdn")


async def test_the_admin_records_a_swap_now_by_default(sim: Sim) -> None:
    not_json = await sim.admin("POST", "/subscribers/+79000000011/sim-swap", "at")
    assert (not_json.status, (await not_json.json())["code"]) == (422, "validation_error")
    assert not await swapped(sim, "+79000000011", 1)
    # No body at all is every default: a swap now.
    recorded = await sim.admin_ok("POST", "/subscribers/+79000000011/sim-swap")
    now = (await sim.admin_ok("GET", "/clock"))["now"]
    assert recorded == {
        "msisdn": "+79000000011",
        "operator_id": "alfa",
        "latest_sim_change": now,
    }
    assert await swapped(sim, "+79000000011", 1)
    body = await (await retrieve(sim, "+79000000011")).json()
    assert body == {"latestSimChange": now}


async def test_the_admin_records_a_swap_at_a_given_time_keeping_the_latest(sim: Sim) -> None:
    now = _at((await sim.admin_ok("GET", "/clock"))["now"])
    earlier = (now - timedelta(days=30)).isoformat()
    recorded = await sim.admin_ok("POST", "/subscribers/+79000000011/sim-swap", {"at": earlier})
    assert _at(recorded["latest_sim_change"]) == now - timedelta(days=30)
    assert not await swapped(sim, "+79000000011", 240)
    assert await swapped(sim, "+79000000011", 24 * 31)
    older = (now - timedelta(days=60)).isoformat()
    kept = await sim.admin_ok("POST", "/subscribers/+79000000011/sim-swap", {"at": older})
    assert _at(kept["latest_sim_change"]) == now - timedelta(days=30)


async def test_a_swap_ahead_of_the_clock_or_of_nobody_is_refused(sim: Sim) -> None:
    now = _at((await sim.admin_ok("GET", "/clock"))["now"])
    ahead = await sim.admin(
        "POST",
        "/subscribers/+79000000011/sim-swap",
        {"at": (now + timedelta(minutes=1)).isoformat()},
    )
    assert ahead.status == 422
    naive = await sim.admin(
        "POST", "/subscribers/+79000000011/sim-swap", {"at": "2026-01-01T00:00"}
    )
    assert naive.status == 422
    nobody = await sim.admin("POST", "/subscribers/+79000000012/sim-swap", {})
    assert nobody.status == 404
    assert await (await retrieve(sim, "+79000000011")).json() == {"latestSimChange": None}


async def test_a_swap_ends_neither_the_contract_nor_the_code(sim: Sim) -> None:
    req = await sim.identify_ok("+79000000011")
    assert req["result"] == "present"
    assert (await sim.register_code(req["id"], "code-after-swap-01")).status == 201
    await sim.admin_ok("POST", "/subscribers/+79000000011/sim-swap", {})
    assert (await sim.identify_ok("+79000000011"))["result"] == "present"
    codes = await sim.admin_ok("GET", "/codes?msisdn=%2B79000000011")
    assert [(c["code"], c["ended_by"]) for c in codes["codes"]] == [("code-after-swap-01", None)]
    deliveries = (await sim.admin_ok("GET", "/deliveries"))["deliveries"]
    assert {d["type"] for d in deliveries} == {"identification.answered"}  # no ending


async def test_reset_restores_the_fixtures_swap_and_keeps_the_admins(sim: Sim) -> None:
    first = await (await retrieve(sim, SWAPPED)).json()
    await sim.add_subscribers({"msisdn": "+79011110000", "operator_id": "alfa"})
    await sim.admin_ok("POST", "/subscribers/+79011110000/sim-swap", {})
    await sim.admin_ok("POST", f"/subscribers/{SWAPPED}/sim-swap", {})
    await sim.admin_ok("POST", "/subscribers/+79000000011/sim-swap", {})
    await sim.advance(7200)
    await sim.admin("POST", "/reset")
    assert await (await retrieve(sim, SWAPPED)).json() == first
    assert await (await retrieve(sim, "+79000000011")).json() == {"latestSimChange": None}
    kept = await (await retrieve(sim, "+79011110000")).json()
    assert kept["latestSimChange"] is not None


async def test_the_fixtures_swap_keeps_its_date_across_a_restart(
    aiohttp_client: AiohttpClient, sim: Sim
) -> None:
    first = await (await retrieve(sim, SWAPPED)).json()
    await sim.advance(3600)
    await sim.client.close()
    again = Sim(
        await aiohttp_client(create_app(Settings(db=sim.db_path, clock="manual"))), sim.db_path
    )
    assert await (await retrieve(again, SWAPPED)).json() == first


async def test_rules_reach_the_sim_swap_calls(sim: Sim) -> None:
    rule = {"id": "swap-down", "match": {"endpoint": "sim_swap.check", "msisdn": SWAPPED}}
    await sim.admin_ok("POST", "/rules", {**rule, "action": {"type": "http_error", "status": 500}})
    assert (await check(sim, SWAPPED)).status == 500
    assert (await retrieve(sim, SWAPPED)).status == 200
    journal = await sim.admin_ok("GET", "/journal?endpoint=sim_swap.check")
    assert journal["entries"][0]["rule_id"] == "swap-down"


def test_a_fixture_swap_must_name_one_of_its_subscribers() -> None:
    raw = b"""
name = "t"
[[operators]]
id = "o"
name = "O"
ranges = [{ from = "+79000000000", to = "+79000000099" }]
[[sim_swaps]]
msisdn = "+79000000001"
before_first_applied = "PT1H"
"""
    with pytest.raises(FixtureError) as caught:
        parse_fixture("t.toml", raw)
    assert caught.value.field == "sim_swaps[0].msisdn"
