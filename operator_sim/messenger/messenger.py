"""The ``Messenger`` facade: what a messenger backend embeds to follow the decree.

It proves that users hold their numbers (:mod:`~operator_sim.messenger.possession`),
identifies them (:mod:`~operator_sim.messenger.identification`), gates sending on
their state, and suspends them on the operator's events, read from the feed
(:mod:`~operator_sim.messenger.events`) or received by webhook
(:mod:`~operator_sim.messenger.webhooks`). State lives in its own SQLite database,
which several instances (processes) may share: each holds a lease on the work it starts,
and recovers only the work of instances whose lease ran out. A background housekeeper
renews the lease, recovers such work and deletes at the operator the codes no user has
any more (:mod:`~operator_sim.messenger.cleanup`).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from ssl import SSLContext
from types import TracebackType
from typing import TYPE_CHECKING, TypedDict

from operator_sim.messenger.checks import Reason, UnknownEvent
from operator_sim.messenger.cleanup import CodeCleanup
from operator_sim.messenger.client import DEFAULT_MAX_RESPONSE_BYTES, OperatorClient, RetryPolicy
from operator_sim.messenger.errors import OperatorClientError
from operator_sim.messenger.events import EventFeed
from operator_sim.messenger.identification import IdentificationFlow, Outcome
from operator_sim.messenger.otp import Confirmation
from operator_sim.messenger.possession import PossessionFlow, PossessionPolicy, Verification
from operator_sim.messenger.steps import Observer, Reporter, Step
from operator_sim.messenger.store import (
    HistoryEntry,
    MessengerStore,
    UserRecord,
    VerificationRecord,
)
from operator_sim.messenger.webhooks import WebhookReceiver, WebhookReply
from operator_sim.wire import (
    IDENTIFICATION_DEADLINE,
    MAX_WAIT_SECONDS,
    ContractTerminatedEvent,
    Event,
    NumberPortedEvent,
    SmsMessage,
    SmsStatusChangedEvent,
)

if TYPE_CHECKING:
    from aiohttp import web

__all__ = ["LeasePolicy", "Messenger", "MessengerOptions", "Outcome", "Step"]

_current_user: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "operator_sim_messenger_user", default=None
)
_NOT_STARTED = "the Messenger is not started: use `async with Messenger(...)`"


@dataclass(frozen=True, slots=True)
class LeasePolicy:
    """How an instance holds its work in a database other instances may share.

    An instance that has not renewed its lease for ``ttl`` seconds is taken for gone: the
    others refuse its unfinished identifications (``interrupted``) and finish its code
    registrations. The housekeeper renews it every ``renew_every`` seconds, and at that
    pace also retries due code deletions and recovers the work of instances gone.
    ``clock`` is wall time (shared by the processes on one host); tests move it by hand.
    """

    ttl: float = 60.0
    renew_every: float = 15.0
    clock: Callable[[], float] = time.time


class MessengerOptions(TypedDict, total=False):
    """The keyword options of ``Messenger`` (``SyncMessenger`` takes the same)."""

    webhook_secret: str | None
    region: str
    answer_timeout: float
    poll_wait: int
    retry: RetryPolicy | None
    background_feed: bool
    feed_wait: int
    request_timeout: float
    observer: Observer | None
    max_response_bytes: int
    reveal_numbers: bool
    lease: LeasePolicy | None
    ssl: SSLContext | None
    possession: PossessionPolicy | None


@dataclass(frozen=True, slots=True)
class _Parts:
    """What a started Messenger runs on."""

    store: MessengerStore
    feed: EventFeed
    flow: IdentificationFlow
    cleanup: CodeCleanup
    possession: PossessionFlow


class Messenger:
    """A messenger backend's side of the decree: identify users, gate sending, follow events.

    ``base_url`` is the operator API's root (routing names the operator). State lives in
    the SQLite database at ``db_path``. Use as ``async with`` (or ``start``/``close``).

    Options: ``webhook_secret`` to receive webhooks (:meth:`webhook_app`); ``region`` for
    national numbers; ``answer_timeout`` (seconds) for an operator that goes silent;
    ``poll_wait`` and ``feed_wait`` (seconds, at most 60) for long polls;
    ``background_feed`` to follow the feeds in the background; ``retry`` for transient
    failures; ``request_timeout`` (seconds) per HTTP call; ``max_response_bytes`` read at
    most of a response; ``observer`` receives every :class:`Step`; ``reveal_numbers`` shows
    full phone numbers and what users typed in steps and log lines (masked by default);
    ``lease`` for several instances on one database; ``ssl``, the TLS context for an
    https operator (a private authority, a client certificate for mTLS); ``possession``
    for the one-time codes that prove a user holds a number (:meth:`start_verification`).
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
        lease: LeasePolicy | None = None,
        ssl: SSLContext | None = None,
        possession: PossessionPolicy | None = None,
    ) -> None:
        self._client = OperatorClient(
            base_url,
            api_key,
            retry=retry,
            timeout=request_timeout,
            on_retry=self._on_retry,
            max_response_bytes=max_response_bytes,
            ssl=ssl,
        )
        self._db_path = db_path
        self._webhook_secret = webhook_secret
        self._region = region
        self._answer_timeout = answer_timeout
        self._poll_wait = max(1, min(poll_wait, MAX_WAIT_SECONDS))
        self._feed_wait = max(1, min(feed_wait, MAX_WAIT_SECONDS))
        self._background_feed = background_feed
        self._report = Reporter(observer, reveal_numbers=reveal_numbers)
        self._lease = lease or LeasePolicy()
        self._possession = possession or PossessionPolicy()
        self._parts: _Parts | None = None
        self._inflight: dict[str, tuple[asyncio.Task[Outcome], tuple[str, bool, int | None]]] = {}
        self._housekeeper: asyncio.Task[None] | None = None
        self._cleanup_due = asyncio.Event()
        self._closing = False
        self._leased = False

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
        """Open the store, take a lease, finish what an instance that is gone left half
        done, and start the housekeeper (and the feed consumers, when asked for)."""
        store = await MessengerStore.open(self._db_path)
        feed = EventFeed(
            self._client,
            store,
            self.apply_event,
            report=self._report,
            wait=self._feed_wait,
            background=self._background_feed,
        )
        possession = PossessionFlow(
            self._client,
            store,
            report=self._report,
            policy=self._possession,
            region=self._region,
        )
        flow = IdentificationFlow(
            self._client,
            store,
            report=self._report,
            follow=feed.follow,
            cleanup=self._cleanup_due.set,
            clock=self._lease.clock,
            region=self._region,
            answer_timeout=self._answer_timeout,
            poll_wait=self._poll_wait,
            holds=possession.holds,
        )
        cleanup = CodeCleanup(self._client, store, report=self._report, clock=self._lease.clock)
        self._parts = _Parts(
            store=store, feed=feed, flow=flow, cleanup=cleanup, possession=possession
        )
        self._closing = False
        try:
            await self.recover()
            await feed.start()
        except BaseException:
            await self.close()  # a half-started messenger would leave its database open
            raise
        self._housekeeper = asyncio.create_task(self._housekeep(), name="messenger-housekeeper")

    async def close(self) -> None:
        """Stop background work, close the client and the store, give up the lease.

        An identification still running ends ``interrupted`` (its callers get that
        outcome); a code it was registering is deleted at the operator on a later start.
        """
        self._closing = True
        if self._housekeeper is not None:
            self._housekeeper.cancel()
            await asyncio.gather(self._housekeeper, return_exceptions=True)
            self._housekeeper = None
        running = [task for task, _ in self._inflight.values()]
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        self._inflight.clear()
        parts, self._parts = self._parts, None
        if parts is not None:
            await parts.feed.close()
        await self._client.close()
        if parts is not None:
            try:
                await parts.store.release_owner()
            finally:
                await parts.store.close()
        self._leased = False

    @property
    def store(self) -> MessengerStore:
        """The messenger's own database."""
        return self._started().store

    @property
    def client(self) -> OperatorClient:
        """The operator API client underneath."""
        return self._client

    async def recover(self) -> None:
        """One round of housekeeping, as the housekeeper runs it every ``renew_every``.

        Renew this instance's lease; finish the code registrations, and refuse
        (``interrupted``) the identifications, of instances whose lease ran out (a crash,
        or a restart: a closed instance gives its lease up); retry the due code deletions.
        """
        parts = self._started()
        now = self._lease.clock()
        held = await parts.store.hold_lease(now, self._lease.ttl)
        if self._leased and not held:
            self._report(
                "lease_lost",
                None,
                f"this instance's lease ({parts.store.owner}) ran out before it was renewed: "
                "other instances may have taken over its work",
            )
        self._leased = True
        await parts.store.forget_lapsed_owners(now)
        for pending in await parts.store.claim_registrations(now):
            await parts.flow.finish(pending)
        for user_id in await parts.store.interrupt_orphaned(now):
            self._report("refused", user_id, "interrupted: the instance identifying them is gone")
        await parts.cleanup.run()

    async def _housekeep(self) -> None:
        parts = self._started()
        loop = asyncio.get_running_loop()
        renewed = loop.time()
        # Whatever deletions a previous run left are tried at once, not when due.
        everything = True
        while True:
            try:
                await parts.cleanup.run(everything=everything)
                everything = False
            except Exception as exc:  # noqa: BLE001 (the housekeeper outlives any one failure)
                self._report("cleanup_error", None, f"deleting codes failed: {exc}")
            # Woken early when a code was queued; the lease is renewed on time regardless.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(renewed + self._lease.renew_every):
                    await self._cleanup_due.wait()
            self._cleanup_due.clear()
            if loop.time() - renewed < self._lease.renew_every:
                continue
            renewed = loop.time()
            try:
                await self.recover()
            except Exception as exc:  # noqa: BLE001 (the housekeeper outlives any one failure)
                self._report("housekeeping_error", None, str(exc))

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

    # --- proof of possession ---------------------------------------------------------

    async def start_verification(self, user_id: str, phone: str) -> Verification:
        """Send the user a fresh one-time code by SMS to the number they typed.

        Returns when it was sent and when it expires (``possession.ttl`` later, on the
        policy's clock). Raises ``InvalidPhone`` before anything is sent, and the client's
        error when the gateway refuses it (``RateLimited``: too many codes to the number).
        """
        return await self._started().possession.start(user_id, phone)

    async def confirm_phone(self, user_id: str, code: str) -> Confirmation:
        """Judge the code the user typed: ``CONFIRMED`` proves they hold the number.

        At most ``possession.max_attempts`` attempts (the last wrong one voids the code),
        until the code expires; the gateway's delivery reports play no part.
        """
        return await self._started().possession.confirm(user_id, code)

    async def verification(self, user_id: str) -> VerificationRecord | None:
        """The user's latest verification, with the gateway's last report on its SMS."""
        return await self.store.verification(user_id)

    async def sms_report(self, user_id: str) -> SmsMessage | None:
        """Ask the gateway how the user's latest code message stands (advisory: a report
        may come late or never, and never decides :meth:`confirm_phone`)."""
        return await self._started().possession.report(user_id)

    # --- identification ------------------------------------------------------------

    async def identify(
        self,
        user_id: str,
        phone: str,
        *,
        require_possession: bool = False,
        max_sim_swap_age: int | None = None,
    ) -> Outcome:
        """Identify a user by the phone number they typed: only a timely ``present`` does.

        ``require_possession`` refuses (``possession_unproven``) unless the user confirmed
        a code sent to this number (:meth:`confirm_phone`); ``max_sim_swap_age`` (hours,
        1 to 2400) also refuses (``sim_swapped``) when the operator holding the number
        reports a SIM swap within that time.

        Concurrent calls for one user with the same input share one identification (one
        request, one code); a call with other input waits for the running one first. When
        the messenger closes meanwhile, the outcome is ``interrupted``.
        """
        if max_sim_swap_age is not None and not 1 <= max_sim_swap_age <= 2400:
            raise ValueError("max_sim_swap_age is a number of hours from 1 to 2400")
        asked = (phone, require_possession, max_sim_swap_age)
        while True:
            running = self._inflight.get(user_id)
            if running is None:
                break
            task, typed = running
            if typed == asked:
                return await asyncio.shield(task)
            with contextlib.suppress(Exception):
                await asyncio.shield(task)
        if self._closing:
            return Outcome(
                user_id,
                identified=False,
                reason=Reason.INTERRUPTED,
                detail="the messenger closed before the identification began",
            )
        context = contextvars.copy_context()
        context.run(_current_user.set, user_id)
        task = asyncio.create_task(
            self._identify(user_id, phone, require_possession, max_sim_swap_age), context=context
        )
        self._inflight[user_id] = (task, asked)
        task.add_done_callback(lambda done: self._forget(user_id, done))
        return await asyncio.shield(task)

    async def _identify(
        self, user_id: str, phone: str, require_possession: bool, max_sim_swap_age: int | None
    ) -> Outcome:
        flow = self._started().flow
        try:
            return await flow.run(
                user_id,
                phone,
                require_possession=require_possession,
                max_sim_swap_age=max_sim_swap_age,
            )
        except asyncio.CancelledError:
            if not self._closing:
                raise
            # Cancelled by close(): the promise to the callers is an outcome, not an error.
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()
            return await flow.interrupted(user_id)

    def _forget(self, user_id: str, task: asyncio.Task[Outcome]) -> None:
        running = self._inflight.get(user_id)
        if running is not None and running[0] is task:
            del self._inflight[user_id]

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
        if isinstance(event, SmsStatusChangedEvent):
            sms = event.data
            fresh, owner = await self.store.apply_sms_status(
                event_id=event.id, sms_id=sms.id, status=sms.status
            )
            if fresh and owner is not None:
                why = f" ({sms.reason})" if sms.reason else ""
                self._report("sms_status", owner, f"{sms.id} {sms.status}{why}")
            return fresh
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
        return await self._started().feed.sync()

    def webhook_app(self) -> web.Application:
        """An aiohttp sub-app receiving the operator's signed webhooks at its root."""
        return self._receiver().app()

    async def receive_webhook(self, body: bytes, headers: Mapping[str, str]) -> WebhookReply:
        """Verify and apply one webhook from any web framework: answer what this returns."""
        return await self._receiver().receive(body, headers)

    def _receiver(self) -> WebhookReceiver:
        if self._webhook_secret is None:
            raise RuntimeError("Messenger(..., webhook_secret=...) is needed to receive webhooks")
        return WebhookReceiver(self.apply_event, self._webhook_secret)

    # --- plumbing ------------------------------------------------------------------

    def _started(self) -> _Parts:
        if self._parts is None:
            raise RuntimeError(_NOT_STARTED)
        return self._parts

    def _on_retry(self, method: str, path: str, exc: OperatorClientError, pause: float) -> None:
        self._report(
            "retry", _current_user.get(), f"{method} {path}: {exc}; again in {pause:.1f} s"
        )
