"""Receiving the operator's webhooks: Standard Webhooks signatures, dedup by event id.

:meth:`WebhookReceiver.receive` takes a body and its headers and says what to answer, so
any web framework can mount it; :meth:`WebhookReceiver.app` is the aiohttp sub-app.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from aiohttp import web
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from operator_sim.messenger.checks import parse_event
from operator_sim.messenger.errors import InvalidResponse
from operator_sim.messenger.events import Applier

__all__ = ["MAX_WEBHOOK_BODY", "WebhookReceiver", "WebhookReply"]

MAX_WEBHOOK_BODY = 256 * 1024
"""The largest webhook body accepted, in bytes (an event is well under 1 KiB)."""


@dataclass(frozen=True, slots=True)
class WebhookReply:
    """What to answer the operator: a status, and a problem+json body for refusals."""

    status: int
    body: bytes = b""
    content_type: str | None = None


def _problem(status: int, code: str, detail: str) -> WebhookReply:
    body = {
        "type": f"urn:operator-sim:problem:{code}",
        "title": code,
        "status": status,
        "detail": detail,
        "code": code,
    }
    return WebhookReply(status, json.dumps(body).encode(), "application/problem+json")


class WebhookReceiver:
    """Verifies signed events and hands each to ``apply``.

    ``apply`` is the event applier (``Messenger.apply_event``), which deduplicates by id.
    """

    def __init__(self, apply: Applier, secret: str) -> None:
        self._apply = apply
        self._verifier = Webhook(secret)

    async def receive(self, body: bytes, headers: Mapping[str, str]) -> WebhookReply:
        """Verify the signature (and its age), then apply the event once; 204 when done.

        ``headers`` are the request's (any case). An event of a type this library does not
        know is acknowledged (and reported by the applier): refusing it would only make
        the operator send it again and again.
        """
        if len(body) > MAX_WEBHOOK_BODY:
            return _problem(413, "payload_too_large", "the body is too large")
        lowered = {k.lower(): v for k, v in headers.items()}
        try:
            self._verifier.verify(body, lowered, json_parse=False)
        except (WebhookVerificationError, ValueError):
            return _problem(401, "bad_signature", "missing, wrong or stale webhook signature")
        try:
            event = parse_event(json.loads(body))
        except (ValueError, InvalidResponse):
            return _problem(422, "validation_error", "the body is not an operator event")
        if event.id != lowered.get("webhook-id"):
            return _problem(422, "validation_error", "webhook-id is not the event's id")
        await self._apply(event)
        return WebhookReply(204)

    async def handle(self, request: web.Request) -> web.Response:
        """The aiohttp handler: :meth:`receive` on the request."""
        if request.content_length is not None and request.content_length > MAX_WEBHOOK_BODY:
            reply = _problem(413, "payload_too_large", "the body is too large")
        else:
            reply = await self.receive(await request.read(), request.headers)
        return web.Response(
            status=reply.status, body=reply.body or None, content_type=reply.content_type
        )

    def app(self) -> web.Application:
        """A sub-application with the handler at its root (``app.add_subapp(prefix, ...)``)."""
        app = web.Application(client_max_size=MAX_WEBHOOK_BODY)
        app.router.add_post("/", self.handle)
        return app
