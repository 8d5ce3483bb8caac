"""RFC 9457 problem details: the one table from exceptions to HTTP, and the middlewares.

Every error leaves the server as ``application/problem+json`` with a stable ``code``,
including aiohttp's own 404/405/413 and unexpected exceptions (500, logged with the
request id, no traceback in the body).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus

import structlog
from aiohttp import web
from aiohttp.typedefs import Middleware

from operator_sim import errors
from operator_sim.logs import CURRENT_REQUEST_ID, is_enabled
from operator_sim.server.context import MESSENGER_ID, REQUEST_ID
from operator_sim.server.metrics import Metrics
from operator_sim.wire import Problem

log = structlog.get_logger("operator_sim.http")

PROBLEM_CONTENT_TYPE = "application/problem+json"
_REQUEST_ID_RE = re.compile(r"^[\x21-\x7e]{1,128}$")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class ProblemCode:
    """A stable problem ``code``: the status it comes with, and when it is answered."""

    status: int | None
    """None for the codes of a fault rule's status that has no code of its own."""
    when: str
    retry_after: bool = False
    """Always sent with ``Retry-After`` (a fault rule's status carries it when the rule says)."""


# Every code the server answers, in one place: the middleware picks from it and the
# OpenAPI description enumerates it (``Problem.code``) and lists it per response.
PROBLEM_CODES: Mapping[str, ProblemCode] = {
    "bad_request": ProblemCode(
        400, "a request that cannot be read (malformed HTTP, broken body framing)"
    ),
    "invalid_json": ProblemCode(400, "the body is not JSON, or is empty where a body is needed"),
    "invalid_content_encoding": ProblemCode(
        400, "the body is not in the Content-Encoding it declares"
    ),
    "unauthorized": ProblemCode(401, "a missing or wrong key or token"),
    "not_found": ProblemCode(404, "an unknown route, operator or id, or another messenger's id"),
    "method_not_allowed": ProblemCode(
        405, "the route exists with other methods (Allow lists them)"
    ),
    "request_timeout": ProblemCode(408, "the body did not arrive within the client timeout"),
    "conflict": ProblemCode(409, "the request contradicts the stored state"),
    "cursor_unknown": ProblemCode(
        409, "a feed cursor this feed never gave this messenger: restart without after"
    ),
    "payload_too_large": ProblemCode(413, "a body over the limit, counted after decompression"),
    "uri_too_long": ProblemCode(414, "a request target over the header size limit"),
    "unsupported_media_type": ProblemCode(415, "a body without Content-Type: application/json"),
    "invalid_msisdn": ProblemCode(422, "a number that is not canonical E.164"),
    "idempotency_key_reused": ProblemCode(
        422, "an Idempotency-Key already bound to a different request"
    ),
    "validation_error": ProblemCode(
        422, "JSON of the wrong shape, a bad query parameter or a refused value"
    ),
    "rate_limited": ProblemCode(
        429, "over the messenger's rate limit, or a fault rule's 429", retry_after=True
    ),
    "too_many_long_polls": ProblemCode(
        429, "the messenger already holds its most calls with Prefer: wait", retry_after=True
    ),
    "enumeration_suspected": ProblemCode(
        429, "too many numbers of one block within the window", retry_after=True
    ),
    "header_too_large": ProblemCode(431, "a header field over the header size limit"),
    "internal_error": ProblemCode(500, "a bug: logged with the request id"),
    "operator_unavailable": ProblemCode(503, "a fault rule's 503"),
    "storage_unavailable": ProblemCode(
        503, "the database cannot be written now (disk full or failing)", retry_after=True
    ),
    "http_error": ProblemCode(None, "a fault rule's 4xx status that has no code of its own"),
    "server_error": ProblemCode(None, "a fault rule's 5xx status that has no code of its own"),
}

# Looked up along the exception's class hierarchy: the most specific class listed wins.
_TABLE: dict[type[errors.OperatorSimError], str] = {
    errors.InvalidMsisdn: "invalid_msisdn",
    errors.IdempotencyKeyReused: "idempotency_key_reused",
    errors.ValidationFailed: "validation_error",
    errors.InvalidJson: "invalid_json",
    errors.InvalidContentEncoding: "invalid_content_encoding",
    errors.UnsupportedMediaType: "unsupported_media_type",
    errors.PayloadTooLarge: "payload_too_large",
    errors.RequestTimeout: "request_timeout",
    errors.InputError: "bad_request",
    errors.Unauthorized: "unauthorized",
    errors.NotFound: "not_found",
    errors.CursorUnknown: "cursor_unknown",
    errors.Conflict: "conflict",
    errors.StorageUnavailable: "storage_unavailable",
}
STORAGE_RETRY_AFTER = 5
"""Seconds a client is told to wait when the database cannot be written."""


def status_for(exc: BaseException) -> int:
    """The status a request that raised ``exc`` is answered (0: no answer; 499: gone)."""
    if isinstance(exc, errors.DropConnection):
        return 0
    if isinstance(exc, asyncio.CancelledError):
        return 499
    if isinstance(exc, errors.Throttled):
        return 429
    if isinstance(exc, errors.InjectedFault | errors.InjectedMalformed):
        return exc.status
    if isinstance(exc, errors.OperatorSimError):
        mapped = _status_of(exc)
        return 500 if mapped is None else mapped[0]
    if isinstance(exc, web.HTTPException):
        return exc.status
    return 500


def _status_of(exc: errors.OperatorSimError) -> tuple[int, str] | None:
    for cls in type(exc).__mro__:
        code = _TABLE.get(cls)
        status = None if code is None else PROBLEM_CODES[code].status
        if code is not None and status is not None:
            return status, code
    return None


# The code of a bare status: aiohttp's own errors, and a fault rule's http_error.
_HTTP_CODES: dict[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    413: "payload_too_large",
    414: "uri_too_long",
    415: "unsupported_media_type",
    429: "rate_limited",
    431: "header_too_large",
    503: "operator_unavailable",
}


def problem_code(status: int) -> str:
    """The stable code for a bare HTTP status."""
    return _HTTP_CODES.get(status, "server_error" if status >= 500 else "http_error")


def problem_response(
    request: web.Request,
    status: int,
    code: str,
    detail: str,
    *,
    errors_: list[dict[str, object]] | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    """Render a problem+json response."""
    problem = Problem(
        type=f"urn:operator-sim:problem:{code}",
        title=HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error",
        status=status,
        detail=detail,
        code=code,
        instance=request.path,
        request_id=request.get(REQUEST_ID, ""),
        errors=errors_,
    )
    return web.Response(
        status=status,
        body=problem.model_dump_json(exclude_none=True),
        content_type=PROBLEM_CONTENT_TYPE,
        headers=headers,
    )


_MALFORMED_BODIES = {
    # Half of a plausible request resource: the JSON ends mid-string.
    "truncated": b'{"id":"ir_01MALFORMED","operator_id":"alfa","msisdn":"+7916',
    "not_json": b"<html><body><h1>502 Bad Gateway</h1></body></html>",
    # Valid JSON without the resource's fields.
    "wrong_shape": b'{"ok":true,"status":"maybe"}',
    "empty": b"",
}


def malformed_response(status: int, body: str) -> web.Response:
    """A success status with a body no client should accept (a fault rule's ``malformed``).

    A 204 cannot carry a body: it is answered with a JSON content type and none.
    """
    if status == 204:
        return web.Response(status=204, headers={"Content-Type": "application/json"})
    return web.Response(
        status=status, body=_MALFORMED_BODIES[body], headers={"Content-Type": "application/json"}
    )


def _from_domain(request: web.Request, exc: errors.OperatorSimError) -> web.Response:
    if isinstance(exc, errors.InjectedMalformed):
        return malformed_response(exc.status, exc.body)
    if isinstance(exc, errors.Throttled):
        return problem_response(request, 429, exc.code, exc.detail, headers=exc.headers)
    if isinstance(exc, errors.InjectedFault):
        return problem_response(
            request,
            exc.status,
            problem_code(exc.status),
            "the operator cannot take this request now; retry later"
            if exc.status in (429, 503)
            else f"the operator answered {exc.status}",
            headers={} if exc.retry_after is None else {"Retry-After": str(exc.retry_after)},
        )
    mapped = _status_of(exc)
    if mapped is None:
        log.error("unmapped_error", error_type=type(exc).__name__, detail=exc.detail)
        return problem_response(request, 500, "internal_error", "internal error")
    status, code = mapped
    extra = exc.errors if isinstance(exc, errors.ValidationFailed) else None
    headers: dict[str, str] | None = None
    if status == 401:
        headers = {"WWW-Authenticate": "Bearer"}
    elif isinstance(exc, errors.StorageUnavailable):
        log.warning("storage_unavailable", detail=exc.detail)
        headers = {"Retry-After": str(STORAGE_RETRY_AFTER)}
    return problem_response(request, status, code, exc.detail, errors_=extra, headers=headers)


def _from_http(request: web.Request, exc: web.HTTPException) -> web.StreamResponse:
    if exc.status < 400:
        return exc  # redirects and the like pass through unchanged
    detail = {
        404: f"no route for {request.method} {request.path}",
        405: f"{request.method} is not allowed here",
        413: "the request body is too large",
    }.get(exc.status, exc.reason)
    headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
    return problem_response(request, exc.status, problem_code(exc.status), detail, headers=headers)


async def _answer_and_close(request: web.Request, response: web.StreamResponse) -> None:
    """Send the response now and close the connection without reading the rest of the body.

    aiohttp would otherwise keep reading (and inflating) an unread body for up to its
    lingering time: not worth it for a bomb or a trickle.
    """
    response.force_close()
    response.headers["X-Request-Id"] = request.get(REQUEST_ID, "")
    await response.prepare(request)
    await response.write_eof()
    if request.transport is not None:
        request.transport.close()  # flushes what was written, then closes


def _problem_for(request: web.Request, exc: Exception) -> web.StreamResponse | None:
    """The response for an exception a handler raised; None for one to re-raise."""
    if isinstance(exc, errors.DropConnection):
        if request.transport is not None:
            request.transport.abort()
        return None
    if isinstance(exc, errors.OperatorSimError):
        return _from_domain(request, exc)
    if isinstance(exc, web.HTTPException):
        return _from_http(request, exc)
    log.exception("unhandled_error")
    return problem_response(request, 500, "internal_error", "internal error")


def oversize_head_response(request: web.Request, limit: int) -> web.Response | None:
    """414 for an oversize request target, 431 for an oversize header field; else None."""
    if len(request.raw_path) > limit:
        status, code = 414, "uri_too_long"
        detail = f"the request target is longer than {limit} bytes"
    elif any(len(name) + len(value) + 2 > limit for name, value in request.raw_headers):
        status, code = 431, "header_too_large"
        detail = f"a header field is longer than {limit} bytes"
    else:
        return None
    response = problem_response(request, status, code, detail)
    response.force_close()
    return response


def _route_of(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


def http_middleware(metrics: Metrics, *, max_header_size: int) -> Middleware:
    """The one middleware: request id, limits on the request head, problem+json for every
    exception, and one canonical log line and metrics for every request.

    One layer rather than several: every layer costs each request a coroutine.
    """

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        given = request.headers.get("X-Request-Id", "")
        request_id = given if _REQUEST_ID_RE.fullmatch(given) else f"req_{time.time_ns():x}"
        request[REQUEST_ID] = request_id
        started = time.perf_counter()
        status = 500
        # Each request runs in a task of its own (its own context), so the binding ends
        # with it; it is reset anyway, for callers that run the middleware directly.
        token = CURRENT_REQUEST_ID.set(request_id)
        try:
            try:
                response = oversize_head_response(request, max_header_size) or await handler(
                    request
                )
            except Exception as exc:
                problem = _problem_for(request, exc)
                if problem is None:
                    raise
                response = problem
                if isinstance(
                    exc, errors.PayloadTooLarge | errors.RequestTimeout | errors.UnreadableBody
                ):
                    await _answer_and_close(request, problem)
            status = response.status
            response.headers["X-Request-Id"] = request_id
            return response
        except errors.DropConnection:
            status = 0
            raise
        except asyncio.CancelledError:
            # The client went away (or the server is stopping) before an answer: nginx's
            # 499, rather than a 500 that never happened.
            status = 499
            raise
        finally:
            elapsed = time.perf_counter() - started
            route = _route_of(request)
            metrics.http_request(request.method, route, status, elapsed)
            _access_log(request, request_id, route, status, elapsed)
            CURRENT_REQUEST_ID.reset(token)

    return middleware


def _access_log(
    request: web.Request, request_id: str, route: str, status: int, elapsed: float
) -> None:
    if not is_enabled(logging.INFO):
        return
    log.info(
        "request",
        request_id=request_id,
        method=request.method,
        route=route,
        status=status,
        duration_ms=round(elapsed * 1000, 2),
        messenger_id=request.get(MESSENGER_ID),
    )
