"""Health, readiness, metrics and the OpenAPI description."""

from __future__ import annotations

import json

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from operator_sim.server.endpoints import Endpoint, json_response
from operator_sim.server.services import SERVICES
from operator_sim.wire import Health


async def healthz(_request: web.Request) -> web.StreamResponse:
    """The process is up."""
    return json_response(Health(status="ok"))


async def readyz(request: web.Request) -> web.StreamResponse:
    """The database is open and the fixture loaded."""
    if not await request.app[SERVICES].control.ready():
        return json_response(Health(status="not_ready"), 503)
    return json_response(Health(status="ready"))


async def metrics(request: web.Request) -> web.StreamResponse:
    """Prometheus text format."""
    body = generate_latest(request.app[SERVICES].metrics.registry)
    response = web.Response(body=body)
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response


async def openapi(request: web.Request) -> web.StreamResponse:
    """This description."""
    return web.Response(body=request.app[SERVICES].openapi, content_type="application/json")


ENDPOINTS = (
    Endpoint("GET", "/healthz", healthz, "Liveness", "service", "none", responses={200: Health}),
    Endpoint(
        "GET",
        "/readyz",
        readyz,
        "Readiness",
        "service",
        "none",
        responses={200: Health, 503: Health},
    ),
    Endpoint(
        "GET",
        "/metrics",
        metrics,
        "Prometheus metrics",
        "service",
        "none",
        response_type="text/plain",
    ),
    Endpoint("GET", "/openapi.json", openapi, "This OpenAPI description", "service", "none"),
)


def render_openapi(spec: dict[str, object]) -> bytes:
    """Serialise the description once, at start-up."""
    return json.dumps(spec, ensure_ascii=False, indent=1).encode("utf-8")
