"""Every response of the API's flows, and every webhook delivery, is what /openapi.json says.

The servers here are watched by tests/conformance.py (through the ``aiohttp_client``
fixture): each response is validated against the document the same server serves, so a
flow that runs here clean runs clean for a client generated from that document.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import re
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from standardwebhooks import Webhook

from operator_sim.server import create_app
from operator_sim.server.services import SERVICES
from operator_sim.settings import Settings
from tests.conformance import Conformance, watch
from tests.conftest import ADMIN_TOKEN, DEMO_KEY, IR_PATH, AiohttpClient, Receiver, Sim
from tests.test_readme import _walkthrough

IR = IR_PATH.format(operator="alfa")
EVENTS = "/operators/alfa/v1/events"
BOUND = 30  # seconds: a bound on waiting for a condition, not a performance claim


@pytest.fixture
async def sim(aiohttp_client: AiohttpClient, db_path: Path, conformance: Conformance) -> Sim:
    """The default server, watched here whatever OPSIM_CONFORMANCE says."""
    return Sim(
        await aiohttp_client(_watched(Settings(db=db_path, clock="manual"), conformance)), db_path
    )


def _watched(settings: Settings, conformance: Conformance) -> web.Application:
    app = create_app(settings)
    watch(app, conformance)
    return app


async def _status(resp: aiohttp.ClientResponse, status: int, code: str | None = None) -> Any:
    body = await resp.read()
    assert resp.status == status, body[:500]
    if code is not None:
        assert json.loads(body)["code"] == code
    return json.loads(body) if body and resp.content_type.endswith("json") else None


def _operations(spec: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in spec["paths"].items() for method in item}


async def _identification_flows(sim: Sim) -> None:
    """Every magic number, waits, idempotency, codes and the refusals of the messenger API."""
    requests = {}
    for n in range(1, 10):
        msisdn = f"+7900000000{n}"
        resp = await sim.identify(msisdn)
        if resp.status == 201:
            requests[msisdn] = (await resp.json())["id"]
        else:  # the magic 503 and 429 numbers refuse first
            assert resp.status in (429, 503), await resp.text()
    keyed = {"Idempotency-Key": "conformance-1", "Prefer": "wait=1"}
    first = await _status(await sim.identify("+79001234567", headers=keyed), 201)
    again = await sim.identify("+79001234567", headers=keyed)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert (await _status(again, 201))["id"] == first["id"]
    await _status(await sim.identify("+79001234568", headers=keyed), 422, "idempotency_key_reused")
    await _status(await sim.identify("+79000000001", operator="omega"), 404, "not_found")
    await _status(await sim.identify("8 900 000-00-01"), 422, "invalid_msisdn")
    await _status(await sim.identify("+79000000001", key="wrong"), 401, "unauthorized")
    auth = {**sim.auth(DEMO_KEY)}
    await _status(
        await sim.client.post(IR, data=b"{", headers={**auth, "Content-Type": "application/json"}),
        400,
        "invalid_json",
    )
    await _status(
        await sim.client.post(IR, data=b"{}", headers={**auth, "Content-Type": "text/plain"}),
        415,
        "unsupported_media_type",
    )
    await _status(
        await sim.client.post(
            IR,
            data=b"not gzip at all",
            headers={**auth, "Content-Type": "application/json", "Content-Encoding": "gzip"},
        ),
        400,
        "invalid_content_encoding",
    )
    big = json.dumps({"msisdn": "+79000000001", "pad": "x" * 70_000}).encode()
    await _status(
        await sim.client.post(
            IR,
            data=gzip.compress(big),
            headers={**auth, "Content-Type": "application/json", "Content-Encoding": "gzip"},
        ),
        413,
        "payload_too_large",
    )
    await _status(await sim.client.post(IR, json={"msisdn": 7}, headers=auth), 422)
    await sim.advance(30 * 60)
    for msisdn, request_id in requests.items():
        body = await sim.get_request(request_id)
        assert body["msisdn"] == msisdn
    waited = await sim.client.get(
        f"{IR}/{requests['+79000000001']}", headers={**auth, "Prefer": "wait=2"}
    )
    assert waited.headers["Preference-Applied"] == "wait=2"
    await _status(waited, 200)
    await _status(await sim.client.get(f"{IR}/ir_nope", headers=auth), 404, "not_found")
    present = requests["+79000000001"]
    code = await _status(await sim.register_code(present, "conformance-code-1"), 201)
    assert code["request_id"] == present
    await _status(await sim.register_code(present, "conformance-code-1"), 200)
    await _status(await sim.register_code(present, "conformance-code-2"), 409, "conflict")
    await _status(await sim.register_code("ir_nope", "conformance-code-3"), 404, "not_found")
    codes = "/operators/alfa/v1/identification-codes"
    await _status(await sim.client.delete(f"{codes}/never-registered", headers=auth), 404)
    second = await sim.identify_ok("+79000000009")
    await sim.advance(10 * 60)
    await _status(await sim.register_code(second["id"], "conformance-code-9"), 201)
    await _status(await sim.client.delete(f"{codes}/conformance-code-9", headers=auth), 204)
    for msisdn, status in (("+79000000001", 200), ("8900", 422), ("+19999999999", 404)):
        await _status(await sim.client.get(f"/v1/routing/{msisdn}", headers=auth), status)


async def _feed_and_lifecycle(sim: Sim, receiver: Receiver, conformance: Conformance) -> None:
    """The feed (pages, cursors, a long poll woken by an event), terminations, ports, webhooks."""
    auth = sim.auth(DEMO_KEY)
    page = await _status(await sim.client.get(EVENTS, headers=auth), 200)
    cursor = page["next_cursor"]
    await _status(await sim.client.get(f"{EVENTS}?after=c!", headers=auth), 422)
    await _status(await sim.client.get(f"{EVENTS}?limit=0", headers=auth), 422)
    await _status(await sim.client.get("/operators/omega/v1/events", headers=auth), 404)
    poll = asyncio.create_task(
        sim.client.get(f"{EVENTS}?after={cursor}", headers={**auth, "Prefer": "wait=20"})
    )
    await sim.identify_ok("+79000000002")
    await sim.advance(0)
    async with asyncio.timeout(BOUND):
        woken = await poll
    assert woken.headers["Preference-Applied"] == "wait=20"
    assert (await _status(woken, 200))["events"]

    hooked = await sim.new_messenger("hooked", webhook_url=receiver.url)
    key = hooked["api_key"]
    for msisdn in ("+79000000100", "+79000000101"):
        await sim.add_subscribers(
            {
                "msisdn": msisdn,
                "operator_id": "alfa",
                "full_name": "Conformance Subscriber",
                "birth_date": "1990-01-01",
                "passport": "4500 000000",
            }
        )
    for msisdn, code in (("+79000000100", "hooked-code-100"), ("+79000000101", "hooked-code-101")):
        request = await sim.identify_ok(msisdn, key=key)
        await sim.advance(0)
        await _status(await sim.register_code(request["id"], code, key=key), 201)
    await _status(await sim.admin("POST", "/subscribers/+79000000100/terminate"), 200)
    await _status(await sim.admin("POST", "/subscribers/+79000000100/terminate", {"x": 1}), 422)
    port = {"to_operator_id": "beta"}
    await _status(await sim.admin("POST", "/subscribers/+79000000101/port", port), 200)
    await _status(await sim.admin("POST", "/subscribers/+79000000101/port", port), 409)
    await _status(await sim.admin("POST", "/subscribers/+79000000404/port", port), 404)
    await _status(await sim.admin("POST", "/subscribers/+79000000101/port", {"to": "x"}), 422)
    await sim.advance(1)
    async with asyncio.timeout(BOUND):
        while len(receiver.received) < 4:  # two answers, a termination, a port
            await sim.advance(1)
    types = set()
    for headers, body in receiver.received:
        Webhook(hooked["webhook_secret"]).verify(body, {k.lower(): v for k, v in headers.items()})
        conformance.check_webhook(sim.client.app[SERVICES].openapi, headers, body)
        types.add(json.loads(body)["type"])
    assert types == {
        "identification.answered",
        "subscriber.contract_terminated",
        "subscriber.number_ported",
    }
    hooked_feed = await _status(
        await sim.client.get(EVENTS, headers=sim.auth(key)), 200
    )  # the same objects as the webhooks carried
    delivered = {json.loads(body)["id"]: json.loads(body) for _, body in receiver.received}
    for event in hooked_feed["events"]:
        assert delivered[event["id"]] == event
    deliveries = await _status(await sim.admin("GET", "/deliveries?messenger_id=hooked"), 200)
    event_id = deliveries["deliveries"][0]["event_id"]
    await _status(await sim.admin("POST", f"/deliveries/{event_id}/replay"), 202)
    await _status(await sim.admin("POST", "/deliveries/evt_nope/replay"), 404)
    demo_event = (await _status(await sim.admin("GET", "/deliveries?messenger_id=demo"), 200))[
        "deliveries"
    ][0]["event_id"]
    await _status(await sim.admin("POST", f"/deliveries/{demo_event}/replay"), 409, "conflict")
    await _status(await sim.admin("GET", "/deliveries?limit=abc"), 422)


async def _sms_flows(sim: Sim) -> None:
    """The SMS gateway, the phone's inbox and the SIM swap checks."""
    key = sim.auth(DEMO_KEY)
    sms = "/sms/v1/messages"
    sent = await sim.client.post(
        sms, json={"to": "+79000000011", "text": "Your code is 123456"}, headers=key
    )
    message = await _status(sent, 202)
    assert sent.headers["Location"] == f"{sms}/{message['id']}"
    await _status(await sim.client.post(sms, json={"to": "8916", "text": "x"}, headers=key), 422)
    await _status(await sim.client.post(sms, json={"to": "+79000000011"}, headers=key), 422)
    await _status(await sim.client.get(f"{sms}/{message['id']}", headers=key), 200)
    await _status(await sim.client.get(f"{sms}/sms_nope", headers=key), 404, "not_found")
    await sim.admin_ok("POST", "/clock/advance", {"by": "PT1M"})
    await _status(await sim.client.get("/sms/v1/events?limit=5", headers=key), 200)
    await _status(await sim.client.get("/sms/v1/events?after=zz", headers=key), 422)
    await _status(await sim.admin("GET", "/phones/+79000000011/messages"), 200)
    await _status(await sim.admin("GET", "/phones/+79000000011/otp"), 200)
    await _status(await sim.admin("GET", "/phones/123/otp"), 422, "invalid_msisdn")
    swap = "/operators/alfa/sim-swap/v1"
    number = {"phoneNumber": "+79000000011"}
    await _status(await sim.client.post(f"{swap}/retrieve-date", json=number, headers=key), 200)
    check = {**number, "maxAge": 240}
    await _status(await sim.client.post(f"{swap}/check", json=check, headers=key), 200)
    too_old = {**number, "maxAge": 2401}
    await _status(await sim.client.post(f"{swap}/check", json=too_old, headers=key), 422)
    elsewhere = "/operators/beta/sim-swap/v1/check"
    await _status(await sim.client.post(elsewhere, json=check, headers=key), 404, "not_found")
    await _status(await sim.admin("POST", "/subscribers/+79000000011/sim-swap", {}), 200)
    await _status(await sim.admin("POST", "/subscribers/+79000000002/sim-swap", {}), 404)


async def _admin_flows(sim: Sim) -> None:
    """Messengers, subscribers, journal, rules (faults included), clock and resets."""
    await _status(await sim.admin("GET", "/operators"), 200)
    await _status(await sim.admin("GET", "/messengers"), 200)
    created = await sim.admin("POST", "/messengers", {"id": "extra", "name": "Extra"})
    assert created.headers["Location"] == "/admin/v1/messengers/extra"
    await _status(created, 201)
    await _status(await sim.admin("POST", "/messengers", {"id": "extra", "name": "X"}), 409)
    await _status(await sim.admin("GET", "/messengers/extra"), 200)
    await _status(await sim.admin("GET", "/messengers/nobody"), 404)
    await _status(await sim.admin("PATCH", "/messengers/extra", {"name": "Renamed"}), 200)
    await _status(await sim.admin("PATCH", "/messengers/extra", {"name": None}), 422)
    await _status(await sim.admin("GET", "/subscribers/+79000000001"), 200)
    await _status(await sim.admin("GET", "/subscribers/+79000000002"), 404)
    bad = {"subscribers": [{"msisdn": "12", "operator_id": "alfa"}]}
    await _status(await sim.admin("POST", "/subscribers", bad), 422, "invalid_msisdn")
    unknown = {"subscribers": [{"msisdn": "+79000000123", "operator_id": "omega"}]}
    await _status(await sim.admin("POST", "/subscribers", unknown), 422, "validation_error")
    await _status(await sim.admin("GET", "/requests?limit=5&messenger_id=demo"), 200)
    await _status(await sim.admin("GET", "/requests/count?since=2000-01-01T00:00:00Z"), 200)
    await _status(await sim.admin("GET", "/requests?since=yesterday"), 422)
    await _status(await sim.admin("GET", "/requests/count?msisdn=123"), 422, "invalid_msisdn")
    await _status(await sim.admin("GET", "/journal?endpoint=identification.get&limit=5"), 200)
    await _status(await sim.admin("GET", "/journal/count?messenger_id=demo"), 200)
    await _status(await sim.admin("GET", "/journal?endpoint=nope"), 422, "validation_error")
    await _status(await sim.admin("GET", "/codes?state=ended"), 200)
    await _status(await sim.admin("GET", "/codes?state=zombie"), 422, "validation_error")
    await _status(await sim.admin("GET", "/subscribers?limit=2&operator_id=alfa"), 200)
    await _status(await sim.admin("GET", "/subscribers?status=gone"), 422, "validation_error")
    await _status(await sim.admin("GET", "/subscribers/sample?n=2&seed=7"), 200)
    await _status(await sim.admin("POST", "/messengers", {"id": "rotator", "name": "R"}), 201)
    await _status(await sim.admin("POST", "/messengers/rotator/rotate-key", {"grace": "PT1M"}), 200)
    await _status(await sim.admin("POST", "/messengers/rotator/rotate-webhook-secret", {}), 200)
    await _status(await sim.admin("POST", "/messengers/nobody/rotate-key", {}), 404, "not_found")

    rule = {"id": "teapot", "match": {"msisdn": "+79000000222"}, "action": {"type": "http_error"}}
    rule["action"] = {"type": "http_error", "status": 418, "retry_after": 3}
    made = await sim.admin("POST", "/rules", rule)
    assert made.headers["Location"] == "/admin/v1/rules/teapot"
    await _status(made, 201)
    await _status(await sim.admin("POST", "/rules", rule), 409)
    await _status(await sim.admin("POST", "/rules", {"id": "bad", "action": {"type": "?"}}), 422)
    await _status(await sim.admin("GET", "/rules"), 200)
    await _status(await sim.admin("GET", "/rules/teapot"), 200)
    await _status(await sim.admin("GET", "/rules/nope"), 404)
    teapot = await sim.identify("+79000000222")
    assert teapot.headers["Retry-After"] == "3"
    await _status(teapot, 418, "http_error")
    faults = (
        ("gateway", 502, "server_error"),
        ("conflicting", 409, "http_error"),
        ("refusing", 422, "http_error"),
        ("unavailable", 503, "operator_unavailable"),
    )
    for n, (rule_id, status, code) in enumerate(faults):
        msisdn = f"+7900000030{n}"
        action = {"type": "http_error", "status": status}
        await _status(
            await sim.admin(
                "POST", "/rules", {"id": rule_id, "match": {"msisdn": msisdn}, "action": action}
            ),
            201,
        )
        await _status(await sim.identify(msisdn), status, code)
    shapes: list[dict[str, Any]] = [
        {"type": "malformed", "body": "wrong_shape"},
        {"type": "late", "by": 60},
    ]
    for n, shape in enumerate(shapes):
        msisdn = f"+7900000040{n}"
        spec = {"id": f"shape-{n}", "match": {"msisdn": msisdn}, "action": shape}
        await _status(await sim.admin("POST", "/rules", spec), 201)
        await sim.identify(msisdn)  # the malformed body is excluded from the check
    await _status(await sim.admin("DELETE", "/rules/teapot"), 204)
    await _status(await sim.admin("DELETE", "/rules/teapot"), 404)

    await _status(await sim.admin("GET", "/clock"), 200)
    await _status(await sim.admin("PUT", "/clock", {"mode": "manual"}), 200)
    await _status(await sim.admin("PUT", "/clock", {"mode": "sideways"}), 422)
    await _status(await sim.admin("POST", "/clock/advance", {"by": "PT1M"}), 200)
    await _status(await sim.admin("POST", "/clock/advance", {"by": -1}), 422)
    await _status(await sim.admin("POST", "/messengers/extra/reset"), 204)
    await _status(await sim.admin("POST", "/messengers/nobody/reset"), 404)
    await _status(await sim.admin("POST", "/reset", {"anything": 1}), 422)
    await _status(await sim.admin("POST", "/reset"), 204)
    await _status(await sim.client.get("/admin/v1/clock"), 401, "unauthorized")
    await _status(
        await sim.client.get("/admin/v1/clock", headers=sim.auth(DEMO_KEY)), 401, "unauthorized"
    )


async def _service_and_http(sim: Sim) -> None:
    for path in ("/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"):
        await _status(await sim.client.get(path), 200)
    await _status(await sim.client.get("/nowhere"), 404, "not_found")
    not_allowed = await sim.client.put(IR, headers=sim.auth(DEMO_KEY))
    assert "POST" in not_allowed.headers["Allow"]
    await _status(not_allowed, 405, "method_not_allowed")


async def test_every_flow_answers_as_described(
    sim: Sim, receiver: Receiver, conformance: Conformance
) -> None:
    await _identification_flows(sim)
    await _feed_and_lifecycle(sim, receiver, conformance)
    await _admin_flows(sim)
    await _sms_flows(sim)
    await _service_and_http(sim)
    assert conformance.mismatches == []
    assert conformance.excluded == 1  # the malformed rule's answer
    spec = json.loads(await (await sim.client.get("/openapi.json")).read())
    exercised = {(method, path) for method, path, _ in conformance.seen}
    assert _operations(spec) <= exercised  # every operation was called
    statuses = {status for _, _, status in conformance.seen}
    assert {400, 401, 404, 405, 409, 413, 415, 418, 422, 429, 502, 503} <= statuses


async def test_limits_answer_as_described(
    aiohttp_client: AiohttpClient, tmp_path: Path, conformance: Conformance
) -> None:
    settings = Settings(
        db=tmp_path / "limits.db",
        clock="manual",
        rate_limits="demo=3/m",
        enumeration_quota=2,
        max_header_size=2048,  # below aiohttp's own limit, which answers without the middleware
    )
    sim = Sim(await aiohttp_client(_watched(settings, conformance)), settings.db)
    limited = await sim.identify("+79001110001")
    assert limited.headers["RateLimit-Policy"] == '"messenger";q=3;w=60'
    await _status(limited, 201)
    await _status(await sim.identify("+79001110002"), 201)
    await _status(await sim.identify("+79001110003"), 429, "enumeration_suspected")
    refused = await sim.identify("+79001110004")
    assert refused.headers["RateLimit"].startswith('"messenger";r=0')
    await _status(refused, 429, "rate_limited")
    await _status(await sim.client.get("/healthz?" + "x" * 3000), 414, "uri_too_long")
    await _status(
        await sim.client.get("/healthz", headers={"X-Long": "y" * 3000}), 431, "header_too_large"
    )
    assert conformance.mismatches == []
    assert {429, 414, 431} <= {status for _, _, status in conformance.seen}


async def test_a_body_that_does_not_arrive_is_answered_as_described(
    aiohttp_client: AiohttpClient, tmp_path: Path, conformance: Conformance
) -> None:
    settings = Settings(db=tmp_path / "slow.db", clock="manual", client_timeout=0.5)
    sim = Sim(await aiohttp_client(_watched(settings, conformance)), settings.db)
    port = sim.client.server.port
    assert port is not None
    head = (
        f"POST {IR} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {DEMO_KEY}\r\n"
        "Content-Type: application/json\r\nContent-Length: 40\r\n\r\n{"
    ).encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head)
    await writer.drain()
    async with asyncio.timeout(BOUND):
        answer = await reader.read()  # the server answers 408, then closes
    writer.close()
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert conformance.mismatches == []
    assert (("POST", IR_PATH.replace("{operator}", "{operator_id}"), 408)) in conformance.seen


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
async def test_the_readme_walkthrough_answers_as_described(
    sim: Sim, tmp_path: Path, conformance: Conformance
) -> None:
    base = str(sim.client.make_url("")).rstrip("/")
    proc = await asyncio.create_subprocess_exec(
        "bash",
        "-euo",
        "pipefail",
        "-c",
        _walkthrough(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "OPSIM": base},
        cwd=tmp_path,
    )
    async with asyncio.timeout(BOUND):
        _out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    assert conformance.mismatches == []
    assert {(method, path) for method, path, _ in conformance.seen} >= {
        ("GET", "/v1/routing/{msisdn}"),
        ("POST", "/operators/{operator_id}/v1/identification-requests"),
        ("POST", "/operators/{operator_id}/v1/identification-codes"),
    }


async def test_the_check_finds_a_departure(aiohttp_server: Any, tmp_path: Path) -> None:
    """The check is not vacuous: a server that departs from its document is caught."""
    app = create_app(Settings(db=tmp_path / "odd.db", clock="manual"))
    mine = Conformance()
    watch(app, mine)

    @web.middleware
    async def tamper(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        response = await handler(request)
        if request.path == "/healthz":
            return web.json_response({"status": "sleepy"})
        if request.path == "/readyz":
            return web.json_response({"status": "ok"}, status=418)
        if request.path == "/admin/v1/messengers" and request.method == "POST":
            del response.headers["Location"]
        return response

    app.middlewares.append(tamper)
    server: TestServer = await aiohttp_server(app)
    async with TestClient(server) as client:
        await client.get("/healthz")
        await client.get("/readyz")
        await client.post(
            "/admin/v1/messengers",
            json={"id": "odd", "name": "Odd"},
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        )
    found = "\n".join(mine.mismatches)
    assert re.search(r"GET /healthz -> 200: .*sleepy", found), found
    assert "GET /readyz -> 418" in found
    assert re.search(r"POST /admin/v1/messengers -> 201: .*Location", found), found
    assert mine.checked == 3


async def test_the_check_finds_a_departing_webhook(sim: Sim) -> None:
    """A delivery without its signature, or with a body the event does not have, is caught."""
    document = sim.client.app[SERVICES].openapi
    data = {"msisdn": "+79000000001", "code": "c-1"}
    event: dict[str, Any] = {
        "id": "evt_1",
        "operator_id": "alfa",
        "occurred_at": "2026-03-01T12:00:00.000Z",
        "deliver_by": "2026-03-02T12:00:00.000Z",
        "type": "subscriber.number_ported",
        "data": data,
    }
    headers = {
        "Content-Type": "application/json",
        "webhook-id": "evt_1",
        "webhook-timestamp": "1767268800",
        "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    }
    good = Conformance()
    good.check_webhook(document, headers, json.dumps(event).encode())
    assert good.mismatches == []
    unsigned = Conformance()
    unsigned.check_webhook(
        document,
        {k: v for k, v in headers.items() if k != "webhook-signature"},
        json.dumps(event).encode(),
    )
    assert any("webhook-signature" in m for m in unsigned.mismatches), unsigned.mismatches
    personal = Conformance()
    leaky = {**event, "data": {**data, "full_name": "Иванов Иван"}}
    personal.check_webhook(document, headers, json.dumps(leaky).encode())
    assert personal.mismatches, "a payload with a field the event does not have"
