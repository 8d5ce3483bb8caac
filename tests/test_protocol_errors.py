"""Requests the HTTP layer refuses are problem+json too, and odd bytes never make a 500."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from operator_sim.server import ProblemRunner, create_app
from operator_sim.settings import Settings
from tests.conftest import DEMO_KEY, IR_PATH, Sim

Raw = tuple[int, dict[str, str], bytes]


@pytest.fixture
async def port(tmp_path: Path) -> AsyncIterator[int]:
    """The server as `operator-sim serve` runs it, on a loopback port."""
    runner = ProblemRunner(create_app(Settings(db=tmp_path / "p.db", clock="manual")))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield runner.addresses[0][1]
    await runner.cleanup()


async def _send(port: int, data: bytes) -> Raw:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), 30)
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return status, headers, body


def _problem(raw: Raw) -> dict[str, Any]:
    _, headers, body = raw
    assert headers["content-type"].startswith("application/problem+json")
    assert headers.get("x-request-id", "").startswith("req_")
    problem: dict[str, Any] = json.loads(body)
    return problem


@pytest.mark.parametrize(
    "request_bytes",
    [
        pytest.param(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
            id="duplicate-content-length",
        ),
        pytest.param(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n",
            id="content-length-with-chunked",
        ),
        pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\nX-Phone: +79161234567\x00\r\n\r\n", id="nul"),
        pytest.param(b"G@T / HTTP/1.1\r\nHost: x\r\n\r\n", id="bad-method"),
        pytest.param(b"GET / HTTP/9.9\r\nHost: x\r\n\r\n", id="bad-version"),
        pytest.param(
            b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: a\r\n" % i for i in range(3000)) + b"\r\n",
            id="3000-headers",
        ),
    ],
)
async def test_unparsable_requests_get_a_problem_not_plain_text(
    port: int, request_bytes: bytes
) -> None:
    raw = await _send(port, request_bytes)
    assert raw[0] == 400
    problem = _problem(raw)
    assert problem["code"] == "bad_request"
    assert problem["status"] == 400
    assert problem["detail"].startswith("the request is not valid HTTP/1.1")
    assert b"7916" not in raw[2]  # the offending bytes are not echoed


async def test_a_non_utf8_authorization_header_is_401(port: int) -> None:
    body = b'{"msisdn": "+79000000001"}'
    raw = await _send(
        port,
        b"POST /operators/alfa/v1/identification-requests HTTP/1.1\r\nHost: x\r\n"
        b"Authorization: Bearer caf\xe9\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body),
    )
    assert raw[0] == 401
    assert _problem(raw)["code"] == "unauthorized"
    raw = await _send(
        port,
        b"GET /admin/v1/clock HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\xfe\r\n"
        b"Connection: close\r\n\r\n",
    )
    assert raw[0] == 401


async def test_a_body_that_is_not_the_gzip_it_claims_is_400(sim: Sim) -> None:
    resp = await sim.client.post(
        IR_PATH.format(operator="alfa"),
        data=b'{"msisdn": "+79000000001"}',
        headers={
            **sim.auth(DEMO_KEY),
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
        },
    )
    assert resp.status == 400
    assert (await resp.json())["code"] == "invalid_content_encoding"
    assert await sim.admin_ok("GET", "/requests/count") == {"count": 0}


async def test_a_real_gzip_body_is_read(sim: Sim) -> None:
    resp = await sim.client.post(
        IR_PATH.format(operator="alfa"),
        data=gzip.compress(b'{"msisdn": "+79000000001"}'),
        headers={
            **sim.auth(DEMO_KEY),
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
        },
    )
    assert resp.status == 201
