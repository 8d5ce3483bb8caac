"""The console's one door into the server: every service, key and store call it makes.

Everything else in the console calls :class:`Backend` and never imports the server, so
the server's own structure can change behind this module. Every action goes through the
same service the admin API calls (``Control``, ``Lifecycle``, the rule and replay
functions); reads use the same store queries as the admin API's handlers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, Protocol

from aiohttp import web

from operator_sim.clock import ms_to_datetime
from operator_sim.errors import NotFound
from operator_sim.server.journal import JournalFilter
from operator_sim.server.outbox import feed_key
from operator_sim.server.parsing import listening_address
from operator_sim.server.services import SERVICES, Services
from operator_sim.server.sms import phone_key
from operator_sim.server.waiters import (
    CLOCK_CHANGED,
    DELIVERIES_CHANGED,
    JOURNAL_CHANGED,
    RULES_CHANGED,
    SMS_CHANGED,
    STATE_RESET,
)
from operator_sim.store import Conn, overview, phones, sim_swaps
from operator_sim.store import outbox as outbox_store
from operator_sim.store import requests as requests_store
from operator_sim.store.overview import Counts
from operator_sim.store.subscribers import SubscriberFilter
from operator_sim.wire import (
    CallEntry,
    ClockAdvanced,
    ClockView,
    Delivery,
    IdentificationRequest,
    KeyRotated,
    LifecycleResult,
    Messenger,
    MessengerCreate,
    MessengerCreated,
    Operator,
    PhoneMessage,
    Rule,
    RuleSpec,
    SimSwapRecorded,
    Subscriber,
    SubscriberIn,
    SubscriberPage,
    SubscribersUpserted,
    WebhookSecretRotated,
)

__all__ = ["Backend", "Change", "ChangeKind", "Counts", "RequestDetail", "SubscriberFilter"]

ChangeKind = Literal[
    "clock", "rules", "journal", "reset", "request", "feed", "deliveries", "sms", "phone"
]

_KINDS: dict[str, ChangeKind] = {
    CLOCK_CHANGED: "clock",
    RULES_CHANGED: "rules",
    JOURNAL_CHANGED: "journal",
    STATE_RESET: "reset",
    DELIVERIES_CHANGED: "deliveries",
    SMS_CHANGED: "sms",
}
_REQUEST_PREFIX = "ir_"
_PHONE_PREFIX = phone_key("")


@dataclass(frozen=True, slots=True)
class Change:
    """Something committed that a page may show: what kind, and of which request, feed or
    phone."""

    kind: ChangeKind
    request_id: str | None = None
    messenger_id: str | None = None
    operator_id: str | None = None
    msisdn: str | None = None


class Listener(Protocol):
    """What receives the console's changes (the live hub)."""

    def note(self, key: str) -> None:
        """A commit announced under ``key``; called on every commit, so it must be cheap."""
        ...


def classify(key: str) -> Change | None:
    """The change a waiter key announces; None for a key the console does not show."""
    kind = _KINDS.get(key)
    if kind is not None:
        return Change(kind)
    if key.startswith(_REQUEST_PREFIX):
        return Change("request", request_id=key)
    if key.startswith(_PHONE_PREFIX):
        return Change("phone", msisdn=key.removeprefix(_PHONE_PREFIX))
    parts = key.split(":")
    if len(parts) == 3 and feed_key(parts[1], parts[2]) == key:
        return Change("feed", messenger_id=parts[1], operator_id=parts[2])
    return None


@dataclass(frozen=True, slots=True)
class RequestDetail:
    """One identification request as the admin sees it: owner, rule, events, deliveries."""

    request: IdentificationRequest
    messenger_id: str
    rule_id: str | None
    due_ms: int
    deliveries: list[Delivery]


class Backend:
    """What the console can read and do, over the services of one server application."""

    def __init__(self, app: web.Application) -> None:
        # Resolved at each call: the services exist only once the application has started.
        self._app = app

    @property
    def _services(self) -> Services:
        return self._app[SERVICES]

    # --- authentication facts --------------------------------------------------------

    @property
    def admin_is_demo(self) -> bool:
        """Whether the admin token is the fixture's documented demo token."""
        return self._services.auth.admin_is_demo

    @property
    def server_loopback(self) -> bool:
        """Whether the server listens on loopback only."""
        return self._services.settings.loopback

    @property
    def unix_socket(self) -> bool:
        """Whether the server listens on a Unix socket (its peers are local)."""
        return self._services.settings.unix is not None

    def admin_token_matches(self, token: str) -> bool:
        """Whether ``token`` is the admin token, by the admin API's own check."""
        return self._services.auth.admin_token_matches(token)

    # --- notifications ---------------------------------------------------------------

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Tell ``listener`` of every commit, by its waiter key (see :func:`classify`)."""
        return self._services.waiters.subscribe(listener.note)

    # --- clock -----------------------------------------------------------------------

    def clock(self) -> ClockView:
        """The clock as the admin API shows it."""
        return self._services.clockwork.view()

    async def advance(self, by: timedelta) -> ClockAdvanced:
        """Advance the clock and fire what fell due (``POST /admin/v1/clock/advance``)."""
        return await self._services.clockwork.advance(int(by.total_seconds() * 1000))

    async def set_clock(
        self, mode: Literal["real", "scaled", "manual"], scale: float | None
    ) -> ClockView:
        """Switch the clock's mode (``PUT /admin/v1/clock``)."""
        return await self._services.clockwork.set_mode(mode, scale)

    # --- reads -----------------------------------------------------------------------

    async def counts(self) -> Counts:
        """Requests by status, codes, and events waiting for delivery."""
        return await self._services.db.read(overview.counts)

    async def calls(
        self,
        *,
        messenger_id: str | None,
        msisdn: str | None,
        endpoint: str | None,
        limit: int,
    ) -> list[CallEntry]:
        """Every kind of messenger-facing call, newest first (``GET /admin/v1/journal``)."""
        selection = JournalFilter(messenger_id=messenger_id, msisdn=msisdn, endpoint=endpoint)
        return await self._services.journal.calls(selection, limit=limit)

    async def request_detail(self, request_id: str) -> RequestDetail | None:
        """One request with the rule that fired and its events' deliveries; None if unknown."""

        async def unit(conn: Conn) -> RequestDetail | None:
            stored = await requests_store.get_request(conn, request_id)
            if stored is None:
                return None
            deliveries: list[Delivery] = []
            for event_id in await overview.request_event_ids(
                conn,
                request_id=stored.id,
                messenger_id=stored.messenger_id,
                operator_id=stored.operator_id,
            ):
                deliveries += await outbox_store.list_deliveries(
                    conn, messenger_id=None, event_id=event_id, limit=1
                )
            return RequestDetail(
                request=stored.to_wire(),
                messenger_id=stored.messenger_id,
                rule_id=stored.rule_id,
                due_ms=stored.due_at,
                deliveries=deliveries,
            )

        return await self._services.db.read(unit)

    async def operators(self) -> list[Operator]:
        """The simulated operators (``GET /admin/v1/operators``)."""
        return await self._services.operators.list_operators()

    async def subscriber(self, msisdn: str) -> Subscriber | None:
        """One subscriber with personal data (``GET /admin/v1/subscribers/{msisdn}``)."""
        try:
            return await self._services.subscribers.get(msisdn)
        except NotFound:
            return None

    async def subscriber_page(
        self, selection: SubscriberFilter, *, after: str | None, limit: int
    ) -> SubscriberPage:
        """A keyset page of subscribers in number order (``GET /admin/v1/subscribers``)."""
        return await self._services.subscribers.list_page(selection, after=after, limit=limit)

    async def latest_sim_change(self, msisdn: str) -> datetime | None:
        """When the number's SIM last changed, if ever (what ``retrieve-date`` answers)."""
        latest = await self._services.db.read(lambda conn: sim_swaps.latest_swap(conn, msisdn))
        return None if latest is None else ms_to_datetime(latest)

    async def phone_messages(self, msisdn: str, *, limit: int) -> list[PhoneMessage]:
        """The newest ``limit`` messages the phone received, oldest first, texts included
        (``GET /admin/v1/phones/{msisdn}/messages`` reads the same inbox)."""
        newest = await self._services.db.read(
            lambda conn: phones.newest(conn, msisdn, after_sms_seq=0, limit=limit)
        )
        return [message.to_wire() for message in reversed(newest)]

    async def messengers(self) -> list[Messenger]:
        """Registered messengers, without secrets (``GET /admin/v1/messengers``)."""
        return await self._services.messengers.list_messengers()

    async def deliveries(self, *, messenger_id: str | None, limit: int) -> list[Delivery]:
        """Events with their deliveries, newest first (``GET /admin/v1/deliveries``)."""
        return await self._services.deliveries.list_deliveries(
            messenger_id=messenger_id, limit=limit
        )

    async def rules(self) -> list[Rule]:
        """Every fault rule in matching order (``GET /admin/v1/rules``)."""
        return await self._services.rulebook.list_rules()

    # --- actions ---------------------------------------------------------------------

    async def terminate(self, msisdn: str) -> LifecycleResult:
        """End a contract (``POST /admin/v1/subscribers/{msisdn}/terminate``)."""
        return await self._services.subscribers.terminate(msisdn)

    async def port(self, msisdn: str, to_operator_id: str) -> LifecycleResult:
        """Port a number (``POST /admin/v1/subscribers/{msisdn}/port``)."""
        return await self._services.subscribers.port(msisdn, to_operator_id)

    async def upsert_subscribers(self, subscribers: Sequence[SubscriberIn]) -> SubscribersUpserted:
        """Insert or replace subscribers (``POST /admin/v1/subscribers``)."""
        return await self._services.subscribers.upsert(subscribers)

    async def record_sim_swap(self, msisdn: str, at: datetime | None) -> SimSwapRecorded:
        """Record a SIM swap (``POST /admin/v1/subscribers/{msisdn}/sim-swap``)."""
        return await self._services.sim_swaps.record(msisdn, at=at)

    async def create_messenger(
        self, request: web.Request, body: MessengerCreate
    ) -> MessengerCreated:
        """Register a messenger (``POST /admin/v1/messengers``); secrets are returned once."""
        return await self._services.messengers.create(body, own=listening_address(request))

    async def rotate_key(self, messenger_id: str, grace: timedelta | None) -> KeyRotated:
        """A new API key, returned once (``POST /admin/v1/messengers/{id}/rotate-key``)."""
        return await self._services.messengers.rotate_key(messenger_id, grace)

    async def rotate_webhook_secret(
        self, messenger_id: str, grace: timedelta | None
    ) -> WebhookSecretRotated:
        """A new webhook secret, returned once (``POST .../rotate-webhook-secret``)."""
        return await self._services.messengers.rotate_webhook_secret(messenger_id, grace)

    async def reset_messenger(self, messenger_id: str) -> None:
        """Clear one messenger's flow state (``POST /admin/v1/messengers/{id}/reset``)."""
        await self._services.control.reset_messenger(messenger_id)

    async def reset(self) -> None:
        """Clear all flow state (``POST /admin/v1/reset``)."""
        await self._services.control.reset()

    async def replay(self, event_id: str) -> Delivery:
        """Deliver an event's webhook again (``POST /admin/v1/deliveries/{id}/replay``)."""
        return await self._services.deliveries.replay(event_id)

    async def add_rule(self, spec: RuleSpec) -> Rule:
        """Add a fault rule (``POST /admin/v1/rules``)."""
        return await self._services.rulebook.add(spec)

    async def delete_rule(self, rule_id: str) -> None:
        """Delete a fault rule (``DELETE /admin/v1/rules/{id}``)."""
        await self._services.rulebook.delete(rule_id)
