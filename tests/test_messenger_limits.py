"""The client reads at most ``max_response_bytes`` of any response, whatever the operator sends."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from operator_sim.messenger import InvalidResponse, Messenger, OperatorClient, Reason
from tests.messenger_support import FakeOperator, FakeTime, fake_operator

__all__ = ["fake_operator"]  # the fixture, imported for pytest

NUMBER = "+79000000001"
MIB = 1024 * 1024


def _routing_padded_to(size: int) -> bytes:
    # A valid routing answer, padded with JSON whitespace to exactly `size` bytes.
    body = json.dumps({"msisdn": NUMBER, "operator_id": "alfa", "ported": False}).encode()
    return body[:-1] + b" " * (size - len(body)) + b"}"


def _sized(size: int) -> Any:
    def reply(_: object) -> web.Response:
        return web.Response(body=_routing_padded_to(size), content_type="application/json")

    return reply


def _streamed(size: int) -> Any:
    # No Content-Length: chunked transfer, so only reading tells how long it is.
    async def handler(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        body = _routing_padded_to(size)
        for start in range(0, len(body), 256 * 1024):
            await resp.write(body[start : start + 256 * 1024])
        await resp.write_eof()
        return resp

    return handler


async def test_a_response_over_the_default_4_mib_is_refused(fake_operator: FakeOperator) -> None:
    fake_operator.routes = [_sized(5 * MIB)]
    async with OperatorClient(fake_operator.url, "key", retry=FakeTime().policy()) as client:
        with pytest.raises(InvalidResponse, match="larger than 4194304 bytes"):
            await client.route(NUMBER)
    assert len(fake_operator.calls("GET", "/v1/routing/")) == 1  # not retried


async def test_a_response_at_the_limit_is_read(fake_operator: FakeOperator) -> None:
    fake_operator.routes = [_sized(4 * MIB)]
    async with OperatorClient(fake_operator.url, "key", retry=FakeTime().policy()) as client:
        assert (await client.route(NUMBER)).operator_id == "alfa"


@pytest.mark.parametrize("size", [2048, 4096], ids=["over", "far_over"])
async def test_the_limit_is_configurable_and_holds_without_content_length(
    aiohttp_server: Any, size: int
) -> None:
    app = web.Application()
    app.router.add_get("/v1/routing/{msisdn}", _streamed(size))
    server = await aiohttp_server(app)
    async with OperatorClient(
        str(server.make_url("/")), "key", retry=FakeTime().policy(), max_response_bytes=1024
    ) as client:
        with pytest.raises(InvalidResponse, match="larger than 1024 bytes"):
            await client.route(NUMBER)
    async with OperatorClient(
        str(server.make_url("/")), "key", retry=FakeTime().policy(), max_response_bytes=size
    ) as client:
        assert (await client.route(NUMBER)).operator_id == "alfa"


async def test_an_oversized_error_body_is_refused_too(fake_operator: FakeOperator) -> None:
    huge = web.Response(status=503, body=b"x" * (2 * 1024), content_type="application/problem+json")
    fake_operator.routes = [huge]
    async with OperatorClient(
        fake_operator.url, "key", retry=FakeTime().policy(), max_response_bytes=1024
    ) as client:
        with pytest.raises(InvalidResponse):
            await client.route(NUMBER)


async def test_an_identification_with_an_oversized_answer_is_refused(
    fake_operator: FakeOperator, tmp_path: Path
) -> None:
    fake_operator.routes = [_sized(5 * MIB)]
    messenger = Messenger(
        fake_operator.url, "key", db_path=tmp_path / "m.db", retry=FakeTime().policy()
    )
    async with messenger:
        outcome = await messenger.identify("ann", NUMBER)
        assert (outcome.identified, outcome.reason) == (False, Reason.INVALID_RESPONSE)
    assert fake_operator.posted("identification-requests") == []
