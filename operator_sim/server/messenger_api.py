"""The messenger-facing API of each simulated operator, and number routing."""

from __future__ import annotations

from aiohttp import web

from operator_sim.server.calls import CALL
from operator_sim.server.context import MESSENGER_ID
from operator_sim.server.endpoints import Endpoint, Param, json_response, raw_json_response
from operator_sim.server.parsing import idempotency_key, path_msisdn
from operator_sim.server.services import SERVICES
from operator_sim.store.requests import StoredRequest
from operator_sim.wire import (
    MAX_WAIT_SECONDS,
    IdentificationCode,
    IdentificationCodeCreate,
    IdentificationRequest,
    IdentificationRequestCreate,
    Routing,
)

_BASE = "/operators/{operator_id}/v1"
_PREFER = Param(
    "Prefer",
    {"type": "string", "example": "wait=10"},
    f"`wait=N`: hold the response up to N real seconds (at most {MAX_WAIT_SECONDS}) "
    "until the request is answered or expired.",
    where="header",
)
_IDEMPOTENCY = Param(
    "Idempotency-Key",
    {"type": "string", "minLength": 1, "maxLength": 255},
    "Per messenger: the same key and body return the same request; another body is 422.",
    where="header",
)


def _request_headers(req: StoredRequest, wait: int) -> dict[str, str]:
    headers = {"Location": f"/operators/{req.operator_id}/v1/identification-requests/{req.id}"}
    if wait:
        headers["Preference-Applied"] = f"wait={wait}"
    return headers


async def create_identification_request(request: web.Request) -> web.StreamResponse:
    """Ask the operator whether it holds information on the number's subscriber."""
    services = request.app[SERVICES]
    key = idempotency_key(request)
    body = await services.reader.model(request, IdentificationRequestCreate)
    services.limits.check_enumeration(request[MESSENGER_ID], body.msisdn)
    wait = services.reader.prefer_wait(request)
    created = await services.identification.create(
        request[CALL], msisdn=body.msisdn, idempotency_key=key, wait=wait
    )
    headers = _request_headers(created.request, wait)
    if created.replayed:
        headers["Idempotent-Replayed"] = "true"
    return raw_json_response(created.to_json(), 201, headers)


async def get_identification_request(request: web.Request) -> web.StreamResponse:
    """Read one of this messenger's requests."""
    services = request.app[SERVICES]
    wait = services.reader.prefer_wait(request)
    req = await services.identification.get(
        request[CALL], request_id=request.match_info["request_id"], wait=wait
    )
    headers = _request_headers(req, wait)
    del headers["Location"]
    return raw_json_response(req.to_json(), 200, headers)


async def register_code(request: web.Request) -> web.StreamResponse:
    """Register the messenger's identification code for a timely ``present``."""
    services = request.app[SERVICES]
    body = await services.reader.model(request, IdentificationCodeCreate)
    code, created = await services.codes.register(
        request[CALL], request_id=body.request_id, code=body.code
    )
    return json_response(code.to_wire(), 201 if created else 200)


async def delete_code(request: web.Request) -> web.StreamResponse:
    """Forget a code: the user left the messenger."""
    await request.app[SERVICES].codes.delete(request[CALL], code=request.match_info["code"])
    return web.Response(status=204)


async def get_routing(request: web.Request) -> web.StreamResponse:
    """Which operator serves a number (the portability database)."""
    msisdn = path_msisdn(request)
    return json_response(await request.app[SERVICES].router.route(request[CALL], msisdn))


ENDPOINTS = (
    Endpoint(
        "POST",
        f"{_BASE}/identification-requests",
        create_identification_request,
        "Request presence or absence of the number's subscriber",
        "identification",
        "messenger",
        journal="identification.create",
        body=IdentificationRequestCreate,
        responses={201: IdentificationRequest},
        problems=("not_found", "invalid_msisdn", "idempotency_key_reused", "enumeration_suspected"),
        params=(_PREFER, _IDEMPOTENCY),
        headers={201: ("Location", "Idempotent-Replayed", "Preference-Applied")},
        description="Answered within 20 minutes of simulation time with `present` or `absent` "
        "only. A fault rule may refuse the call (429/503 with Retry-After) or drop the connection.",
    ),
    Endpoint(
        "GET",
        f"{_BASE}/identification-requests/{{request_id}}",
        get_identification_request,
        "Read an identification request",
        "identification",
        "messenger",
        journal="identification.get",
        responses={200: IdentificationRequest},
        problems=("not_found",),
        params=(_PREFER,),
        headers={200: ("Preference-Applied",)},
    ),
    Endpoint(
        "POST",
        f"{_BASE}/identification-codes",
        register_code,
        "Register the identification code assigned after a timely present",
        "identification",
        "messenger",
        journal="code.register",
        body=IdentificationCodeCreate,
        responses={201: IdentificationCode, 200: IdentificationCode},
        problems=("not_found", "conflict"),
        description="201 when registered, 200 when the same pair was registered before; "
        "409 unless the request is this messenger's and was answered present in time.",
    ),
    Endpoint(
        "DELETE",
        f"{_BASE}/identification-codes/{{code}}",
        delete_code,
        "Forget an identification code (the user left the messenger)",
        "identification",
        "messenger",
        journal="code.delete",
        responses={204: None},
        problems=("not_found",),
    ),
    Endpoint(
        "GET",
        "/v1/routing/{msisdn}",
        get_routing,
        "Which operator serves a number",
        "routing",
        "messenger",
        journal="routing.get",
        responses={200: Routing},
        problems=("not_found",),
    ),
)
