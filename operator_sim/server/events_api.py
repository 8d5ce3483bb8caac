"""The event feed, subscriber lifecycle calls and webhook deliveries."""

from __future__ import annotations

from aiohttp import web

from operator_sim.domain.delivery import CURSOR_PATTERN
from operator_sim.server.calls import CALL
from operator_sim.server.endpoints import Endpoint, Param, json_response, limit_param
from operator_sim.server.parsing import path_msisdn, query_id, query_int
from operator_sim.server.services import SERVICES
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
    services = request.app[SERVICES]
    query = services.reader.page_query(request)
    body = await services.feed.page(
        request[CALL], after=query.after, limit=query.limit, wait=query.wait
    )
    return web.Response(body=body, content_type="application/json", headers=query.applied())


async def terminate(request: web.Request) -> web.StreamResponse:
    """End a subscriber's contract and notify every messenger holding a code."""
    services = request.app[SERVICES]
    msisdn = path_msisdn(request)
    await services.reader.empty(request)
    return json_response(await services.subscribers.terminate(msisdn))


async def port(request: web.Request) -> web.StreamResponse:
    """Port a number to another operator and notify every messenger holding a code."""
    services = request.app[SERVICES]
    msisdn = path_msisdn(request)
    body = await services.reader.model(request, PortRequest)
    return json_response(await services.subscribers.port(msisdn, body.to_operator_id))


async def list_deliveries(request: web.Request) -> web.StreamResponse:
    """Every event with its delivery on both channels, newest first."""
    messenger_id = query_id(request, "messenger_id")
    limit = query_int(request, "limit", default=1000, low=1, high=10_000)
    deliveries = await request.app[SERVICES].deliveries.list_deliveries(
        messenger_id=messenger_id, limit=limit
    )
    return json_response(DeliveryList(deliveries=deliveries))


async def replay_delivery(request: web.Request) -> web.StreamResponse:
    """Start the webhook attempts of an event again, from now."""
    services = request.app[SERVICES]
    await services.reader.empty(request)
    return json_response(await services.deliveries.replay(request.match_info["event_id"]), 202)


ENDPOINTS = (
    Endpoint(
        "GET",
        "/operators/{operator_id}/v1/events",
        list_events,
        "The operator's notifications to this messenger",
        "events",
        "messenger",
        journal="events.list",
        responses={200: EventPage},
        problems=("not_found", "validation_error", "cursor_unknown"),
        headers={200: ("Preference-Applied",)},
        params=(
            Param(
                "after",
                {"type": "string", "pattern": CURSOR_PATTERN},
                "The next_cursor of the previous page (omit to start at the oldest event).",
            ),
            limit_param("events"),
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
        problems=("not_found",),
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
        problems=("not_found", "conflict"),
    ),
    Endpoint(
        "GET",
        "/admin/v1/deliveries",
        list_deliveries,
        "Events with their delivery attempts on both channels",
        "admin",
        "admin",
        responses={200: DeliveryList},
        problems=("validation_error",),
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
        problems=("not_found", "conflict"),
    ),
)
