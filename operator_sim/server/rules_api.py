"""Fault rules through the admin API: add, list, read and delete them at run time."""

from __future__ import annotations

from aiohttp import web

from operator_sim.server.endpoints import Endpoint, json_response
from operator_sim.server.services import SERVICES
from operator_sim.wire import Rule, RuleList, RuleSpec

_BASE = "/admin/v1/rules"


def _rule_id(request: web.Request) -> str:
    return request.match_info["rule_id"]


async def create_rule(request: web.Request) -> web.StreamResponse:
    """Add a fault rule after every existing one; it applies to the next request."""
    services = request.app[SERVICES]
    spec = await services.reader.model(request, RuleSpec)
    rule = await services.rulebook.add(spec)
    return json_response(rule, 201, {"Location": f"{_BASE}/{spec.id}"})


async def list_rules(request: web.Request) -> web.StreamResponse:
    """Every rule in matching order: the fixture's, then those added at run time."""
    return json_response(RuleList(rules=await request.app[SERVICES].rulebook.list_rules()))


async def get_rule(request: web.Request) -> web.StreamResponse:
    """One rule with its source and hit count."""
    return json_response(await request.app[SERVICES].rulebook.get(_rule_id(request)))


async def delete_rule(request: web.Request) -> web.StreamResponse:
    """Remove a rule (a fixture rule comes back on the next reset)."""
    await request.app[SERVICES].rulebook.delete(_rule_id(request))
    return web.Response(status=204)


ENDPOINTS = (
    Endpoint(
        "POST",
        _BASE,
        create_rule,
        "Add a fault rule",
        "rules",
        "admin",
        body=RuleSpec,
        responses={201: Rule},
        problems=("conflict",),
        headers={201: ("Location",)},
        description="Appended after the fixture's rules and earlier runtime rules; the first "
        "matching rule that applies wins. 409 when the id is taken, 422 (nothing stored) for "
        "an invalid rule or an unknown operator.",
    ),
    Endpoint(
        "GET",
        _BASE,
        list_rules,
        "List fault rules with their source and hit counts",
        "rules",
        "admin",
        responses={200: RuleList},
    ),
    Endpoint(
        "GET",
        f"{_BASE}/{{rule_id}}",
        get_rule,
        "Read a fault rule",
        "rules",
        "admin",
        responses={200: Rule},
        problems=("not_found",),
    ),
    Endpoint(
        "DELETE",
        f"{_BASE}/{{rule_id}}",
        delete_rule,
        "Delete a fault rule",
        "rules",
        "admin",
        responses={204: None},
        problems=("not_found",),
        description="Fixture rules can be deleted too; a reset restores them.",
    ),
)
