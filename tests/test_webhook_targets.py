"""Webhook targets and delivery robustness: what can be registered, what an attempt may do."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp import web

from operator_sim.server import create_app
from operator_sim.settings import Settings
from tests.conftest import AiohttpClient, AiohttpServer, Receiver, Sim


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


async def _register(sim: Sim, url: str, messenger_id: str = "m") -> Any:
    return await sim.admin(
        "POST", "/messengers", {"id": messenger_id, "name": "M", "webhook_url": url}
    )


async def _messenger_ids(sim: Sim) -> list[str]:
    return [m["id"] for m in (await sim.admin_ok("GET", "/messengers"))["messengers"]]


@pytest.mark.parametrize(
    "url",
    [
        "http://a..b/",
        "http://.../",
        "http://0/",
        "http://0.0.0.0/hook",
        "http://[::]/hook",
        "http://hooks.test:0/",
        "http://hooks.test:99999/",
        "http://169.254.169.254/latest/meta-data",
        "http://[fe80::1]/hook",
        "http://[::ffff:169.254.169.254]/hook",
        "http://" + "x" * 64 + ".test/",
    ],
)
async def test_undeliverable_webhook_urls_are_refused_and_nothing_is_stored(
    sim: Sim, url: str
) -> None:
    before = await _messenger_ids(sim)
    resp = await _register(sim, url)
    assert resp.status == 422, await resp.text()
    problem = await resp.json()
    assert problem["code"] == "validation_error"
    assert await _messenger_ids(sim) == before


async def test_a_webhook_url_pointing_back_at_the_server_is_refused(sim: Sim) -> None:
    port = sim.client.server.port
    for host in ("127.0.0.1", "localhost", "127.1"):
        resp = await _register(sim, f"http://{host}:{port}/hook")
        assert resp.status == 422, (host, await resp.text())
        assert "back at this server" in (await resp.json())["detail"]


@pytest.mark.parametrize(
    "url",
    ["http://[::1]:9000/h", "http://127.1:9/h", "http://2130706433:9/h", "https://hooks.test/x"],
)
async def test_loopback_receivers_in_any_form_are_accepted(sim: Sim, url: str) -> None:
    resp = await _register(sim, url)
    assert resp.status == 201, await resp.text()
    assert (await resp.json())["webhook_url"] == url


async def test_allow_net_lets_a_link_local_receiver_in(
    aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    app = create_app(
        Settings(db=tmp_path / "a.db", clock="manual", webhook_allow_net="169.254.0.0/16")
    )
    sim = Sim(await aiohttp_client(app), tmp_path / "a.db")
    assert (await _register(sim, "http://169.254.169.254/hook")).status == 201
    assert (await _register(sim, "http://[fe80::1]/hook", "other")).status == 422


def test_allow_net_must_be_cidrs() -> None:
    with pytest.raises(ValueError, match="not a CIDR"):
        Settings(webhook_allow_net="169.254.0.0/16,nonsense")


async def test_an_attempt_that_raises_is_recorded_and_backs_off(
    sim: Sim, receiver: Receiver
) -> None:
    messenger = await sim.new_messenger("hooked", webhook_url=receiver.url)
    # A URL stored before it was validated (an older database): every attempt raises.
    with sqlite3.connect(sim.db_path) as raw:
        raw.execute("UPDATE messengers SET webhook_url = 'http://a..b/' WHERE id = 'hooked'")
    await sim.identify_ok("+79000000001", key=messenger["api_key"])
    await sim.advance(0)
    hook = (await sim.admin_ok("GET", "/deliveries?messenger_id=hooked"))["deliveries"][0][
        "webhook"
    ]
    assert [a["attempt"] for a in hook["attempts"]] == [1]
    assert hook["attempts"][0]["status"] is None
    assert hook["attempts"][0]["error"]
    assert hook["state"] == "pending"
    now = _ts((await sim.admin_ok("GET", "/clock"))["now"])
    assert _ts(hook["next_attempt_at"]) > now  # the schedule's backoff, not a spin
    await sim.advance(5)
    hook = (await sim.admin_ok("GET", "/deliveries?messenger_id=hooked"))["deliveries"][0][
        "webhook"
    ]
    assert [a["attempt"] for a in hook["attempts"]] == [1, 2]
    assert receiver.received == []


async def test_retry_after_never_pushes_an_attempt_past_the_window(
    sim: Sim, receiver: Receiver
) -> None:
    messenger = await sim.new_messenger("hooked", webhook_url=receiver.url)
    receiver.statuses = [503]
    receiver.headers = {"Retry-After": "999999999"}
    await sim.identify_ok("+79000000001", key=messenger["api_key"])
    await sim.advance(0)
    delivery = (await sim.admin_ok("GET", "/deliveries"))["deliveries"][0]
    assert delivery["webhook"]["state"] == "failed"
    assert delivery["webhook"]["next_attempt_at"] is None
    await sim.advance(4 * 86_400)
    assert len(receiver.received) == 1
    # A replay is a new delivery with its own 24 hours.
    assert (await sim.admin("POST", f"/deliveries/{delivery['event_id']}/replay")).status == 202
    await sim.advance(0)
    assert len(receiver.received) == 2
    hook = (await sim.admin_ok("GET", "/deliveries"))["deliveries"][0]["webhook"]
    assert hook["state"] == "delivered"
    assert _ts(hook["delivered_at"]) > _ts(delivery["deliver_by"])
    assert hook["met_deadline"] is False


@pytest.fixture
async def hanging(
    aiohttp_server: AiohttpServer,
) -> AsyncIterator[tuple[str, list[float], asyncio.Event]]:
    """A receiver that holds every request until released."""
    arrived: list[float] = []
    release = asyncio.Event()

    async def handle(request: web.Request) -> web.Response:
        arrived.append(asyncio.get_running_loop().time())
        await release.wait()
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", handle)
    server = await aiohttp_server(app)
    yield str(server.make_url("/hook")), arrived, release
    release.set()


async def test_an_advance_does_not_wait_for_every_retry_of_a_hanging_receiver(
    aiohttp_client: AiohttpClient,
    tmp_path: Path,
    hanging: tuple[str, list[float], asyncio.Event],
) -> None:
    url, arrived, _ = hanging
    app = create_app(Settings(db=tmp_path / "h.db", clock="manual", webhook_timeout=1))
    sim = Sim(await aiohttp_client(app), tmp_path / "h.db")
    messenger = await sim.new_messenger("hooked", webhook_url=url)
    await sim.identify_ok("+79000000001", key=messenger["api_key"])
    advanced = await sim.advance(25 * 3600)
    # Every one of the eight attempts falls due in this advance; one after another they
    # would hold it for eight timeouts. It waited about one, and says what it left running.
    assert len(arrived) <= 2
    assert advanced["fired"] == 0
    assert advanced["webhooks_in_flight"] in (0, 1)


async def test_an_advance_waits_for_quick_webhooks(sim: Sim, receiver: Receiver) -> None:
    messenger = await sim.new_messenger("hooked", webhook_url=receiver.url)
    await sim.identify_ok("+79000000001", key=messenger["api_key"])
    advanced = await sim.advance(0)
    assert advanced["webhooks_in_flight"] == 0
    assert len(receiver.received) == 1
    hook = (await sim.admin_ok("GET", "/deliveries"))["deliveries"][0]["webhook"]
    assert hook["state"] == "delivered"


# --- GET and PATCH of one messenger ----------------------------------------------------


async def test_get_one_messenger_has_no_secrets_and_unknown_is_404(sim: Sim) -> None:
    await sim.new_messenger("one", webhook_url="http://127.0.0.1:9/hook")
    found = await sim.admin_ok("GET", "/messengers/one")
    assert set(found) == {"id", "name", "webhook_url", "created_at"}
    assert found["webhook_url"] == "http://127.0.0.1:9/hook"
    for missing in ("nobody", "Not_An_Id"):
        resp = await sim.admin("GET", f"/messengers/{missing}")
        assert resp.status == 404
        assert (await resp.json())["code"] == "not_found"


async def test_patch_moves_pending_deliveries_to_the_new_url(sim: Sim, receiver: Receiver) -> None:
    messenger = await sim.new_messenger("hooked", webhook_url="http://127.0.0.1:9/hook")
    await sim.identify_ok("+79000000001", key=messenger["api_key"])
    await sim.advance(0)  # the first attempt fails: nobody listens on port 9
    patched = await sim.admin_ok("PATCH", "/messengers/hooked", {"webhook_url": receiver.url})
    assert patched["webhook_url"] == receiver.url
    assert patched["name"] == "Hooked"
    await sim.advance(5)
    assert len(receiver.received) == 1
    hook = (await sim.admin_ok("GET", "/deliveries"))["deliveries"][0]["webhook"]
    assert hook["state"] == "delivered"
    assert hook["url"] == receiver.url
    # Events written after the change go there too.
    await sim.identify_ok("+79000000001", key=messenger["api_key"])
    await sim.advance(0)
    assert len(receiver.received) == 2


async def test_patch_to_null_fails_pending_deliveries_and_the_feed_keeps_them(sim: Sim) -> None:
    messenger = await sim.new_messenger("hooked", webhook_url="http://127.0.0.1:9/hook")
    await sim.identify_ok("+79000000001", key=messenger["api_key"])
    patched = await sim.admin_ok("PATCH", "/messengers/hooked", {"webhook_url": None})
    assert patched["webhook_url"] is None
    hook = (await sim.admin_ok("GET", "/deliveries"))["deliveries"][0]["webhook"]
    assert hook["state"] == "failed"
    resp = await sim.client.get("/operators/alfa/v1/events", headers=sim.auth(messenger["api_key"]))
    assert len((await resp.json())["events"]) == 1


async def test_patch_of_the_name_alone_keeps_the_url(sim: Sim) -> None:
    await sim.new_messenger("hooked", webhook_url="http://127.0.0.1:9/hook")
    patched = await sim.admin_ok("PATCH", "/messengers/hooked", {"name": "Renamed"})
    assert (patched["name"], patched["webhook_url"]) == ("Renamed", "http://127.0.0.1:9/hook")


@pytest.mark.parametrize(
    "body",
    [
        {"name": None},
        {"name": ""},
        {"webhook_url": "http://a..b/"},
        {"webhook_url": "http://0.0.0.0/"},
        {"api_key": "x"},
        [],
    ],
)
async def test_bad_patches_are_422_and_change_nothing(sim: Sim, body: Any) -> None:
    await sim.new_messenger("hooked", webhook_url="http://127.0.0.1:9/hook")
    resp = await sim.admin("PATCH", "/messengers/hooked", body)
    assert resp.status == 422, await resp.text()
    found = await sim.admin_ok("GET", "/messengers/hooked")
    assert (found["name"], found["webhook_url"]) == ("Hooked", "http://127.0.0.1:9/hook")


async def test_patch_of_an_unknown_messenger_is_404(sim: Sim) -> None:
    resp = await sim.admin("PATCH", "/messengers/nobody", {"name": "X"})
    assert resp.status == 404


async def test_patch_pointing_back_at_the_server_is_refused(sim: Sim) -> None:
    await sim.new_messenger("hooked")
    own = urlsplit(str(sim.client.make_url("/"))).port
    resp = await sim.admin(
        "PATCH", "/messengers/hooked", {"webhook_url": f"http://127.0.0.1:{own}/"}
    )
    assert resp.status == 422
