"""The test double's credential helpers: a fixed webhook secret, and rotating credentials."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from aiohttp import web
from aiohttp.test_utils import TestServer
from standardwebhooks import Webhook

from operator_sim.testing import OperatorSim, SimCallError, ThreadedOperatorSim

FIXED = "whsec_" + base64.b64encode(b"a fixed secret for the tests!!!!").decode()


@dataclass
class Hooks:
    """A webhook receiver on loopback."""

    url: str = ""
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)


@pytest.fixture
async def hooks() -> AsyncIterator[Hooks]:
    found = Hooks()

    async def hook(request: web.Request) -> web.Response:
        headers = {k.lower(): v for k, v in request.headers.items()}
        found.received.append((headers, await request.read()))
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    server = TestServer(app)
    await server.start_server()
    found.url = str(server.make_url("/hook"))
    try:
        yield found
    finally:
        await server.close()


async def _routing_status(sim: OperatorSim, key: str) -> int:
    async with sim.session.get(
        "/v1/routing/+79000000001", headers=sim.messenger_headers(key)
    ) as resp:
        return resp.status


async def test_a_fixed_webhook_secret_is_the_one_exposed_and_used(
    hooks: Hooks, tmp_path: Path
) -> None:
    async with OperatorSim(
        db_path=tmp_path / "a.db", webhook_url=hooks.url, webhook_secret=FIXED
    ) as sim:
        assert sim.webhook_secret == FIXED
        await sim.identify("+79000000001", "alfa")
        await sim.advance(0)
    [(headers, body)] = hooks.received
    assert Webhook(FIXED).verify(body, headers)["type"] == "identification.answered"


async def test_rotate_key_replaces_the_exposed_key_and_ends_the_old_one(
    opsim: OperatorSim,
) -> None:
    old = opsim.messenger_key
    rotated = await opsim.rotate_key()
    assert opsim.messenger_key == rotated.api_key != old
    assert rotated.previous_valid_until is None
    assert (await opsim.identify("+79000000001", "alfa")).result == "present"
    assert await _routing_status(opsim, old) == 401


async def test_rotate_key_with_grace_keeps_the_old_key_working(opsim: OperatorSim) -> None:
    old = opsim.messenger_key
    rotated = await opsim.rotate_key(grace=timedelta(hours=1))
    assert rotated.previous_valid_until is not None
    assert await _routing_status(opsim, old) == 200
    assert await _routing_status(opsim, opsim.messenger_key) == 200


async def test_rotating_another_messenger_leaves_the_exposed_credentials(
    opsim: OperatorSim,
) -> None:
    other = await opsim.register_messenger("other", webhook_secret=FIXED)
    assert other.webhook_secret == FIXED
    mine = (opsim.messenger_key, opsim.webhook_secret)
    key = await opsim.rotate_key(messenger_id="other")
    secret = await opsim.rotate_webhook_secret(messenger_id="other", grace="PT5M")
    assert (opsim.messenger_key, opsim.webhook_secret) == mine
    assert await _routing_status(opsim, other.api_key) == 401
    assert await _routing_status(opsim, key.api_key) == 200
    assert secret.webhook_secret != FIXED


async def test_rotate_webhook_secret_with_grace_signs_with_both(
    opsim: OperatorSim, hooks: Hooks
) -> None:
    await opsim.set_webhook_url(hooks.url)
    old = opsim.webhook_secret
    rotated = await opsim.rotate_webhook_secret(grace=600)
    assert opsim.webhook_secret == rotated.webhook_secret != old
    await opsim.identify("+79000000001", "alfa")
    await opsim.advance(0)
    [(headers, body)] = hooks.received
    for secret in (old, opsim.webhook_secret):
        assert Webhook(secret).verify(body, headers)["type"] == "identification.answered"


async def test_a_rotation_of_an_unknown_messenger_raises(opsim: OperatorSim) -> None:
    with pytest.raises(SimCallError) as caught:
        await opsim.rotate_key(messenger_id="nobody")
    assert caught.value.status == 404


def test_the_blocking_helpers_rotate_too(tmp_path: Path) -> None:
    with ThreadedOperatorSim(db_path=tmp_path / "t.db") as sim:
        old = sim.messenger_key
        rotated = sim.rotate_key(grace="PT1M")
        assert sim.messenger_key == rotated.api_key
        for key in (old, sim.messenger_key):
            resp = requests.get(
                f"{sim.base_url}/v1/routing/+79000000001",
                headers=sim.messenger_headers(key),
                timeout=10,
            )
            assert resp.status_code == 200, resp.text
        secret = sim.rotate_webhook_secret()
        assert sim.webhook_secret == secret.webhook_secret
