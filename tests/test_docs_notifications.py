"""The webhook receiver of docs/notifications.md receives, verifies and deduplicates."""

from __future__ import annotations

import socket
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from tests.conftest import Sim
from tests.test_docs_examples import find_block

PAGE = "docs/notifications.md"


def _printed(capsys: pytest.CaptureFixture[str]) -> list[str]:
    """What the receiver printed (the server's log lines share stdout in tests)."""
    return [x for x in capsys.readouterr().out.splitlines() if x.startswith("suspend ")]


async def test_the_receiver_gets_a_termination_once_and_refuses_forgeries(
    sim: Sim, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code = find_block(PAGE, "run", "by tests/test_docs_notifications.py")
    # The receiver needs the secret when it starts, and the secret comes with the
    # messenger's registration, which needs the receiver's URL: choose the port first.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/hooks/operator-sim"
    messenger = await sim.new_messenger("hooked", webhook_url=url)
    monkeypatch.setenv("OPSIM_WEBHOOK_SECRET", messenger["webhook_secret"])
    receiver_ns: dict[str, Any] = {"__name__": "receiver"}
    exec(code, receiver_ns)  # noqa: S102 (our own documentation)
    app = receiver_ns["build_app"]()
    server = TestServer(app, host="127.0.0.1", port=port)
    await server.start_server()
    try:
        key = messenger["api_key"]
        await sim.add_subscribers(
            {
                "msisdn": "+79161234567",
                "operator_id": "beta",
                "full_name": "Иванов Иван Иванович",
                "birth_date": "1985-04-12",
                "passport": "4510 123456",
            }
        )
        request = await sim.identify_ok("+79161234567", operator="beta", key=key)
        registered = await sim.register_code(
            request["id"], "code-of-user-7", operator="beta", key=key
        )
        assert registered.status == 201
        await sim.admin_ok("POST", "/subscribers/+79161234567/terminate")

        await sim.advance(0)  # makes the webhook attempts that are due, then returns
        deliveries = (await sim.admin_ok("GET", "/deliveries?messenger_id=hooked"))["deliveries"]
        terminated = next(d for d in deliveries if d["type"] == "subscriber.contract_terminated")
        assert terminated["webhook"]["state"] == "delivered"
        assert _printed(capsys) == ["suspend the user of code code-of-user-7"]
        seen = app[receiver_ns["SEEN"]]
        assert len(seen) == 2  # the answer and the termination

        # A replay is delivered again but applied once.
        event_id = terminated["event_id"]
        replay = await sim.admin("POST", f"/deliveries/{event_id}/replay")
        assert replay.status == 202
        await sim.advance(0)
        deliveries = (await sim.admin_ok("GET", "/deliveries?messenger_id=hooked"))["deliveries"]
        hook = next(d for d in deliveries if d["event_id"] == event_id)["webhook"]
        assert hook["state"] == "delivered"
        assert [a["status"] for a in hook["attempts"]] == [204, 204]
        assert _printed(capsys) == []

        # Unsigned or wrongly signed bodies are refused.
        async with aiohttp.ClientSession() as session:
            async with session.post(url, data=b"{}") as resp:
                assert resp.status == 401
            forged = {
                "webhook-id": "evt_forged",
                "webhook-timestamp": "1700000000",
                "webhook-signature": "v1,AAAA",
            }
            async with session.post(url, data=b"{}", headers=forged) as resp:
                assert resp.status == 401
        assert len(seen) == 2
    finally:
        await server.close()
