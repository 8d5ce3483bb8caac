"""Messengers: registering them, changing their webhook URL, rotating their credentials.

A rotated-out API key or webhook secret may keep working for a grace period of wall-clock
time (real clients rotate credentials in real time, whatever the simulation clock does).
At most two of each are valid at once: a second rotation ends the oldest at once.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable, Sequence
from datetime import timedelta

import structlog

from operator_sim import errors
from operator_sim.clock import SimClock, ms_to_datetime, wall_time
from operator_sim.domain.webhook_targets import WebhookPolicy
from operator_sim.server.auth import Authenticator
from operator_sim.server.wakeups import Wakeup
from operator_sim.store import Conn, Database, messengers
from operator_sim.store import outbox as outbox_table
from operator_sim.wire import (
    KeyRotated,
    Messenger,
    MessengerCreate,
    MessengerCreated,
    MessengerPatch,
    WebhookSecretRotated,
)

__all__ = ["Messengers", "new_api_key", "new_webhook_secret"]

log = structlog.get_logger("operator_sim.control")


def new_api_key() -> str:
    """A fresh messenger API key (256 random bits)."""
    return "osk_" + secrets.token_urlsafe(32)


def new_webhook_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` + base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


class Messengers:
    """The messengers registered with the simulated operators."""

    def __init__(
        self,
        db: Database,
        clock: SimClock,
        policy: WebhookPolicy,
        webhook_work: Wakeup,
        auth: Authenticator,
        secret_rotated: Callable[[str], None],
    ) -> None:
        self._db = db
        self._clock = clock
        self._policy = policy
        self._webhook_work = webhook_work
        self._auth = auth
        self._secret_rotated = secret_rotated

    def _check_target(self, url: str | None, own: Sequence[tuple[str, int]]) -> None:
        if url is None:
            return
        why = self._policy.refusal(url, own=own)
        if why is not None:
            raise errors.ValidationFailed(
                f"webhook_url: the server will not deliver there: {why}",
                errors=[{"loc": ["webhook_url"], "msg": why, "type": "webhook_target"}],
            )

    async def create(
        self, body: MessengerCreate, *, own: Sequence[tuple[str, int]] = ()
    ) -> MessengerCreated:
        """Register a messenger with fresh credentials (returned once).

        ``own`` is where this server listens: a webhook URL pointing there is refused.
        """
        self._check_target(body.webhook_url, own)
        api_key, secret = new_api_key(), body.webhook_secret or new_webhook_secret()
        now = self._clock.now_ms()
        ok = await self._db.run(
            lambda conn: messengers.insert_messenger(
                conn,
                messenger_id=body.id,
                name=body.name,
                webhook_url=body.webhook_url,
                api_key=api_key,
                webhook_secret=secret,
                demo=False,
                source="admin",
                now_ms=now,
            )
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

    async def list_messengers(self) -> list[Messenger]:
        """Every messenger, without secrets."""
        return await self._db.read(messengers.list_messengers)

    async def get(self, messenger_id: str) -> Messenger:
        """One messenger, without secrets."""
        found = await self._db.read(lambda conn: messengers.get_messenger(conn, messenger_id))
        if found is None:
            raise errors.NotFound(kind="messenger", ident=messenger_id)
        return found

    async def patch(
        self, messenger_id: str, patch: MessengerPatch, *, own: Sequence[tuple[str, int]] = ()
    ) -> Messenger:
        """Change a messenger's name or webhook URL; pending deliveries follow the URL."""
        new_url = "webhook_url" in patch.model_fields_set
        if new_url:
            self._check_target(patch.webhook_url, own)

        async def unit(conn: Conn) -> tuple[Messenger, int]:
            if not await messengers.messenger_exists(conn, messenger_id):
                raise errors.NotFound(kind="messenger", ident=messenger_id)
            await messengers.update_messenger(
                conn,
                messenger_id,
                name=patch.name,
                webhook_url=patch.webhook_url,
                set_webhook_url=new_url,
            )
            moved = 0
            if new_url:
                moved = await outbox_table.redirect_pending_webhooks(
                    conn, messenger_id, patch.webhook_url
                )
            found = await messengers.get_messenger(conn, messenger_id)
            if found is None:  # cannot happen: read in the same transaction
                raise errors.StoreError("messenger vanished after update")
            return found, moved

        found, moved = await self._db.run(unit)
        if new_url:
            self._webhook_work.wake()
        log.info(
            "messenger_updated",
            messenger_id=messenger_id,
            webhook_changed=new_url,
            pending_deliveries=moved,
        )
        return found

    async def rotate_key(self, messenger_id: str, grace: timedelta | None) -> KeyRotated:
        """A new API key; the current one works for ``grace`` more (wall clock), or stops now."""
        api_key = new_api_key()
        until = _grace_end(grace)
        found = await self._db.run(
            lambda conn: messengers.rotate_key(
                conn, messenger_id, api_key=api_key, previous_until_ms=until
            )
        )
        if not found:
            raise errors.NotFound(kind="messenger", ident=messenger_id)
        self._auth.forget()
        log.info("messenger_key_rotated", messenger_id=messenger_id, grace_ms=_grace_ms(grace))
        return KeyRotated(
            api_key=api_key, previous_valid_until=None if until is None else ms_to_datetime(until)
        )

    async def rotate_webhook_secret(
        self, messenger_id: str, grace: timedelta | None
    ) -> WebhookSecretRotated:
        """A new webhook secret; webhooks carry the current one's signature too for ``grace``
        more (wall clock), or stop at once."""
        secret = new_webhook_secret()
        until = _grace_end(grace)
        found = await self._db.run(
            lambda conn: messengers.rotate_webhook_secret(
                conn, messenger_id, secret=secret, previous_until_ms=until
            )
        )
        if not found:
            raise errors.NotFound(kind="messenger", ident=messenger_id)
        self._secret_rotated(messenger_id)
        log.info(
            "messenger_webhook_secret_rotated",
            messenger_id=messenger_id,
            grace_ms=_grace_ms(grace),
        )
        return WebhookSecretRotated(
            webhook_secret=secret,
            previous_valid_until=None if until is None else ms_to_datetime(until),
        )


def _grace_ms(grace: timedelta | None) -> int:
    return 0 if grace is None else round(grace.total_seconds() * 1000)


def _grace_end(grace: timedelta | None) -> int | None:
    """The wall-clock epoch milliseconds a grace period ends at; None for none."""
    ms = _grace_ms(grace)
    return None if ms <= 0 else round(wall_time() * 1000) + ms
