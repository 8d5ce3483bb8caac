"""Admin operations: the fixture, messengers, subscribers, the clock and reset."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime

import aiosqlite
import structlog

from operator_sim import errors
from operator_sim.clock import ClockMode, SimClock
from operator_sim.domain.webhook_targets import WebhookPolicy
from operator_sim.fixture import LoadedFixture
from operator_sim.server.auth import Authenticator
from operator_sim.server.flow import Flow
from operator_sim.server.scheduler import Scheduler
from operator_sim.server.webhooks import WebhookWorker
from operator_sim.store import Database, catalog
from operator_sim.store import events as events_store
from operator_sim.store import requests as store
from operator_sim.store import rules as rules_store
from operator_sim.wire import (
    ClockView,
    Messenger,
    MessengerCreate,
    MessengerCreated,
    MessengerPatch,
    Operator,
    SubscriberIn,
    SubscribersUpserted,
)

log = structlog.get_logger("operator_sim.control")

_FIXTURE_DIGEST = "fixture_digest"
# Simulation time must stay representable in RFC 3339 (four-digit years).
_LATEST_MS = int(datetime(9000, 1, 1, tzinfo=UTC).timestamp() * 1000)


def new_api_key() -> str:
    """A fresh messenger API key (256 random bits)."""
    return "osk_" + secrets.token_urlsafe(32)


def new_webhook_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` + base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


class Control:
    """What the admin API can do to the simulation."""

    def __init__(
        self,
        db: Database,
        clock: SimClock,
        fixture: LoadedFixture,
        flow: Flow,
        scheduler: Scheduler,
        auth: Authenticator,
        webhooks: WebhookWorker,
        policy: WebhookPolicy,
        *,
        webhook_wait: float,
    ) -> None:
        self._webhook_wait = webhook_wait
        self._webhooks = webhooks
        self._policy = policy
        self._db = db
        self._clock = clock
        self._fixture = fixture
        self._flow = flow
        self._scheduler = scheduler
        self._auth = auth

    async def apply_fixture(self) -> bool:
        """Load the fixture into the database unless this very fixture is already there."""
        fx = self._fixture.fixture
        async with self._db.write() as conn:
            if await catalog.get_meta(conn, _FIXTURE_DIGEST) == self._fixture.digest:
                return False
            now = self._clock.now_ms()
            await catalog.replace_operators(
                conn, [Operator(id=o.id, name=o.name, ranges=o.ranges) for o in fx.operators]
            )
            for m in fx.messengers:
                await catalog.insert_messenger(
                    conn,
                    messenger_id=m.id,
                    name=m.name,
                    webhook_url=m.webhook_url,
                    api_key=m.api_key,
                    webhook_secret=m.webhook_secret or new_webhook_secret(),
                    demo=m.demo,
                    source="fixture",
                    now_ms=now,
                    replace=True,
                )
            await self._restore_fixture_state(conn, now)
            await catalog.set_meta(conn, _FIXTURE_DIGEST, self._fixture.digest)
        self._auth.forget()
        self._flow.rules_changed()
        log.info("fixture_applied", fixture=fx.name, path=self._fixture.path)
        return True

    async def _restore_fixture_state(self, conn: aiosqlite.Connection, now: int) -> None:
        fx = self._fixture.fixture
        if fx.subscribers:
            await catalog.upsert_subscribers(conn, fx.subscribers, source="fixture", now_ms=now)
        await catalog.replace_fixture_rules(conn, fx.rules)

    async def reset(self) -> None:
        """Clear all flow state and runtime rules; restore the fixture's subscribers and rules."""
        async with self._db.write() as conn:
            await store.clear_flow_state(conn)
            await self._restore_fixture_state(conn, self._clock.now_ms())
        self._flow.rules_changed()
        self._flow.reset_random()
        self._scheduler.wake()
        log.info("reset")

    async def reset_messenger(self, messenger_id: str) -> None:
        """Clear one messenger's flow state, its runtime rules and its rule counters."""
        async with self._db.write() as conn:
            if not await catalog.messenger_exists(conn, messenger_id):
                raise errors.NotFound(kind="messenger", ident=messenger_id)
            await store.clear_messenger_state(conn, messenger_id)
            await rules_store.forget_messenger_rules(conn, messenger_id)
        self._flow.rules_changed()
        self._flow.reset_random(messenger_id)
        self._scheduler.wake()
        log.info("messenger_reset", messenger_id=messenger_id)

    def _check_target(self, url: str | None, own: Sequence[tuple[str, int]]) -> None:
        if url is None:
            return
        why = self._policy.refusal(url, own=own)
        if why is not None:
            raise errors.ValidationFailed(
                f"webhook_url: the server will not deliver there: {why}",
                errors=[{"loc": ["webhook_url"], "msg": why, "type": "webhook_target"}],
            )

    async def create_messenger(
        self, body: MessengerCreate, *, own: Sequence[tuple[str, int]] = ()
    ) -> MessengerCreated:
        """Register a messenger with fresh credentials (returned once).

        ``own`` is where this server listens: a webhook URL pointing there is refused.
        """
        self._check_target(body.webhook_url, own)
        api_key, secret = new_api_key(), new_webhook_secret()
        async with self._db.write() as conn:
            ok = await catalog.insert_messenger(
                conn,
                messenger_id=body.id,
                name=body.name,
                webhook_url=body.webhook_url,
                api_key=api_key,
                webhook_secret=secret,
                demo=False,
                source="admin",
                now_ms=self._clock.now_ms(),
            )
        if not ok:
            raise errors.Conflict(f"messenger {body.id} already exists")
        log.info("messenger_registered", messenger_id=body.id)
        return MessengerCreated(
            id=body.id,
            name=body.name,
            webhook_url=body.webhook_url,
            api_key=api_key,
            webhook_secret=secret,
        )

    async def get_messenger(self, messenger_id: str) -> Messenger:
        """One messenger, without secrets."""
        async with self._db.read() as conn:
            found = await catalog.get_messenger(conn, messenger_id)
        if found is None:
            raise errors.NotFound(kind="messenger", ident=messenger_id)
        return found

    async def patch_messenger(
        self, messenger_id: str, patch: MessengerPatch, *, own: Sequence[tuple[str, int]] = ()
    ) -> Messenger:
        """Change a messenger's name or webhook URL; pending deliveries follow the URL."""
        new_url = "webhook_url" in patch.model_fields_set
        if new_url:
            self._check_target(patch.webhook_url, own)
        async with self._db.write() as conn:
            if not await catalog.messenger_exists(conn, messenger_id):
                raise errors.NotFound(kind="messenger", ident=messenger_id)
            await catalog.update_messenger(
                conn,
                messenger_id,
                name=patch.name,
                webhook_url=patch.webhook_url,
                set_webhook_url=new_url,
            )
            moved = (
                await events_store.redirect_pending_webhooks(conn, messenger_id, patch.webhook_url)
                if new_url
                else 0
            )
            found = await catalog.get_messenger(conn, messenger_id)
        if found is None:  # cannot happen: read in the same transaction
            raise errors.StoreError("messenger vanished after update")
        if new_url:
            self._webhooks.wake()
        log.info(
            "messenger_updated",
            messenger_id=messenger_id,
            webhook_changed=new_url,
            pending_deliveries=moved,
        )
        return found

    async def upsert_subscribers(self, subscribers: Sequence[SubscriberIn]) -> SubscribersUpserted:
        """Insert or replace subscribers, all or nothing; of a repeated number, the last wins."""
        # A number given twice is upserted twice, in order: the last one stands.
        subscribers = list({sub.msisdn: sub for sub in subscribers}.values())
        async with self._db.write() as conn:
            for i, sub in enumerate(subscribers):
                if not await catalog.operator_exists(conn, sub.operator_id):
                    raise errors.ValidationFailed(
                        f"subscribers[{i}].operator_id: no operator {sub.operator_id}",
                        errors=[
                            {"loc": ["subscribers", i, "operator_id"], "msg": "unknown operator"}
                        ],
                    )
            created, updated = await catalog.upsert_subscribers(
                conn, subscribers, source="admin", now_ms=self._clock.now_ms()
            )
        return SubscribersUpserted(upserted=created + updated, created=created, updated=updated)

    # --- clock -------------------------------------------------------------------

    def clock_view(self) -> ClockView:
        """The clock as the API shows it."""
        return ClockView(now=self._clock.now(), mode=self._clock.mode, scale=self._clock.scale)

    async def save_clock(self) -> None:
        """Persist the clock's anchor."""
        async with self._db.write() as conn:
            await catalog.save_clock(conn, self._clock.state())

    async def set_clock(self, mode: ClockMode, scale: float | None) -> ClockView:
        """Switch the clock's mode, continuing from the current simulation time."""
        if mode == "scaled" and scale is None:
            # Keep a scaled clock's speed; otherwise 60x (the 20-minute deadline in 20 s).
            scale = self._clock.scale if self._clock.mode == "scaled" else 60.0
        self._clock.set_mode(mode, scale or 1.0)
        await self.save_clock()
        self._scheduler.wake()
        self._webhooks.wake()
        log.info("clock_set", mode=mode, scale=self._clock.scale)
        return self.clock_view()

    async def advance(self, ms: int) -> tuple[int, int]:
        """Move the clock forward and fire everything that became due.

        Returns how many answers and expiries fired, and how many webhook attempts were
        still in flight when it returned.
        """
        if self._clock.now_ms() + ms >= _LATEST_MS:
            raise errors.ValidationFailed(
                "the clock cannot pass the year 9000",
                errors=[{"loc": ["by"], "msg": "too large"}],
            )
        # Counted from the scheduler's total: its background pass may fire some of what
        # falls due before this call's own pass does.
        fired_before = self._scheduler.fired_total
        self._clock.advance(ms)
        await self.save_clock()
        await self._scheduler.run_due()
        fired = self._scheduler.fired_total - fired_before
        # Webhook attempts that fell due are started before the advance returns, like
        # answers and expiries, but waited for only about one attempt's timeout: a hanging
        # receiver must not hold the clock (its retries go on in the background).
        in_flight = await self._webhooks.drain(self._webhook_wait)
        self._scheduler.wake()
        log.info("clock_advanced", by_ms=ms, fired=fired, webhooks_in_flight=in_flight)
        return fired, in_flight
