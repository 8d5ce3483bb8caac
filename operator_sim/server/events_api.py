"""The event feed, subscriber lifecycle calls and webhook deliveries."""

from __future__ import annotations

from aiohttp import web

from operator_sim import errors
from operator_sim.domain.delivery import CURSOR_PATTERN, decode_cursor
from operator_sim.server.endpoints import Endpoint, Param, json_response
from operator_sim.server.keys import CLOCK, DATABASE, FEED, FLOW, LIFECYCLE, MESSENGER_ID, WEBHOOKS
from operator_sim.server.parsing import (
    path_msisdn,
    prefer_wait,
    query_id,
    query_int,
    query_text,
    read_empty,
    read_model,
)
from operator_sim.store import events as store
from operator_sim.wire import (
    MAX_WAIT_SECONDS,
    Delivery,
    DeliveryList,
    EventPage,
    LifecycleResult,
    PortRequest,
)

_ID_PARAM = {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,62}$"}


async def list_events(request: web.Request) -> web.StreamResponse:
    """This messenger's events from this operator, after a cursor; long-polls when asked."""
    operator_id = request.match_info["operator_id"]
    request.app[FLOW].check_operator(operator_id)
    raw_after = query_text(request, "after")
    after = 0
    if raw_after is not None:
        decoded = decode_cursor(raw_after)
        if decoded is None:
            raise errors.ValidationFailed(
                "after is not a cursor this feed returned",
                errors=[{"loc": ["query", "after"], "msg": "unknown cursor"}],
            )
        after = decoded
    limit = query_int(request, "limit", default=100, low=1, high=1000)
    wait = prefer_wait(request)
    body = await request.app[FEED].page(
        messenger_id=request[MESSENGER_ID],
        operator_id=operator_id,
        after=after,
        limit=limit,
        wait=wait,
    )
    headers = {"Preference-Applied": f"wait={wait}"} if wait else {}
    return web.Response(body=body, content_type="application/json", headers=headers)


async def terminate(request: web.Request) -> web.StreamResponse:
    """End a subscriber's contract and notify every messenger holding a code."""
    msisdn = path_msisdn(request)
    await read_empty(request)
    return json_response(await request.app[LIFECYCLE].terminate(msisdn))


async def port(request: web.Request) -> web.StreamResponse:
    """Port a number to another operator and notify every messenger holding a code."""
    msisdn = path_msisdn(request)
    body = await read_model(request, PortRequest)
    return json_response(await request.app[LIFECYCLE].port(msisdn, body.to_operator_id))


async def list_deliveries(request: web.Request) -> web.StreamResponse:
    """Every event with its delivery on both channels, newest first."""
    messenger_id = query_id(request, "messenger_id")
    limit = query_int(request, "limit", default=1000, low=1, high=10_000)
    async with request.app[DATABASE].read() as conn:
        deliveries = await store.list_deliveries(
            conn, messenger_id=messenger_id, event_id=None, limit=limit
        )
    return json_response(DeliveryList(deliveries=deliveries))


async def replay_delivery(request: web.Request) -> web.StreamResponse:
    """Start the webhook attempts of an event again, from now."""
    await read_empty(request)
    event_id = request.match_info["event_id"]
    async with request.app[DATABASE].write() as conn:
        if not await store.event_exists(conn, event_id):
            raise errors.NotFound(kind="event", ident=event_id)
        if not await store.replay_webhook(conn, event_id, request.app[CLOCK].now_ms()):
            raise errors.Conflict("this event's messenger has no webhook_url to deliver to")
        found = await store.list_deliveries(conn, messenger_id=None, event_id=event_id, limit=1)
    request.app[WEBHOOKS].wake()
    return json_response(found[0], 202)


ENDPOINTS = (
    Endpoint(
        "GET",
        "/operators/{operator_id}/v1/events",
        list_events,
        "The operator's notifications to this messenger",
        "events",
        "messenger",
        responses={200: EventPage},
        problems=(401, 404, 422),
        params=(
            Param(
                "after",
                {"type": "string", "pattern": CURSOR_PATTERN},
                "The next_cursor of the previous page (omit to start at the oldest event).",
            ),
            Param(
                "limit",
                {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
                "At most this many events.",
            ),
            Param(
                "Prefer",
                {"type": "string", "example": "wait=30"},
                f"`wait=N`: when nothing is new, hold up to N seconds (at most "
                f"{MAX_WAIT_SECONDS}) for the first event.",
                where="header",
            ),
        ),
        description="Oldest first, at-least-once: the event `id` is the deduplication key.",
    ),
    Endpoint(
        "POST",
        "/admin/v1/subscribers/{msisdn}/terminate",
        terminate,
        "End a subscriber's contract",
        "admin",
        "admin",
        empty_body=True,
        responses={200: LifecycleResult},
        problems=(400, 401, 404, 415, 422),
    ),
    Endpoint(
        "POST",
        "/admin/v1/subscribers/{msisdn}/port",
        port,
        "Port a number to another operator",
        "admin",
        "admin",
        body=PortRequest,
        responses={200: LifecycleResult},
        problems=(400, 401, 404, 409, 413, 415, 422),
    ),
    Endpoint(
        "GET",
        "/admin/v1/deliveries",
        list_deliveries,
        "Events with their delivery attempts on both channels",
        "admin",
        "admin",
        responses={200: DeliveryList},
        problems=(401, 422),
        params=(
            Param("messenger_id", _ID_PARAM, "Only this messenger's events."),
            Param(
                "limit",
                {"type": "integer", "minimum": 1, "maximum": 10000, "default": 1000},
                "At most this many events.",
            ),
        ),
    ),
    Endpoint(
        "POST",
        "/admin/v1/deliveries/{event_id}/replay",
        replay_delivery,
        "Deliver an event's webhook again from now",
        "admin",
        "admin",
        empty_body=True,
        responses={202: Delivery},
        problems=(400, 401, 404, 409, 415, 422),
    ),
)
