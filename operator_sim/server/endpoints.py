"""Endpoints are declared once: the app's routes and the OpenAPI description both come from here."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel

from operator_sim.server.calls import CALL
from operator_sim.server.context import MESSENGER_ID
from operator_sim.server.parsing import PAGE_LIMIT_DEFAULT, PAGE_LIMIT_MAX
from operator_sim.server.problems import status_for
from operator_sim.server.services import SERVICES
from operator_sim.wire import EndpointName

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Auth = Literal["messenger", "admin", "none"]


@dataclass(frozen=True)
class Param:
    """A documented query parameter or request header."""

    name: str
    schema: Mapping[str, Any]
    description: str
    where: Literal["query", "header"] = "query"


def limit_param(what: str) -> Param:
    """The documented ``limit`` of a page of ``what`` (read by ``parsing.query_limit``)."""
    return Param(
        "limit",
        {
            "type": "integer",
            "minimum": 1,
            "maximum": PAGE_LIMIT_MAX,
            "default": PAGE_LIMIT_DEFAULT,
        },
        f"At most this many {what}.",
    )


@dataclass(frozen=True)
class Endpoint:
    """One route: how it is served and how it is described.

    ``problems`` names the problem codes (``problems.PROBLEM_CODES``) this route answers
    beyond those every route of its kind does (the description adds those: bad bodies,
    credentials, limits). ``headers`` names the response headers a status carries beyond
    ``X-Request-Id``; ``faults`` says that fault rules act here, so any 4xx or 5xx status
    a rule chooses may come back.
    """

    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    auth: Auth
    body: type[BaseModel] | None = None
    body_optional: bool = False
    """No body at all means the model's defaults (a model whose every field is optional)."""
    empty_body: bool = False
    responses: Mapping[int, type[BaseModel] | None] = field(default_factory=lambda: {200: None})
    problems: Sequence[str] = ()
    params: Sequence[Param] = ()
    response_type: str = "application/json"
    description: str = ""
    journal: EndpointName | None = None
    """The call's name in the journal and for fault rules (messenger routes)."""
    headers: Mapping[int, Sequence[str]] = field(default_factory=dict)

    @property
    def faults(self) -> bool:
        """Whether fault rules act on this route (every messenger-facing call): it may
        answer any status a rule names."""
        return self.journal is not None


def json_response(
    model: BaseModel, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    """Render a wire model."""
    return raw_json_response(model.model_dump_json(), status, headers)


def raw_json_response(
    body: str, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    """A response of JSON already rendered from a wire model."""
    return web.Response(
        status=status,
        body=body.encode(),
        headers={**(headers or {}), "Content-Type": "application/json"},
    )


def _guarded(endpoint: Endpoint) -> Handler:
    handler = endpoint.handler
    if endpoint.auth == "none":
        return handler
    if endpoint.auth == "admin":

        @functools.wraps(handler)
        async def admin_only(request: web.Request) -> web.StreamResponse:
            request.app[SERVICES].auth.check_admin(request)
            return await handler(request)

        return admin_only

    name = endpoint.journal
    if name is None:
        raise ValueError(f"{endpoint.method} {endpoint.path}: a messenger route names its call")

    @functools.wraps(handler)
    async def messenger_only(request: web.Request) -> web.StreamResponse:
        services = request.app[SERVICES]
        messenger_id = await services.auth.messenger(request)
        request[MESSENGER_ID] = messenger_id
        call = request[CALL] = services.calls.open(request, name, messenger_id)
        status = 500
        try:
            response = await services.limits.guard(request, handler)
            status = response.status
        except BaseException as exc:
            status = status_for(exc)
            raise
        finally:
            # Refused calls are journalled too, before their answer leaves.
            await services.calls.record_alone(call, status)
        if call.hold:
            await asyncio.sleep(call.hold)  # a `delay` rule: the work is done, the answer waits
        return response

    return messenger_only


def add_routes(app: web.Application, endpoints: Sequence[Endpoint]) -> None:
    """Serve every endpoint behind the authentication it declares."""
    for endpoint in endpoints:
        app.router.add_route(endpoint.method, endpoint.path, _guarded(endpoint))
