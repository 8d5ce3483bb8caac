"""The OpenAPI 3.1 description, built from the endpoint declarations and the wire models.

Request bodies are described by the models' validation schemas and responses by their
serialization schemas: a field with a default is optional in a request and required in
a response. Where the two differ, the components are named ``Model-Input`` and
``Model-Output``. Problem codes come from :data:`operator_sim.server.problems.PROBLEM_CODES`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from http import HTTPStatus
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import (
    GenerateJsonSchema,
    JsonSchemaMode,
    JsonSchemaValue,
    models_json_schema,
)
from pydantic_core import core_schema

from operator_sim import __version__
from operator_sim.server.endpoints import Endpoint
from operator_sim.server.problems import PROBLEM_CODES, PROBLEM_CONTENT_TYPE, problem_code
from operator_sim.wire import (
    MSISDN_PATTERN,
    ContractTerminatedEvent,
    EventType,
    IdentificationAnsweredEvent,
    NumberPortedEvent,
    Problem,
    SmsStatusChangedEvent,
)

__all__ = ["build_openapi"]

_REF = "#/components/schemas/{model}"
_PATH_PARAM_RE = re.compile(r"{(\w+)}")
_PATH_SCHEMAS: dict[str, dict[str, Any]] = {
    "msisdn": {"type": "string", "pattern": MSISDN_PATTERN, "examples": ["+79000000001"]},
    "request_id": {"type": "string"},
    "code": {"type": "string"},
}
# Body fields naming an operator (input schemas): any id, the fixture's as examples.
_OPERATOR_FIELDS = {
    "SubscriberIn": "operator_id",
    "PortRequest": "to_operator_id",
    "RuleMatch": "operator_id",
    "RuleMatch-Input": "operator_id",
}
# Every route of a kind can answer these (server/parsing.py, auth.py, limits.py, app.py).
_EVERY_ROUTE = ("uri_too_long", "header_too_large", "internal_error")
_AUTHENTICATED = ("unauthorized", "storage_unavailable")
_MESSENGER = ("rate_limited", "too_many_long_polls")
_WITH_BODY = (
    "bad_request",
    "invalid_json",
    "invalid_content_encoding",
    "unsupported_media_type",
    "payload_too_large",
    "request_timeout",
    "validation_error",
)

_STRING = {"type": "string"}
_HEADERS: dict[str, dict[str, Any]] = {
    "X-Request-Id": {
        "description": "The request's id: the one sent (1 to 128 printable ASCII characters) "
        "or one the server made. Also in logs and in problem bodies.",
        "required": True,
        "schema": _STRING,
    },
    "Location": {
        "description": "The path of the new resource.",
        "required": True,
        "schema": {"type": "string", "format": "uri-reference"},
    },
    "Idempotent-Replayed": {
        "description": "Sent when the Idempotency-Key was used before: the request existed.",
        "schema": {"type": "string", "enum": ["true"]},
    },
    "Preference-Applied": {
        "description": "The Prefer: wait the server honoured.",
        "schema": {"type": "string", "pattern": "^wait=[0-9]+$", "examples": ["wait=10"]},
    },
    "WWW-Authenticate": {
        "description": "The scheme to authenticate with.",
        "required": True,
        "schema": {"type": "string", "enum": ["Bearer"]},
    },
    "Allow": {
        "description": "The methods the route has.",
        "required": True,
        "schema": _STRING,
    },
    "RateLimit-Policy": {
        "description": "Sent to a messenger with a rate limit (IETF RateLimit header fields): "
        '`"messenger";q=QUOTA;w=WINDOW_SECONDS`.',
        "schema": {"type": "string", "examples": ['"messenger";q=50;w=1']},
    },
    "RateLimit": {
        "description": "Sent to a messenger with a rate limit: "
        '`"messenger";r=REMAINING;t=SECONDS_UNTIL_FULL`.',
        "schema": {"type": "string", "examples": ['"messenger";r=49;t=1']},
    },
}
_RETRY_AFTER = {
    "description": "Seconds to wait before trying again.",
    "schema": {"type": "integer", "minimum": 0},
}
_WEBHOOK_HEADERS = (
    {
        "name": "webhook-id",
        "in": "header",
        "required": True,
        "description": "The event's id: the deduplication key (the same on every attempt).",
        "schema": {"type": "string", "examples": ["evt_01JDXW8Y6QK4M3N2P1R0S9T8V7"]},
    },
    {
        "name": "webhook-timestamp",
        "in": "header",
        "required": True,
        "description": "When the attempt was signed: Unix seconds, wall-clock time.",
        "schema": {"type": "string", "pattern": "^[0-9]{1,12}$", "examples": ["1767268800"]},
    },
    {
        "name": "webhook-signature",
        "in": "header",
        "required": True,
        "description": "`v1,` and the base64 HMAC-SHA256 of `webhook-id.webhook-timestamp.body` "
        "with the messenger's webhook_secret (Standard Webhooks); verify it with any "
        "Standard Webhooks library before trusting the body.",
        "schema": {
            "type": "string",
            "pattern": r"^v1,[A-Za-z0-9+/]+={0,2}( v1,[A-Za-z0-9+/]+={0,2})*$",
        },
    },
)
_WEBHOOKS: tuple[tuple[EventType, type[BaseModel], str], ...] = (
    (
        "identification.answered",
        IdentificationAnsweredEvent,
        "An identification request was answered (`present` or `absent`) or expired.",
    ),
    (
        "subscriber.contract_terminated",
        ContractTerminatedEvent,
        "A subscriber's contract ended: the code no longer identifies a user.",
    ),
    (
        "subscriber.number_ported",
        NumberPortedEvent,
        "A number moved to another operator: identify the user again there.",
    ),
    (
        "sms.status_changed",
        SmsStatusChangedEvent,
        "An SMS message's status changed (the SMS gateway's report).",
    ),
)


_DEFAULT_MARK = "x-request-default"


class _Generator(GenerateJsonSchema):
    """pydantic's generator, with request defaults told in words rather than ``default``.

    Generators such as openapi-typescript make a field with a ``default`` required (right
    for responses, where it is always there); in a request it may be left out.
    """

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> JsonSchemaValue:
        """The field's schema; in validation mode, its default marked for the description."""
        json_schema = super().default_schema(schema)
        if self.mode == "validation" and "default" in json_schema:
            json_schema[_DEFAULT_MARK] = json_schema.pop("default")
        return json_schema


def _tell_defaults(node: Any) -> None:
    """Turn the marks :class:`_Generator` left into a sentence of the description."""
    if isinstance(node, dict):
        if _DEFAULT_MARK in node:
            default = node.pop(_DEFAULT_MARK)
            if default is not None:  # left out means null: nothing to tell
                described = node.get("description", "")
                told = json.dumps(default, ensure_ascii=False)
                node["description"] = f"{described} Default: {told}.".strip()
        for value in node.values():
            _tell_defaults(value)
    elif isinstance(node, list):
        for item in node:
            _tell_defaults(item)


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF.format(model=name)}


# The reference to each model in each mode (``Model-Input``/``Model-Output`` where they differ).
_Refs = dict[tuple[type[BaseModel], JsonSchemaMode], dict[str, str]]


def _codes_by_status(endpoint: Endpoint) -> dict[int, set[str]]:
    codes = {*_EVERY_ROUTE, *endpoint.problems}
    if endpoint.auth != "none":
        codes.update(_AUTHENTICATED)
    if endpoint.auth == "messenger":
        codes.update(_MESSENGER)
    if endpoint.body is not None or endpoint.empty_body:
        codes.update(_WITH_BODY)
    if "{msisdn}" in endpoint.path:
        codes.add("invalid_msisdn")
    unknown = codes - set(PROBLEM_CODES)
    if unknown:
        raise ValueError(f"{endpoint.method} {endpoint.path}: unknown problem codes {unknown}")
    by_status: dict[int, set[str]] = {}
    for code in codes:
        status = PROBLEM_CODES[code].status
        if status is not None:
            by_status.setdefault(status, set()).add(code)
    if endpoint.faults:
        # A fault rule answers its status with that status's code.
        for status, listed in by_status.items():
            listed.add(problem_code(status))
    return by_status


def _problem_response(
    endpoint: Endpoint, status: int | str, codes: Iterable[str]
) -> dict[str, Any]:
    ordered = sorted(codes)
    headers: dict[str, Any] = {"X-Request-Id": {"$ref": "#/components/headers/X-Request-Id"}}
    if endpoint.faults:
        # A rule's status comes with Retry-After when the rule gives one, and nothing else.
        headers["Retry-After"] = _RETRY_AFTER
    else:
        carried = [PROBLEM_CODES[c].retry_after for c in ordered]
        if any(carried):
            headers["Retry-After"] = {**_RETRY_AFTER, "required": all(carried)}
    if status == 401:
        # A fault rule's 401 does not carry it.
        headers["WWW-Authenticate"] = {
            **_HEADERS["WWW-Authenticate"],
            "required": not endpoint.faults,
        }
    if status == 429 and endpoint.auth == "messenger":
        headers.update(_rate_limit_headers())
    listing = "; ".join(f"`{c}`: {PROBLEM_CODES[c].when}" for c in ordered)
    return {
        "description": f"Problem. {listing}.",
        "headers": headers,
        "content": {
            PROBLEM_CONTENT_TYPE: {
                "schema": _ref(Problem.__name__),
                "examples": {c: {"$ref": f"#/components/examples/{c}"} for c in ordered},
            }
        },
    }


def _rate_limit_headers() -> dict[str, Any]:
    return {
        name: {"$ref": f"#/components/headers/{name}"} for name in ("RateLimit-Policy", "RateLimit")
    }


def _success_response(
    endpoint: Endpoint, status: int, model: type[BaseModel] | None, refs: _Refs
) -> dict[str, Any]:
    headers: dict[str, Any] = {"X-Request-Id": {"$ref": "#/components/headers/X-Request-Id"}}
    for name in endpoint.headers.get(status, ()):
        headers[name] = {"$ref": f"#/components/headers/{name}"}
    if endpoint.auth == "messenger":
        headers.update(_rate_limit_headers())
    entry: dict[str, Any] = {"description": HTTPStatus(status).phrase, "headers": headers}
    if model is not None:
        entry["content"] = {endpoint.response_type: {"schema": refs[(model, "serialization")]}}
    elif status != 204:
        schema = {"type": "object"} if endpoint.response_type == "application/json" else _STRING
        entry["content"] = {endpoint.response_type: {"schema": schema}}
    return entry


def _operation(
    endpoint: Endpoint, refs: _Refs, path_schemas: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    params: list[dict[str, Any]] = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": path_schemas.get(name, _STRING),
        }
        for name in _PATH_PARAM_RE.findall(endpoint.path)
    ]
    params += [
        {
            "name": p.name,
            "in": p.where,
            "required": False,
            "schema": dict(p.schema),
            "description": p.description,
        }
        for p in endpoint.params
    ]
    responses: dict[str, Any] = {
        str(status): _success_response(endpoint, status, model, refs)
        for status, model in sorted(endpoint.responses.items())
    }
    by_status = _codes_by_status(endpoint)
    for status in sorted(by_status):
        if str(status) not in responses:
            responses[str(status)] = _problem_response(endpoint, status, by_status[status])
    if endpoint.faults:
        for band, low in (("4XX", 400), ("5XX", 500)):
            others = {problem_code(s) for s in range(low, low + 100) if s not in by_status}
            responses[band] = _problem_response(endpoint, band, others)
            responses[band]["description"] = (
                "A fault rule's `http_error` with another status. " + responses[band]["description"]
            )
    op: dict[str, Any] = {
        "operationId": endpoint.handler.__name__,
        "summary": endpoint.summary,
        "tags": [endpoint.tag],
        "parameters": params,
        "responses": responses,
    }
    if endpoint.description:
        op["description"] = endpoint.description
    if endpoint.auth != "none":
        op["security"] = [{"messengerKey" if endpoint.auth == "messenger" else "adminToken": []}]
    if endpoint.body is not None:
        op["requestBody"] = {
            "required": not endpoint.body_optional,
            "content": {"application/json": {"schema": refs[(endpoint.body, "validation")]}},
        }
    elif endpoint.empty_body:
        op["requestBody"] = {
            "required": False,
            "content": {"application/json": {"schema": {"type": "object", "maxProperties": 0}}},
        }
    return op


def _webhooks(refs: _Refs) -> dict[str, Any]:
    hooks: dict[str, Any] = {}
    for event_type, model, summary in _WEBHOOKS:
        hooks[event_type] = {
            "post": {
                "operationId": event_type.replace(".", "_"),
                "summary": summary,
                "description": "POSTed to the messenger's `webhook_url`, signed per Standard "
                "Webhooks. The body is the same JSON object the events feed returns. Any 2xx "
                "answer delivers it; anything else (another status, a timeout, a refused "
                "connection) is tried again, honouring `Retry-After`, until 24 hours after "
                "the change. Redirects are not followed.",
                "tags": ["webhooks"],
                "parameters": list(_WEBHOOK_HEADERS),
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": refs[(model, "serialization")]}},
                },
                "responses": {
                    "2XX": {"description": "Delivered: no more attempts for this event."},
                    "default": {"description": "Not delivered: the attempt is repeated later."},
                },
            }
        }
    return hooks


def _examples() -> dict[str, Any]:
    """One example problem for each code."""
    examples: dict[str, Any] = {}
    for code, info in PROBLEM_CODES.items():
        status = info.status or (502 if code == "server_error" else 409)
        examples[code] = {
            "summary": info.when,
            "value": {
                "type": f"urn:operator-sim:problem:{code}",
                "title": HTTPStatus(status).phrase,
                "status": status,
                "detail": info.when,
                "code": code,
                "instance": "/operators/alfa/v1/identification-requests",
                "request_id": "req_18c2f3a4b5c6d7e8",
            },
        }
    return examples


def _shared_responses() -> dict[str, Any]:
    """Answers to a path or method no operation describes."""
    problem = {
        PROBLEM_CONTENT_TYPE: {
            "schema": _ref(Problem.__name__),
        }
    }
    request_id = {"X-Request-Id": {"$ref": "#/components/headers/X-Request-Id"}}
    return {
        "NotFound": {
            "description": "Problem `not_found`: no route for this path.",
            "headers": request_id,
            "content": {
                PROBLEM_CONTENT_TYPE: {
                    **problem[PROBLEM_CONTENT_TYPE],
                    "examples": {"not_found": {"$ref": "#/components/examples/not_found"}},
                }
            },
        },
        "MethodNotAllowed": {
            "description": "Problem `method_not_allowed`: the path has other methods.",
            "headers": {**request_id, "Allow": {"$ref": "#/components/headers/Allow"}},
            "content": {
                PROBLEM_CONTENT_TYPE: {
                    **problem[PROBLEM_CONTENT_TYPE],
                    "examples": {
                        "method_not_allowed": {"$ref": "#/components/examples/method_not_allowed"}
                    },
                }
            },
        },
    }


def _schemas(endpoints: Sequence[Endpoint]) -> tuple[_Refs, dict[str, Any]]:
    wanted: set[tuple[type[BaseModel], JsonSchemaMode]] = {(Problem, "serialization")}
    wanted.update((model, "serialization") for _, model, _ in _WEBHOOKS)
    for endpoint in endpoints:
        wanted.update((m, "serialization") for m in endpoint.responses.values() if m is not None)
        if endpoint.body is not None:
            wanted.add((endpoint.body, "validation"))
    ordered = sorted(wanted, key=lambda pair: (pair[0].__name__, pair[1]))
    refs, schema = models_json_schema(ordered, ref_template=_REF, schema_generator=_Generator)
    plain: _Refs = {pair: {"$ref": refs[pair]["$ref"]} for pair in ordered}
    defs: dict[str, Any] = schema.get("$defs", {})
    _tell_defaults(defs)
    for name, definition in defs.items():
        # Generators name classes after the title: the two modes need two names.
        if name.endswith(("-Input", "-Output")):
            definition["title"] = name.replace("-", "")
    return plain, defs


def _refine(schemas: dict[str, Any], operator_ids: list[str]) -> None:
    """What the models cannot say: the code enum, the fixture's operators as examples."""
    schemas[Problem.__name__]["properties"]["code"]["enum"] = sorted(PROBLEM_CODES)
    for name, field in _OPERATOR_FIELDS.items():
        prop = schemas.get(name, {}).get("properties", {}).get(field)
        if prop is None or not operator_ids:
            continue
        for branch in prop.get("anyOf", [prop]):
            if branch.get("type") == "string":
                branch["examples"] = operator_ids


def build_openapi(
    endpoints: Sequence[Endpoint], *, operator_ids: Sequence[str] = ()
) -> dict[str, Any]:
    """The whole description: every endpoint, its parameters, bodies, headers and problems,
    and the webhooks a messenger receives.

    ``operator_ids`` (the fixture's operators) are the examples of ``operator_id``; any
    string is accepted (an unknown operator is a 404 or a 422), so a client built from one
    fixture's description can address another's operators.
    """
    operators = list(operator_ids)
    path_schemas = dict(_PATH_SCHEMAS)
    path_schemas["operator_id"] = (
        {"type": "string", "examples": operators} if operators else _STRING
    )
    refs, schemas = _schemas(endpoints)
    _refine(schemas, operators)
    paths: dict[str, dict[str, Any]] = {}
    for endpoint in endpoints:
        paths.setdefault(endpoint.path, {})[endpoint.method.lower()] = _operation(
            endpoint, refs, path_schemas
        )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "operator-sim",
            "version": __version__,
            "description": "A simulated mobile operator for the identification flow of "
            "Decree No. 1801: presence or absence within 20 minutes, identification codes, "
            "number routing, notifications (a pull feed and webhooks), and an admin API "
            "driving the simulation. Every response carries X-Request-Id; every error is "
            "application/problem+json with a stable `code`.",
        },
        "servers": [{"url": "/", "description": "This server."}],
        "paths": paths,
        "webhooks": _webhooks(refs),
        "components": {
            "schemas": schemas,
            "responses": _shared_responses(),
            "headers": _HEADERS,
            "examples": _examples(),
            "securitySchemes": {
                "messengerKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A messenger's API key.",
                },
                "adminToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The admin token.",
                },
            },
        },
    }
