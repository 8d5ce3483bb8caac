"""/openapi.json: valid OpenAPI 3.1, with webhooks, headers, problem codes and both schema modes."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest
from openapi_spec_validator import validate

from operator_sim.server import problems
from operator_sim.server.app import ENDPOINTS
from operator_sim.server.openapi import build_openapi
from tests.conftest import Sim

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted((ROOT / "operator_sim").rglob("*.py"))
IR_POST = ("/operators/{operator_id}/v1/identification-requests", "post")


@pytest.fixture
async def spec(sim: Sim) -> dict[str, Any]:
    resp = await sim.client.get("/openapi.json")
    assert resp.status == 200
    body: dict[str, Any] = await resp.json()
    return body


def _resolve(spec: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = spec
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def _responses(spec: dict[str, Any]) -> list[tuple[str, str, str, dict[str, Any]]]:
    return [
        (method, path, status, response)
        for path, item in spec["paths"].items()
        for method, op in item.items()
        for status, response in op["responses"].items()
    ]


def test_the_description_is_valid_openapi_3_1() -> None:
    spec = build_openapi(ENDPOINTS, operator_ids=["alfa", "beta"])
    validate(spec)  # raises on any departure from the OpenAPI 3.1 schema
    assert spec["openapi"] == "3.1.0"
    assert spec["servers"] == [{"url": "/", "description": "This server."}]


async def test_the_served_description_is_valid_too(spec: dict[str, Any]) -> None:
    validate(spec)


async def test_webhooks_describe_each_event_with_its_signature_headers(
    spec: dict[str, Any],
) -> None:
    hooks = spec["webhooks"]
    assert set(hooks) == {
        "identification.answered",
        "subscriber.contract_terminated",
        "subscriber.number_ported",
        "sms.status_changed",
    }
    for name, item in hooks.items():
        post = item["post"]
        headers = {p["name"]: p for p in post["parameters"] if p["in"] == "header"}
        assert set(headers) == {"webhook-id", "webhook-timestamp", "webhook-signature"}
        assert all(h["required"] for h in headers.values())
        body = _resolve(spec, post["requestBody"]["content"]["application/json"]["schema"])
        assert body["properties"]["type"]["const"] == name
        # The same object the feed returns: the feed page's event union names this schema.
        page = spec["components"]["schemas"]["EventPage"]
        union = page["properties"]["events"]["items"]
        assert post["requestBody"]["content"]["application/json"]["schema"] in union["oneOf"]
        assert set(body["required"]) == set(body["properties"])
        assert "2XX" in post["responses"]


async def test_every_response_says_which_headers_come_with_it(spec: dict[str, Any]) -> None:
    for method, path, status, response in _responses(spec):
        headers = response["headers"]
        assert _resolve(spec, headers["X-Request-Id"])["required"] is True, (method, path)
        messenger = path.startswith(("/operators", "/v1/routing"))
        if status.startswith("2") and messenger:
            assert {"RateLimit-Policy", "RateLimit"} <= set(headers), (method, path, status)
        if status == "201" and path != "/operators/{operator_id}/v1/identification-codes":
            assert _resolve(spec, headers["Location"])["required"] is True, (method, path)
        if status in ("429", "503") and path != "/readyz":  # readyz: a Health body, no wait
            assert "Retry-After" in headers, (method, path, status)
        if status == "401":
            assert "WWW-Authenticate" in headers, (method, path)
    ir = spec["paths"][IR_POST[0]][IR_POST[1]]["responses"]["201"]["headers"]
    assert {"Location", "Idempotent-Replayed", "Preference-Applied"} <= set(ir)
    # Retry-After is declared where the server may send it; a fault rule that names no
    # retry_after answers without one, so on messenger routes it is not promised.
    events = spec["paths"]["/operators/{operator_id}/v1/events"]["get"]["responses"]
    assert "Retry-After" in events["429"]["headers"]
    assert events["429"]["headers"]["Retry-After"].get("required", False) is False
    assert "WWW-Authenticate" in events["401"]["headers"]  # not from a fault rule's 401
    clock = spec["paths"]["/admin/v1/clock"]["get"]["responses"]
    assert clock["401"]["headers"]["WWW-Authenticate"]["required"] is True
    shared = spec["components"]["responses"]
    assert _resolve(spec, shared["MethodNotAllowed"]["headers"]["Allow"])["required"] is True


async def test_each_problem_response_lists_its_real_codes(spec: dict[str, Any]) -> None:
    codes = spec["components"]["schemas"]["Problem"]["properties"]["code"]["enum"]
    assert codes == sorted(problems.PROBLEM_CODES)
    for method, path, status, response in _responses(spec):
        media = response.get("content", {}).get("application/problem+json")
        if media is None:
            continue
        listed = set(media["examples"])
        assert listed, (method, path, status)
        assert listed <= set(codes)
        for code in listed:
            assert f"`{code}`" in response["description"]
            expected = problems.PROBLEM_CODES[code].status
            if status.endswith("XX"):
                assert expected is None or str(expected)[0] == status[0], (path, status, code)
            elif code not in ("http_error", "server_error"):
                assert str(expected) == status, (method, path, status, code)
        if not path.startswith(("/operators", "/v1/routing", "/sms/v1")):
            # Only fault rules answer the catch-all codes, and they act on messenger calls.
            assert not listed & {"http_error", "server_error"}, (method, path, status)
    ir = spec["paths"][IR_POST[0]][IR_POST[1]]["responses"]
    assert set(ir["422"]["content"]["application/problem+json"]["examples"]) == {
        "http_error",  # a fault rule's 422
        "idempotency_key_reused",
        "invalid_msisdn",
        "validation_error",
    }
    assert {"4XX", "5XX"} <= set(ir)
    feed = spec["paths"]["/operators/{operator_id}/v1/events"]["get"]["responses"]
    assert set(feed["409"]["content"]["application/problem+json"]["examples"]) == {
        "cursor_unknown",
        "http_error",  # a fault rule's 409
    }


def _emitted_codes() -> set[str]:
    """Every code literal the server's source can put in a problem.

    ``code=...`` keywords (``Throttled(code=...)``, ``Problem(code=...)``), assignments to
    ``code`` (also in tuples), the code argument of ``problem_response`` and the values of
    the middleware's tables.
    """
    found: set[str] = set(problems._TABLE.values()) | set(problems._HTTP_CODES.values())
    found |= {problems.problem_code(400 + n) for n in range(200)}
    for source in SOURCES:
        tree = ast.parse(source.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.keyword) and node.arg == "code":
                found |= _strings(node.value)
            elif isinstance(node, ast.Assign):
                for target in node.targets:
                    found |= _assigned_to_code(target, node.value)
            elif (
                isinstance(node, ast.Call)
                and getattr(node.func, "id", getattr(node.func, "attr", None)) == "problem_response"
                and len(node.args) >= 3
            ):
                found |= _strings(node.args[2])
    return found


def _strings(node: ast.expr) -> set[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    return set()


def _assigned_to_code(target: ast.expr, value: ast.expr) -> set[str]:
    if isinstance(target, ast.Name) and target.id == "code":
        return _strings(value)
    if isinstance(target, ast.Tuple) and isinstance(value, ast.Tuple):
        return {
            s
            for t, v in zip(target.elts, value.elts, strict=False)
            for s in _assigned_to_code(t, v)
        }
    return set()


def test_every_code_the_server_can_answer_is_in_the_enum() -> None:
    emitted = _emitted_codes()
    # The scan sees each way a code is written: the limits' Throttled, the protocol
    # handler's and the head limits' assignments, the middleware's literal.
    assert {"enumeration_suspected", "too_many_long_polls", "bad_request", "uri_too_long"} <= (
        emitted
    )
    assert {"internal_error", "http_error", "server_error"} <= emitted
    spec = build_openapi(ENDPOINTS)
    enum = set(spec["components"]["schemas"]["Problem"]["properties"]["code"]["enum"])
    assert emitted - enum == set()


def test_every_errors_literal_in_the_source_has_loc_msg_and_type() -> None:
    """``errors=[{...}]`` items are rendered as ProblemError: all three keys, always."""
    literals = []
    for source in SOURCES:
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.keyword)
                and node.arg == "errors"
                and isinstance(node.value, ast.List)
            ):
                literals += [(source.name, item) for item in node.value.elts]
    assert len(literals) >= 8  # parsing, feed, clock, operators, messengers, errors
    for name, item in literals:
        assert isinstance(item, ast.Dict), name
        keys = {k.value for k in item.keys if isinstance(k, ast.Constant)}
        assert keys == {"loc", "msg", "type"}, (name, keys)


def test_problem_errors_are_absent_or_typed_items() -> None:
    schemas = build_openapi(ENDPOINTS)["components"]["schemas"]
    problem = schemas["Problem"]
    assert "errors" not in problem["required"]
    assert problem["properties"]["errors"]["type"] == "array"  # absent, never null
    assert "anyOf" not in problem["properties"]["errors"]
    assert "instance" not in problem["required"]
    assert problem["properties"]["instance"] == {
        "description": "The request path.",
        "title": "Instance",
        "type": "string",
    }
    assert "request_id" in problem["required"]
    item = schemas["ProblemError"]
    assert set(item["required"]) == {"loc", "msg", "type"}
    assert item["properties"]["loc"]["items"] == {
        "anyOf": [{"type": "string"}, {"type": "integer"}]
    }


async def test_every_errors_item_the_server_sends_has_loc_msg_and_type(sim: Sim) -> None:
    answers = [
        await sim.client.get("/operators/alfa/v1/events?limit=0", headers=sim.auth(DEMO)),
        await sim.client.get("/operators/alfa/v1/events?after=c!", headers=sim.auth(DEMO)),
        await sim.identify("8 900"),
        await sim.admin("GET", "/requests?since=yesterday"),
        await sim.admin("GET", "/deliveries?messenger_id=Bad!"),
        await sim.admin("GET", "/requests?limit=1&limit=2"),
        await sim.admin("POST", "/clock/advance", {"by": "P3000000D"}),
        await sim.admin("POST", "/messengers", {"id": "x"}),
    ]
    for resp in answers:
        body = await resp.json()
        assert body["errors"], body
        for item in body["errors"]:
            assert set(item) == {"loc", "msg", "type"}, body
            assert all(isinstance(part, str | int) for part in item["loc"])


def test_requests_take_defaults_and_responses_promise_every_field() -> None:
    schemas = build_openapi(ENDPOINTS)["components"]["schemas"]
    assert "status" not in schemas["SubscriberIn"].get("required", [])
    assert set(schemas["Subscriber"]["required"]) == set(schemas["Subscriber"]["properties"])
    assert schemas["RuleMatch-Input"].get("required", []) == []
    assert set(schemas["RuleMatch-Output"]["required"]) == {
        "endpoint",
        "msisdn",
        "messenger_id",
        "operator_id",
        "event_type",
    }
    assert schemas["LateAction-Input"]["required"] == ["type"]
    late_out = schemas["LateAction-Output"]
    assert set(late_out["required"]) == {"type", "by", "result"}
    assert late_out["properties"]["by"]["type"] == "string"  # rendered as ISO 8601 only
    late_in = schemas["LateAction-Input"]["properties"]["by"]
    assert "anyOf" in late_in  # seconds or ISO 8601
    # A request's default is told, not given as `default`: generators such as
    # openapi-typescript would make the field required.
    assert "default" not in late_in
    assert late_in["description"].endswith('Default: "PT5M".')
    assert schemas["SubscriberIn"]["properties"]["status"]["description"] == 'Default: "active".'
    assert late_out["properties"]["by"]["default"] == "PT5M"
    # Generators name classes after titles: the two modes have two names.
    assert schemas["LateAction-Output"]["title"] == "LateActionOutput"
    for name, schema in schemas.items():
        if name.endswith("-Output") or name in {"Rule", "IdentificationRequest", "EventPage"}:
            assert set(schema.get("required", [])) == set(schema.get("properties", {})), name
    rule = schemas["Rule"]["properties"]
    assert rule["match"] == {"$ref": "#/components/schemas/RuleMatch-Output"}


async def test_operator_ids_are_strings_with_the_fixtures_as_examples(
    spec: dict[str, Any],
) -> None:
    param = next(
        p for p in spec["paths"][IR_POST[0]][IR_POST[1]]["parameters"] if p["name"] == "operator_id"
    )
    assert param["schema"] == {"type": "string", "examples": ["alfa", "beta", "gamma", "delta"]}
    port = spec["components"]["schemas"]["PortRequest"]["properties"]["to_operator_id"]
    assert "enum" not in port
    assert port["examples"] == ["alfa", "beta", "gamma", "delta"]
    assert '"enum": ["alfa"' not in str(spec).replace("'", '"')
    # Another fixture's description differs only in its examples.
    other = build_openapi(ENDPOINTS, operator_ids=["north"])
    mine = build_openapi(ENDPOINTS, operator_ids=["alfa", "beta", "gamma", "delta"])
    assert str(other).replace("['north']", "X") == str(mine).replace(
        "['alfa', 'beta', 'gamma', 'delta']", "X"
    )


async def test_the_docs_page_renders_the_webhooks(sim: Sim) -> None:
    page = await (await sim.client.get("/docs")).text()
    assert "spec.webhooks" in page
    assert 'id: "webhooks"' in page
    assert "headerList(r.headers)" in page  # response headers are shown


DEMO = "demo-messenger-key-not-secret"
