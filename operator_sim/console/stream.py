"""The live stream of a page: server-sent events that carry its stale parts as HTML.

Each message is one part of the page (``event: journal``, ``data:`` the rows), swapped in
by htmx's SSE extension (``sse-swap``). Its ``id`` is the hub's position when the part was
read; a browser that reconnects sends the last one back as ``Last-Event-ID`` and gets
the parts that changed meanwhile (see :mod:`operator_sim.console.hub`).

Nothing is sent while nothing changes, apart from aiohttp-sse's comment line every
:data:`PING_SECONDS`, which tells a closed connection from an idle one. Changes in a
burst are coalesced: after sending, a stream rests before it reads again, at least
:data:`COALESCE_SECONDS`, and on a busy server up to :data:`MAX_REST_SECONDS`, so that
reading and rendering take about :data:`DUTY` of the time. A page open under load costs
the server a bounded share: a thousand requests a second mean an update every second or
two, not one per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from aiohttp import web
from aiohttp_sse import EventSourceResponse, sse_response

from operator_sim.console.hub import Stream
from operator_sim.console.live import View, view_for
from operator_sim.console.render import fragment
from operator_sim.console.state import CONSOLE

__all__ = [
    "COALESCE_SECONDS",
    "DUTY",
    "MAX_REST_SECONDS",
    "PING_SECONDS",
    "RETRY_MS",
    "stream",
]

PING_SECONDS = 15.0
COALESCE_SECONDS = 0.25
MAX_REST_SECONDS = 2.0
DUTY = 0.02
"""The share of its time a stream aims to spend reading and rendering updates.

What it measures is wall time, which on a busy server is mostly waiting for the database
and the event loop, so the rest is capped: a page still updates every couple of seconds.
"""
RETRY_MS = 2000
"""How long a browser waits before reconnecting a dropped stream."""


async def stream(request: web.Request) -> web.StreamResponse:
    """``GET /ui/stream/{page}``: the page's parts as they change."""
    console = request.app[CONSOLE]
    view = view_for(request.match_info["page"], request.query)
    resume = request.headers.get("Last-Event-ID") or request.query.get("from")
    hub = console.hub
    live = hub.open(view.wants)
    try:
        live.mark(hub.missed(resume, view.wants, view.events))
        async with sse_response(request, ping_interval=PING_SECONDS) as sse:
            await sse.send("", event="hello", retry=RETRY_MS)
            await _pump(request, sse, live, view)
    finally:
        hub.discard(live)
    return sse


async def _pump(request: web.Request, sse: EventSourceResponse, live: Stream, view: View) -> None:
    console = request.app[CONSOLE]
    closed = asyncio.ensure_future(sse.wait())
    try:
        while True:
            waiting = asyncio.ensure_future(live.wait())
            await asyncio.wait({waiting, closed}, return_when=asyncio.FIRST_COMPLETED)
            if closed.done() or live.closed:
                waiting.cancel()
                return
            started = time.perf_counter()
            position = console.hub.position
            for event in sorted(live.take()):
                part = view.part(event)
                html = fragment(request, part.template, await part.context(console.backend))
                try:
                    await sse.send(html, event=event, id=position)
                except (ConnectionResetError, TimeoutError):
                    return
            busy = time.perf_counter() - started
            await live.rest(min(MAX_REST_SECONDS, max(COALESCE_SECONDS, busy * (1 / DUTY - 1))))
    finally:
        closed.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await closed
