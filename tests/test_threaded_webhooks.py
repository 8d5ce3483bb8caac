"""Webhooks of the messenger under test, received by a blocking receiver on loopback."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from operator_sim.testing import ThreadedOperatorSim
from operator_sim.wire import IdentificationAnsweredEvent


class Receiver(http.server.ThreadingHTTPServer):
    """A webhook endpoint on loopback that records every POST and answers 204."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        """Where to point webhooks."""
        return f"http://127.0.0.1:{self.server_address[1]}/hook"

    def snapshot(self) -> list[tuple[dict[str, str], bytes]]:
        """What arrived so far."""
        with self.lock:
            return list(self.received)


class _Handler(http.server.BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with self.server.lock:
            # Recorded before answering: once the sender has its answer, the test sees it.
            self.server.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()
    serving = threading.Thread(target=rec.serve_forever, name="webhook-receiver")
    serving.start()
    try:
        yield rec
    finally:
        rec.shutdown()
        rec.server_close()
        serving.join(10)


def _verify(secret: str, headers: dict[str, str], body: bytes) -> Any:
    return Webhook(secret).verify(body, headers)


def test_a_webhook_verifies_with_the_exposed_secret(receiver: Receiver) -> None:
    with ThreadedOperatorSim(webhook_url=receiver.url) as sim:
        other = sim.register_messenger("other-suite")
        request = sim.identify("+79000000001", "alfa")  # answered `present` at once
        sim.advance(0)  # makes every webhook attempt that is due, and waits for them
        [(headers, body)] = receiver.snapshot()
        event = IdentificationAnsweredEvent.model_validate(
            _verify(sim.webhook_secret, headers, body)
        )
        assert (event.data.id, event.data.result) == (request.id, "present")
        assert headers["webhook-id"] == event.id
        # The exposed secret is this messenger's own: another one's does not verify.
        with pytest.raises(WebhookVerificationError):
            _verify(other.webhook_secret, headers, body)


def test_a_messenger_without_a_webhook_url_gets_no_webhook(
    opsim_server: ThreadedOperatorSim, receiver: Receiver
) -> None:
    opsim_server.identify("+79000000001", "alfa")
    opsim_server.advance(0)
    assert receiver.snapshot() == []


def test_set_webhook_url_points_the_webhooks_and_removes_them(
    opsim_server: ThreadedOperatorSim, receiver: Receiver
) -> None:
    messenger = opsim_server.set_webhook_url(receiver.url)
    assert (messenger.id, messenger.webhook_url) == (opsim_server.messenger_id, receiver.url)
    opsim_server.identify("+79000000001", "alfa")
    opsim_server.advance(0)
    [(headers, body)] = receiver.snapshot()
    assert _verify(opsim_server.webhook_secret, headers, body)["type"] == "identification.answered"

    assert opsim_server.set_webhook_url(None).webhook_url is None
    opsim_server.identify("+79000000001", "alfa")
    opsim_server.advance(0)
    assert len(receiver.snapshot()) == 1
