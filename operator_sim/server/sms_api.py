"""The SMS gateway's API (messenger key), and the phones' inboxes (admin token)."""

from __future__ import annotations

from aiohttp import web

from operator_sim.domain.delivery import CURSOR_PATTERN
from operator_sim.server.calls import CALL
from operator_sim.server.endpoints import (
    Endpoint,
    Param,
    json_response,
    limit_param,
    raw_json_response,
)
from operator_sim.server.parsing import idempotency_key, path_msisdn, query_text
from operator_sim.server.phones import INBOX_CURSOR_PATTERN
from operator_sim.server.services import SERVICES
from operator_sim.wire import (
    MAX_WAIT_SECONDS,
    PhoneInbox,
    PhoneOtp,
    SmsCreate,
    SmsEventPage,
    SmsMessage,
)

_BASE = "/sms/v1"


def _prefer(what: str) -> Param:
    return Param(
        "Prefer",
        {"type": "string", "example": "wait=10"},
        f"`wait=N`: {what}, hold up to N real seconds (at most {MAX_WAIT_SECONDS}).",
        where="header",
    )


async def send_sms(request: web.Request) -> web.StreamResponse:
    """Accept a message for delivery: ``202`` with the message, never its text."""
    services = request.app[SERVICES]
    key = idempotency_key(request)
    body = await services.reader.model(request, SmsCreate)
    accepted = await services.sms.send(request[CALL], body, idempotency_key=key)
    headers = {"Location": f"{_BASE}/messages/{accepted.sms.id}"}
    if accepted.replayed:
        headers["Idempotent-Replayed"] = "true"
    return raw_json_response(accepted.sms.to_json(), 202, headers)


async def get_sms(request: web.Request) -> web.StreamResponse:
    """One of this messenger's messages."""
    sms = await request.app[SERVICES].sms.get(request[CALL], request.match_info["sms_id"])
    return raw_json_response(sms.to_json())


async def list_sms_events(request: web.Request) -> web.StreamResponse:
    """This messenger's message status changes after a cursor; long-polls when asked."""
    services = request.app[SERVICES]
    query = services.reader.page_query(request)
    body = await services.feed.sms_page(
        request[CALL], after=query.after, limit=query.limit, wait=query.wait
    )
    return web.Response(body=body, content_type="application/json", headers=query.applied())


async def list_phone_messages(request: web.Request) -> web.StreamResponse:
    """What the phone received, text included, oldest first; long-polls when asked."""
    services = request.app[SERVICES]
    msisdn = path_msisdn(request)
    query = services.reader.page_query(request)
    inbox = await services.phones.inbox(
        msisdn, after=query.after, limit=query.limit, wait=query.wait
    )
    return json_response(inbox, headers=query.applied())


async def get_phone_otp(request: web.Request) -> web.StreamResponse:
    """The one-time code in the newest message the phone received that has one."""
    services = request.app[SERVICES]
    msisdn = path_msisdn(request)
    after = query_text(request, "after")
    wait = services.reader.prefer_wait(request)
    otp = await services.phones.otp(msisdn, after_sms_id=after, wait=wait)
    return json_response(otp, headers={"Preference-Applied": f"wait={wait}"} if wait else None)


ENDPOINTS = (
    Endpoint(
        "POST",
        f"{_BASE}/messages",
        send_sms,
        "Send an SMS (a one-time code) to a number",
        "sms",
        "messenger",
        journal="sms.send",
        body=SmsCreate,
        responses={202: SmsMessage},
        problems=("invalid_msisdn", "idempotency_key_reused"),
        headers={202: ("Location", "Idempotent-Replayed")},
        params=(
            Param(
                "Idempotency-Key",
                {"type": "string", "minLength": 1, "maxLength": 255},
                "Per messenger: the same key and body return the same message; another "
                "body (or a key used for an identification request) is 422.",
                where="header",
            ),
        ),
        description="Accepted for delivery on the simulation clock: sent a second later, "
        "then delivered a few seconds after that when the number has an active subscriber "
        "record, else undelivered. The text is never echoed or logged. At most "
        "`--sms-throttle` messages per messenger and number (429 with Retry-After beyond).",
    ),
    Endpoint(
        "GET",
        f"{_BASE}/messages/{{sms_id}}",
        get_sms,
        "Read a message's status",
        "sms",
        "messenger",
        journal="sms.get",
        responses={200: SmsMessage},
        problems=("not_found",),
    ),
    Endpoint(
        "GET",
        f"{_BASE}/events",
        list_sms_events,
        "The SMS gateway's status reports to this messenger",
        "sms",
        "messenger",
        journal="sms.events",
        responses={200: SmsEventPage},
        problems=("validation_error", "cursor_unknown"),
        headers={200: ("Preference-Applied",)},
        params=(
            Param(
                "after",
                {"type": "string", "pattern": CURSOR_PATTERN},
                "The next_cursor of the previous page (omit to start at the oldest event).",
            ),
            limit_param("events"),
            _prefer("when nothing is new"),
        ),
        description="`sms.status_changed` events, oldest first, at-least-once; the same "
        "events go to the messenger's webhook.",
    ),
    Endpoint(
        "GET",
        "/admin/v1/phones/{msisdn}/messages",
        list_phone_messages,
        "A phone's inbox, texts included",
        "admin",
        "admin",
        responses={200: PhoneInbox},
        headers={200: ("Preference-Applied",)},
        problems=("validation_error",),
        params=(
            Param(
                "after",
                {"type": "string", "pattern": INBOX_CURSOR_PATTERN},
                "The next_cursor of the previous page (omit to start at the oldest message).",
            ),
            limit_param("messages"),
            _prefer("when no message is new"),
        ),
    ),
    Endpoint(
        "GET",
        "/admin/v1/phones/{msisdn}/otp",
        get_phone_otp,
        "The one-time code a phone received last",
        "admin",
        "admin",
        responses={200: PhoneOtp},
        headers={200: ("Preference-Applied",)},
        problems=("not_found", "validation_error"),
        params=(
            Param(
                "after",
                {"type": "string", "minLength": 1},
                "An SMS id: only a code sent after that message counts.",
            ),
            _prefer("until a code arrives"),
        ),
        description="The 4-to-8-digit code in the newest message the phone received that "
        "has one; 404 when there is none (after the wait, with `Prefer: wait`).",
    ),
)
