"""Messengers: registering them with fresh credentials, and changing their webhook URL."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence

import structlog

from operator_sim import errors
from operator_sim.clock import SimClock
from operator_sim.domain.webhook_targets import WebhookPolicy
from operator_sim.server.wakeups import Wakeup
from operator_sim.store import Conn, Database, messengers
from operator_sim.store import outbox as outbox_table
from operator_sim.wire import Messenger, MessengerCreate, MessengerCreated, MessengerPatch

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
        self, db: Database, clock: SimClock, policy: WebhookPolicy, webhook_work: Wakeup
    ) -> None:
        self._db = db
        self._clock = clock
        self._policy = policy
        self._webhook_work = webhook_work

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
        api_key, secret = new_api_key(), new_webhook_secret()
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
