"""Limits: rate limit, parked long polls, enumeration quota, body and header sizes, slow clients."""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import re
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from aiohttp.test_utils import TestServer

from operator_sim.domain.limits import RatePolicy, parse_rate_limits
from operator_sim.logs import configure_logging
from operator_sim.server import create_app
from operator_sim.server.limits import server_options
from operator_sim.server.parsing import BODY_LIMIT
from operator_sim.server.services import SERVICES
from operator_sim.settings import Settings
from tests.conftest import ADMIN_TOKEN, DEMO_KEY, IR_PATH, AiohttpClient, Sim

IR = IR_PATH.format(operator="alfa")
EVENTS = "/operators/alfa/v1/events"
BOUND = 30  # seconds: a bound for a slow CI machine, not a performance claim


async def _sim(aiohttp_client: AiohttpClient, tmp_path: Path, **settings: Any) -> Sim:
    config = Settings(db=tmp_path / "limits.db", clock="manual", **settings)
    server = TestServer(create_app(config))
    # TestServer drops its constructor's keyword arguments: pass them to start_server.
    await server.start_server(**server_options(config))
    return Sim(await aiohttp_client(server), config.db)


async def _problem(resp: Any, status: int, code: str) -> dict[str, Any]:
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/problem+json"
    body: dict[str, Any] = await resp.json()
    assert body["code"] == code
    return body


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    """Route structlog through the production processor chain into a buffer."""
    stream = io.StringIO()
    configure_logging("info", "json", stream)
    yield stream
    structlog.reset_defaults()


# --- configuration ------------------------------------------------------------------


def test_rate_limit_spec_is_parsed() -> None:
    assert parse_rate_limits("demo=50/s, *=1000/m,ci=10/30s,slow=5/h") == {
        "demo": RatePolicy(50, 1),
        "*": RatePolicy(1000, 60),
        "ci": RatePolicy(10, 30),
        "slow": RatePolicy(5, 3600),
    }
    assert parse_rate_limits("") == {}


@pytest.mark.parametrize("spec", ["demo", "demo=50", "demo=0/s", "demo=5/d", "a=1/s,a=2/s"])
def test_bad_rate_limit_spec_is_refused(spec: str) -> None:
    with pytest.raises(ValueError, match="rate limit"):
        Settings(rate_limits=spec)


def test_defaults_never_throttle() -> None:
    settings = Settings()
    assert settings.rate_limits == ""
    assert settings.enumeration_quota == 0
    assert settings.max_long_polls >= 100


# --- rate limit ---------------------------------------------------------------------


async def test_rate_limit_refuses_with_retry_after_and_ratelimit_headers(
    aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    sim = await _sim(aiohttp_client, tmp_path, rate_limits="demo=3/h,*=1000/s")
    statuses = []
    for _ in range(3):
        resp = await sim.identify("+79000000001")
        statuses.append(resp.status)
        assert resp.headers["RateLimit-Policy"] == '"messenger";q=3;w=3600'
        assert re.fullmatch(r'"messenger";r=\d+;t=\d+', resp.headers["RateLimit"])
    assert statuses == [201, 201, 201]
    refused = await sim.identify("+79000000001")
    body = await _problem(refused, 429, "rate_limited")
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.headers["RateLimit"].startswith('"messenger";r=0;t=')
    assert "Traceback" not in json.dumps(body)
    # Every messenger-facing call counts, not only POSTs.
    await _problem(await sim.client.get(EVENTS, headers=sim.auth(DEMO_KEY)), 429, "rate_limited")
    # Another messenger has its own bucket; admin calls are never counted.
    other = await sim.new_messenger("other")
    assert (await sim.identify("+79000000002", key=other["api_key"])).status == 201
    for _ in range(5):
        assert (await sim.admin("GET", "/clock")).status == 200
    # Nothing was created by the refusals.
    journal = await sim.admin_ok("GET", "/requests/count?messenger_id=demo")
    assert journal == {"count": 3}


async def test_without_rate_limits_nothing_is_throttled(sim: Sim) -> None:
    responses = await asyncio.gather(*(sim.identify("+79000000002") for _ in range(60)))
    assert {r.status for r in responses} == {201}
    assert all("RateLimit" not in r.headers for r in responses)


# --- long polls ---------------------------------------------------------------------


async def test_a_messenger_over_its_long_poll_bound_gets_429(
    aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    sim = await _sim(aiohttp_client, tmp_path, max_long_polls=3)
    wait = {**sim.auth(DEMO_KEY), "Prefer": "wait=60"}
    held = [asyncio.create_task(sim.client.get(EVENTS, headers=wait)) for _ in range(3)]
    assert isinstance(sim.client.server, TestServer)
    app = sim.client.server.app
    for _ in range(BOUND * 100):  # bounded poll until all three park
        if app[SERVICES].limits.parked("demo") == 3:
            break
        await asyncio.sleep(0.01)
    refused = await sim.client.get(EVENTS, headers=wait)
    await _problem(refused, 429, "too_many_long_polls")
    assert refused.headers["Retry-After"] == "1"
    # Short calls still pass, and so do another messenger's long polls.
    assert (await sim.client.get(EVENTS, headers=sim.auth(DEMO_KEY))).status == 200
    other = await sim.new_messenger("other")
    other_wait = {**sim.auth(other["api_key"]), "Prefer": "wait=1"}
    assert (await sim.client.get(EVENTS, headers=other_wait)).status == 200
    # An event releases the parked polls; then the messenger may poll again.
    created = await sim.identify_ok("+79000000001")
    assert created["status"] == "answered"
    async with asyncio.timeout(BOUND):
        for resp in await asyncio.gather(*held):
            assert resp.status == 200
            assert len((await resp.json())["events"]) == 1
    assert app[SERVICES].limits.parked("demo") == 0
    assert (await sim.client.get(EVENTS, headers={**wait, "Prefer": "wait=1"})).status == 200


# --- enumeration ----------------------------------------------------------------------


async def test_a_sequential_sweep_trips_the_enumeration_quota_and_is_logged_without_numbers(
    aiohttp_client: AiohttpClient, tmp_path: Path, log_stream: io.StringIO
) -> None:
    sim = await _sim(aiohttp_client, tmp_path, enumeration_quota=5)
    statuses = []
    for n in range(10):
        statuses.append((await sim.identify(f"+7916555123{n}")).status)
    assert statuses[:5] == [201] * 5
    assert set(statuses[5:]) == {429}
    refused = await sim.identify("+79165551239")
    body = await _problem(refused, 429, "enumeration_suspected")
    assert "7916555" not in json.dumps(body)
    refused_id = refused.headers["X-Request-Id"]
    assert int(refused.headers["Retry-After"]) >= 1
    # Asking again about a number already asked about is not a sweep; other blocks pass.
    assert (await sim.identify("+79165551230")).status == 201
    assert (await sim.identify("+79000000001")).status == 201
    other = await sim.new_messenger("other")
    assert (await sim.identify("+79165551239", key=other["api_key"])).status == 201
    lines = [json.loads(x) for x in log_stream.getvalue().splitlines()]
    tripped = [x for x in lines if x["event"] == "enumeration_suspected"]
    assert len(tripped) == 6
    assert tripped[0]["messenger_id"] == "demo"
    assert tripped[0]["quota"] == 5
    # A line written while handling a request carries that request's id.
    assert tripped[-1]["request_id"] == refused_id
    assert len({x["request_id"] for x in tripped}) == len(tripped)
    logs = log_stream.getvalue()
    # Not the numbers, not even masked (which would show +7916 and the last two digits):
    # nothing of the block. (Not a bare digit run: a timestamp or request id may hold one.)
    assert "916555" not in logs
    assert "+7916*" not in logs


# --- body, headers, slow clients --------------------------------------------------------


async def test_a_gzip_bomb_is_refused_413_without_inflating_it(
    aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    sim = await _sim(aiohttp_client, tmp_path)
    inflated = 256 * 1024 * 1024  # 256 MiB of zeros in about 256 KiB
    squeezer = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(1024 * 1024)
    bomb = b"".join(squeezer.compress(block) for _ in range(inflated // len(block)))
    bomb += squeezer.flush()
    assert len(bomb) < BODY_LIMIT * 8
    headers = {
        **sim.auth(DEMO_KEY),
        "Content-Type": "application/json",
        "Content-Encoding": "gzip",
    }
    resp = await sim.client.post(IR, data=bomb, headers=headers)
    await _problem(resp, 413, "payload_too_large")
    # A small gzip body that inflates under the limit is read like any other.
    small = gzip.compress(b'{"msisdn": "+79000000001"}')
    ok = await sim.client.post(IR, data=small, headers=headers)
    assert ok.status == 201, await ok.text()
    assert (await sim.admin_ok("GET", "/requests/count")) == {"count": 1}


async def _raw(port: int, payload: bytes) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(payload)
    await writer.drain()
    return reader, writer


async def test_an_oversize_header_is_a_clear_4xx_and_the_server_keeps_serving(
    aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    sim = await _sim(aiohttp_client, tmp_path, max_header_size=2048)
    padded = {"X-Padding": "a" * 3000, **sim.auth(DEMO_KEY)}
    body = await _problem(await sim.client.get(EVENTS, headers=padded), 431, "header_too_large")
    assert "aaaa" not in json.dumps(body)  # the header is not echoed
    await _problem(await sim.client.get("/healthz?" + "a" * 3000), 414, "uri_too_long")
    # Past aiohttp's own backstop (twice the limit) it is still a 4xx, never a 5xx.
    huge = await sim.client.get("/healthz", headers={"X-Padding": "a" * 5000})
    assert huge.status == 400
    assert (await sim.client.get("/healthz")).status == 200
    assert (await sim.client.get(EVENTS, headers=sim.auth(DEMO_KEY))).status == 200


async def test_a_client_trickling_its_headers_is_cut_off(
    aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    sim = await _sim(aiohttp_client, tmp_path, client_timeout=0.5)
    port = sim.client.server.port
    assert port is not None
    reader, writer = await _raw(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    closed = False
    async with asyncio.timeout(BOUND):
        for _ in range(BOUND * 10):  # one header byte at a time until the server hangs up
            try:
                writer.write(b"X")
                await writer.drain()
            except ConnectionError:
                closed = True
                break
            if reader.at_eof() or writer.transport.is_closing():
                closed = True
                break
            try:
                if await asyncio.wait_for(reader.read(1), 0.1) == b"":
                    closed = True
                    break
            except TimeoutError:
                pass
    writer.close()
    assert closed
    assert (await sim.client.get("/healthz")).status == 200


async def test_a_client_trickling_its_body_gets_408_and_is_cut_off(
    aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    sim = await _sim(aiohttp_client, tmp_path, client_timeout=0.5)
    port = sim.client.server.port
    assert port is not None
    body = b'{"msisdn": "+79000000001"}'
    head = (
        f"POST {IR} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {DEMO_KEY}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    reader, writer = await _raw(port, head + body[:1])
    answer = b""
    async with asyncio.timeout(BOUND):
        for byte in body[1:]:
            try:
                writer.write(bytes([byte]))
                await writer.drain()
            except ConnectionError:
                break
            try:
                chunk = await asyncio.wait_for(reader.read(65536), 0.2)
            except TimeoutError:
                continue
            answer += chunk
            if not chunk or b"\r\n\r\n" in answer:
                break
        answer += await reader.read()  # the server closes after the 408
    writer.close()
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"request_timeout" in answer
    assert (await sim.admin_ok("GET", "/requests/count")) == {"count": 0}
    assert (await sim.client.get("/healthz")).status == 200


async def test_admin_token_is_not_counted_by_messenger_limits(
    aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    sim = await _sim(aiohttp_client, tmp_path, rate_limits="*=1/h")
    for _ in range(5):
        resp = await sim.client.get("/admin/v1/clock", headers=sim.auth(ADMIN_TOKEN))
        assert resp.status == 200
        assert "RateLimit" not in resp.headers
