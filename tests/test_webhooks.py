"""Webhooks: signed per Standard Webhooks, retried on the simulation clock, replayable."""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestServer
from standardwebhooks import Webhook

from operator_sim.server import create_app
from operator_sim.server.webhooks import signed_headers
from operator_sim.settings import Settings
from tests.conftest import AiohttpClient, Receiver, Sim

AiohttpServer = Callable[..., Awaitable[TestServer]]


async def _hooked(sim: Sim, receiver: Receiver) -> dict[str, Any]:
    return await sim.new_messenger("hooked", webhook_url=receiver.url)


def _verify(secret: str, headers: dict[str, str], body: bytes) -> Any:
    return Webhook(secret).verify(body, {k.lower(): v for k, v in headers.items()})


def test_golden_vector_of_the_standard_webhooks_specification() -> None:
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    headers = signed_headers(
        Webhook(secret),
        event_id="msg_p5jXN8AQM9LWM0D4loKWxJek",
        body='{"test": 2432232314}',
        sent_at=datetime.fromtimestamp(1614265330, tz=UTC),
    )
    assert headers["webhook-signature"] == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    assert headers["webhook-timestamp"] == "1614265330"
    assert headers["webhook-id"] == "msg_p5jXN8AQM9LWM0D4loKWxJek"


async def test_receiver_failing_twice_gets_three_attempts_with_one_id(
    sim: Sim, receiver: Receiver
) -> None:
    messenger = await _hooked(sim, receiver)
    receiver.statuses = [500, 503]
    await sim.identify_ok("+79000000001", key=messenger["api_key"])
    await sim.advance(0)  # attempt 1, due at once
    await sim.advance(5)  # attempt 2, five seconds later
    await sim.advance(6 * 60)  # attempt 3, about five minutes after the event
    assert len(receiver.received) == 3
    ids = {headers["webhook-id"] for headers, _ in receiver.received}
    assert len(ids) == 1
    assert len({body for _, body in receiver.received}) == 1  # the same event every time
    for headers, body in receiver.received:
        # Each attempt is signed afresh with the wall-clock time it was sent at.
        event = _verify(messenger["webhook_secret"], headers, body)
        assert {event["id"]} == ids
        assert event["type"] == "identification.answered"
        assert abs(int(headers["webhook-timestamp"]) - datetime.now(UTC).timestamp()) < 300
    delivery = (await sim.admin_ok("GET", "/deliveries?messenger_id=hooked"))["deliveries"][0]
    hook = delivery["webhook"]
    assert hook["state"] == "delivered"
    assert [a["status"] for a in hook["attempts"]] == [500, 503, 204]
    assert [a["attempt"] for a in hook["attempts"]] == [1, 2, 3]
    assert hook["met_deadline"] is True


async def test_webhook_body_is_the_feed_event(sim: Sim, receiver: Receiver) -> None:
    messenger = await _hooked(sim, receiver)
    await sim.identify_ok("+79000000001", key=messenger["api_key"])
    await sim.advance(0)
    resp = await sim.client.get("/operators/alfa/v1/events", headers=sim.auth(messenger["api_key"]))
    from_feed = (await resp.json())["events"][0]
    _, body = receiver.received[0]
    assert _verify(messenger["webhook_secret"], receiver.received[0][0], body) == from_feed


async def test_never_succeeding_receiver_ends_failed_inside_the_window_then_replays(
    sim: Sim, receiver: Receiver
) -> None:
    messenger = await _hooked(sim, receiver)
    receiver.statuses = [500] * 8
    await sim.identify_ok("+79000000001", key=messenger["api_key"])
    await sim.advance(0)
    await sim.advance(24 * 3600)
    delivery = (await sim.admin_ok("GET", "/deliveries"))["deliveries"][0]
    hook = delivery["webhook"]
    assert hook["state"] == "failed"
    assert len(hook["attempts"]) == 8
    deliver_by = datetime.fromisoformat(delivery["deliver_by"].replace("Z", "+00:00"))
    times = [datetime.fromisoformat(a["at"].replace("Z", "+00:00")) for a in hook["attempts"]]
    assert times == sorted(times)
    assert all(t <= deliver_by for t in times)
    assert len(receiver.received) == 8

    replayed = await sim.admin("POST", f"/deliveries/{delivery['event_id']}/replay")
    assert replayed.status == 202
    assert (await replayed.json())["webhook"]["state"] == "pending"
    await sim.advance(0)
    after = (await sim.admin_ok("GET", "/deliveries"))["deliveries"][0]["webhook"]
    assert after["state"] == "delivered"
    assert len(receiver.received) == 9
    assert receiver.received[-1][0]["webhook-id"] == delivery["event_id"]


async def test_retry_after_is_honoured(sim: Sim, receiver: Receiver) -> None:
    messenger = await _hooked(sim, receiver)
    receiver.statuses = [503]
    receiver.headers = {"Retry-After": "3600"}
    await sim.identify_ok("+79000000001", key=messenger["api_key"])
    await sim.advance(0)
    await sim.advance(30 * 60)  # the schedule alone would have retried by now
    assert len(receiver.received) == 1
    await sim.advance(30 * 60)
    assert len(receiver.received) == 2


async def test_redirects_are_not_followed(sim: Sim, receiver: Receiver) -> None:
    messenger = await _hooked(sim, receiver)
    receiver.statuses = [307]
    receiver.headers = {"Location": receiver.url.replace("/hook", "/elsewhere")}
    await sim.identify_ok("+79000000001", key=messenger["api_key"])
    await sim.advance(0)
    assert len(receiver.received) == 1
    hook = (await sim.admin_ok("GET", "/deliveries"))["deliveries"][0]["webhook"]
    assert hook["attempts"][0]["status"] == 307
    assert hook["state"] == "pending"


async def test_unreachable_receiver_is_an_error_attempt(sim: Sim) -> None:
    messenger = await sim.new_messenger("nowhere", webhook_url="http://127.0.0.1:9/hook")
    await sim.identify_ok("+79000000001", key=messenger["api_key"])
    await sim.advance(0)
    attempt = (await sim.admin_ok("GET", "/deliveries"))["deliveries"][0]["webhook"]["attempts"][0]
    assert attempt["status"] is None
    assert attempt["error"]


async def test_replay_of_an_event_without_webhook_is_409_and_unknown_404(sim: Sim) -> None:
    await sim.identify_ok("+79000000001")
    event_id = (await sim.admin_ok("GET", "/deliveries"))["deliveries"][0]["event_id"]
    assert (await sim.admin("POST", f"/deliveries/{event_id}/replay")).status == 409
    assert (await sim.admin("POST", "/deliveries/evt_nothing/replay")).status == 404


async def test_allow_list_restricts_webhook_targets(
    aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    app = create_app(
        Settings(db=tmp_path / "a.db", clock="manual", webhook_allowed_hosts="hooks.internal")
    )
    sim = Sim(await aiohttp_client(app), tmp_path / "a.db")
    refused = await sim.admin(
        "POST", "/messengers", {"id": "m", "name": "M", "webhook_url": "http://127.0.0.1:9/x"}
    )
    assert refused.status == 422
    allowed = await sim.admin(
        "POST", "/messengers", {"id": "m", "name": "M", "webhook_url": "https://hooks.internal/x"}
    )
    assert allowed.status == 201


async def test_webhook_secret_is_standard(sim: Sim) -> None:
    created = await sim.new_messenger("s")
    raw = base64.b64decode(created["webhook_secret"].removeprefix("whsec_"))
    assert len(raw) >= 24
