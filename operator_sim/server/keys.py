"""Typed keys for everything the application and its requests share."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from aiohttp import web

from operator_sim.clock import SimClock
from operator_sim.domain.webhook_targets import WebhookPolicy
from operator_sim.fixture import LoadedFixture
from operator_sim.settings import Settings
from operator_sim.store import Database

if TYPE_CHECKING:
    from operator_sim.server.auth import Authenticator
    from operator_sim.server.control import Control
    from operator_sim.server.flow import Flow
    from operator_sim.server.lifecycle import Feed, Lifecycle
    from operator_sim.server.limits import Limits
    from operator_sim.server.metrics import Metrics
    from operator_sim.server.scheduler import Scheduler
    from operator_sim.server.waiters import Waiters
    from operator_sim.server.webhooks import WebhookWorker

SETTINGS = web.AppKey("settings", Settings)
CLOCK = web.AppKey("clock", SimClock)
FIXTURE = web.AppKey("fixture", LoadedFixture)
DATABASE = web.AppKey("database", Database)
METRICS: web.AppKey[Metrics] = web.AppKey("metrics")
WAITERS: web.AppKey[Waiters] = web.AppKey("waiters")
SCHEDULER: web.AppKey[Scheduler] = web.AppKey("scheduler")
FLOW: web.AppKey[Flow] = web.AppKey("flow")
AUTH: web.AppKey[Authenticator] = web.AppKey("auth")
CONTROL: web.AppKey[Control] = web.AppKey("control")
LIFECYCLE: web.AppKey[Lifecycle] = web.AppKey("lifecycle")
FEED: web.AppKey[Feed] = web.AppKey("feed")
WEBHOOKS: web.AppKey[WebhookWorker] = web.AppKey("webhooks")
WEBHOOK_POLICY = web.AppKey("webhook_policy", WebhookPolicy)
LIMITS: web.AppKey[Limits] = web.AppKey("limits")

REQUEST_ID = web.RequestKey("request_id", str)
MESSENGER_ID = web.RequestKey("messenger_id", str)
OPENAPI = web.AppKey("openapi", bytes)
READY = web.AppKey("ready", asyncio.Event)
