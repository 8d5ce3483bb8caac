"""Every response a test server sends, checked against the server's own ``/openapi.json``.

:func:`watch` hooks an application built by ``create_app``: each response it prepares is
validated with openapi-core against the document the same server serves (the status is
declared for the operation, the media type is declared, required headers are present and
declared ones valid, the body matches the schema, a problem's ``code`` is one listed for
that response). Responses to a path or method the document has no operation for (a 404
for an unknown route, a 405) are checked against ``components.responses``.

Excluded, on purpose: responses a ``malformed`` fault rule produced (their bodies are
broken by design), and the answer aiohttp prepares for a connection a ``drop`` rule
aborted (it reaches no one); they are counted in :attr:`Conformance.excluded`.

Webhook deliveries are checked with :meth:`Conformance.check_webhook` against the
document's ``webhooks``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.payload import Payload
from openapi_core import Config, OpenAPI
from openapi_core.datatypes import RequestParameters
from openapi_schema_validator import OAS31Validator
from werkzeug.datastructures import Headers, ImmutableMultiDict

from operator_sim import errors
from operator_sim.server.services import SERVICES

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_EXEMPT = web.RequestKey("conformance_exempt", str)


@dataclass
class _Request:
    """openapi-core's ``Request`` protocol (with ``path_pattern``) over a served request."""

    host_url: str
    path: str
    path_pattern: str
    method: str
    parameters: RequestParameters
    content_type: str
    body: bytes | None


@dataclass(frozen=True)
class _Response:
    """openapi-core's ``Response`` protocol over a prepared response."""

    status_code: int
    content_type: str
    headers: Headers
    data: bytes | None


@dataclass
class _WebhookRequest:
    """openapi-core's ``WebhookRequest`` protocol over a delivery a receiver got."""

    name: str
    method: str
    parameters: RequestParameters
    content_type: str
    body: bytes | None


def _inlined(node: Any, spec: dict[str, Any]) -> Any:
    """``node`` with every local ``$ref`` replaced by what it names (the schemas are not
    recursive): openapi-core then validates without resolving references each time."""
    if isinstance(node, dict):
        if "$ref" in node and node["$ref"].startswith("#/"):
            return _inlined(_resolve(spec, node), spec)
        return {key: _inlined(value, spec) for key, value in node.items()}
    if isinstance(node, list):
        return [_inlined(item, spec) for item in node]
    return node


@functools.cache
def _document(raw: bytes) -> tuple[OpenAPI, dict[str, Any]]:
    spec: dict[str, Any] = json.loads(raw)
    inlined = {
        **spec,
        "paths": _inlined(spec["paths"], spec),
        "webhooks": _inlined(spec["webhooks"], spec),
    }
    config = Config(
        extra_media_type_deserializers={"application/problem+json": json.loads},
        # tests/test_openapi.py validates the description; here it would cost each run 3 s.
        spec_validator_cls=None,
    )
    return OpenAPI.from_dict(inlined, config=config), spec


def _headers(pairs: Mapping[str, str]) -> Headers:
    return Headers([(k, v) for k, v in pairs.items()])


@dataclass
class Conformance:
    """Mismatches between what a server sent and what its document says."""

    mismatches: list[str] = field(default_factory=list)
    checked: int = 0
    excluded: int = 0
    seen: set[tuple[str, str, int]] = field(default_factory=set)
    """(method, path pattern, status) of every response checked."""
    _spec: dict[str, Any] | None = None
    _openapi: OpenAPI | None = None

    def _load(self, app: web.Application) -> tuple[OpenAPI, dict[str, Any]]:
        if self._openapi is None or self._spec is None:
            self._openapi, self._spec = _document(app[SERVICES].openapi)
        return self._openapi, self._spec

    def check(self, request: web.Request, response: web.StreamResponse) -> None:
        """Record every way ``response`` to ``request`` departs from the document."""
        if request.get(_EXEMPT):
            self.excluded += 1
            return
        if request.path == "/ui" or request.path.startswith("/ui/"):
            return  # the web console: HTML pages for people, not the HTTP API
        self.checked += 1
        openapi, spec = self._load(request.app)
        data = _body(response)
        resource = request.match_info.route.resource
        pattern = resource.canonical if resource is not None else None
        label = f"{request.method} {request.path} -> {response.status}"
        operation = (
            spec["paths"].get(pattern, {}).get(request.method.lower())
            if pattern is not None
            else None
        )
        content_type = response.headers.get("Content-Type", "")
        self.seen.add((request.method, pattern or request.path, response.status))
        if operation is None:
            self._check_unrouted(spec, label, response, data)
            return
        adapted = _Request(
            host_url=f"{request.scheme}://{request.host}",
            path=request.path,
            path_pattern=pattern or request.path,
            method=request.method.lower(),
            parameters=RequestParameters(
                query=ImmutableMultiDict(list(request.query.items())),
                header=_headers(request.headers),
                path=dict(request.match_info),
            ),
            content_type=request.headers.get("Content-Type", ""),
            body=None,
        )
        answer = _Response(
            status_code=response.status,
            content_type=content_type,
            headers=_headers(response.headers),
            data=data,
        )
        for error in openapi.response_validator.iter_errors(adapted, answer):
            self.mismatches.append(f"{label}: {_describe(error)}")
        declared = _declared(operation["responses"], response.status)
        if declared is not None:
            self._check_extra(spec, label, declared, response, data)

    def _check_unrouted(
        self,
        spec: dict[str, Any],
        label: str,
        response: web.StreamResponse,
        data: bytes | None,
    ) -> None:
        shared = spec.get("components", {}).get("responses", {})
        name = {404: "NotFound", 405: "MethodNotAllowed"}.get(response.status)
        if name is None or name not in shared:
            self.mismatches.append(f"{label}: no operation and no shared response for it")
            return
        self._check_extra(spec, label, shared[name], response, data, full=True)

    def _check_extra(
        self,
        spec: dict[str, Any],
        label: str,
        declared: dict[str, Any],
        response: web.StreamResponse,
        data: bytes | None,
        *,
        full: bool = False,
    ) -> None:
        """What openapi-core leaves out: bodies where none is declared, the listed codes.

        With ``full``, also the media type, headers and body (shared responses).
        """
        declared = _resolve(spec, declared)
        content = declared.get("content")
        if not content:
            if data:
                self.mismatches.append(f"{label}: a body where the document declares none")
            return
        media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        media = content.get(media_type)
        if full:
            if media is None:
                self.mismatches.append(f"{label}: undeclared media type {media_type!r}")
                return
            for name, header in declared.get("headers", {}).items():
                header = _resolve(spec, header)
                if header.get("required") and name not in response.headers:
                    self.mismatches.append(f"{label}: missing required header {name}")
            self._check_schema(spec, label, media.get("schema", {}), data)
        if media is None or media_type != "application/problem+json" or not data:
            return
        listed = set(media.get("examples", {}))
        try:
            code = json.loads(data).get("code")
        except ValueError:
            return  # the schema check reports the body
        if listed and code not in listed:
            self.mismatches.append(
                f"{label}: code {code!r} is not listed for this response {sorted(listed)}"
            )

    def _check_schema(
        self, spec: dict[str, Any], label: str, schema: dict[str, Any], data: bytes | None
    ) -> None:
        try:
            value = json.loads(data or b"")
        except ValueError:
            self.mismatches.append(f"{label}: the body is not JSON")
            return
        validator = OAS31Validator({**schema, "components": spec.get("components", {})})
        for error in validator.iter_errors(value):
            self.mismatches.append(f"{label}: {error.message}")

    def check_webhook(self, document: bytes, headers: Mapping[str, str], body: bytes) -> None:
        """Check one webhook delivery (as a receiver got it) against ``document``."""
        self.checked += 1
        openapi, _spec = _document(document)
        try:
            name = json.loads(body)["type"]
        except (ValueError, KeyError, TypeError):
            self.mismatches.append("webhook: the body is not an event")
            return
        request = _WebhookRequest(
            name=name,
            method="post",
            parameters=RequestParameters(header=_headers(headers)),
            content_type=headers.get("Content-Type", headers.get("content-type", "")),
            body=body,
        )
        for error in openapi.webhook_request_validator.iter_errors(request):
            self.mismatches.append(f"webhook {name}: {_describe(error)}")


def _body(response: web.StreamResponse) -> bytes | None:
    if not isinstance(response, web.Response):
        return None
    body = response.body
    if isinstance(body, Payload):
        return body.decode().encode()
    return body if isinstance(body, bytes) else None


def _declared(responses: dict[str, Any], status: int) -> dict[str, Any] | None:
    found: dict[str, Any] | None = responses.get(str(status)) or responses.get(
        f"{str(status)[0]}XX"
    )
    return found or responses.get("default")


def _resolve(spec: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = spec
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def _describe(error: BaseException) -> str:
    text = str(error)
    causes = [str(e) for e in getattr(error, "schema_errors", ()) or ()]
    if error.__cause__ is not None:
        causes.append(str(error.__cause__))
        causes += [str(e) for e in getattr(error.__cause__, "schema_errors", ()) or ()]
    return "; ".join([text, *causes])[:1500]


@web.middleware
async def _note_malformed(request: web.Request, handler: Handler) -> web.StreamResponse:
    # Innermost: it sees the fault rule's exception before the problem middleware answers it.
    try:
        return await handler(request)
    except errors.InjectedMalformed:
        request[_EXEMPT] = "malformed"
        raise
    except errors.DropConnection:
        # The connection is aborted: aiohttp's own 500 is prepared but never reaches anyone.
        request[_EXEMPT] = "drop"
        raise


_WATCHED = web.AppKey("conformance_watched", Conformance)


def watch(app: web.Application, conformance: Conformance) -> None:
    """Check every response ``app`` (built by ``create_app``, not started) sends; once."""
    if _WATCHED in app:
        return
    app[_WATCHED] = conformance
    app.middlewares.append(_note_malformed)

    async def on_prepare(request: web.Request, response: web.StreamResponse) -> None:
        try:
            conformance.check(request, response)
        except Exception as exc:  # noqa: BLE001 (a broken check is a finding, not a crash)
            conformance.mismatches.append(
                f"{request.method} {request.path}: the check failed: {exc!r}"
            )

    app.on_response_prepare.append(on_prepare)
