"""The SMS gateway: messages accepted from messengers, carried by the simulated networks.

A message is accepted in the unit of work of its POST (journalled, screened by the fault
rules, throttled per number, its idempotency key bound) and then moves on the simulation
clock as scheduled work that the scheduler fires with everything else: ``sent`` a second
after it was accepted, then, a few seconds later, into the phone's inbox and
``delivered``, or ``undelivered`` when the subscriber database has no active record for
the number. Each change after the POST is one ``sms.status_changed`` event in the outbox.

The text is a secret: it is stored until the phone has it (or the message fails) and is
never logged, journalled, rendered for the messenger or counted in a metric.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import structlog

from operator_sim import errors
from operator_sim.clock import SimClock
from operator_sim.domain import resolve_routing
from operator_sim.domain.sms import (
    SENT_AFTER,
    Plan,
    Segments,
    Throttle,
    count_segments,
    delivery_outcome,
    next_step,
    plan_message,
    retry_after_ms,
    retry_after_seconds,
)
from operator_sim.ids import new_id
from operator_sim.logs import is_enabled
from operator_sim.server.calls import Call, Calls, Screened
from operator_sim.server.metrics import Metrics
from operator_sim.server.outbox import Emitted, Outbox
from operator_sim.server.waiters import SMS_CHANGED, Waiters
from operator_sim.server.wakeups import Wakeup
from operator_sim.store import Conn, Database, idempotency, jobs, phones, subscribers
from operator_sim.store import operators as operators_table
from operator_sim.store import sms as sms_table
from operator_sim.store.sms import StoredSms
from operator_sim.wire import RuleSpec, SmsCreate

__all__ = ["SmsGateway", "phone_key"]

log = structlog.get_logger("operator_sim.sms")

SEND_JOB = "sms_send"
"""Scheduled work: an accepted message is sent (or rejected)."""
DELIVER_JOB = "sms_deliver"
"""Scheduled work: a sent message reaches the phone (or is found undeliverable)."""
EXPIRE_JOB = "sms_expire"
"""Scheduled work: a message still ``sent`` at its ``expires_at`` expires."""
_SENT_AFTER_MS = round(SENT_AFTER.total_seconds() * 1000)
_ID_PREFIX = "sms"


def phone_key(msisdn: str) -> str:
    """The waiter key of a phone's inbox (woken when a message arrives)."""
    return f"phone:{msisdn}"


def fingerprint(body: SmsCreate) -> str:
    """What an Idempotency-Key is bound to: the whole message, text included."""
    parts = (
        "sms",
        body.to,
        body.sender,
        body.client_ref or "",
        str(round(body.ttl.total_seconds() * 1000)),
        body.text,
    )
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Accepted:
    """The outcome of a POST: the message, and whether an idempotency key replayed it."""

    sms: StoredSms
    replayed: bool


@dataclass(frozen=True, slots=True)
class _Moved:
    """What one fired job did to a message."""

    sms: StoredSms
    changed: bool
    """The status changed (and an event was written)."""
    emitted: Emitted | None = None
    received: bool = False
    """The phone received the message."""


class SmsGateway:
    """Sends messages for messengers and moves them through their statuses."""

    job_kinds = frozenset({SEND_JOB, DELIVER_JOB, EXPIRE_JOB})

    def __init__(
        self,
        db: Database,
        clock: SimClock,
        calls: Calls,
        outbox: Outbox,
        metrics: Metrics,
        waiters: Waiters,
        scheduled_work: Wakeup,
        *,
        throttle: Throttle | None,
    ) -> None:
        self._db = db
        self._clock = clock
        self._calls = calls
        self._outbox = outbox
        self._metrics = metrics
        self._waiters = waiters
        self._scheduled_work = scheduled_work
        self._throttle = throttle

    # --- sending -------------------------------------------------------------------------

    async def send(self, call: Call, body: SmsCreate, *, idempotency_key: str | None) -> Accepted:
        """Accept a message (``202``); refusals by fault rules and the throttle raise."""
        call.msisdn = body.to
        rules = await self._calls.rules()
        key_print = fingerprint(body) if idempotency_key is not None else ""
        segments = count_segments(body.text)
        now = call.received_at
        ttl_ms = round(body.ttl.total_seconds() * 1000)

        async def unit(conn: Conn) -> tuple[Accepted | None, Screened, int]:
            if idempotency_key is not None:
                replay = await self._replay(conn, call, idempotency_key, key_print)
                if replay is not None:
                    return replay
            screened = await self._calls.screen(conn, call, rules)
            if screened.refused:
                return None, screened, 0
            await self._check_throttle(conn, call.messenger_id, body.to, now)
            plan = plan_message(screened.rule)
            sms = await sms_table.insert_sms(
                conn,
                _new_message(call, body, plan, screened, now, ttl_ms, segments),
                text=body.text,
            )
            await jobs.add_job(conn, due_at=now + _SENT_AFTER_MS, kind=SEND_JOB, ref=sms.id)
            dropped = await self._calls.record(conn, call.entry(202, rule_id=screened.rule_id))
            if idempotency_key is not None:
                await idempotency.bind_idempotency_key(
                    conn,
                    messenger_id=call.messenger_id,
                    key=idempotency_key,
                    fingerprint=key_print,
                    request_id=sms.id,
                    now_ms=now,
                )
            return Accepted(sms, replayed=False), screened, dropped

        accepted, screened, dropped = await self._db.run(unit)
        self._calls.committed(call, screened, dropped=dropped)
        if accepted is None:  # cannot happen: a refusing rule raised in committed()
            raise errors.StoreError("a refused message without its refusal")
        if not accepted.replayed:
            self._scheduled_work.wake()
            self._waiters.notify(SMS_CHANGED)
            self._metrics.child(self._metrics.sms_messages, "accepted").inc()
            if is_enabled(logging.INFO):
                sms = accepted.sms
                log.info(
                    "sms_accepted",
                    sms_id=sms.id,
                    messenger_id=sms.messenger_id,
                    msisdn=sms.msisdn,
                    segments=sms.segments,
                    rule_id=sms.rule_id,
                )
        return accepted

    async def _replay(
        self, conn: Conn, call: Call, key: str, key_print: str
    ) -> tuple[Accepted, Screened, int] | None:
        bound = await idempotency.find_idempotency_key(conn, call.messenger_id, key)
        if bound is None:
            return None
        if not bound[1].startswith(f"{_ID_PREFIX}_"):  # keys are per messenger, not per call
            raise errors.IdempotencyKeyReused(key=key, differs="an identification request")
        existing = await sms_table.get_sms(conn, bound[1])
        if existing is None:  # cannot happen: keys and messages are cleared together
            raise errors.StoreError("idempotency key bound to a missing message")
        if bound[0] != key_print:
            raise errors.IdempotencyKeyReused(key=key, differs="another message")
        dropped = await self._calls.record(conn, call.entry(202, replayed=True))
        return Accepted(existing, replayed=True), Screened(None), dropped

    async def _check_throttle(self, conn: Conn, messenger_id: str, msisdn: str, now: int) -> None:
        throttle = self._throttle
        if throttle is None:
            return
        count, oldest = await sms_table.count_recent(
            conn, messenger_id=messenger_id, msisdn=msisdn, since_ms=now - throttle.window_ms
        )
        if count < throttle.quota or oldest is None:
            return
        wait_ms = retry_after_ms(throttle, oldest, now)
        scale = None if self._clock.mode == "manual" else self._clock.scale
        seconds = retry_after_seconds(wait_ms, scale=scale)
        raise errors.Throttled(
            code="rate_limited",
            detail=f"more than {throttle.quota} messages to this number within the window "
            f"(--sms-throttle); retry after {seconds} s",
            retry_after=seconds,
        )

    # --- reading -------------------------------------------------------------------------

    async def get(self, call: Call, sms_id: str) -> StoredSms:
        """One of this messenger's messages; another messenger's is ``404``."""
        rules = await self._calls.rules()

        async def unit(conn: Conn) -> tuple[StoredSms | None, Screened, int]:
            sms = await sms_table.get_sms(conn, sms_id)
            if sms is None or sms.messenger_id != call.messenger_id:
                raise errors.NotFound(kind="message", ident=sms_id)
            screened = await self._calls.screen(conn, call, rules, msisdn=sms.msisdn)
            if screened.refused:
                return None, screened, 0
            entry = call.entry(200, rule_id=screened.rule_id, msisdn=sms.msisdn)
            return sms, screened, await self._calls.record(conn, entry)

        sms, screened, dropped = await self._db.run(unit)
        self._calls.committed(call, screened, dropped=dropped)
        if sms is None:  # cannot happen: a refusing rule raised in committed()
            raise errors.StoreError("a refused call without its refusal")
        return sms

    # --- scheduled work (fired by the scheduler through Identification.fire_due) ---------

    async def fire_job(
        self, conn: Conn, job: jobs.Job, notify: Sequence[RuleSpec]
    ) -> _Moved | None:
        """Inside the scheduler's unit: move one message on; None when there is nothing to do
        (the message is gone, or has moved on already)."""
        sms = await sms_table.get_sms(conn, job.ref)
        if sms is None:
            return None
        at = job.due_at
        if job.kind == SEND_JOB and sms.status == "accepted":
            return await self._send(conn, sms, at, notify)
        if job.kind == DELIVER_JOB and sms.status == "sent":
            return await self._deliver(conn, sms, at, notify)
        if job.kind == EXPIRE_JOB and sms.status == "sent":
            expired = sms.moved("expired", at, reason="phone_unreachable")
            return await self._move(conn, expired, notify, clear_text=True)
        return None

    async def _send(
        self, conn: Conn, sms: StoredSms, at: int, notify: Sequence[RuleSpec]
    ) -> _Moved:
        if sms.behaviour == "blocked":
            rejected = sms.moved("rejected", at, reason="blocked")
            return await self._move(conn, rejected, notify, clear_text=True)
        standing = await subscribers.subscriber_standing(conn, sms.msisdn)
        resolved = resolve_routing(
            holder_operator_id=None if standing is None else standing.operator_id,
            range_operator_id=await operators_table.range_holder(conn, sms.msisdn),
        )
        sent = sms.moved("sent", at, operator_id=None if resolved is None else resolved[0])
        step, due = next_step(
            Plan(sms.behaviour, sms.delay_ms), sent_at_ms=at, expires_at_ms=sms.expires_at
        )
        await jobs.add_job(
            conn, due_at=due, kind=DELIVER_JOB if step == "deliver" else EXPIRE_JOB, ref=sms.id
        )
        return await self._move(conn, sent, notify, clear_text=False)

    async def _deliver(
        self, conn: Conn, sms: StoredSms, at: int, notify: Sequence[RuleSpec]
    ) -> _Moved:
        standing = await subscribers.subscriber_standing(conn, sms.msisdn)
        outcome = delivery_outcome(
            has_record=standing is not None,
            active=standing is not None and standing.status == "active",
        )
        text = await sms_table.take_text(conn, sms.id)
        if not outcome.delivered:
            if sms.behaviour == "report_lost":  # no report either way: it stays sent
                return _Moved(sms, changed=False)
            undelivered = sms.moved("undelivered", at, reason=outcome.reason)
            return await self._move(conn, undelivered, notify, clear_text=True)
        if text is not None:
            await phones.deliver(
                conn,
                inbox_id=new_id("pm", at),
                msisdn=sms.msisdn,
                sms_id=sms.id,
                sms_seq=sms.seq,
                messenger_id=sms.messenger_id,
                sender=sms.sender,
                text=text,
                at_ms=at,
            )
        if sms.behaviour == "report_lost":  # the phone has it, and nobody is told
            return _Moved(sms, changed=False, received=True)
        moved = await self._move(conn, sms.moved("delivered", at), notify, clear_text=True)
        return _Moved(moved.sms, changed=True, emitted=moved.emitted, received=True)

    async def _move(
        self, conn: Conn, sms: StoredSms, notify: Sequence[RuleSpec], *, clear_text: bool
    ) -> _Moved:
        await sms_table.set_status(conn, sms, clear_text=clear_text)
        emitted = await self._outbox.emit_sms(
            conn, notify, messenger_id=sms.messenger_id, message=sms.to_wire(), at_ms=sms.status_at
        )
        return _Moved(sms, changed=True, emitted=emitted)

    def announce(self, fired: Sequence[_Moved | None]) -> None:
        """After the scheduler's unit committed: events out, inboxes woken, counts, logs."""
        moved = [m for m in fired if m is not None]
        self._outbox.published([m.emitted for m in moved if m.emitted is not None])
        if any(m.changed for m in moved):
            self._waiters.notify(SMS_CHANGED)
        for m in moved:
            sms = m.sms
            if m.received:
                self._waiters.notify(phone_key(sms.msisdn))
            if not m.changed:
                continue
            self._metrics.child(self._metrics.sms_messages, sms.status).inc()
            log.info(
                "sms_status_changed",
                sms_id=sms.id,
                messenger_id=sms.messenger_id,
                msisdn=sms.msisdn,
                status=sms.status,
                reason=sms.reason,
                operator_id=sms.operator_id,
            )


def _new_message(
    call: Call,
    body: SmsCreate,
    plan: Plan,
    screened: Screened,
    now: int,
    ttl_ms: int,
    segments: Segments,
) -> StoredSms:
    return StoredSms(
        seq=0,
        id=new_id(_ID_PREFIX, now),
        messenger_id=call.messenger_id,
        msisdn=body.to,
        sender=body.sender,
        text_length=len(body.text),
        segments=segments.count,
        encoding=segments.encoding,
        client_ref=body.client_ref,
        status="accepted",
        reason=None,
        operator_id=None,
        behaviour=plan.behaviour,
        delay_ms=plan.delay_ms,
        rule_id=screened.rule_id,
        created_at=now,
        status_at=now,
        expires_at=now + ttl_ms,
    )
