"""The transactional outbox: events are written in the transaction that causes them.

Whoever changes state calls :meth:`Outbox.emit` with the open transaction's connection
and, after the commit, :meth:`Outbox.published` with what it emitted; only then are feed
long-polls woken and the webhook worker told there is work.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from operator_sim.clock import ms_to_datetime
from operator_sim.ids import new_id
from operator_sim.server.metrics import Metrics
from operator_sim.server.waiters import Waiters
from operator_sim.server.wakeups import Wakeup
from operator_sim.store import Conn, messengers
from operator_sim.store import outbox as outbox_table
from operator_sim.wire import (
    NOTIFY_WINDOW,
    ContractTerminatedEvent,
    NumberPortedEvent,
    SubscriberEventData,
    format_ms,
)

_WINDOW_MS = int(NOTIFY_WINDOW.total_seconds() * 1000)
_ANSWERED = "identification.answered"


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


@dataclass(frozen=True, slots=True)
class Emitted:
    """An event written in a transaction that has not been announced yet."""

    event_id: str
    type: str
    messenger_id: str
    operator_id: str
    webhook: bool


class Outbox:
    """Builds events, writes them in the caller's transaction, announces them after commit."""

    def __init__(self, waiters: Waiters, metrics: Metrics, webhook_work: Wakeup) -> None:
        self._waiters = waiters
        self._metrics = metrics
        self._webhook_work = webhook_work

    async def emit_answered(
        self,
        conn: Conn,
        *,
        messenger_id: str,
        operator_id: str,
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
            messenger_id,
            operator_id,
            _ANSWERED,
            event_id,
            at_ms,
            answered_body(event_id, operator_id, at_ms, request_json),
        )

    async def emit_lifecycle(
        self,
        conn: Conn,
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
            conn, messenger_id, operator_id, model.type, event_id, at_ms, model.model_dump_json()
        )

    async def _write(
        self,
        conn: Conn,
        messenger_id: str,
        operator_id: str,
        type_: str,
        event_id: str,
        at_ms: int,
        body: str,
    ) -> Emitted:
        # Read in the unit, not cached: the URL can change (PATCH), and the change and this
        # event are ordered by their transactions.
        url = await messengers.webhook_url(conn, messenger_id)
        await outbox_table.insert_event(
            conn,
            event_id=event_id,
            messenger_id=messenger_id,
            operator_id=operator_id,
            type_=type_,
            occurred_at=at_ms,
            deliver_by=at_ms + _WINDOW_MS,
            body=body,
            webhook_url=url,
        )
        return Emitted(event_id, type_, messenger_id, operator_id, url is not None)

    def published(self, emitted: Iterable[Emitted]) -> None:
        """Announce committed events: wake feed long-polls and the webhook worker."""
        webhook = False
        for e in emitted:
            self._metrics.child(self._metrics.events, e.type).inc()
            self._waiters.notify(feed_key(e.messenger_id, e.operator_id))
            webhook = webhook or e.webhook
        if webhook:
            self._webhook_work.wake()
