"""The console's pages (GET) and its sign-in and sign-out."""

from __future__ import annotations

from typing import get_args

import structlog
from aiohttp import web

from operator_sim import errors
from operator_sim.console import forms
from operator_sim.console.live import JOURNAL_LIMIT, view_for
from operator_sim.console.middleware import error_response, see_other, set_session_cookie
from operator_sim.console.render import page, plain_page
from operator_sim.console.security import SESSION_COOKIE, cross_site, safe_next
from operator_sim.console.state import CONSOLE
from operator_sim.wire import ENDPOINT_NAMES, RuleEndpoint, is_msisdn

__all__ = [
    "deliveries",
    "journal",
    "messengers",
    "not_found",
    "overview",
    "phone",
    "phones",
    "request_page",
    "rules",
    "sign_in",
    "sign_in_form",
    "sign_out",
    "subscriber",
    "subscribers",
]

log = structlog.get_logger("operator_sim.console")

_SUBSCRIBER_JOURNAL = 20
"""Recent requests shown on a subscriber's page."""
SUBSCRIBER_PAGE_SIZE = 50
"""Subscribers a page of the list shows."""
_LIST_FIELDS = ("operator_id", "status", "data_complete", "msisdn_prefix")
_NUMBER_HINT = "Type the number in E.164 form: + and the digits, e.g. +79161234567."


RULE_ENDPOINTS: tuple[str, ...] = get_args(RuleEndpoint)
"""What a rule can act on, in the form's order (identification POSTs first)."""


async def overview(request: web.Request) -> web.StreamResponse:
    """``/ui/``: the clock and its controls, counters, reset."""
    return await page(request, "overview.html", view_for("overview", {}))


async def journal(request: web.Request) -> web.StreamResponse:
    """``/ui/journal``: messenger-facing calls as they arrive, filterable."""
    view = view_for("journal", request.query)
    messengers = await request.app[CONSOLE].backend.messengers()
    extra = {
        "messengers": messengers,
        "endpoints": ENDPOINT_NAMES,
        "filters": view.params,
        "limit": JOURNAL_LIMIT,
    }
    return await page(request, "journal.html", view, extra)


async def request_page(request: web.Request) -> web.StreamResponse:
    """``/ui/requests/{id}``: one request, live."""
    request_id = request.match_info["request_id"]
    view = view_for("request", {"id": request_id})
    if await request.app[CONSOLE].backend.request_detail(request_id) is None:
        raise errors.NotFound(kind="identification request", ident=request_id)
    return await page(request, "request.html", view, {"request_id": request_id})


async def subscribers(request: web.Request) -> web.StreamResponse:
    """``/ui/subscribers``: find a subscriber by exact number, or browse them a page at a
    time in number order (the keyset pages of ``GET /admin/v1/subscribers``)."""
    backend = request.app[CONSOLE].backend
    query = request.query.get("msisdn", "").strip()
    found, problem, listing, rows, next_cursor = None, None, None, [], None
    if query:
        if is_msisdn(query):
            found = await backend.subscriber(query)
        else:
            problem = _NUMBER_HINT
    else:
        try:
            listing = forms.subscriber_listing(request.query)
        except errors.ValidationFailed as exc:
            problem = str(exc)
        else:
            listed = await backend.subscriber_page(
                listing.selection, after=listing.after, limit=SUBSCRIBER_PAGE_SIZE
            )
            rows, next_cursor = listed.subscribers, listed.next_cursor
    extra = {
        "query": query,
        "found": found,
        "problem": problem,
        "listing": listing,
        "rows": rows,
        "next_cursor": next_cursor,
        "page_size": SUBSCRIBER_PAGE_SIZE,
        "operators": await backend.operators(),
        "filters": {} if listing is None else listing.params,
        # What was typed, shown again in the form even when it was refused.
        "entered": {name: request.query.get(name, "").strip() for name in _LIST_FIELDS},
    }
    status = 422 if problem else 200
    return await page(
        request, "subscribers.html", view_for("subscribers", {}), extra, status=status
    )


async def subscriber(request: web.Request) -> web.StreamResponse:
    """``/ui/subscribers/{msisdn}``: the record, its recent requests, and its actions."""
    msisdn = request.match_info["msisdn"]
    if not is_msisdn(msisdn):
        raise errors.InvalidMsisdn(field="msisdn")
    backend = request.app[CONSOLE].backend
    found = await backend.subscriber(msisdn)
    if found is None:
        raise errors.NotFound(kind="subscriber", ident=msisdn)
    extra = {
        "subscriber": found,
        "operators": await backend.operators(),
        "sim_change": await backend.latest_sim_change(msisdn),
        "recent": await backend.calls(
            messenger_id=None, msisdn=msisdn, endpoint=None, limit=_SUBSCRIBER_JOURNAL
        ),
    }
    return await page(request, "subscriber.html", view_for("subscribers", {}), extra)


async def phones(request: web.Request) -> web.StreamResponse:
    """``/ui/phones``: a number's form; a valid number goes to its phone."""
    query = request.query.get("msisdn", "").strip()
    if query and is_msisdn(query):
        return see_other(f"/ui/phones/{query}")
    problem = _NUMBER_HINT if query else None
    extra = {"query": query, "problem": problem}
    return await page(
        request, "phones.html", view_for("phones", {}), extra, status=422 if problem else 200
    )


async def phone(request: web.Request) -> web.StreamResponse:
    """``/ui/phones/{msisdn}``: the phone's inbox, live."""
    msisdn = request.match_info["msisdn"]
    if not is_msisdn(msisdn):
        raise errors.InvalidMsisdn(field="msisdn")
    backend = request.app[CONSOLE].backend
    extra = {"msisdn": msisdn, "subscriber": await backend.subscriber(msisdn)}
    return await page(request, "phone.html", view_for("phones", {"msisdn": msisdn}), extra)


async def messengers(request: web.Request) -> web.StreamResponse:
    """``/ui/messengers``: register, list, reset."""
    found = await request.app[CONSOLE].backend.messengers()
    return await page(request, "messengers.html", view_for("messengers", {}), {"messengers": found})


async def deliveries(request: web.Request) -> web.StreamResponse:
    """``/ui/deliveries``: every event with its attempts, live; replay."""
    view = view_for("deliveries", request.query)
    found = await request.app[CONSOLE].backend.messengers()
    return await page(
        request, "deliveries.html", view, {"messengers": found, "filters": view.params}
    )


async def rules(request: web.Request) -> web.StreamResponse:
    """``/ui/rules``: the rules with live hit counts; add and delete."""
    backend = request.app[CONSOLE].backend
    extra = {
        "operators": await backend.operators(),
        "messengers": await backend.messengers(),
        "endpoints": RULE_ENDPOINTS,
    }
    return await page(request, "rules.html", view_for("rules", {}), extra)


async def not_found(request: web.Request) -> web.StreamResponse:
    """Anything else under ``/ui/``."""
    raise errors.NotFound(kind="page", ident=request.path)


# --- signing in and out -----------------------------------------------------------


async def sign_in_form(request: web.Request) -> web.StreamResponse:
    """``GET /ui/sign-in``: the token form."""
    target = safe_next(request.query.get("next"))
    return plain_page(request, "sign_in.html", {"next": target, "problem": None})


async def sign_in(request: web.Request) -> web.StreamResponse:
    """``POST /ui/sign-in``: check the admin token the way the admin API does; start a session."""
    if cross_site(
        origin=request.headers.get("Origin"),
        fetch_site=request.headers.get("Sec-Fetch-Site"),
        scheme=request.scheme,
        host=request.host,
    ):
        return error_response(request, 403, "Cross-site requests are refused.")
    form = await request.post()
    token, target = form.get("token"), safe_next(str(form.get("next") or ""))
    console = request.app[CONSOLE]
    if not isinstance(token, str) or not console.backend.admin_token_matches(token):
        log.info("console_sign_in_refused")
        context = {"next": target, "problem": "That is not the admin token."}
        return plain_page(request, "sign_in.html", context, status=401)
    cookie, _ = console.sessions.create(demo=False)
    log.info("console_signed_in", demo=False)
    response = see_other(target)
    set_session_cookie(request, response, cookie)
    return response


async def sign_out(request: web.Request) -> web.StreamResponse:
    """``POST /ui/sign-out``: forget the session."""
    request.app[CONSOLE].sessions.end(request.cookies.get(SESSION_COOKIE))
    response = see_other("/ui/sign-in")
    response.del_cookie(SESSION_COOKIE, path="/ui")
    return response
