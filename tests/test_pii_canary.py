"""PII canary: the whole flow on canary subscribers leaks nothing anywhere a messenger looks.

Canary subscribers carry distinctive personal data. The test runs every messenger-facing
call on them (routing, requests with and without long polls, codes, the feed, errors,
limits), terminates one and ports another with webhooks on, and then greps every
messenger-facing response body and header, every webhook body and every log line (on
the production processor chain) for their personal data, and the log for their numbers
unmasked in any formatting. The crash loop (tests/test_crash_loop.py) and the fuzzer
(`scripts/fuzz.py --canary`, in CI) run the same grep over their own traffic.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from aiohttp import web
from aiohttp.test_utils import TestServer

from operator_sim.logs import configure_logging
from operator_sim.server import create_app
from operator_sim.settings import Settings
from tests.conftest import AiohttpClient, Sim

CANARIES = [
    {
        "msisdn": f"+7900777{i:04d}",
        "operator_id": "alfa",
        "full_name": f"Щеглов{i} Евлампий Феофилактович",
        "birth_date": "1959-07-13",
        "passport": f"4611 55{i:04d}",
        "address": f"г. Снегирёвск, ул. Клестовая, д. {i + 1}",
    }
    for i in range(3)
]
PII = ["Щеглов", "Евлампий", "Феофилактович", "1959-07-13", "Снегирёвск", "Клестовая"] + [
    c["passport"] for c in CANARIES
]


def _unmasked(msisdn: str) -> list[str]:
    d = msisdn.removeprefix("+")
    return [d, f"%2B{d}", f"8{d[1:]}", f"{d[0]} {d[1:4]} {d[4:7]}-{d[7:9]}-{d[9:]}"]


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    """Route structlog (and aiohttp's logging) through the production chain into a buffer."""
    stream = io.StringIO()
    configure_logging("debug", "json", stream)
    yield stream
    structlog.reset_defaults()


async def test_the_whole_flow_on_canaries_leaks_no_personal_data(
    aiohttp_client: AiohttpClient, tmp_path: Path, log_stream: io.StringIO
) -> None:
    hooks: list[str] = []

    async def hook(request: web.Request) -> web.Response:
        hooks.append((await request.read()).decode())
        return web.Response(status=204)

    receiver_app = web.Application()
    receiver_app.router.add_post("/hook", hook)
    receiver = TestServer(receiver_app)
    await receiver.start_server()
    settings = Settings(db=tmp_path / "canary.db", clock="manual", enumeration_quota=50)
    sim = Sim(await aiohttp_client(create_app(settings)), settings.db)
    try:
        messenger = await sim.new_messenger("canary-m", webhook_url=str(receiver.make_url("/hook")))
        await sim.add_subscribers(*CANARIES)
        key_value = messenger["api_key"]
        key = sim.auth(key_value)
        seen: list[str] = []

        async def keep(resp: Any) -> Any:
            seen.append(await resp.text())
            seen.append(json.dumps(dict(resp.headers)))
            return resp

        c0, c1, c2 = (c["msisdn"] for c in CANARIES)
        for msisdn in (c0, c1, c2):
            await keep(await sim.client.get(f"/v1/routing/{msisdn}", headers=key))
        made = []
        for msisdn in (c0, c1):
            resp = await keep(
                await sim.identify(msisdn, key=messenger["api_key"], headers={"Prefer": "wait=1"})
            )
            made.append(await resp.json())
            assert made[-1]["result"] == "present"
        for i, req in enumerate(made):
            code = await keep(
                await sim.register_code(req["id"], f"canary-code-{i:04d}", key=messenger["api_key"])
            )
            assert code.status == 201
        await keep(await sim.identify(c2, operator="beta", key=messenger["api_key"]))
        ir = "/operators/alfa/v1/identification-requests"
        await keep(await sim.client.get(f"{ir}/{made[0]['id']}", headers=key))
        broken = b'{"msisdn": "' + c0.encode() + b'" oops'
        await keep(await sim.client.post(ir, data=broken, headers=key))
        again = await sim.register_code(made[0]["id"], "canary-code-0001", key=messenger["api_key"])
        await keep(again)
        await sim.admin_ok("POST", f"/subscribers/{c0}/terminate")
        await sim.admin_ok("POST", f"/subscribers/{c1}/port", {"to_operator_id": "beta"})
        await sim.advance(25 * 3600)
        await keep(await sim.client.get("/operators/alfa/v1/events", headers=key))
        await keep(await sim.client.get("/operators/beta/v1/events", headers=key))
        await keep(await sim.client.get(f"/v1/routing/{c1}", headers=key))
        await keep(await sim.identify(c1, key=messenger["api_key"]))  # ported away: absent
        await keep(await sim.client.get("/metrics"))
        await sim.advance(60)  # the last answer's webhook falls due
        deliveries = await sim.admin_ok("GET", "/deliveries?messenger_id=canary-m")
        states = {d["webhook"]["state"] for d in deliveries["deliveries"]}
        assert states == {"delivered"}
        types = {json.loads(h)["type"] for h in hooks}
        assert types == {
            "identification.answered",
            "subscriber.contract_terminated",
            "subscriber.number_ported",
        }
    finally:
        await receiver.close()
    logs = log_stream.getvalue()
    assert logs.count('"event": "request"') >= 15
    hits = [
        (where, pii)
        for where, texts in (("response", seen), ("webhook", hooks), ("log", [logs]))
        for text in texts
        for pii in PII
        if pii in text
    ]
    hits += [
        ("log", variant[:5])
        for canary in CANARIES
        for variant in _unmasked(canary["msisdn"])
        if variant in logs
    ]
    assert hits == []
    assert "+7900*****00" in logs  # the numbers did reach the log, masked


OTP_CANARY = "58301749"
TEXT_CANARY = "Снегирь-канарейка"
OTP_TEXT = f"{OTP_CANARY} is your code. {TEXT_CANARY}"


async def test_one_time_codes_reach_the_phones_inbox_and_nothing_else(
    aiohttp_client: AiohttpClient, tmp_path: Path, log_stream: io.StringIO
) -> None:
    hooks: list[str] = []

    async def hook(request: web.Request) -> web.Response:
        hooks.append((await request.read()).decode() + json.dumps(dict(request.headers)))
        return web.Response(status=204)

    receiver_app = web.Application()
    receiver_app.router.add_post("/hook", hook)
    receiver = TestServer(receiver_app)
    await receiver.start_server()
    settings = Settings(db=tmp_path / "otp-canary.db", clock="manual")
    sim = Sim(await aiohttp_client(create_app(settings)), settings.db)
    seen: list[str] = []

    async def keep(resp: Any) -> Any:
        seen.append(await resp.text())
        seen.append(json.dumps(dict(resp.headers)))
        return resp

    try:
        messenger = await sim.new_messenger("otp-m", webhook_url=str(receiver.make_url("/hook")))
        await sim.add_subscribers(*CANARIES)
        key = sim.auth(messenger["api_key"])
        numbers = [c["msisdn"] for c in CANARIES] + ["+79000000012", "+79000000017"]
        sent = []
        for msisdn in numbers:
            body = {"to": msisdn, "text": OTP_TEXT, "client_ref": "otp-canary"}
            resp = await keep(
                await sim.client.post(
                    "/sms/v1/messages", json=body, headers={**key, "Idempotency-Key": msisdn}
                )
            )
            assert resp.status == 202
            sent.append((await resp.json())["id"])
        # A replay, a reused key, bodies refused with the code in them: nothing echoed.
        for text, status in ((OTP_TEXT, 202), (f"{OTP_TEXT}!", 422), (OTP_TEXT * 50, 422)):
            resp = await keep(
                await sim.client.post(
                    "/sms/v1/messages",
                    json={"to": numbers[0], "text": text, "client_ref": "otp-canary"},
                    headers={**key, "Idempotency-Key": numbers[0]},
                )
            )
            assert resp.status == status
        await keep(
            await sim.client.post(
                "/sms/v1/messages",
                data=f'{{"to": "{numbers[0]}", "text": "{OTP_TEXT}"',
                headers=key,
            )
        )
        await sim.advance(60)
        for sms_id in sent:
            await keep(await sim.client.get(f"/sms/v1/messages/{sms_id}", headers=key))
        await keep(await sim.client.get("/sms/v1/events", headers=key))
        await keep(await sim.client.get("/metrics"))
        journal = json.dumps(await sim.admin_ok("GET", "/journal"))
        deliveries = json.dumps(await sim.admin_ok("GET", "/deliveries"))
        inbox = await sim.admin_ok("GET", f"/phones/{numbers[0]}/messages")
        assert [m["text"] for m in inbox["messages"]] == [OTP_TEXT]
        otp = await sim.admin_ok("GET", f"/phones/{numbers[0]}/otp")
        assert otp["code"] == OTP_CANARY
        assert len(hooks) >= 2 * len(numbers) - 1  # sent, then delivered or undelivered
    finally:
        await receiver.close()
    logs = log_stream.getvalue()
    assert logs.count('"event": "sms_status_changed"') >= len(numbers)
    places = (
        ("response", seen),
        ("webhook", hooks),
        ("log", [logs]),
        ("journal", [journal]),
        ("deliveries", [deliveries]),
    )
    hits = [
        (where, canary)
        for where, texts in places
        for text in texts
        for canary in (OTP_CANARY, TEXT_CANARY, *PII)
        if canary in text
    ]
    hits += [
        ("log", variant[:5])
        for canary in CANARIES
        for variant in _unmasked(canary["msisdn"])
        if variant in logs
    ]
    assert hits == []
