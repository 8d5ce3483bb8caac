"""Every messenger-facing call in the journal, and the admin's view of codes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from operator_sim.server import create_app
from operator_sim.settings import Settings
from tests.conftest import CODES_PATH, DEMO_KEY, IR_PATH, AiohttpClient, Sim

IR = IR_PATH.format(operator="alfa")
CODES = CODES_PATH.format(operator="alfa")
CODE = "journal-code-0001"


async def _journal(sim: Sim, query: str = "") -> list[dict[str, Any]]:
    body: dict[str, Any] = await sim.admin_ok("GET", f"/journal?{query}")
    return list(body["entries"])


async def _a_whole_flow(sim: Sim) -> str:
    created = await sim.identify_ok("+79000000001")
    await sim.get_request(created["id"])
    assert (await sim.register_code(created["id"], CODE)).status == 201
    headers = sim.auth(DEMO_KEY)
    assert (await sim.client.get("/v1/routing/+79000000001", headers=headers)).status == 200
    assert (await sim.client.get("/operators/alfa/v1/events", headers=headers)).status == 200
    assert (await sim.client.delete(f"{CODES}/{CODE}", headers=headers)).status == 204
    return str(created["id"])


async def test_every_kind_of_call_is_journalled_as_it_returns(sim: Sim) -> None:
    request_id = await _a_whole_flow(sim)
    entries = list(reversed(await _journal(sim)))
    assert [(e["endpoint"], e["method"], e["http_status"]) for e in entries] == [
        ("identification.create", "POST", 201),
        ("identification.get", "GET", 200),
        ("code.register", "POST", 201),
        ("routing.get", "GET", 200),
        ("events.list", "GET", 200),
        ("code.delete", "DELETE", 204),
    ]
    assert entries[0]["path"] == IR
    assert entries[1]["path"] == f"{IR}/{request_id}"
    assert [e["msisdn"] for e in entries] == ["+79000000001"] * 4 + [None, "+79000000001"]
    assert [e["operator_id"] for e in entries] == ["alfa", "alfa", "alfa", None, "alfa", "alfa"]
    assert {e["messenger_id"] for e in entries} == {"demo"}
    assert all(e["rule_id"] is None and e["replayed"] is False for e in entries)
    assert entries == sorted(entries, key=lambda e: e["journal_id"])
    assert (await sim.admin_ok("GET", "/journal/count")) == {"count": 6}


async def test_refused_calls_are_journalled_and_unauthenticated_ones_are_not(sim: Sim) -> None:
    headers = sim.auth(DEMO_KEY)
    bad = await sim.client.post(
        IR, data=b"{oops", headers={**headers, "Content-Type": "application/json"}
    )
    assert bad.status == 400
    unknown = await sim.client.get(f"{IR}/ir_01NOSUCHREQUEST0000000000", headers=headers)
    assert unknown.status == 404
    nobody = await sim.client.get("/v1/routing/+79000000001")
    assert nobody.status == 401
    entries = list(reversed(await _journal(sim)))
    assert [(e["endpoint"], e["http_status"]) for e in entries] == [
        ("identification.create", 400),
        ("identification.get", 404),
    ]
    # The requests journal keeps its meaning: identification POSTs that made a request.
    assert (await sim.admin_ok("GET", "/requests"))["requests"] == []


async def test_the_journal_filters_by_endpoint_number_and_time(sim: Sim) -> None:
    await _a_whole_flow(sim)
    await sim.identify_ok("+79000000002")
    only_codes = await _journal(sim, "endpoint=code.register")
    assert [e["endpoint"] for e in only_codes] == ["code.register"]
    other_number = await _journal(sim, "msisdn=%2B79000000002")
    assert [e["endpoint"] for e in other_number] == ["identification.create"]
    count = await sim.admin_ok("GET", "/journal/count?endpoint=identification.create")
    assert count == {"count": 2}
    bad = await sim.admin("GET", "/journal?endpoint=code.explode")
    assert bad.status == 422
    assert (await bad.json())["code"] == "validation_error"


async def test_the_requests_journal_lists_identification_posts_only(sim: Sim) -> None:
    await _a_whole_flow(sim)
    requests = (await sim.admin_ok("GET", "/requests"))["requests"]
    assert len(requests) == 1
    assert await sim.admin_ok("GET", "/requests/count") == {"count": 1}


async def test_the_cap_counts_every_kind_of_call(
    aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    app = create_app(Settings(db=tmp_path / "cap.db", clock="manual", journal_cap=5))
    sim = Sim(await aiohttp_client(app), tmp_path / "cap.db")
    created = await sim.identify_ok("+79000000001")
    for _ in range(6):  # frequent polling pushes the POST out
        await sim.get_request(created["id"])
    entries = await _journal(sim)
    assert len(entries) == 5
    assert {e["endpoint"] for e in entries} == {"identification.get"}


async def test_codes_show_live_and_ended_with_how_they_ended(sim: Sim) -> None:
    other = await sim.new_messenger("other")
    await _a_whole_flow(sim)  # demo's code: registered, then deleted
    await sim.add_subscribers(
        {"msisdn": "+79011110000", "operator_id": "alfa", "data_complete": True}
    )
    for key, code in ((DEMO_KEY, "kept-code-0001"), (other["api_key"], "ported-code-0001")):
        created = await sim.identify_ok("+79011110000", key=key)
        assert (await sim.register_code(created["id"], code, key=key)).status == 201
    live = (await sim.admin_ok("GET", "/codes?state=live"))["codes"]
    assert {c["code"] for c in live} == {"kept-code-0001", "ported-code-0001"}
    assert all(c["ended_at"] is None and c["ended_by"] is None for c in live)
    await sim.admin_ok("POST", "/subscribers/+79011110000/port", {"to_operator_id": "beta"})
    ended = (await sim.admin_ok("GET", "/codes?state=ended"))["codes"]
    assert {(c["code"], c["ended_by"]) for c in ended} == {
        (CODE, "deleted"),
        ("kept-code-0001", "number_ported"),
        ("ported-code-0001", "number_ported"),
    }
    assert all(c["ended_at"] is not None for c in ended)
    mine = (await sim.admin_ok("GET", "/codes?messenger_id=other"))["codes"]
    assert [c["code"] for c in mine] == ["ported-code-0001"]
    assert (await sim.admin_ok("GET", "/codes?state=live"))["codes"] == []
    bad = await sim.admin("GET", "/codes?state=zombie")
    assert bad.status == 422
