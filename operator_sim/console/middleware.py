"""Sign-in, CSRF and the console's error pages, around every console handler.

Errors become HTML here (a page, or a fragment for htmx), so the API's problem+json
middleware never sees the console's; the headers of :data:`security.SECURITY_HEADERS`
go on every response through :func:`on_prepare`, streams and redirects included.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from http import HTTPStatus
from http.cookies import SimpleCookie
from urllib.parse import urlencode

import structlog
from aiohttp import web

from operator_sim import errors
from operator_sim.console.render import fragment_response, plain_page
from operator_sim.console.security import (
    CSRF_FIELD,
    CSRF_HEADER,
    SECURITY_HEADERS,
    SESSION_COOKIE,
    Sessions,
    console_allowed,
    cross_site,
    demo_sign_in_allowed,
    is_loopback_peer,
)
from operator_sim.console.state import CONSOLE, NEW_COOKIE, SESSION

__all__ = [
    "PUBLIC_ROUTES",
    "error_response",
    "guard",
    "on_prepare",
    "see_other",
    "set_session_cookie",
]

log = structlog.get_logger("operator_sim.console")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

PUBLIC_ROUTES = frozenset({"static", "sign_in", "sign_in_form"})
"""Routes served without a session (by route name)."""
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

_STATUS_OF: tuple[tuple[type[errors.OperatorSimError], int], ...] = (
    (errors.InvalidJson, 400),
    (errors.ValidationFailed, 422),
    (errors.InputError, 400),
    (errors.Unauthorized, 401),
    (errors.NotFound, 404),
    (errors.Conflict, 409),
    (errors.StorageUnavailable, 503),
)


def _status_of(exc: errors.OperatorSimError) -> int:
    for cls, status in _STATUS_OF:
        if isinstance(exc, cls):
            return status
    return 500


def _is_htmx(request: web.Request) -> bool:
    return request.headers.get("HX-Request") == "true"


def error_response(request: web.Request, status: int, message: str) -> web.Response:
    """An error as a page, or as a fragment an htmx request swaps into its target."""
    title = HTTPStatus(status).phrase
    context = {"status": status, "title": title, "message": message}
    if _is_htmx(request):
        return fragment_response(request, "fragments/error.html", context, status=status)
    return plain_page(request, "error.html", context, status=status)


def see_other(target: str) -> web.Response:
    """A 303 to ``target``, as given (a raised HTTPSeeOther would re-encode it)."""
    return web.Response(status=303, headers={"Location": target})


def _sign_in_required(request: web.Request) -> web.StreamResponse:
    target = "/ui/sign-in?" + urlencode({"next": request.path_qs})
    if _is_htmx(request):
        response = error_response(request, 401, "Your session has ended: sign in again.")
        response.headers["HX-Redirect"] = target
        return response
    if request.method in _SAFE_METHODS and request.match_info.route.name != "stream":
        return see_other(target)
    return error_response(request, 401, "Sign in first.")


def set_session_cookie(request: web.Request, response: web.StreamResponse, cookie: str) -> None:
    """The session cookie: script cannot read it, and no other site's request carries it.

    Written as a header, not with ``set_cookie``: the prepare hook that calls this runs
    after aiohttp has turned the response's cookies into headers.
    """
    jar: SimpleCookie = SimpleCookie()
    jar[SESSION_COOKIE] = cookie
    morsel = jar[SESSION_COOKIE]
    morsel["path"] = "/ui"
    morsel["httponly"] = True
    morsel["samesite"] = "Strict"
    if request.secure:
        morsel["secure"] = True
    response.headers.add("Set-Cookie", morsel.OutputString())


async def _csrf_token(request: web.Request) -> str | None:
    given = request.headers.get(CSRF_HEADER)
    if given is None and request.content_type in (
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ):
        value = (await request.post()).get(CSRF_FIELD)
        given = value if isinstance(value, str) else None
    return given


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse what the console must not serve, sign in, check CSRF, render errors."""
    try:
        return await _guarded(request, handler)
    except errors.OperatorSimError as exc:
        return error_response(request, _status_of(exc), str(exc))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_response(request, exc.status, exc.reason)


async def _guarded(request: web.Request, handler: Handler) -> web.StreamResponse:
    console = request.app[CONSOLE]
    backend, sessions = console.backend, console.sessions
    if not console_allowed(
        admin_is_demo=backend.admin_is_demo, server_loopback=backend.server_loopback
    ):
        return error_response(
            request, 403, "The console needs a real admin token when the server is not on loopback."
        )
    route = request.match_info.route.name
    if route in PUBLIC_ROUTES:
        return await handler(request)
    session = sessions.find(request.cookies.get(SESSION_COOKIE))
    if session is None:
        if request.method not in _SAFE_METHODS or not _demo_sign_in(request):
            return _sign_in_required(request)
        cookie, session = sessions.create(demo=True)
        request[NEW_COOKIE] = cookie
        log.info("console_signed_in", demo=True)
    request[SESSION] = session
    if request.method not in _SAFE_METHODS:
        if cross_site(
            origin=request.headers.get("Origin"),
            fetch_site=request.headers.get("Sec-Fetch-Site"),
            scheme=request.scheme,
            host=request.host,
        ):
            return error_response(request, 403, "Cross-site requests are refused.")
        if not Sessions.csrf_ok(session, await _csrf_token(request)):
            return error_response(request, 403, "Missing or wrong CSRF token: reload the page.")
    return await handler(request)


def _demo_sign_in(request: web.Request) -> bool:
    backend = request.app[CONSOLE].backend
    return demo_sign_in_allowed(
        admin_is_demo=backend.admin_is_demo,
        server_loopback=backend.server_loopback,
        host=request.headers.get("Host"),
        peer_loopback=is_loopback_peer(request.remote, unix_socket=backend.unix_socket),
    )


async def on_prepare(request: web.Request, response: web.StreamResponse) -> None:
    """Security headers on every console response, and a new session's cookie.

    Pages are not stored by the browser or anything between: they hold personal data, a
    CSRF token and, once, a new messenger's secrets. The static files may be.
    """
    response.headers.update(SECURITY_HEADERS)
    if request.match_info.route.name != "static":
        response.headers.setdefault("Cache-Control", "no-store")
    cookie = request.get(NEW_COOKIE)
    if cookie is not None:
        set_session_cookie(request, response, cookie)
