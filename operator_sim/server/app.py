"""The application factory: everything explicit, resources owned by ``cleanup_ctx``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import structlog
from aiohttp import web

from operator_sim.clock import SimClock
from operator_sim.domain.webhook_targets import WebhookPolicy
from operator_sim.errors import StartupError
from operator_sim.fixture import LoadedFixture, load_fixture
from operator_sim.server import (
    admin_api,
    docs_api,
    events_api,
    messenger_api,
    rules_api,
    service_api,
)
from operator_sim.server.auth import Authenticator
from operator_sim.server.control import Control
from operator_sim.server.endpoints import add_routes
from operator_sim.server.flow import Flow
from operator_sim.server.keys import (
    AUTH,
    CLOCK,
    CONTROL,
    DATABASE,
    FEED,
    FIXTURE,
    FLOW,
    LIFECYCLE,
    LIMITS,
    METRICS,
    OPENAPI,
    READY,
    SCHEDULER,
    SETTINGS,
    WAITERS,
    WEBHOOK_POLICY,
    WEBHOOKS,
)
from operator_sim.server.lifecycle import Feed, Lifecycle
from operator_sim.server.limits import Limits
from operator_sim.server.metrics import Metrics
from operator_sim.server.openapi import build_openapi
from operator_sim.server.outbox import Outbox
from operator_sim.server.parsing import BULK_BODY_LIMIT
from operator_sim.server.problems import http_middleware
from operator_sim.server.scheduler import Scheduler
from operator_sim.server.service_api import render_openapi
from operator_sim.server.waiters import Waiters
from operator_sim.server.webhooks import WebhookWorker
from operator_sim.settings import Settings
from operator_sim.store import catalog, open_database
from operator_sim.store.lock import ServeLock

log = structlog.get_logger("operator_sim.app")

ENDPOINTS = (
    messenger_api.ENDPOINTS
    + admin_api.ENDPOINTS
    + rules_api.ENDPOINTS
    + events_api.ENDPOINTS
    + service_api.ENDPOINTS
    + docs_api.ENDPOINTS
)


MIN_ADMIN_TOKEN_OFF_LOOPBACK = 16
"""Characters an admin token needs when the server is reachable from other hosts."""


def _admin_token(settings: Settings, fixture: LoadedFixture) -> tuple[str, bool]:
    demo = fixture.fixture.demo_admin_token
    if settings.admin_token is not None and settings.admin_token.get_secret_value():
        token = settings.admin_token.get_secret_value()
        if not settings.loopback and (len(token) < MIN_ADMIN_TOKEN_OFF_LOOPBACK or token == demo):
            raise StartupError(
                f"binding to {settings.host}, which is not loopback: the admin token must be "
                f"at least {MIN_ADMIN_TOKEN_OFF_LOOPBACK} characters and not the fixture's "
                "demo token; set a real secret in OPERATOR_SIM_ADMIN_TOKEN (or --admin-token)"
            )
        return token, False
    if demo is None:
        raise StartupError(
            "no admin token: set OPERATOR_SIM_ADMIN_TOKEN (or --admin-token); "
            f"the fixture {fixture.path} has no demo token"
        )
    if not settings.loopback:
        raise StartupError(
            f"binding to {settings.host}, which is not loopback: the demo admin token is "
            "accepted on loopback only; set OPERATOR_SIM_ADMIN_TOKEN (or --admin-token)"
        )
    return demo, True


def _seed(settings: Settings, fixture: LoadedFixture) -> int:
    """The fault rules' random seed: the setting, else the fixture's, else 1801."""
    if settings.seed is not None:
        return settings.seed
    return fixture.fixture.seed if fixture.fixture.seed is not None else 1801


def _resources(
    clock_override: SimClock | None, admin_token: str, admin_is_demo: bool
) -> Callable[[web.Application], contextlib.AbstractAsyncContextManager[None]]:
    @contextlib.asynccontextmanager
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        settings = app[SETTINGS]
        lock = ServeLock(settings.db)
        lock.acquire()
        try:
            db = await open_database(settings.db, synchronous=settings.synchronous)
        except BaseException:
            lock.release()
            raise
        try:
            async with db.read() as conn:
                stored = await catalog.load_clock(conn)
            if clock_override is not None:
                clock = clock_override
            else:
                mode, scale = settings.clock_mode
                clock = SimClock(mode, scale) if stored is None else SimClock.resume(stored)
                clock.set_mode(mode, scale)
            async with db.write() as conn:
                await catalog.save_clock(conn, clock.state())

            metrics, waiters = app[METRICS], app[WAITERS]
            scheduler_ref: list[Scheduler] = []
            outbox = Outbox(waiters, metrics)
            flow = Flow(
                db,
                clock,
                app[FIXTURE],
                metrics,
                waiters,
                outbox,
                lambda: scheduler_ref[0].wake(),
                journal_cap=settings.journal_cap,
                seed=_seed(settings, app[FIXTURE]),
            )
            scheduler = Scheduler(db, clock, flow, metrics)
            scheduler_ref.append(scheduler)
            auth = Authenticator(
                db,
                admin_token=admin_token,
                admin_is_demo=admin_is_demo,
                demo_allowed=settings.loopback,
            )
            webhooks = WebhookWorker(
                db,
                clock,
                metrics,
                timeout=settings.webhook_timeout,
                per_messenger=settings.webhook_concurrency,
                policy=app[WEBHOOK_POLICY],
            )
            outbox.on_webhook_work(webhooks.wake)
            control = Control(
                db,
                clock,
                app[FIXTURE],
                flow,
                scheduler,
                auth,
                webhooks,
                app[WEBHOOK_POLICY],
                # One attempt's timeout, and a little for its outcome to be recorded.
                webhook_wait=settings.webhook_timeout + 0.5,
            )
            await control.apply_fixture()
            await flow.load_operators()
            app[DATABASE], app[CLOCK], app[FLOW] = db, clock, flow
            app[SCHEDULER], app[AUTH], app[CONTROL] = scheduler, auth, control
            app[LIFECYCLE] = Lifecycle(db, clock, flow, outbox)
            app[FEED] = Feed(db, clock, waiters, metrics)
            app[WEBHOOKS] = webhooks

            task = asyncio.create_task(scheduler.run(), name="operator-sim-scheduler")
            webhook_task = asyncio.create_task(webhooks.run(), name="operator-sim-webhooks")
            app[READY].set()
            log.info(
                "started",
                db=str(settings.db),
                fixture=app[FIXTURE].path,
                clock=clock.mode,
                scale=clock.scale,
                demo_admin_token=admin_is_demo,
            )
            try:
                yield
            finally:
                app[READY].clear()
                for background in (task, webhook_task):
                    background.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await background
                async with db.write() as conn:
                    await catalog.save_clock(conn, clock.state())
        finally:
            await db.close()
            lock.release()
            log.info("stopped")

    return ctx


async def _release_waiters(app: web.Application) -> None:
    app[WAITERS].release_all()


def create_app(
    settings: Settings,
    *,
    clock: SimClock | None = None,
    fixture: LoadedFixture | None = None,
) -> web.Application:
    """Build the server. The fixture is validated here, before anything is opened or written.

    ``clock`` replaces the stored clock (tests); by default the stored one resumes and
    takes the mode of ``settings.clock``.
    """
    loaded = fixture or load_fixture(settings.fixture)
    admin_token, admin_is_demo = _admin_token(settings, loaded)
    app = web.Application(
        middlewares=[http_middleware],
        client_max_size=BULK_BODY_LIMIT,
    )
    app[SETTINGS] = settings
    app[FIXTURE] = loaded
    app[METRICS] = Metrics()
    app[WAITERS] = Waiters()
    app[LIMITS] = Limits(settings)
    app[READY] = asyncio.Event()
    app[WEBHOOK_POLICY] = WebhookPolicy.from_settings(
        settings.webhook_allowed_hosts, settings.webhook_allow_net
    )
    app[OPENAPI] = render_openapi(
        build_openapi(ENDPOINTS, operator_ids=[op.id for op in loaded.fixture.operators])
    )
    add_routes(app, ENDPOINTS)
    app.cleanup_ctx.append(_resources(clock, admin_token, admin_is_demo))
    app.on_shutdown.append(_release_waiters)
    return app
