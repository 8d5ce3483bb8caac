"""The application factory: everything explicit, resources owned by ``cleanup_ctx``."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import structlog
from aiohttp import web

from operator_sim.clock import SimClock
from operator_sim.domain.webhook_targets import WebhookPolicy
from operator_sim.errors import StartupError
from operator_sim.fixture import LoadedFixture, load_fixture
from operator_sim.logs import mask_by_default
from operator_sim.server import (
    admin_api,
    docs_api,
    events_api,
    messenger_api,
    rules_api,
    service_api,
    sim_swap_api,
    sms_api,
)
from operator_sim.server.auth import Authenticator
from operator_sim.server.calls import Calls
from operator_sim.server.clockwork import Clockwork
from operator_sim.server.codes import Codes
from operator_sim.server.control import Control
from operator_sim.server.deliveries import Deliveries
from operator_sim.server.endpoints import add_routes
from operator_sim.server.feed import Feed
from operator_sim.server.identification import Identification
from operator_sim.server.journal import Journal
from operator_sim.server.limits import Limits
from operator_sim.server.messengers import Messengers
from operator_sim.server.metrics import Metrics
from operator_sim.server.openapi import build_openapi
from operator_sim.server.operators import Operators
from operator_sim.server.outbox import Outbox
from operator_sim.server.parsing import BULK_BODY_LIMIT, Reader
from operator_sim.server.phones import Phones
from operator_sim.server.problems import http_middleware
from operator_sim.server.retention import Retention
from operator_sim.server.routing import Router
from operator_sim.server.rulebook import Rulebook
from operator_sim.server.scheduler import Scheduler
from operator_sim.server.service_api import render_openapi
from operator_sim.server.services import SERVICES, Services
from operator_sim.server.sim_swap import SimSwaps
from operator_sim.server.sms import SmsGateway
from operator_sim.server.subscribers import Subscribers
from operator_sim.server.tls import webhook_context
from operator_sim.server.waiters import Waiters
from operator_sim.server.wakeups import Wakeup
from operator_sim.server.webhooks import WebhookWorker
from operator_sim.settings import Settings
from operator_sim.store import Database, meta, open_database
from operator_sim.store.lock import ServeLock

log = structlog.get_logger("operator_sim.app")

ENDPOINTS = (
    messenger_api.ENDPOINTS
    + admin_api.ENDPOINTS
    + rules_api.ENDPOINTS
    + events_api.ENDPOINTS
    + service_api.ENDPOINTS
    + docs_api.ENDPOINTS
    + sms_api.ENDPOINTS
    + sim_swap_api.ENDPOINTS
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


@dataclass(frozen=True, slots=True)
class _Prepared:
    """What ``create_app`` checks and builds before anything is opened."""

    settings: Settings
    fixture: LoadedFixture
    clock_override: SimClock | None
    admin_token: str
    admin_is_demo: bool
    policy: WebhookPolicy
    webhook_ssl: ssl.SSLContext | None
    openapi: bytes
    metrics: Metrics
    waiters: Waiters


async def _open_clock(db: Database, prepared: _Prepared) -> SimClock:
    if prepared.clock_override is not None:
        clock = prepared.clock_override
    else:
        stored = await db.read(meta.load_clock)
        mode, scale = prepared.settings.clock_mode
        clock = SimClock(mode, scale) if stored is None else SimClock.resume(stored)
        clock.set_mode(mode, scale)
    state = clock.state()
    await db.run(lambda conn: meta.save_clock(conn, state))
    return clock


def _build(prepared: _Prepared, db: Database, clock: SimClock) -> Services:
    """The object graph. Wake-up calls are made first and handed to both of their ends."""
    settings, fixture = prepared.settings, prepared.fixture
    metrics, waiters = prepared.metrics, prepared.waiters
    scheduled_work, webhook_work, clock_moved = Wakeup(), Wakeup(), Wakeup()
    ready = asyncio.Event()
    operators = Operators(db)
    rulebook = Rulebook(db, metrics, operators, waiters, seed=_seed(settings, fixture))
    calls = Calls(db, clock, rulebook, metrics, waiters, journal_cap=settings.journal_cap)
    outbox = Outbox(waiters, metrics, webhook_work, rulebook)
    sms = SmsGateway(
        db,
        clock,
        calls,
        outbox,
        metrics,
        waiters,
        scheduled_work,
        throttle=settings.throttle,
    )
    identification = Identification(
        db,
        clock,
        operators,
        calls,
        outbox,
        metrics,
        waiters,
        scheduled_work,
        default_answer_delay=fixture.fixture.default_answer_delay,
        job_handlers=(sms,),
    )
    scheduler = Scheduler(clock, identification, metrics, scheduled_work)
    subscribers = Subscribers(db, clock, operators, outbox)
    auth = Authenticator(
        db,
        admin_token=prepared.admin_token,
        admin_is_demo=prepared.admin_is_demo,
        demo_allowed=settings.loopback,
    )
    retention = Retention(db, clock, metrics, clock_moved, keep=settings.retention)
    webhooks = WebhookWorker(
        db,
        clock,
        metrics,
        webhook_work,
        waiters,
        timeout=settings.webhook_timeout,
        per_messenger=settings.webhook_concurrency,
        policy=prepared.policy,
        ssl_context=prepared.webhook_ssl,
    )
    return Services(
        settings=settings,
        fixture=fixture,
        clock=clock,
        db=db,
        metrics=metrics,
        waiters=waiters,
        ready=ready,
        openapi=prepared.openapi,
        reader=Reader(client_timeout=settings.client_timeout, max_wait=settings.max_wait),
        limits=Limits(settings),
        auth=auth,
        calls=calls,
        operators=operators,
        rulebook=rulebook,
        router=Router(db, calls),
        identification=identification,
        codes=Codes(db, operators, calls),
        subscribers=subscribers,
        messengers=Messengers(
            db, clock, prepared.policy, webhook_work, auth, webhooks.forget_signers
        ),
        journal=Journal(db),
        feed=Feed(db, clock, operators, calls, waiters, metrics),
        deliveries=Deliveries(db, clock, webhook_work),
        webhooks=webhooks,
        scheduler=scheduler,
        # One attempt's timeout, and a little for its outcome to be recorded.
        clockwork=Clockwork(
            db,
            clock,
            scheduler,
            webhooks,
            retention,
            waiters,
            webhook_wait=settings.webhook_timeout + 0.5,
        ),
        control=Control(
            db,
            clock,
            fixture,
            operators,
            rulebook,
            scheduler,
            auth,
            subscribers,
            waiters,
            ready,
        ),
        retention=retention,
        sms=sms,
        phones=Phones(db, waiters),
        sim_swaps=SimSwaps(db, clock, operators, calls),
    )


def _resources(
    prepared: _Prepared,
) -> Callable[[web.Application], contextlib.AbstractAsyncContextManager[None]]:
    @contextlib.asynccontextmanager
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        settings = prepared.settings
        lock = ServeLock(settings.db)
        lock.acquire()
        try:
            db = await open_database(settings.db, synchronous=settings.synchronous)
        except BaseException:
            lock.release()
            raise
        try:
            clock = await _open_clock(db, prepared)
            services = _build(prepared, db, clock)
            await services.control.apply_fixture()
            app[SERVICES] = services
            task = asyncio.create_task(services.scheduler.run(), name="operator-sim-scheduler")
            webhook_task = asyncio.create_task(
                services.webhooks.run(), name="operator-sim-webhooks"
            )
            retention_task = asyncio.create_task(
                services.retention.run(), name="operator-sim-retention"
            )
            services.ready.set()
            log.info(
                "started",
                db=str(settings.db),
                fixture=prepared.fixture.path,
                clock=clock.mode,
                scale=clock.scale,
                demo_admin_token=prepared.admin_is_demo,
                retention_s=settings.retention.total_seconds(),
            )
            try:
                yield
            finally:
                services.ready.clear()
                for background in (task, webhook_task, retention_task):
                    background.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await background
                await services.clockwork.save()
        finally:
            await db.close()
            lock.release()
            log.info("stopped")

    return ctx


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
    mask_by_default(settings.log_level)
    loaded = fixture or load_fixture(settings.fixture)
    admin_token, admin_is_demo = _admin_token(settings, loaded)
    prepared = _Prepared(
        settings=settings,
        fixture=loaded,
        clock_override=clock,
        admin_token=admin_token,
        admin_is_demo=admin_is_demo,
        policy=WebhookPolicy.from_settings(
            settings.webhook_allowed_hosts, settings.webhook_allow_net
        ),
        webhook_ssl=None if settings.webhook_ca is None else webhook_context(settings.webhook_ca),
        openapi=render_openapi(
            build_openapi(ENDPOINTS, operator_ids=[op.id for op in loaded.fixture.operators])
        ),
        metrics=Metrics(),
        waiters=Waiters(),
    )
    app = web.Application(
        middlewares=[http_middleware(prepared.metrics, max_header_size=settings.max_header_size)],
        client_max_size=BULK_BODY_LIMIT,
    )
    add_routes(app, ENDPOINTS)
    app.cleanup_ctx.append(_resources(prepared))

    async def release_waiters(_app: web.Application) -> None:
        prepared.waiters.release_all()

    app.on_shutdown.append(release_waiters)
    # Imported here, not at the top: the console reaches into the server's services, and
    # the server package must not import it back while it is being imported itself.
    from operator_sim.console import mount

    mount(app)
    return app
