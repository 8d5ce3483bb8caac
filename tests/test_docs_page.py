"""`/docs` and the OpenAPI description of the rules, journal and reset endpoints."""

from __future__ import annotations

import re
from importlib import resources
from typing import Any

from tests.conftest import Sim


async def openapi(sim: Sim) -> dict[str, Any]:
    resp = await sim.client.get("/openapi.json")
    assert resp.status == 200
    body: dict[str, Any] = await resp.json()
    return body


async def test_docs_page_is_served_from_the_package_and_loads_nothing_remote(sim: Sim) -> None:
    resp = await sim.client.get("/docs")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/html")
    page = await resp.text()
    shipped = resources.files("operator_sim.server").joinpath("static", "docs.html")
    assert page == shipped.read_text(encoding="utf-8")
    assert 'fetch("openapi.json")' in page
    # No scripts, styles, fonts or images from elsewhere: the page works offline.
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "@import" not in page


async def test_openapi_describes_the_new_admin_endpoints_with_their_problems(sim: Sim) -> None:
    spec = await openapi(sim)
    paths = spec["paths"]
    expected = {
        ("/admin/v1/rules", "post"): {"201", "401", "409", "422", "500"},
        ("/admin/v1/rules", "get"): {"200", "401", "500"},
        ("/admin/v1/rules/{rule_id}", "get"): {"200", "401", "404", "500"},
        ("/admin/v1/rules/{rule_id}", "delete"): {"204", "401", "404", "500"},
        ("/admin/v1/requests/count", "get"): {"200", "401", "422", "500"},
        ("/admin/v1/messengers/{messenger_id}/reset", "post"): {"204", "401", "404", "500"},
    }
    for (path, method), statuses in expected.items():
        op = paths[path][method]
        assert statuses <= set(op["responses"]), (path, method)
        assert op["security"] == [{"adminToken": []}]
        for status in statuses - {"200", "201", "204"}:
            media = op["responses"][status]["content"]["application/problem+json"]
            assert media["schema"] == {"$ref": "#/components/schemas/Problem"}
    rule_post = paths["/admin/v1/rules"]["post"]
    assert rule_post["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/RuleSpec"
    }
    journal_params = {p["name"] for p in paths["/admin/v1/requests"]["get"]["parameters"]}
    assert {"since", "until", "messenger_id", "msisdn", "operator_id", "limit"} <= journal_params
    schemas = spec["components"]["schemas"]
    assert {
        "Rule",
        "RuleList",
        "JournalCount",
        "UniformDelay-Input",
        "LognormalDelay-Input",
    } <= set(schemas)
    assert {"LateAction-Input", "MalformedAction-Input", "MalformedAction-Output"} <= set(schemas)
    assert "probability" in schemas["RuleSpec"]["properties"]
    assert "/docs" in paths


async def test_every_route_the_server_serves_is_described(sim: Sim) -> None:
    spec = await openapi(sim)
    described = {(path, method.upper()) for path, item in spec["paths"].items() for method in item}
    app = sim.client.app
    assert app is not None
    # The web console's pages (/ui/) are HTML for people, not part of the HTTP API.
    served = {
        (route.resource.canonical, route.method)
        for route in app.router.routes()
        if route.resource is not None
        and route.method != "HEAD"
        and not route.resource.canonical.startswith("/ui")
    }
    assert served == described
