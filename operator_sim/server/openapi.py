"""The OpenAPI 3.1 description, built from the endpoint declarations and the wire models."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from operator_sim import __version__
from operator_sim.server.endpoints import Endpoint
from operator_sim.server.problems import PROBLEM_CONTENT_TYPE, problem_code
from operator_sim.wire import MSISDN_PATTERN, Problem

_REF = "#/components/schemas/{model}"
_PATH_PARAM_RE = re.compile(r"{(\w+)}")
_PATH_SCHEMAS: dict[str, dict[str, Any]] = {
    "msisdn": {"type": "string", "pattern": MSISDN_PATTERN},
    "operator_id": {"type": "string"},
    "request_id": {"type": "string"},
    "code": {"type": "string"},
}


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": _REF.format(model=model.__name__)}


def _operation(endpoint: Endpoint, path_schemas: dict[str, dict[str, Any]]) -> dict[str, Any]:
    params: list[dict[str, Any]] = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": path_schemas.get(name, {"type": "string"}),
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
    responses: dict[str, Any] = {}
    for status, model in endpoint.responses.items():
        entry: dict[str, Any] = {"description": "OK" if status < 300 else "Done"}
        if model is not None:
            entry["content"] = {endpoint.response_type: {"schema": _ref(model)}}
        elif status != 204:
            entry["content"] = {endpoint.response_type: {"schema": {"type": "string"}}}
        responses[str(status)] = entry
    # The limits (server/limits.py) apply to every route of their kind.
    limits = {414, 431}
    if endpoint.auth == "messenger":
        limits.add(429)
    if endpoint.body is not None or endpoint.empty_body:
        limits |= {408, 413}
    for status in sorted({*endpoint.problems, *limits, 500}):
        responses[str(status)] = {
            "description": f"Problem: {problem_code(status)} (or a more specific code)",
            "content": {PROBLEM_CONTENT_TYPE: {"schema": _ref(Problem)}},
        }
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
            "required": True,
            "content": {"application/json": {"schema": _ref(endpoint.body)}},
        }
    elif endpoint.empty_body:
        op["requestBody"] = {
            "required": False,
            "content": {"application/json": {"schema": {"type": "object", "maxProperties": 0}}},
        }
    return op


_OPERATOR_FIELDS = {
    "SubscriberIn": "operator_id",
    "PortRequest": "to_operator_id",
    "RuleMatch": "operator_id",
}


def _enumerate_operators(schemas: dict[str, Any], operator_ids: list[str]) -> None:
    """Input fields naming an operator accept only the fixture's operators."""
    for model, field in _OPERATOR_FIELDS.items():
        prop = schemas.get(model, {}).get("properties", {}).get(field)
        if prop is None:
            continue
        branches = prop.get("anyOf", [prop])
        for branch in branches:
            if branch.get("type") == "string":
                branch.pop("pattern", None)
                branch["enum"] = operator_ids


def build_openapi(
    endpoints: Sequence[Endpoint], *, operator_ids: Sequence[str] = ()
) -> dict[str, Any]:
    """The whole description: every endpoint, its parameters, bodies and problem responses.

    ``operator_ids`` (the fixture's operators) become the ``operator_id`` path enum.
    """
    path_schemas = dict(_PATH_SCHEMAS)
    if operator_ids:
        path_schemas["operator_id"] = {"type": "string", "enum": list(operator_ids)}
    models: set[type[BaseModel]] = {Problem}
    for endpoint in endpoints:
        models.update(m for m in endpoint.responses.values() if m is not None)
        if endpoint.body is not None:
            models.add(endpoint.body)
    ordered = sorted(models, key=lambda m: m.__name__)
    _, schemas = models_json_schema([(m, "validation") for m in ordered], ref_template=_REF)
    if operator_ids:
        _enumerate_operators(schemas.get("$defs", {}), list(operator_ids))
    paths: dict[str, dict[str, Any]] = {}
    for endpoint in endpoints:
        paths.setdefault(endpoint.path, {})[endpoint.method.lower()] = _operation(
            endpoint, path_schemas
        )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "operator-sim",
            "version": __version__,
            "description": "A simulated mobile operator for the identification flow of "
            "Decree No. 1801: presence or absence within 20 minutes, identification codes, "
            "number routing, and an admin API driving the simulation.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas.get("$defs", {}),
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
