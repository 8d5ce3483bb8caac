"""The transactional outbox: events are written in the transaction that causes them.

Whoever changes state calls :meth:`Outbox.emit` with the open transaction's connection
and, after the commit, :meth:`Outbox.published` with what it emitted; only then are feed
long-polls woken and the webhook worker told there is work.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from operator_sim.clock import ms_to_datetime
from operator_sim.ids import new_id
from operator_sim.server.metrics import Metrics
from operator_sim.server.rulebook import Rulebook
from operator_sim.server.waiters import Waiters
from operator_sim.server.wakeups import Wakeup
from operator_sim.store import Conn, jobs
from operator_sim.store import outbox as outbox_table
from operator_sim.wire import (
    NOTIFY_WINDOW,
    SMS_GATEWAY,
    ContractTerminatedEvent,
    DuplicateAction,
    NotifyLateAction,
    NumberPortedEvent,
    RuleSpec,
    SmsMessage,
    SmsStatusChangedEvent,
    SubscriberEventData,
    format_ms,
)

_WINDOW_MS = int(NOTIFY_WINDOW.total_seconds() * 1000)
_ANSWERED = "identification.answered"
NOTIFY = "event.notify"
"""What notification fault rules match (``match.endpoint``)."""
NOTIFY_JOB = "notify"
"""The kind of scheduled work that writes a notification a rule made late."""


def answered_body(event_id: str, operator_id: str, at_ms: int, request_json: str) -> str:
    """The JSON of an ``identification.answered`` event around an already rendered request.

    The same bytes :class:`IdentificationAnsweredEvent` renders (a property test holds
    them equal), without rendering the request a second time; the ids need no escaping.
    """
    return (
        f'{{"id":"{event_id}","operator_id":"{operator_id}",'
        f'"occurred_at":"{format_ms(at_ms)}","deliver_by":"{format_ms(at_ms + _WINDOW_MS)}",'
        f'"type":"{_ANSWERED}","data":{request_json}}}'
    )


def feed_key(messenger_id: str, operator_id: str) -> str:
    """The waiter key of one messenger's feed at one operator."""
    return f"events:{messenger_id}:{operator_id}"


class Emitted(NamedTuple):
    """An event written in a transaction that has not been announced yet."""

    event_id: str
    type: str
    messenger_id: str
    operator_id: str
    rule_id: str | None = None
    """A notification fault rule that acted on it."""
    held: bool = False
    """A ``notify_late`` rule holds it back: it is written when it falls due."""


class Outbox:
    """Builds events, writes them in the caller's transaction, announces them after commit.

    Notification fault rules (``match.endpoint`` = ``event.notify``) act here: the caller
    passes the rules it read before its unit (``notify``), and a matching rule delays the
    event (it is written when it falls due, as scheduled work) or has it delivered several
    times.
    """

    def __init__(
        self, waiters: Waiters, metrics: Metrics, webhook_work: Wakeup, rulebook: Rulebook
    ) -> None:
        self._waiters = waiters
        self._metrics = metrics
        self._webhook_work = webhook_work
        self._rulebook = rulebook

    async def notify_rules(self) -> tuple[RuleSpec, ...]:
        """The rules the events a unit emits are screened against (those of
        ``event.notify``), read outside that unit."""
        return await self._rulebook.rules()

    async def emit_answered(
        self,
        conn: Conn,
        notify: Sequence[RuleSpec],
        *,
        messenger_id: str,
        operator_id: str,
        msisdn: str,
        request_json: str,
        at_ms: int,
    ) -> Emitted:
        """``identification.answered`` for an answer or an expiry.

        ``request_json`` is the request resource as rendered for the messenger (the caller
        renders it once, for the event and its own response alike).
        """
        event_id = new_id("evt", at_ms)
        return await self._write(
            conn,
            notify,
            _Event(
                event_id,
                _ANSWERED,
                messenger_id,
                operator_id,
                msisdn,
                at_ms,
                answered_body(event_id, operator_id, at_ms, request_json),
            ),
        )

    async def emit_lifecycle(
        self,
        conn: Conn,
        notify: Sequence[RuleSpec],
        *,
        kind: str,
        messenger_id: str,
        operator_id: str,
        msisdn: str,
        code: str,
        at_ms: int,
    ) -> Emitted:
        """``subscriber.contract_terminated`` or ``subscriber.number_ported`` for one code."""
        event_id = new_id("evt", at_ms)
        common = {
            "id": event_id,
            "operator_id": operator_id,
            "occurred_at": ms_to_datetime(at_ms),
            "deliver_by": ms_to_datetime(at_ms + _WINDOW_MS),
            "data": SubscriberEventData(msisdn=msisdn, code=code),
        }
        model = (
            ContractTerminatedEvent(type="subscriber.contract_terminated", **common)
            if kind == "terminated"
            else NumberPortedEvent(type="subscriber.number_ported", **common)
        )
        return await self._write(
            conn,
            notify,
            _Event(
                event_id,
                model.type,
                messenger_id,
                operator_id,
                msisdn,
                at_ms,
                model.model_dump_json(),
            ),
        )

    async def emit_sms(
        self,
        conn: Conn,
        notify: Sequence[RuleSpec],
        *,
        messenger_id: str,
        message: SmsMessage,
        at_ms: int,
    ) -> Emitted:
        """``sms.status_changed`` for a message's new status, on the SMS gateway's feed
        (its ``operator_id`` is ``@sms``, which no operator's feed reads)."""
        event_id = new_id("evt", at_ms)
        model = SmsStatusChangedEvent(
            id=event_id,
            operator_id=SMS_GATEWAY,
            occurred_at=ms_to_datetime(at_ms),
            deliver_by=ms_to_datetime(at_ms + _WINDOW_MS),
            type="sms.status_changed",
            data=message,
        )
        return await self._write(
            conn,
            notify,
            _Event(
                event_id,
                model.type,
                messenger_id,
                SMS_GATEWAY,
                message.to,
                at_ms,
                model.model_dump_json(),
            ),
        )

    async def _write(self, conn: Conn, notify: Sequence[RuleSpec], event: _Event) -> Emitted:
        rule = None
        if notify:
            rule = await self._rulebook.pick(
                conn,
                notify,
                endpoint=NOTIFY,
                messenger_id=event.messenger_id,
                operator_id=event.operator_id,
                msisdn=event.msisdn,
                event_type=event.type,
            )
        rule_id = None if rule is None else rule.id
        if rule is not None and isinstance(rule.action, NotifyLateAction):
            due = event.at_ms + max(1, round(rule.action.by.total_seconds() * 1000))
            await jobs.add_job(
                conn, due_at=due, kind=NOTIFY_JOB, ref=event.event_id, payload=event.to_json()
            )
            return Emitted(
                event.event_id,
                event.type,
                event.messenger_id,
                event.operator_id,
                rule_id=rule_id,
                held=True,
            )
        copies = rule.action.copies if rule and isinstance(rule.action, DuplicateAction) else 1
        return await self._insert(conn, event, copies=copies, rule_id=rule_id)

    async def _insert(
        self,
        conn: Conn,
        event: _Event,
        *,
        copies: int = 1,
        rule_id: str | None = None,
        delivered_from: int | None = None,
    ) -> Emitted:
        await outbox_table.insert_event(
            conn,
            event_id=event.event_id,
            messenger_id=event.messenger_id,
            operator_id=event.operator_id,
            type_=event.type,
            occurred_at=event.at_ms,
            deliver_by=event.at_ms + _WINDOW_MS,
            body=event.body,
            delivered_from=delivered_from,
            copies=copies,
        )
        return Emitted(
            event.event_id,
            event.type,
            event.messenger_id,
            event.operator_id,
            rule_id=rule_id,
        )

    async def release(self, conn: Conn, payload: str, *, at_ms: int) -> Emitted:
        """Write an event a ``notify_late`` rule held back, now that it falls due: its
        times stay the change's, and its webhook delivery gets 24 hours from now."""
        return await self._insert(conn, _Event.from_json(payload), delivered_from=at_ms)

    def published(self, emitted: Iterable[Emitted]) -> None:
        """Announce committed events: wake feed long-polls and the webhook worker.

        The worker is woken for every event, whether or not its messenger has a webhook
        URL (the event's row says, written with the URL the messenger had when it
        committed): a wake costs a look at what is due, once per pass of the worker however
        many events woke it, which is far less than reading each event's URL apart.
        """
        woken = False
        for e in emitted:
            if e.rule_id is not None:
                self._rulebook.applied(e.rule_id)
            if e.held:
                continue
            self._metrics.child(self._metrics.events, e.type).inc()
            self._waiters.notify(feed_key(e.messenger_id, e.operator_id))
            woken = True
        if woken:
            self._webhook_work.wake()


class _Event(NamedTuple):
    """An event to write: who it is for, when it happened, and its JSON."""

    event_id: str
    type: str
    messenger_id: str
    operator_id: str
    msisdn: str
    at_ms: int
    body: str

    def to_json(self) -> str:
        """The event, kept in scheduled work until it is written."""
        return json.dumps(
            {
                "id": self.event_id,
                "type": self.type,
                "messenger_id": self.messenger_id,
                "operator_id": self.operator_id,
                "msisdn": self.msisdn,
                "at": self.at_ms,
                "body": self.body,
            }
        )

    @classmethod
    def from_json(cls, payload: str) -> _Event:
        """The event kept by :meth:`to_json`."""
        data = json.loads(payload)
        return cls(
            data["id"],
            data["type"],
            data["messenger_id"],
            data["operator_id"],
            data["msisdn"],
            int(data["at"]),
            data["body"],
        )
