"""The webhook worker: pushes outbox events to messengers, signed per Standard Webhooks.

One background task owned by the application reads due attempts from the database (so a
restart resumes them) and runs each attempt as its own task, at most a few at a time per
messenger: a slow receiver delays only its own messenger's deliveries. Retries follow
``domain.delivery``'s schedule on the simulation clock; ``webhook-timestamp`` is wall time.

While a rotated-out webhook secret is in its grace period (wall clock), every attempt
carries two signatures, the new secret's first (``v1,<new> v1,<old>``), so a receiver
holding either verifies it.
"""

from __future__ import annotations

import asyncio
import functools
import random
import ssl
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import aiohttp
import structlog
from standardwebhooks import Webhook

from operator_sim import __version__
from operator_sim.clock import SimClock, wall_time
from operator_sim.domain.delivery import next_attempt_at, parse_retry_after
from operator_sim.domain.webhook_targets import WebhookPolicy
from operator_sim.server.metrics import Metrics
from operator_sim.server.waiters import DELIVERIES_CHANGED, Waiters
from operator_sim.server.wakeups import Wakeup
from operator_sim.store import Database, messengers
from operator_sim.store import outbox as outbox_table
from operator_sim.store.messengers import WebhookSecrets
from operator_sim.store.outbox import AttemptRecord, WebhookDue

log = structlog.get_logger("operator_sim.webhooks")

_MAX_SLEEP = 30.0
_BATCH = 500
_RESPONSE_READ_LIMIT = 64 * 1024


def signed_headers(
    signer: Webhook,
    *,
    event_id: str,
    body: str,
    sent_at: datetime,
    also: Sequence[Webhook] = (),
) -> dict[str, str]:
    """The Standard Webhooks headers for one attempt (``webhook-id`` is the event id).

    ``also`` signs with more secrets: their signatures follow, space-separated.
    """
    signatures = [s.sign(event_id, sent_at, body) for s in (signer, *also)]
    return {
        "content-type": "application/json",
        "user-agent": f"operator-sim/{__version__}",
        "webhook-id": event_id,
        "webhook-timestamp": str(int(sent_at.timestamp())),
        "webhook-signature": " ".join(signatures),
    }


@dataclass(frozen=True, slots=True)
class _Signers:
    """A messenger's signing secrets: the current one, and a previous one in its grace."""

    current: Webhook
    previous: Webhook | None
    previous_until_ms: int | None

    @classmethod
    def of(cls, secrets: WebhookSecrets) -> _Signers:
        previous = None if secrets.previous is None else Webhook(secrets.previous)
        return cls(Webhook(secrets.current), previous, secrets.previous_until_ms)

    def in_grace(self, now_ms: float) -> tuple[Webhook, ...]:
        """The previous secret's signer while its grace period lasts."""
        if self.previous is None or self.previous_until_ms is None:
            return ()
        return (self.previous,) if now_ms < self.previous_until_ms else ()


class WebhookWorker:
    """Delivers pending webhook attempts as they fall due."""

    def __init__(
        self,
        db: Database,
        clock: SimClock,
        metrics: Metrics,
        work: Wakeup,
        waiters: Waiters,
        *,
        timeout: float,
        per_messenger: int,
        policy: WebhookPolicy,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._db = db
        self._clock = clock
        self._metrics = metrics
        self._timeout = timeout
        self._per_messenger = per_messenger
        self._policy = policy
        self._work = work
        self._waiters = waiters
        self._inflight: dict[str, asyncio.Task[None]] = {}
        self._limits: defaultdict[str, asyncio.Semaphore] = defaultdict(
            lambda: asyncio.Semaphore(self._per_messenger)
        )
        self._signers: dict[str, _Signers] = {}
        # Bumped by forget_signers(): a lookup that raced a rotation reads again.
        self._signers_generation = 0
        self._ssl = ssl_context
        self._rng = random.Random()  # jitter only; nothing depends on its sequence  # noqa: S311
        self._session: aiohttp.ClientSession | None = None

    def wake(self) -> None:
        """Look for due attempts now (new events, a replay, or the clock moved)."""
        self._work.wake()

    def forget_signers(self, messenger_id: str) -> None:
        """Read a messenger's secrets again before its next attempt (after a rotation)."""
        self._signers.pop(messenger_id, None)
        self._signers_generation += 1

    async def _signer(self, messenger_id: str) -> _Signers | None:
        signers = self._signers.get(messenger_id)
        while signers is None:
            generation = self._signers_generation
            secrets = await self._db.read(
                lambda conn: messengers.webhook_secrets(conn, messenger_id)
            )
            if secrets is None:
                return None
            if generation == self._signers_generation:
                signers = self._signers[messenger_id] = _Signers.of(secrets)
        return signers

    def _dispatch(self, due: Sequence[WebhookDue]) -> None:
        for item in due:
            if item.event_id in self._inflight:
                continue
            task = asyncio.create_task(self._attempt(item), name=f"webhook-{item.event_id}")
            self._inflight[item.event_id] = task
            task.add_done_callback(functools.partial(self._done, item.event_id))

    def _done(self, event_id: str, _task: asyncio.Task[None]) -> None:
        self._inflight.pop(event_id, None)
        # Refill when half the batch is done, not after every attempt: each pass queries.
        if len(self._inflight) <= _BATCH // 2:
            self._work.wake()

    async def _due(self) -> list[WebhookDue]:
        now, limit = self._clock.now_ms(), _BATCH + len(self._inflight)
        return await self._db.read(lambda conn: outbox_table.due_webhooks(conn, now, limit))

    async def drain(self, wait_s: float) -> int:
        """Start every attempt that is due now; wait up to ``wait_s`` seconds for them.

        Retries that fall due meanwhile are started too. Returns how many attempts are
        still in flight when it returns; they go on in the background.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while True:
            self._dispatch(await self._due())
            remaining = deadline - loop.time()
            if not self._inflight or remaining <= 0:
                return len(self._inflight)
            await asyncio.wait(
                list(self._inflight.values()),
                timeout=remaining,
                return_when=asyncio.FIRST_COMPLETED,
            )

    async def _post(self, item: WebhookDue) -> tuple[int | None, str | None, float | None]:
        refused = self._policy.refusal(item.url)
        if refused is not None:
            return None, f"not delivered: {refused}", None
        signer = await self._signer(item.messenger_id)
        if signer is None:
            return None, "messenger no longer registered", None
        if self._session is None:
            return None, "worker stopped", None
        now = wall_time()
        sent_at = datetime.fromtimestamp(int(now), tz=UTC)
        headers = signed_headers(
            signer.current,
            event_id=item.event_id,
            body=item.body,
            sent_at=sent_at,
            also=signer.in_grace(now * 1000),
        )
        try:
            async with self._session.post(
                item.url, data=item.body.encode(), headers=headers, allow_redirects=False
            ) as resp:
                await resp.content.read(_RESPONSE_READ_LIMIT)
                return resp.status, None, parse_retry_after(resp.headers.get("Retry-After"))
        except TimeoutError:
            return None, f"no response within {self._timeout:g} s", None
        except aiohttp.ClientError as exc:
            return None, f"{type(exc).__name__}: {exc}"[:300], None

    async def _attempt(self, item: WebhookDue) -> None:
        async with self._limits[item.messenger_id]:
            now = self._clock.now_ms()
            # Under a manual clock an attempt happens at its scheduled time; otherwise at
            # the real moment, which is later when the server was down.
            at = item.due_at if self._clock.mode == "manual" else max(item.due_at, now)
            try:
                status, error, retry_after = await self._post(item)
            except Exception as exc:  # noqa: BLE001 (a failed attempt is recorded, never lost)
                status, error, retry_after = None, f"{type(exc).__name__}: {exc}"[:300], None
            delivered = status is not None and 200 <= status < 300
            if status is not None and not delivered:
                error = f"HTTP {status}"
            next_at = (
                None
                if delivered
                else next_attempt_at(
                    base_ms=item.base,
                    attempt=item.attempt,
                    now_ms=at,
                    retry_after_s=retry_after,
                    rng=self._rng,
                )
            )
            # Concurrent attempts' records share the database's batches: one commit for many.
            record = AttemptRecord(
                event_id=item.event_id,
                attempt=item.attempt,
                base=item.base,
                at=at,
                status=status,
                error=error if not delivered else None,
                delivered=delivered,
                next_at=next_at,
            )
            await self._db.run(lambda conn: outbox_table.record_attempts(conn, [record]))
            self._waiters.notify(DELIVERIES_CHANGED)
        outcome = "delivered" if delivered else ("retry" if next_at is not None else "failed")
        self._metrics.webhook_attempts.labels(outcome).inc()
        if delivered and at > item.deliver_by:
            self._metrics.deliver_by_missed.labels("webhook").inc()
        log.info(
            "webhook_attempt",
            event_id=item.event_id,
            messenger_id=item.messenger_id,
            attempt=item.attempt + 1,
            outcome=outcome,
            status=status,
            error=error,
        )

    async def _sleep_seconds(self) -> float | None:
        skip = set(self._inflight)
        due = await self._db.read(lambda conn: outbox_table.next_webhook_due(conn, skip=skip))
        return None if due is None else self._clock.real_seconds_until(due)

    async def run(self) -> None:
        """The background loop, until cancelled."""
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self._timeout),
            # An https receiver is verified against the system's authorities, or against
            # --webhook-ca when given.
            connector=aiohttp.TCPConnector(limit=100, ssl=self._ssl or True),
        )
        try:
            while True:
                self._work.clear()
                try:
                    self._dispatch(await self._due())
                    seconds = await self._sleep_seconds()
                except Exception:
                    log.exception("webhook_pass_failed")
                    seconds = 1.0
                await self._work.wait(_MAX_SLEEP if seconds is None else min(seconds, _MAX_SLEEP))
        finally:
            tasks = list(self._inflight.values())
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._session.close()
            self._session = None
