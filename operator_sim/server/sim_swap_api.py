"""The operators' SIM swap calls (CAMARA SIM Swap shapes), and recording a swap (admin)."""

from __future__ import annotations

from aiohttp import web

from operator_sim.server.calls import CALL
from operator_sim.server.endpoints import Endpoint, json_response
from operator_sim.server.parsing import path_msisdn
from operator_sim.server.services import SERVICES
from operator_sim.wire import (
    SimSwapCheck,
    SimSwapCheckRequest,
    SimSwapDate,
    SimSwapDateRequest,
    SimSwapRecord,
    SimSwapRecorded,
)

_BASE = "/operators/{operator_id}/sim-swap/v1"


async def retrieve_sim_swap_date(request: web.Request) -> web.StreamResponse:
    """When the number's SIM last changed."""
    services = request.app[SERVICES]
    body = await services.reader.model(request, SimSwapDateRequest)
    return json_response(await services.sim_swaps.retrieve_date(request[CALL], body.phoneNumber))


async def check_sim_swap(request: web.Request) -> web.StreamResponse:
    """Whether the number's SIM changed within ``maxAge`` hours."""
    services = request.app[SERVICES]
    body = await services.reader.model(request, SimSwapCheckRequest)
    checked = await services.sim_swaps.check(
        request[CALL], body.phoneNumber, max_age_hours=body.maxAge
    )
    return json_response(checked)


async def record_sim_swap(request: web.Request) -> web.StreamResponse:
    """Record that the number's SIM changed (now, or at ``at``)."""
    services = request.app[SERVICES]
    msisdn = path_msisdn(request)
    body = await services.reader.options(request, SimSwapRecord)
    return json_response(await services.sim_swaps.record(msisdn, at=body.at))


ENDPOINTS = (
    Endpoint(
        "POST",
        f"{_BASE}/retrieve-date",
        retrieve_sim_swap_date,
        "When the number's SIM last changed",
        "sim-swap",
        "messenger",
        journal="sim_swap.retrieve_date",
        body=SimSwapDateRequest,
        responses={200: SimSwapDate},
        problems=("not_found", "invalid_msisdn"),
        description="Answered only by the operator that holds the number (its subscriber "
        "record, else its range); any other answers 404.",
    ),
    Endpoint(
        "POST",
        f"{_BASE}/check",
        check_sim_swap,
        "Whether the number's SIM changed recently",
        "sim-swap",
        "messenger",
        journal="sim_swap.check",
        body=SimSwapCheckRequest,
        responses={200: SimSwapCheck},
        problems=("not_found", "invalid_msisdn"),
        description="`maxAge` in hours, 1 to 2400 (default 240), in simulation time. Answered "
        "only by the operator that holds the number; any other answers 404.",
    ),
    Endpoint(
        "POST",
        "/admin/v1/subscribers/{msisdn}/sim-swap",
        record_sim_swap,
        "Record a SIM swap",
        "admin",
        "admin",
        body=SimSwapRecord,
        body_optional=True,
        responses={200: SimSwapRecorded},
        problems=("not_found",),
        description="The swap's time is `at` (`{}` for now, simulation time; never ahead of "
        "it); the latest swap is kept. The contract and its codes stay as they are.",
    ),
)
