"""The admin API: set up and inspect the simulation (admin token only)."""

from __future__ import annotations

import re

from aiohttp import web

from operator_sim import errors
from operator_sim.server.endpoints import Endpoint, Param, json_response, limit_param
from operator_sim.server.journal import CodeFilter, JournalFilter
from operator_sim.server.parsing import (
    BULK_BODY_LIMIT,
    listening_address,
    path_msisdn,
    query_choice,
    query_id,
    query_int,
    query_limit,
    query_msisdn,
    query_text,
    query_timestamp,
)
from operator_sim.server.services import SERVICES
from operator_sim.store.subscribers import SubscriberFilter
from operator_sim.wire import (
    ENDPOINT_NAMES,
    ID_PATTERN,
    MSISDN_PATTERN,
    CallPage,
    ClockAdvance,
    ClockAdvanced,
    ClockSet,
    ClockView,
    CodeList,
    JournalCount,
    JournalPage,
    KeyRotated,
    Messenger,
    MessengerCreate,
    MessengerCreated,
    MessengerList,
    MessengerPatch,
    OperatorList,
    Rotation,
    Subscriber,
    SubscriberPage,
    SubscriberSample,
    SubscribersUpserted,
    SubscriberUpsert,
    WebhookSecretRotated,
    is_msisdn,
)

_BASE = "/admin/v1"
_ID_RE = re.compile(ID_PATTERN)


async def list_operators(request: web.Request) -> web.StreamResponse:
    """The simulated operators and their number ranges."""
    operators = await request.app[SERVICES].operators.list_operators()
    return json_response(OperatorList(operators=operators))


async def create_messenger(request: web.Request) -> web.StreamResponse:
    """Register a messenger; its secrets are shown once."""
    services = request.app[SERVICES]
    body = await services.reader.model(request, MessengerCreate)
    created = await services.messengers.create(body, own=listening_address(request))
    return json_response(created, 201, {"Location": f"{_BASE}/messengers/{created.id}"})


async def get_messenger(request: web.Request) -> web.StreamResponse:
    """One messenger, without secrets."""
    return json_response(await request.app[SERVICES].messengers.get(_messenger_id(request)))


async def patch_messenger(request: web.Request) -> web.StreamResponse:
    """Change a messenger's name or webhook URL."""
    services = request.app[SERVICES]
    messenger_id = _messenger_id(request)
    body = await services.reader.model(request, MessengerPatch)
    updated = await services.messengers.patch(messenger_id, body, own=listening_address(request))
    return json_response(updated)


async def rotate_key(request: web.Request) -> web.StreamResponse:
    """A new API key; the old one works for the grace period asked for (wall clock)."""
    services = request.app[SERVICES]
    messenger_id = _messenger_id(request)
    body = await services.reader.options(request, Rotation)
    return json_response(await services.messengers.rotate_key(messenger_id, body.grace))


async def rotate_webhook_secret(request: web.Request) -> web.StreamResponse:
    """A new webhook secret; webhooks carry both signatures for the grace period asked for."""
    services = request.app[SERVICES]
    messenger_id = _messenger_id(request)
    body = await services.reader.options(request, Rotation)
    return json_response(await services.messengers.rotate_webhook_secret(messenger_id, body.grace))


def _messenger_id(request: web.Request) -> str:
    messenger_id = request.match_info["messenger_id"]
    if not _ID_RE.fullmatch(messenger_id):
        raise errors.NotFound(kind="messenger", ident=messenger_id)
    return messenger_id


async def list_messengers(request: web.Request) -> web.StreamResponse:
    """Registered messengers, without secrets."""
    messengers = await request.app[SERVICES].messengers.list_messengers()
    return json_response(MessengerList(messengers=messengers))


async def upsert_subscribers(request: web.Request) -> web.StreamResponse:
    """Insert or replace subscriber records (all or nothing)."""
    services = request.app[SERVICES]
    body = await services.reader.model(request, SubscriberUpsert, limit=BULK_BODY_LIMIT)
    return json_response(await services.subscribers.upsert(body.subscribers))


async def get_subscriber(request: web.Request) -> web.StreamResponse:
    """One subscriber, personal data included."""
    msisdn = path_msisdn(request)
    return json_response(await request.app[SERVICES].subscribers.get(msisdn))


_PREFIX_PATTERN = r"^\+[1-9][0-9]{0,14}$"
_PREFIX_RE = re.compile(_PREFIX_PATTERN)
_MAX_SEED = 2**63 - 1


def _bad_query(name: str, detail: str) -> errors.ValidationFailed:
    return errors.ValidationFailed(
        f"query parameter {name} {detail}",
        errors=[{"loc": ["query", name], "msg": detail, "type": "query"}],
    )


def _query_number_start(request: web.Request, name: str) -> str | None:
    raw = query_text(request, name)
    if raw is not None and raw.startswith(" "):  # an unencoded '+' decodes as a space
        raw = "+" + raw[1:]
    return raw


def _subscriber_filter(request: web.Request, *, prefix: bool) -> SubscriberFilter:
    complete = query_choice(request, "data_complete", ("true", "false"))
    msisdn_prefix = _query_number_start(request, "msisdn_prefix") if prefix else None
    if msisdn_prefix is not None and not _PREFIX_RE.fullmatch(msisdn_prefix):
        raise _bad_query("msisdn_prefix", "must be '+' and 1 to 15 digits, the first 1-9")
    return SubscriberFilter(
        operator_id=query_id(request, "operator_id"),
        status=query_choice(request, "status", ("active", "terminated")),
        data_complete=None if complete is None else complete == "true",
        msisdn_prefix=msisdn_prefix,
    )


async def list_subscribers(request: web.Request) -> web.StreamResponse:
    """Subscribers in number order, a page at a time, personal data included."""
    selection = _subscriber_filter(request, prefix=True)
    after = _query_number_start(request, "after")
    if after is not None and not is_msisdn(after):
        raise _bad_query("after", "is not a cursor: pass the next_cursor of the previous page")
    limit = query_limit(request)
    page = await request.app[SERVICES].subscribers.list_page(selection, after=after, limit=limit)
    return json_response(page)


async def sample_subscribers(request: web.Request) -> web.StreamResponse:
    """Subscribers drawn at random, the same ones for the same seed."""
    selection = _subscriber_filter(request, prefix=False)
    count = query_int(request, "n", default=10, low=1, high=1000)
    seed = query_int(request, "seed", default=-1, low=0, high=_MAX_SEED)
    sample = await request.app[SERVICES].subscribers.sample(
        selection, count=count, seed=None if seed < 0 else seed
    )
    return json_response(sample)


def _journal_filter(request: web.Request, *, endpoints: bool = False) -> JournalFilter:
    return JournalFilter(
        messenger_id=query_id(request, "messenger_id"),
        operator_id=query_id(request, "operator_id"),
        msisdn=query_msisdn(request, "msisdn"),
        endpoint=query_choice(request, "endpoint", ENDPOINT_NAMES) if endpoints else None,
        since_ms=query_timestamp(request, "since"),
        until_ms=query_timestamp(request, "until"),
    )


async def list_requests(request: web.Request) -> web.StreamResponse:
    """The journal of identification POSTs, newest first."""
    selection = _journal_filter(request)
    limit = query_limit(request)
    entries = await request.app[SERVICES].journal.requests(selection, limit=limit)
    return json_response(JournalPage(requests=entries))


async def count_requests(request: web.Request) -> web.StreamResponse:
    """How many identification POSTs match the same filters as their journal."""
    selection = _journal_filter(request)
    count = await request.app[SERVICES].journal.count_requests(selection)
    return json_response(JournalCount(count=count))


async def list_calls(request: web.Request) -> web.StreamResponse:
    """Every messenger-facing call, newest first."""
    selection = _journal_filter(request, endpoints=True)
    limit = query_limit(request)
    entries = await request.app[SERVICES].journal.calls(selection, limit=limit)
    return json_response(CallPage(entries=entries))


async def count_calls(request: web.Request) -> web.StreamResponse:
    """How many calls match the same filters as the journal."""
    selection = _journal_filter(request, endpoints=True)
    return json_response(JournalCount(count=await request.app[SERVICES].journal.count(selection)))


async def list_codes(request: web.Request) -> web.StreamResponse:
    """Identification codes, live and ended, with how each ended."""
    selection = CodeFilter(
        messenger_id=query_id(request, "messenger_id"),
        operator_id=query_id(request, "operator_id"),
        msisdn=query_msisdn(request, "msisdn"),
        state=query_choice(request, "state", ("live", "ended")),
    )
    limit = query_limit(request)
    codes = await request.app[SERVICES].journal.codes(selection, limit=limit)
    return json_response(CodeList(codes=codes))


async def reset_messenger(request: web.Request) -> web.StreamResponse:
    """Clear one messenger's flow state, runtime rules and rule counters; others keep theirs."""
    services = request.app[SERVICES]
    await services.reader.empty(request)
    await services.control.reset_messenger(request.match_info["messenger_id"])
    return web.Response(status=204)


async def get_clock(request: web.Request) -> web.StreamResponse:
    """The simulation clock."""
    return json_response(request.app[SERVICES].clockwork.view())


async def set_clock(request: web.Request) -> web.StreamResponse:
    """Switch the clock's mode; simulation time continues from where it stands."""
    services = request.app[SERVICES]
    body = await services.reader.model(request, ClockSet)
    return json_response(await services.clockwork.set_mode(body.mode, body.scale))


async def advance_clock(request: web.Request) -> web.StreamResponse:
    """Move the clock forward; everything that became due fires before the response."""
    services = request.app[SERVICES]
    body = await services.reader.model(request, ClockAdvance)
    return json_response(await services.clockwork.advance(int(body.by.total_seconds() * 1000)))


async def reset(request: web.Request) -> web.StreamResponse:
    """Clear flow state and runtime rules; restore the fixture's subscribers and rules."""
    services = request.app[SERVICES]
    await services.reader.empty(request)
    await services.control.reset()
    return web.Response(status=204)


_ID_PARAM = {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,62}$"}
_ENDPOINT_FILTER = Param(
    "endpoint",
    {"type": "string", "enum": list(ENDPOINT_NAMES)},
    "Only calls to this endpoint.",
)
_JOURNAL_FILTERS = (
    Param("messenger_id", _ID_PARAM, "Only this messenger's."),
    Param("operator_id", _ID_PARAM, "Only those sent to this operator."),
    Param("msisdn", {"type": "string", "pattern": MSISDN_PATTERN}, "Only this number (E.164)."),
    Param(
        "since",
        {"type": "string", "format": "date-time"},
        "Only those received at or after this simulation time (RFC 3339).",
    ),
    Param(
        "until",
        {"type": "string", "format": "date-time"},
        "Only those received before this simulation time (RFC 3339).",
    ),
)

_SUBSCRIBER_FILTERS = (
    Param("operator_id", _ID_PARAM, "Only records this operator holds."),
    Param(
        "status",
        {"type": "string", "enum": ["active", "terminated"]},
        "Only records with this contract status.",
    ),
    Param(
        "data_complete",
        {"type": "string", "enum": ["true", "false"]},
        "Only records whose data is (or is not) complete.",
    ),
)

ENDPOINTS = (
    Endpoint(
        "GET",
        f"{_BASE}/operators",
        list_operators,
        "List operators and number ranges",
        "admin",
        "admin",
        responses={200: OperatorList},
    ),
    Endpoint(
        "POST",
        f"{_BASE}/messengers",
        create_messenger,
        "Register a messenger",
        "admin",
        "admin",
        body=MessengerCreate,
        responses={201: MessengerCreated},
        problems=("conflict",),
        headers={201: ("Location",)},
    ),
    Endpoint(
        "GET",
        f"{_BASE}/messengers",
        list_messengers,
        "List messengers",
        "admin",
        "admin",
        responses={200: MessengerList},
    ),
    Endpoint(
        "GET",
        f"{_BASE}/messengers/{{messenger_id}}",
        get_messenger,
        "Read a messenger (no secrets)",
        "admin",
        "admin",
        responses={200: Messenger},
        problems=("not_found",),
    ),
    Endpoint(
        "PATCH",
        f"{_BASE}/messengers/{{messenger_id}}",
        patch_messenger,
        "Change a messenger's name or webhook URL",
        "admin",
        "admin",
        body=MessengerPatch,
        responses={200: Messenger},
        problems=("not_found",),
        description="Only the fields given change. A new `webhook_url` takes the pending "
        "webhook deliveries with it; `null` removes it and fails the pending ones (the feed "
        "keeps every event).",
    ),
    Endpoint(
        "POST",
        f"{_BASE}/messengers/{{messenger_id}}/rotate-key",
        rotate_key,
        "Rotate a messenger's API key",
        "admin",
        "admin",
        body=Rotation,
        body_optional=True,
        responses={200: KeyRotated},
        problems=("not_found",),
        description="Issues a new API key (shown once). The previous key keeps working for "
        "`grace` of real (wall-clock) time, at most `P30D`, or stops at once without it. A "
        "key rotated out earlier stops at once: at most two keys work at a time.",
    ),
    Endpoint(
        "POST",
        f"{_BASE}/messengers/{{messenger_id}}/rotate-webhook-secret",
        rotate_webhook_secret,
        "Rotate a messenger's webhook secret",
        "admin",
        "admin",
        body=Rotation,
        body_optional=True,
        responses={200: WebhookSecretRotated},
        problems=("not_found",),
        description="Issues a new webhook secret (shown once). For `grace` of real "
        "(wall-clock) time, at most `P30D`, every webhook carries two signatures, "
        "`webhook-signature: v1,<new> v1,<previous>`, so a receiver holding either secret "
        "verifies it; without `grace` the previous secret stops signing at once. A secret "
        "rotated out earlier stops at once.",
    ),
    Endpoint(
        "GET",
        f"{_BASE}/subscribers",
        list_subscribers,
        "List subscribers, personal data included",
        "admin",
        "admin",
        responses={200: SubscriberPage},
        problems=("validation_error",),
        params=(
            *_SUBSCRIBER_FILTERS,
            Param(
                "msisdn_prefix",
                {"type": "string", "pattern": _PREFIX_PATTERN},
                "Only numbers starting with this ('+' and 1 to 15 digits).",
            ),
            Param(
                "after",
                {"type": "string", "pattern": MSISDN_PATTERN},
                "The next_cursor of the previous page (omit for the first page).",
            ),
            limit_param("subscribers"),
        ),
        description="In number order, a page at a time: pass `next_cursor` as `after` "
        "until it is null. Pages cost the same however many subscribers there are, with "
        "or without `operator_id` and `msisdn_prefix`; `status` and `data_complete` are "
        "checked on the records passed on the way.",
    ),
    Endpoint(
        "GET",
        f"{_BASE}/subscribers/sample",
        sample_subscribers,
        "Draw subscribers at random",
        "admin",
        "admin",
        responses={200: SubscriberSample},
        problems=("validation_error",),
        params=(
            Param(
                "n",
                {"type": "integer", "minimum": 1, "maximum": 1000, "default": 10},
                "How many subscribers.",
            ),
            *_SUBSCRIBER_FILTERS,
            Param(
                "seed",
                {"type": "integer", "minimum": 0, "maximum": _MAX_SEED},
                "The same seed draws the same subscribers from the same records "
                "(default: a random draw).",
            ),
        ),
        description="Distinct subscribers drawn at random from the operators' number "
        "ranges without reading the whole table: each draw is a random number and the "
        "first matching subscriber at or after it. Fewer than `n` when fewer match.",
    ),
    Endpoint(
        "POST",
        f"{_BASE}/subscribers",
        upsert_subscribers,
        "Upsert subscribers",
        "admin",
        "admin",
        body=SubscriberUpsert,
        responses={200: SubscribersUpserted},
        problems=("invalid_msisdn",),
    ),
    Endpoint(
        "GET",
        f"{_BASE}/subscribers/{{msisdn}}",
        get_subscriber,
        "Read a subscriber, personal data included",
        "admin",
        "admin",
        responses={200: Subscriber},
        problems=("not_found",),
    ),
    Endpoint(
        "GET",
        f"{_BASE}/requests",
        list_requests,
        "The journal of identification requests",
        "admin",
        "admin",
        responses={200: JournalPage},
        problems=("validation_error", "invalid_msisdn"),
        params=(
            *_JOURNAL_FILTERS,
            limit_param("entries"),
        ),
    ),
    Endpoint(
        "GET",
        f"{_BASE}/requests/count",
        count_requests,
        "Count journal entries",
        "admin",
        "admin",
        responses={200: JournalCount},
        problems=("validation_error", "invalid_msisdn"),
        params=_JOURNAL_FILTERS,
        description="The same filters as the journal; e.g. how many requests a messenger "
        "sent for one number.",
    ),
    Endpoint(
        "GET",
        f"{_BASE}/journal",
        list_calls,
        "The journal of every messenger-facing call",
        "admin",
        "admin",
        responses={200: CallPage},
        problems=("validation_error", "invalid_msisdn"),
        params=(
            *_JOURNAL_FILTERS,
            _ENDPOINT_FILTER,
            limit_param("entries"),
        ),
        description="Every authenticated messenger-facing call, refused ones included, "
        "newest first; each was committed before its answer was sent. The journal keeps about "
        "`--journal-cap` entries across all endpoints: frequent polling pushes older entries "
        "out sooner.",
    ),
    Endpoint(
        "GET",
        f"{_BASE}/journal/count",
        count_calls,
        "Count journal entries of every kind",
        "admin",
        "admin",
        responses={200: JournalCount},
        problems=("validation_error", "invalid_msisdn"),
        params=(*_JOURNAL_FILTERS, _ENDPOINT_FILTER),
    ),
    Endpoint(
        "GET",
        f"{_BASE}/codes",
        list_codes,
        "Identification codes, live and ended",
        "admin",
        "admin",
        responses={200: CodeList},
        problems=("validation_error", "invalid_msisdn"),
        params=(
            Param("messenger_id", _ID_PARAM, "Only this messenger's."),
            Param("operator_id", _ID_PARAM, "Only those registered with this operator."),
            Param(
                "msisdn", {"type": "string", "pattern": MSISDN_PATTERN}, "Only this number (E.164)."
            ),
            Param(
                "state",
                {"type": "string", "enum": ["live", "ended"]},
                "Only live codes, or only ended ones (`ended_by` says how).",
            ),
            limit_param("codes"),
        ),
    ),
    Endpoint(
        "POST",
        f"{_BASE}/messengers/{{messenger_id}}/reset",
        reset_messenger,
        "Reset one messenger's flow state",
        "admin",
        "admin",
        empty_body=True,
        responses={204: None},
        problems=("not_found",),
        description="Clears this messenger's requests, codes, idempotency keys, journal "
        "entries, events, scheduled work, rule counters and the runtime rules that match "
        "only this messenger. Other messengers keep theirs.",
    ),
    Endpoint(
        "GET",
        f"{_BASE}/clock",
        get_clock,
        "Read the simulation clock",
        "admin",
        "admin",
        responses={200: ClockView},
    ),
    Endpoint(
        "PUT",
        f"{_BASE}/clock",
        set_clock,
        "Set the clock's mode",
        "admin",
        "admin",
        body=ClockSet,
        responses={200: ClockView},
    ),
    Endpoint(
        "POST",
        f"{_BASE}/clock/advance",
        advance_clock,
        "Advance the clock and fire what became due",
        "admin",
        "admin",
        body=ClockAdvance,
        responses={200: ClockAdvanced},
    ),
    Endpoint(
        "POST",
        f"{_BASE}/reset",
        reset,
        "Reset flow state to the fixture's",
        "admin",
        "admin",
        empty_body=True,
        responses={204: None},
    ),
)
