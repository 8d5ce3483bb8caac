"""Fault rules through the admin API: add, list, read and delete them at run time."""

from __future__ import annotations

import structlog
from aiohttp import web

from operator_sim import errors
from operator_sim.server.endpoints import Endpoint, json_response
from operator_sim.server.keys import DATABASE, FLOW
from operator_sim.server.parsing import read_model
from operator_sim.store import rules as rules_store
from operator_sim.wire import Rule, RuleList, RuleSpec

log = structlog.get_logger("operator_sim.rules")

_BASE = "/admin/v1/rules"


def _rule_id(request: web.Request) -> str:
    return request.match_info["rule_id"]


async def create_rule(request: web.Request) -> web.StreamResponse:
    """Add a fault rule after every existing one; it applies to the next request."""
    spec = await read_model(request, RuleSpec)
    flow = request.app[FLOW]
    operator_id = spec.match.operator_id
    if operator_id is not None:
        try:
            flow.check_operator(operator_id)
        except errors.NotFound:
            raise errors.ValidationFailed(
                f"match.operator_id: no operator {operator_id}",
                errors=[{"loc": ["match", "operator_id"], "msg": "unknown operator"}],
            ) from None
    async with request.app[DATABASE].write() as conn:
        if not await rules_store.insert_runtime_rule(conn, spec):
            raise errors.Conflict(f"a rule with id {spec.id} exists")
        rule = await rules_store.get_rule_view(conn, spec.id)
    flow.rules_changed()
    if rule is None:  # cannot happen: inserted in the same transaction
        raise errors.StoreError("rule vanished after insert")
    log.info("rule_added", rule_id=spec.id, action=spec.action.type)
    return json_response(rule, 201, {"Location": f"{_BASE}/{spec.id}"})


async def list_rules(request: web.Request) -> web.StreamResponse:
    """Every rule in matching order: the fixture's, then those added at run time."""
    async with request.app[DATABASE].read() as conn:
        rules = await rules_store.list_rule_views(conn)
    return json_response(RuleList(rules=rules))


async def get_rule(request: web.Request) -> web.StreamResponse:
    """One rule with its source and hit count."""
    async with request.app[DATABASE].read() as conn:
        rule = await rules_store.get_rule_view(conn, _rule_id(request))
    if rule is None:
        raise errors.NotFound(kind="rule", ident=_rule_id(request))
    return json_response(rule)


async def delete_rule(request: web.Request) -> web.StreamResponse:
    """Remove a rule (a fixture rule comes back on the next reset)."""
    rule_id = _rule_id(request)
    async with request.app[DATABASE].write() as conn:
        found = await rules_store.delete_rule(conn, rule_id)
    if not found:
        raise errors.NotFound(kind="rule", ident=rule_id)
    request.app[FLOW].rules_changed()
    log.info("rule_deleted", rule_id=rule_id)
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
        problems=(400, 401, 409, 413, 415, 422),
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
        problems=(401,),
    ),
    Endpoint(
        "GET",
        f"{_BASE}/{{rule_id}}",
        get_rule,
        "Read a fault rule",
        "rules",
        "admin",
        responses={200: Rule},
        problems=(401, 404),
    ),
    Endpoint(
        "DELETE",
        f"{_BASE}/{{rule_id}}",
        delete_rule,
        "Delete a fault rule",
        "rules",
        "admin",
        responses={204: None},
        problems=(401, 404),
        description="Fixture rules can be deleted too; a reset restores them.",
    ),
)
