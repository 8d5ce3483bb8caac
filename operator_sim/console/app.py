"""The console as a sub-application of the server, mounted at ``/ui/``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from operator_sim.console import actions, pages, render
from operator_sim.console.backend import Backend
from operator_sim.console.hub import Hub
from operator_sim.console.middleware import guard, on_prepare
from operator_sim.console.security import Sessions
from operator_sim.console.state import CONSOLE, Console
from operator_sim.console.stream import stream

__all__ = ["STATIC_DIR", "mount"]

STATIC_DIR = Path(__file__).parent / "static"


def _routes(app: web.Application) -> None:
    r = app.router
    r.add_static("/static", STATIC_DIR, name="static", append_version=False)
    r.add_get("/sign-in", pages.sign_in_form, name="sign_in_form")
    r.add_post("/sign-in", pages.sign_in, name="sign_in")
    r.add_post("/sign-out", pages.sign_out, name="sign_out")
    r.add_get("/", pages.overview, name="overview")
    r.add_get("/journal", pages.journal, name="journal")
    r.add_get("/requests/{request_id}", pages.request_page, name="request")
    r.add_get("/subscribers", pages.subscribers, name="subscribers")
    r.add_get("/subscribers/{msisdn}", pages.subscriber, name="subscriber")
    r.add_get("/phones", pages.phones, name="phones")
    r.add_get("/phones/{msisdn}", pages.phone, name="phone")
    r.add_get("/messengers", pages.messengers, name="messengers")
    r.add_get("/deliveries", pages.deliveries, name="deliveries")
    r.add_get("/rules", pages.rules, name="rules")
    r.add_get("/stream/{page}", stream, name="stream")
    r.add_post("/clock/advance", actions.advance_clock, name="clock_advance")
    r.add_post("/clock/mode", actions.set_clock, name="clock_mode")
    r.add_post("/reset", actions.reset, name="reset")
    r.add_post("/subscribers/{msisdn}/terminate", actions.terminate, name="terminate")
    r.add_post("/subscribers/{msisdn}/port", actions.port, name="port")
    r.add_post("/subscribers/{msisdn}/edit", actions.edit_subscriber, name="edit_subscriber")
    r.add_post("/subscribers/{msisdn}/sim-swap", actions.sim_swap, name="sim_swap")
    r.add_post("/messengers", actions.create_messenger, name="create_messenger")
    r.add_post("/messengers/{messenger_id}/reset", actions.reset_messenger, name="reset_messenger")
    r.add_post("/messengers/{messenger_id}/rotate-key", actions.rotate_key, name="rotate_key")
    r.add_post(
        "/messengers/{messenger_id}/rotate-webhook-secret",
        actions.rotate_webhook_secret,
        name="rotate_webhook_secret",
    )
    r.add_post("/deliveries/{event_id}/replay", actions.replay, name="replay")
    r.add_post("/rules", actions.add_rule, name="add_rule")
    r.add_post("/rules/json", actions.add_rule_json, name="add_rule_json")
    r.add_post("/rules/{rule_id}/delete", actions.delete_rule, name="delete_rule")
    # Last: anything else under /ui/ is the console's own 404 page, with its headers.
    r.add_route("*", "/{tail:.*}", pages.not_found, name="not_found")


def _console_app(server: web.Application) -> web.Application:
    app = web.Application(middlewares=[guard])
    backend = Backend(server)
    hub = Hub()
    app[CONSOLE] = Console(backend=backend, hub=hub, sessions=Sessions())
    render.setup(app)
    _routes(app)
    app.on_response_prepare.append(on_prepare)

    async def listening(_: web.Application) -> AsyncIterator[None]:
        unsubscribe = backend.subscribe(hub)
        yield
        unsubscribe()

    async def end_streams(_: web.Application) -> None:
        # Live streams never end by themselves: without this, shutdown would wait for them.
        hub.close()

    app.cleanup_ctx.append(listening)
    app.on_shutdown.append(end_streams)
    return app


async def _to_console(_: web.Request) -> web.StreamResponse:
    return web.Response(status=308, headers={"Location": "/ui/"})


def mount(server: web.Application) -> None:
    """Serve the console at ``/ui/`` on the server application ``server``."""
    server.router.add_get("/ui", _to_console)
    server.add_subapp("/ui", _console_app(server))
