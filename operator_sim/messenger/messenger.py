"""The ``Messenger`` facade: what a messenger backend embeds to follow the decree.

It identifies users (:mod:`~operator_sim.messenger.identification`), gates sending on
their state, and suspends them on the operator's events, read from the feed
(:mod:`~operator_sim.messenger.events`) or received by webhook
(:mod:`~operator_sim.messenger.webhooks`). State lives in its own SQLite database.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import Coroutine
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from operator_sim.messenger.checks import UnknownEvent
from operator_sim.messenger.client import DEFAULT_MAX_RESPONSE_BYTES, OperatorClient, RetryPolicy
from operator_sim.messenger.errors import OperatorClientError
from operator_sim.messenger.events import EventFeed
from operator_sim.messenger.identification import IdentificationFlow, Outcome
from operator_sim.messenger.steps import Observer, Reporter, Step
from operator_sim.messenger.store import HistoryEntry, MessengerStore, UserRecord
from operator_sim.messenger.webhooks import WebhookReceiver
from operator_sim.wire import (
    IDENTIFICATION_DEADLINE,
    MAX_WAIT_SECONDS,
    ContractTerminatedEvent,
    Event,
    NumberPortedEvent,
)

if TYPE_CHECKING:
    from aiohttp import web

__all__ = ["Messenger", "Outcome", "Step"]

_current_user: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "operator_sim_messenger_user", default=None
)


class Messenger:
    """A messenger backend's side of the decree: identify users, gate sending, follow events.

    ``base_url`` is the operator API's root (routing names the operator). State lives in
    the SQLite database at ``db_path``. Use as ``async with``.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        db_path: Path | str,
        webhook_secret: str | None = None,
        region: str = "RU",
        answer_timeout: float = IDENTIFICATION_DEADLINE.total_seconds(),
        poll_wait: int = 25,
        retry: RetryPolicy | None = None,
        background_feed: bool = False,
        feed_wait: int = 25,
        request_timeout: float = 15.0,
        observer: Observer | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        reveal_numbers: bool = False,
    ) -> None:
        self._client = OperatorClient(
            base_url,
            api_key,
            retry=retry,
            timeout=request_timeout,
            on_retry=self._on_retry,
            max_response_bytes=max_response_bytes,
        )
        self._db_path = db_path
        self._webhook_secret = webhook_secret
        self._region = region
        self._answer_timeout = answer_timeout
        self._poll_wait = max(1, min(poll_wait, MAX_WAIT_SECONDS))
        self._feed_wait = max(1, min(feed_wait, MAX_WAIT_SECONDS))
        self._background_feed = background_feed
        self._report = Reporter(observer, reveal_numbers=reveal_numbers)
        self._store: MessengerStore | None = None
        self._inflight: dict[str, tuple[asyncio.Task[Outcome], str]] = {}
        self._feed: EventFeed | None = None
        self._flow: IdentificationFlow | None = None
        self._chores: set[asyncio.Task[None]] = set()

    # --- lifecycle -----------------------------------------------------------------

    async def __aenter__(self) -> Messenger:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(self) -> None:
        """Open the store, finish what a crash left half done, start the feed consumer."""
        self._store = await MessengerStore.open(self._db_path)
        self._feed = EventFeed(
            self._client,
            self._store,
            self.apply_event,
            report=self._report,
            wait=self._feed_wait,
            background=self._background_feed,
        )
        self._flow = IdentificationFlow(
            self._client,
            self._store,
            report=self._report,
            follow=self._feed.follow,
            discard=self._discard,
            region=self._region,
            answer_timeout=self._answer_timeout,
            poll_wait=self._poll_wait,
        )
        await self.recover()
        await self._feed.start()

    async def close(self) -> None:
        """Stop background work, close the client and the store."""
        tasks = [*(task for task, _ in self._inflight.values()), *self._chores]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._inflight.clear()
        if self._feed is not None:
            await self._feed.close()
            self._feed = None
        self._flow = None
        await self._client.close()
        if self._store is not None:
            await self._store.close()
            self._store = None

    @property
    def store(self) -> MessengerStore:
        """The messenger's own database."""
        if self._store is None:
            raise RuntimeError("the Messenger is not started: use `async with Messenger(...)`")
        return self._store

    @property
    def client(self) -> OperatorClient:
        """The operator API client underneath."""
        return self._client

    async def recover(self) -> None:
        """Finish code registrations a crash interrupted; refuse identifications it cut off."""
        for pending in await self.store.registrations():
            await self._flow_or_fail().finish(pending)
        for user_id in await self.store.interrupt_unfinished():
            self._report("refused", user_id, "identification interrupted by a restart: refused")

    # --- the gate ------------------------------------------------------------------

    async def can_send(self, user_id: str) -> bool:
        """The decree's gate: true only while the user's identification stands."""
        user = await self.store.user(user_id)
        return user is not None and user.state == "identified"

    async def user(self, user_id: str) -> UserRecord | None:
        """The user's current record."""
        return await self.store.user(user_id)

    async def history(self, user_id: str) -> list[HistoryEntry]:
        """Every state the user went through, oldest first."""
        return await self.store.history(user_id)

    # --- identification ------------------------------------------------------------

    async def identify(self, user_id: str, phone: str) -> Outcome:
        """Identify a user by the phone number they typed: only a timely ``present`` does.

        Concurrent calls for one user with the same input share one identification (one
        request, one code); a call with other input waits for the running one first.
        """
        while True:
            running = self._inflight.get(user_id)
            if running is None:
                break
            task, typed = running
            if typed == phone:
                return await asyncio.shield(task)
            with contextlib.suppress(Exception):
                await asyncio.shield(task)
        context = contextvars.copy_context()
        context.run(_current_user.set, user_id)
        task = asyncio.create_task(self._flow_or_fail().run(user_id, phone), context=context)
        self._inflight[user_id] = (task, phone)
        task.add_done_callback(lambda done: self._forget(user_id, done))
        return await asyncio.shield(task)

    def _forget(self, user_id: str, task: asyncio.Task[Outcome]) -> None:
        running = self._inflight.get(user_id)
        if running is not None and running[0] is task:
            del self._inflight[user_id]

    async def _delete_quietly(self, operator_id: str, code: str) -> None:
        with contextlib.suppress(OperatorClientError):
            await self._client.delete_code(operator_id, code)

    # --- events --------------------------------------------------------------------

    async def apply_event(self, event: Event | UnknownEvent) -> bool:
        """Apply one event once (deduplicated by id); returns whether it was new.

        An event of a type this library does not know is skipped and reported
        (``event_skipped``): the contract lets operators add types.
        """
        if isinstance(event, UnknownEvent):
            self._report(
                "event_skipped",
                None,
                f"{event.operator_id} sent event {event.id} of unknown type {event.type}: skipped",
            )
            return False
        code: str | None = None
        reason: str | None = None
        if isinstance(event, ContractTerminatedEvent):
            code, reason = event.data.code, "contract_terminated"
        elif isinstance(event, NumberPortedEvent):
            code, reason = event.data.code, "number_ported"
        fresh, user_id = await self.store.apply_ending(event_id=event.id, code=code, reason=reason)
        if user_id is not None:
            self._report("suspended", user_id, f"{event.type} from {event.operator_id}")
        return fresh

    async def sync_events(self) -> int:
        """Pull and apply every pending event from each operator asked so far, once."""
        return await self._feed_or_fail().sync()

    def webhook_app(self) -> web.Application:
        """An aiohttp sub-app receiving the operator's signed webhooks at its root."""
        if self._webhook_secret is None:
            raise RuntimeError("Messenger(..., webhook_secret=...) is needed to receive webhooks")
        return WebhookReceiver(self.apply_event, self._webhook_secret).app()

    # --- plumbing ------------------------------------------------------------------

    def _flow_or_fail(self) -> IdentificationFlow:
        if self._flow is None:
            raise RuntimeError("the Messenger is not started: use `async with Messenger(...)`")
        return self._flow

    def _discard(self, operator_id: str, code: str) -> None:
        self._chore(self._delete_quietly(operator_id, code))

    def _feed_or_fail(self) -> EventFeed:
        if self._feed is None:
            raise RuntimeError("the Messenger is not started: use `async with Messenger(...)`")
        return self._feed

    def _chore(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._chores.add(task)
        task.add_done_callback(self._chores.discard)

    def _on_retry(self, method: str, path: str, exc: OperatorClientError, pause: float) -> None:
        self._report(
            "retry", _current_user.get(), f"{method} {path}: {exc}; again in {pause:.1f} s"
        )
