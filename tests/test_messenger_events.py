"""Events reaching the Messenger: the background pull feed and the signed webhook receiver."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from standardwebhooks import Webhook

from operator_sim.messenger import Messenger
from operator_sim.server.webhooks import signed_headers
from tests.conftest import Sim
from tests.messenger_support import Recorder, make_messenger

AiohttpServer = Callable[..., Awaitable[TestServer]]
NUMBER = "+79000000001"


async def test_background_feed_suspends_a_terminated_user(sim: Sim, tmp_path: Path) -> None:
    recorder = Recorder()
    async with make_messenger(
        sim, tmp_path / "m.db", recorder=recorder, background_feed=True, feed_wait=5
    ) as messenger:
        assert (await messenger.identify("ann", NUMBER)).identified
        await sim.admin_ok("POST", f"/subscribers/{NUMBER}/terminate")
        await recorder.wait("suspended", "ann")
        assert not await messenger.can_send("ann")


async def test_background_feed_resumes_from_its_stored_cursor(sim: Sim, tmp_path: Path) -> None:
    async with make_messenger(sim, tmp_path / "m.db") as messenger:
        assert (await messenger.identify("ben", NUMBER)).identified
        await messenger.sync_events()
    cursor = dict(await _operators(tmp_path / "m.db"))["alfa"]
    assert cursor is not None
    await sim.admin_ok("POST", f"/subscribers/{NUMBER}/terminate")
    recorder = Recorder()
    async with make_messenger(
        sim, tmp_path / "m.db", recorder=recorder, background_feed=True, feed_wait=5
    ) as messenger:
        await recorder.wait("suspended", "ben")
        assert not await messenger.can_send("ben")


async def _operators(db: Path) -> list[tuple[str, str | None]]:
    from operator_sim.messenger.store import MessengerStore

    store = await MessengerStore.open(db)
    try:
        return await store.operators()
    finally:
        await store.close()


# --- webhooks ---------------------------------------------------------------------------


@pytest.fixture
async def hooked(
    sim: Sim, tmp_path: Path, unused_tcp_port: int
) -> AsyncIterator[tuple[Messenger, Recorder, str, str]]:
    """A Messenger whose receiver is mounted in a backend app, registered for webhooks."""
    url = f"http://127.0.0.1:{unused_tcp_port}/hooks/operator-sim/"
    registered = await sim.new_messenger("hooked", webhook_url=url)
    recorder = Recorder()
    messenger = make_messenger(
        sim,
        tmp_path / "m.db",
        recorder=recorder,
        key=registered["api_key"],
        webhook_secret=registered["webhook_secret"],
    )
    backend = web.Application()
    backend.add_subapp("/hooks/operator-sim/", messenger.webhook_app())
    server = TestServer(backend, host="127.0.0.1", port=unused_tcp_port)
    await server.start_server()
    async with messenger:
        yield messenger, recorder, url, registered["webhook_secret"]
    await server.close()


async def test_webhook_suspends_a_terminated_user(
    sim: Sim, hooked: tuple[Messenger, Recorder, str, str]
) -> None:
    messenger, recorder, _, _ = hooked
    assert (await messenger.identify("cat", NUMBER)).identified
    await sim.admin_ok("POST", f"/subscribers/{NUMBER}/terminate")
    await sim.advance(0)  # makes the due webhook attempts before it returns
    await recorder.wait("suspended", "cat")
    assert not await messenger.can_send("cat")
    deliveries = await sim.admin_ok("GET", "/deliveries?messenger_id=hooked")
    states = {d["type"]: d["webhook"]["state"] for d in deliveries["deliveries"]}
    assert states["subscriber.contract_terminated"] == "delivered"


def _ported_event(code: str) -> tuple[str, str]:
    event = {
        "id": "evt_test_1",
        "type": "subscriber.number_ported",
        "operator_id": "alfa",
        "occurred_at": "2026-03-01T12:00:00.000Z",
        "deliver_by": "2026-03-02T12:00:00.000Z",
        "data": {"msisdn": NUMBER, "code": code},
    }
    return "evt_test_1", json.dumps(event)


async def _post(url: str, body: str, headers: dict[str, str]) -> int:
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=body.encode(), headers=headers) as resp,
    ):
        return resp.status


async def test_webhook_with_a_bad_signature_is_rejected_and_not_applied(
    hooked: tuple[Messenger, Recorder, str, str],
) -> None:
    messenger, _, url, _ = hooked
    outcome = await messenger.identify("dan", NUMBER)
    assert outcome.code is not None
    event_id, body = _ported_event(outcome.code)
    forged = Webhook("whsec_" + base64.b64encode(b"not-the-secret-at-all-000").decode())
    headers = signed_headers(forged, event_id=event_id, body=body, sent_at=datetime.now(UTC))
    assert await _post(url, body, headers) == 401
    assert await messenger.can_send("dan")


async def test_webhook_with_a_stale_signature_is_rejected(
    hooked: tuple[Messenger, Recorder, str, str],
) -> None:
    messenger, _, url, secret = hooked
    outcome = await messenger.identify("eve", NUMBER)
    assert outcome.code is not None
    event_id, body = _ported_event(outcome.code)
    stale = datetime.now(UTC) - timedelta(hours=1)
    headers = signed_headers(Webhook(secret), event_id=event_id, body=body, sent_at=stale)
    assert await _post(url, body, headers) == 401
    assert await messenger.can_send("eve")


async def test_webhook_delivered_twice_is_applied_once(
    hooked: tuple[Messenger, Recorder, str, str],
) -> None:
    messenger, _, url, secret = hooked
    first = await messenger.identify("fin", NUMBER)
    assert first.code is not None
    event_id, body = _ported_event(first.code)
    headers = signed_headers(
        Webhook(secret), event_id=event_id, body=body, sent_at=datetime.now(UTC)
    )
    assert await _post(url, body, headers) == 204
    assert not await messenger.can_send("fin")
    assert await messenger.store.seen(event_id)
    assert await _post(url, body, headers) == 204  # a redelivery is acknowledged...
    states = [h.state for h in await messenger.history("fin")]
    assert states.count("suspended") == 1  # ...and changes nothing


async def test_webhook_whose_id_header_is_not_the_event_id_is_rejected(
    hooked: tuple[Messenger, Recorder, str, str],
) -> None:
    messenger, _, url, secret = hooked
    outcome = await messenger.identify("gil", NUMBER)
    assert outcome.code is not None
    _, body = _ported_event(outcome.code)
    headers = signed_headers(
        Webhook(secret), event_id="evt_other", body=body, sent_at=datetime.now(UTC)
    )
    assert await _post(url, body, headers) == 422
    assert await messenger.can_send("gil")


async def test_webhook_of_an_unknown_event_type_is_acknowledged_and_skipped(
    hooked: tuple[Messenger, Recorder, str, str],
) -> None:
    messenger, recorder, url, secret = hooked
    outcome = await messenger.identify("hui", NUMBER)
    assert outcome.code is not None
    event = json.loads(_ported_event(outcome.code)[1])
    event["type"] = "subscriber.something_new"
    body = json.dumps(event)
    headers = signed_headers(
        Webhook(secret), event_id=event["id"], body=body, sent_at=datetime.now(UTC)
    )
    assert await _post(url, body, headers) == 204  # not sent again and again
    skipped = await recorder.wait("event_skipped")
    assert "subscriber.something_new" in skipped.message
    assert await messenger.can_send("hui")
