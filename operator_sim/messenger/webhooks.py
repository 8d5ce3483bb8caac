"""Receiving the operator's webhooks: Standard Webhooks signatures, dedup by event id."""

from __future__ import annotations

import json

from aiohttp import web
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from operator_sim.messenger.checks import parse_event
from operator_sim.messenger.errors import InvalidResponse
from operator_sim.messenger.events import Applier

__all__ = ["WebhookReceiver"]

_MAX_BODY = 256 * 1024


def _problem(status: int, code: str, detail: str) -> web.Response:
    return web.json_response(
        {
            "type": f"urn:operator-sim:problem:{code}",
            "title": code,
            "status": status,
            "detail": detail,
            "code": code,
        },
        status=status,
        content_type="application/problem+json",
    )


class WebhookReceiver:
    """An aiohttp handler that verifies signed events and hands each to ``apply``.

    ``apply`` is the event applier (``Messenger.apply_event``), which deduplicates by id.
    """

    def __init__(self, apply: Applier, secret: str) -> None:
        self._apply = apply
        self._verifier = Webhook(secret)

    async def handle(self, request: web.Request) -> web.Response:
        """Verify the signature (and its age), then apply the event once; 204 when done.

        An event of a type this library does not know is acknowledged (and reported by the
        applier): refusing it would only make the operator send it again and again.
        """
        if request.content_length is not None and request.content_length > _MAX_BODY:
            return _problem(413, "payload_too_large", "the body is too large")
        body = await request.read()
        if len(body) > _MAX_BODY:
            return _problem(413, "payload_too_large", "the body is too large")
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            self._verifier.verify(body, headers, json_parse=False)
        except (WebhookVerificationError, ValueError):
            return _problem(401, "bad_signature", "missing, wrong or stale webhook signature")
        try:
            event = parse_event(json.loads(body))
        except (ValueError, InvalidResponse):
            return _problem(422, "validation_error", "the body is not an operator event")
        if event.id != headers.get("webhook-id"):
            return _problem(422, "validation_error", "webhook-id is not the event's id")
        await self._apply(event)
        return web.Response(status=204)

    def app(self) -> web.Application:
        """A sub-application with the handler at its root (``app.add_subapp(prefix, ...)``)."""
        app = web.Application(client_max_size=_MAX_BODY)
        app.router.add_post("/", self.handle)
        return app
