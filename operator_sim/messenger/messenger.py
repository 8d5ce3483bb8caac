"""The ``Messenger`` facade: the decree's identification flow for a messenger backend.

``identify`` normalises the number, routes it, asks the operator, waits for the answer
(never past the 20-minute deadline), and identifies the user only on a timely
``present``, after registering a fresh unguessable code. Everything else refuses.
Events (terminations, ports) suspend users until they are identified again.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import math
import secrets
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from operator_sim.messenger.checks import Reason, verdict
from operator_sim.messenger.client import MAX_WAIT, OperatorClient, RetryPolicy
from operator_sim.messenger.errors import (
    ApiError,
    Conflict,
    InvalidPhone,
    InvalidResponse,
    NotFound,
    OperatorClientError,
    TransportError,
)
from operator_sim.messenger.events import EventFeed
from operator_sim.messenger.phone import normalise_phone
from operator_sim.messenger.store import CodeRecord, HistoryEntry, MessengerStore, UserRecord
from operator_sim.messenger.webhooks import WebhookReceiver
from operator_sim.wire import (
    IDENTIFICATION_DEADLINE,
    ContractTerminatedEvent,
    Event,
    IdentificationRequest,
    NumberPortedEvent,
    format_timestamp,
)

if TYPE_CHECKING:
    from aiohttp import web

__all__ = ["Messenger", "Outcome", "Step"]

DEFAULT_ANSWER_TIMEOUT = IDENTIFICATION_DEADLINE.total_seconds()
_CODE_BYTES = 32
_current_user: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "operator_sim_messenger_user", default=None
)


@dataclass(frozen=True, slots=True)
class Outcome:
    """How an identification ended."""

    user_id: str
    identified: bool
    reason: Reason
    msisdn: str | None = None
    operator_id: str | None = None
    request_id: str | None = None
    code: str | None = None
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class Step:
    """One thing the messenger did or saw, for logs, demos and tests."""

    kind: str
    user_id: str | None
    message: str


Observer = Callable[[Step], None]


def _describe(req: IdentificationRequest) -> str:
    due = format_timestamp(req.due_at)
    if req.status == "expired":
        return f"{req.id} expired unanswered at its deadline {due}"
    if req.status == "pending" or req.answered_at is None:
        return f"{req.id} still pending (due {due})"
    late = " (late)" if req.answered_at > req.due_at else ""
    return f"{req.id} answered {req.result} at {format_timestamp(req.answered_at)}{late}, due {due}"


def _reason_of(exc: OperatorClientError) -> Reason:
    if isinstance(exc, InvalidResponse):
        return Reason.INVALID_RESPONSE
    if isinstance(exc, TransportError) or (isinstance(exc, ApiError) and exc.transient):
        return Reason.OPERATOR_UNREACHABLE
    return Reason.OPERATOR_REFUSED


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
        answer_timeout: float = DEFAULT_ANSWER_TIMEOUT,
        poll_wait: int = 25,
        retry: RetryPolicy | None = None,
        background_feed: bool = False,
        feed_wait: int = 25,
        request_timeout: float = 15.0,
        observer: Observer | None = None,
    ) -> None:
        self._client = OperatorClient(
            base_url, api_key, retry=retry, timeout=request_timeout, on_retry=self._on_retry
        )
        self._db_path = db_path
        self._webhook_secret = webhook_secret
        self._region = region
        self._answer_timeout = answer_timeout
        self._poll_wait = max(1, min(poll_wait, MAX_WAIT))
        self._feed_wait = max(1, min(feed_wait, MAX_WAIT))
        self._background_feed = background_feed
        self._observer = observer
        self._store: MessengerStore | None = None
        self._inflight: dict[str, tuple[asyncio.Task[Outcome], str]] = {}
        self._feed: EventFeed | None = None
        self._chores: set[asyncio.Task[None]] = set()
        self._asked: dict[str, str] = {}

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
            report=self._emit,
            wait=self._feed_wait,
            background=self._background_feed,
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
            await self._finish(pending)
        for user_id in await self.store.interrupt_unfinished():
            self._emit("refused", user_id, "identification interrupted by a restart: refused")

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
        """Identify a user by the phone number they typed; see the module docstring.

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
        task = asyncio.create_task(self._identify(user_id, phone), context=context)
        self._inflight[user_id] = (task, phone)
        task.add_done_callback(lambda done: self._forget(user_id, done))
        return await asyncio.shield(task)

    def _forget(self, user_id: str, task: asyncio.Task[Outcome]) -> None:
        running = self._inflight.get(user_id)
        if running is not None and running[0] is task:
            del self._inflight[user_id]

    async def _identify(self, user_id: str, phone: str) -> Outcome:
        store = self.store
        for pending in await store.registrations(user_id):
            await self._finish(pending)
        current = await store.user(user_id)
        try:
            msisdn = normalise_phone(phone, self._region)
        except InvalidPhone as exc:
            return await self._refuse(user_id, Reason.INVALID_PHONE, str(exc))
        self._emit("normalised", user_id, f"{phone!r} is {msisdn}")
        if current is not None and current.state == "identified" and current.msisdn == msisdn:
            self._emit("identified", user_id, "already identified with this number")
            return Outcome(
                user_id,
                identified=True,
                reason=Reason.ALREADY_IDENTIFIED,
                msisdn=msisdn,
                operator_id=current.operator_id,
                request_id=current.request_id,
                code=current.code,
            )
        await store.start_identification(user_id, msisdn, None, None)
        try:
            routing = await self._client.route(msisdn)
        except NotFound:
            return await self._refuse(
                user_id, Reason.UNROUTABLE, "no operator serves this number", msisdn=msisdn
            )
        except OperatorClientError as exc:
            return await self._refuse(user_id, _reason_of(exc), str(exc), msisdn=msisdn)
        operator_id = routing.operator_id
        ported = " (ported)" if routing.ported else ""
        self._emit("routed", user_id, f"{msisdn} is served by {operator_id}{ported}")
        await store.start_identification(user_id, msisdn, operator_id, None)
        self._feed_or_fail().follow(operator_id)

        try:
            req = await self._ask(user_id, operator_id, msisdn)
        except TimeoutError:
            return await self._refuse(
                user_id,
                Reason.NO_ANSWER,
                f"no answer within {self._answer_timeout:g} s: the operator went silent",
                msisdn=msisdn,
                operator_id=operator_id,
                request_id=self._asked.pop(user_id, None),
            )
        except OperatorClientError as exc:
            return await self._refuse(
                user_id,
                _reason_of(exc),
                str(exc),
                msisdn=msisdn,
                operator_id=operator_id,
                request_id=self._asked.pop(user_id, None),
            )
        self._asked.pop(user_id, None)
        reason = verdict(req)
        self._emit("answered", user_id, _describe(req))
        if reason is not Reason.PRESENT:
            return await self._refuse(
                user_id,
                reason or Reason.NO_ANSWER,
                _describe(req),
                msisdn=msisdn,
                operator_id=operator_id,
                request_id=req.id,
            )
        code = CodeRecord(
            code=secrets.token_urlsafe(_CODE_BYTES),
            user_id=user_id,
            state="registering",
            operator_id=operator_id,
            request_id=req.id,
            msisdn=msisdn,
        )
        await store.begin_registration(
            user_id, code=code.code, operator_id=operator_id, request_id=req.id, msisdn=msisdn
        )
        return await self._finish(code)

    async def _ask(self, user_id: str, operator_id: str, msisdn: str) -> IdentificationRequest:
        """Send the request and wait for its answer; ``TimeoutError`` when our timer ends."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + self._answer_timeout
        key = "idn-" + secrets.token_urlsafe(18)
        # No long poll on the POST: the request id is stored before any waiting starts.
        async with asyncio.timeout_at(deadline):
            req = await self._client.create_request(operator_id, msisdn, idempotency_key=key)
        self._asked[user_id] = req.id
        await self.store.start_identification(user_id, msisdn, operator_id, req.id)
        self._emit(
            "sent",
            user_id,
            f"request {req.id} to {operator_id}, due {format_timestamp(req.due_at)}",
        )
        # Never wait past the operator's own deadline, nor past ours.
        deadline = min(deadline, started + (req.due_at - req.received_at).total_seconds())
        while verdict(req) is None:
            if loop.time() >= deadline:
                raise TimeoutError
            async with asyncio.timeout_at(deadline):
                req = await self._client.get_request(
                    operator_id, req.id, msisdn=msisdn, wait=self._wait(deadline)
                )
        return req

    def _wait(self, deadline: float) -> int:
        remaining = deadline - asyncio.get_running_loop().time()
        return max(1, min(self._poll_wait, math.ceil(remaining)))

    async def _finish(self, code: CodeRecord) -> Outcome:
        """Register a code the store holds as ``registering``, and settle the user."""
        refuse = {
            "msisdn": code.msisdn,
            "operator_id": code.operator_id,
            "request_id": code.request_id,
            "abandon_code": code.code,
        }
        try:
            await self._client.register_code(
                code.operator_id, code.request_id, code.code, msisdn=code.msisdn
            )
        except Conflict as exc:
            return await self._refuse(code.user_id, Reason.CODE_REJECTED, exc.detail, **refuse)
        except OperatorClientError as exc:
            # The operator may hold the code even though we could not read its answer.
            self._chore(self._delete_quietly(code.operator_id, code.code))
            return await self._refuse(code.user_id, _reason_of(exc), str(exc), **refuse)
        identified, replaced = await self.store.finish_registration(code)
        if replaced is not None:
            self._chore(self._delete_quietly(replaced.operator_id, replaced.code))
        if not identified:
            self._emit("suspended", code.user_id, "the contract ended while registering")
            return Outcome(
                code.user_id,
                identified=False,
                reason=Reason.CODE_REJECTED,
                msisdn=code.msisdn,
                operator_id=code.operator_id,
                request_id=code.request_id,
                detail="the number's contract ended while the code was registered",
            )
        self._emit("identified", code.user_id, f"code registered with {code.operator_id}")
        return Outcome(
            code.user_id,
            identified=True,
            reason=Reason.PRESENT,
            msisdn=code.msisdn,
            operator_id=code.operator_id,
            request_id=code.request_id,
            code=code.code,
        )

    async def _refuse(
        self,
        user_id: str,
        reason: Reason,
        detail: str,
        *,
        msisdn: str | None = None,
        operator_id: str | None = None,
        request_id: str | None = None,
        abandon_code: str | None = None,
    ) -> Outcome:
        await self.store.refuse(
            user_id,
            reason.value,
            msisdn=msisdn,
            operator_id=operator_id,
            request_id=request_id,
            abandon_code=abandon_code,
        )
        old = await self.store.retire_active(user_id, "superseded")
        if old is not None:
            self._chore(self._delete_quietly(old.operator_id, old.code))
        self._emit("refused", user_id, f"{reason.value}: {detail}")
        return Outcome(
            user_id,
            identified=False,
            reason=reason,
            msisdn=msisdn,
            operator_id=operator_id,
            request_id=request_id,
            detail=detail,
        )

    async def _delete_quietly(self, operator_id: str, code: str) -> None:
        with contextlib.suppress(OperatorClientError):
            await self._client.delete_code(operator_id, code)

    # --- events --------------------------------------------------------------------

    async def apply_event(self, event: Event) -> bool:
        """Apply one event once (deduplicated by id); returns whether it was new."""
        code: str | None = None
        reason: str | None = None
        if isinstance(event, ContractTerminatedEvent):
            code, reason = event.data.code, "contract_terminated"
        elif isinstance(event, NumberPortedEvent):
            code, reason = event.data.code, "number_ported"
        fresh, user_id = await self.store.apply_ending(event_id=event.id, code=code, reason=reason)
        if user_id is not None:
            self._emit("suspended", user_id, f"{event.type} from {event.operator_id}")
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

    def _feed_or_fail(self) -> EventFeed:
        if self._feed is None:
            raise RuntimeError("the Messenger is not started: use `async with Messenger(...)`")
        return self._feed

    def _chore(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._chores.add(task)
        task.add_done_callback(self._chores.discard)

    def _emit(self, kind: str, user_id: str | None, message: str) -> None:
        if self._observer is not None:
            self._observer(Step(kind, user_id, message))

    def _on_retry(self, method: str, path: str, exc: OperatorClientError, pause: float) -> None:
        self._emit("retry", _current_user.get(), f"{method} {path}: {exc}; again in {pause:.1f} s")
