"""Everything the handlers use, built once by the app factory and hung on the app.

One frozen object instead of a registry of keys: a handler names the services it calls
(``services.identification.create(...)``), and no service module imports another
module's handlers or this one, so imports point one way: handlers -> services ->
store and domain.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiohttp import web

from operator_sim.clock import SimClock
from operator_sim.fixture import LoadedFixture
from operator_sim.server.auth import Authenticator
from operator_sim.server.calls import Calls
from operator_sim.server.clockwork import Clockwork
from operator_sim.server.codes import Codes
from operator_sim.server.control import Control
from operator_sim.server.deliveries import Deliveries
from operator_sim.server.feed import Feed
from operator_sim.server.identification import Identification
from operator_sim.server.journal import Journal
from operator_sim.server.limits import Limits
from operator_sim.server.messengers import Messengers
from operator_sim.server.metrics import Metrics
from operator_sim.server.operators import Operators
from operator_sim.server.parsing import Reader
from operator_sim.server.phones import Phones
from operator_sim.server.retention import Retention
from operator_sim.server.routing import Router
from operator_sim.server.rulebook import Rulebook
from operator_sim.server.scheduler import Scheduler
from operator_sim.server.sim_swap import SimSwaps
from operator_sim.server.sms import SmsGateway
from operator_sim.server.subscribers import Subscribers
from operator_sim.server.waiters import Waiters
from operator_sim.server.webhooks import WebhookWorker
from operator_sim.settings import Settings
from operator_sim.store import Database

__all__ = ["SERVICES", "Services"]


@dataclass(frozen=True, slots=True)
class Services:
    """The server's object graph: settings, resources and one service per job."""

    settings: Settings
    fixture: LoadedFixture
    clock: SimClock
    db: Database
    metrics: Metrics
    waiters: Waiters
    ready: asyncio.Event
    openapi: bytes
    reader: Reader
    limits: Limits
    auth: Authenticator
    calls: Calls
    operators: Operators
    rulebook: Rulebook
    router: Router
    identification: Identification
    codes: Codes
    subscribers: Subscribers
    messengers: Messengers
    journal: Journal
    feed: Feed
    deliveries: Deliveries
    webhooks: WebhookWorker
    scheduler: Scheduler
    clockwork: Clockwork
    control: Control
    retention: Retention
    sms: SmsGateway
    phones: Phones
    sim_swaps: SimSwaps


SERVICES = web.AppKey("services", Services)
"""The app's :class:`Services`, set while the app starts (the database is open then)."""
