"""Health, readiness, metrics and the OpenAPI description."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from operator_sim.server import ENDPOINTS
from operator_sim.server.metrics import Metrics
from operator_sim.server.problems import http_middleware
from operator_sim.settings import Settings
from tests.conftest import Sim


async def test_health_and_readiness(sim: Sim) -> None:
    assert await (await sim.client.get("/healthz")).json() == {"status": "ok"}
    assert await (await sim.client.get("/readyz")).json() == {"status": "ready"}


async def test_metrics_count_requests_answers_and_misses(sim: Sim) -> None:
    await sim.identify_ok("+79000000001")
    await sim.identify_ok("+79000000005")
    await sim.identify_ok("+79000000006")
    await sim.identify("+79000000007")
    await sim.advance(1500)
    resp = await sim.client.get("/metrics")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain")
    text = await resp.text()
    assert (
        'operator_sim_http_requests_total{method="POST",'
        'route="/operators/{operator_id}/v1/identification-requests",status="201"} 3.0'
    ) in text
    assert 'operator_sim_deadline_misses_total{kind="expired",operator_id="alfa"} 2.0' in text
    assert 'operator_sim_deadline_misses_total{kind="late",operator_id="alfa"} 1.0' in text
    assert (
        'operator_sim_answers_total{operator_id="alfa",result="present",timely="true"} 1.0' in text
    )
    assert 'operator_sim_fault_rule_hits_total{rule_id="magic-503-twice"} 1.0' in text
    assert "operator_sim_answer_latency_sim_seconds_bucket" in text
    assert "+7900" not in text


def _resolve(spec: dict[str, Any], ref: str) -> dict[str, Any]:
    name = ref.removeprefix("#/components/schemas/")
    schema: dict[str, Any] = spec["components"]["schemas"][name]
    return schema


async def test_openapi_describes_every_route_with_problems(sim: Sim) -> None:
    spec = await (await sim.client.get("/openapi.json")).json()
    assert spec["openapi"].startswith("3.1")
    # The web console's pages (/ui/) are HTML for people, not part of the HTTP API.
    served = {
        (route.method, route.resource.canonical)
        for route in sim.client.app.router.routes()
        if route.resource is not None
        and route.method != "HEAD"
        and not route.resource.canonical.startswith("/ui")
    }
    described = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops}
    assert served == described
    assert len(described) == len(ENDPOINTS)
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            assert "500" in op["responses"], (method, path)
            for status, response in op["responses"].items():
                for content in response.get("content", {}).values():
                    ref = content["schema"].get("$ref")
                    if ref:
                        _resolve(spec, ref)
                if status[0] in "45" and path != "/readyz":  # readyz 503 is a Health body
                    assert "application/problem+json" in response["content"]


async def test_openapi_request_schema_is_the_validating_model(sim: Sim) -> None:
    spec = await (await sim.client.get("/openapi.json")).json()
    op = spec["paths"]["/operators/{operator_id}/v1/identification-requests"]["post"]
    body = _resolve(spec, op["requestBody"]["content"]["application/json"]["schema"]["$ref"])
    assert body["additionalProperties"] is False
    assert body["properties"]["msisdn"]["pattern"] == r"^\+[1-9][0-9]{6,14}$"
    assert op["security"] == [{"messengerKey": []}]
    admin = spec["paths"]["/admin/v1/clock"]["put"]
    assert admin["security"] == [{"adminToken": []}]


async def test_a_cancelled_request_is_counted_as_499_not_500() -> None:
    metrics = Metrics()
    middleware = http_middleware(metrics, max_header_size=Settings().max_header_size)
    request = make_mocked_request("GET", "/healthz", app=web.Application())

    async def cancelled(_request: web.Request) -> web.StreamResponse:
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await middleware(request, cancelled)
    statuses = {
        sample.labels["status"]
        for metric in metrics.registry.collect()
        if metric.name == "operator_sim_http_requests"
        for sample in metric.samples
        if sample.name.endswith("_total")
    }
    assert statuses == {"499"}
