"""Identification requests: receiving them, answering them in time (or not), expiring them.

Every state change happens in one unit of work; waiters are woken and metrics counted
only after it commits, so nothing is announced that could still be rolled back.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import Any, Literal, NamedTuple, Protocol, TypeVar

import structlog

from operator_sim import errors
from operator_sim.clock import SimClock
from operator_sim.domain import is_present, plan_answer
from operator_sim.ids import new_id
from operator_sim.logs import is_enabled
from operator_sim.server.calls import Call, Calls, Screened
from operator_sim.server.metrics import Metrics
from operator_sim.server.operators import Operators
from operator_sim.server.outbox import NOTIFY_JOB, Emitted, Outbox
from operator_sim.server.waiters import Waiters, messenger_key, wait_for
from operator_sim.server.wakeups import Wakeup
from operator_sim.store import Conn, Database, idempotency, jobs, subscribers
from operator_sim.store import requests as requests_table
from operator_sim.store.requests import StoredRequest
from operator_sim.wire import RuleSpec

_SMS_ID_PREFIX = "sms_"
"""What an SMS message's id starts with (an idempotency key may be bound to one)."""

__all__ = ["Created", "Identification", "JobHandler", "fingerprint"]

log = structlog.get_logger("operator_sim.flow")

Result = Literal["present", "absent"]
_Fired = tuple[int, list[tuple[StoredRequest, str]], list[Emitted], list[list[Any]]]
"""How many jobs fired, the requests they changed, the events they wrote, and what each
other service's jobs did."""
_FIRE_BATCH = 200
T = TypeVar("T")


class JobHandler(Protocol[T]):
    """Another service's scheduled work, fired in the same passes and order as answers.

    ``fire_job`` runs inside the pass's unit of work (it may run twice: everything it
    produces is its return value); ``announce`` gets those values after the commit.
    """

    @property
    def job_kinds(self) -> frozenset[str]:
        """The job kinds it fires."""
        ...

    async def fire_job(self, conn: Conn, job: jobs.Job, notify: Sequence[RuleSpec]) -> T:
        """Fire one due job inside the pass's unit (``notify``: the notification rules)."""
        ...

    def announce(self, fired: Sequence[T]) -> None:
        """After the pass committed: wake, count and log what the jobs did."""
        ...


class Created(NamedTuple):
    """The outcome of an identification POST."""

    request: StoredRequest
    replayed: bool
    scheduled: bool
    emitted: tuple[Emitted, ...] = ()
    rendered: str | None = None
    """``request.to_json()``, when it was rendered already (for its event)."""

    def to_json(self) -> str:
        """The request as the messenger sees it, rendered once."""
        return self.request.to_json() if self.rendered is None else self.rendered


def fingerprint(operator_id: str, msisdn: str) -> str:
    """What an Idempotency-Key is bound to: the operator asked and the body's content."""
    return hashlib.sha256(f"{operator_id}\n{msisdn}".encode()).hexdigest()


async def decide(conn: Conn, operator_id: str, msisdn: str) -> Result:
    """``present`` or ``absent``, as the operator asked reads its subscriber database."""
    standing = await subscribers.subscriber_standing(conn, msisdn)
    present = standing is not None and is_present(
        holder_operator_id=standing.operator_id,
        status=standing.status,
        data_complete=standing.data_complete,
        asked_operator_id=operator_id,
    )
    return "present" if present else "absent"


class Identification:
    """The simulated operators' side of the decree's request about presence or absence."""

    def __init__(
        self,
        db: Database,
        clock: SimClock,
        operators: Operators,
        calls: Calls,
        outbox: Outbox,
        metrics: Metrics,
        waiters: Waiters,
        scheduled_work: Wakeup,
        *,
        default_answer_delay: timedelta,
        job_handlers: Sequence[JobHandler[Any]] = (),
    ) -> None:
        self._db = db
        self._clock = clock
        self._operators = operators
        self._calls = calls
        self._outbox = outbox
        self._metrics = metrics
        self._waiters = waiters
        self._scheduled_work = scheduled_work
        self._default_delay = default_answer_delay
        self._handlers = tuple(job_handlers)
        self._handler_of = {kind: i for i, h in enumerate(self._handlers) for kind in h.job_kinds}

    # --- receiving -------------------------------------------------------------------

    async def create(
        self, call: Call, *, msisdn: str, idempotency_key: str | None, wait: int = 0
    ) -> Created:
        """Receive a request; held up to ``wait`` seconds for its answer.

        Raises for refusals injected by rules; the returned request is as it stands when
        the wait ends (``Created.request``).
        """
        operator_id = call.operator_id or ""
        self._operators.check(operator_id)
        call.msisdn = msisdn
        messenger_id = call.messenger_id
        rules = await self._calls.rules()  # screens the call, and the event it may emit
        key_print = fingerprint(operator_id, msisdn) if idempotency_key is not None else ""
        now = call.received_at

        async def unit(conn: Conn) -> tuple[Created | None, Screened, int]:
            if idempotency_key is not None:
                bound = await idempotency.find_idempotency_key(conn, messenger_id, idempotency_key)
                if bound is not None:
                    if bound[1].startswith(_SMS_ID_PREFIX):  # keys are per messenger, not per call
                        raise errors.IdempotencyKeyReused(
                            key=idempotency_key, differs="a message to the SMS gateway"
                        )
                    existing = await requests_table.get_request(conn, bound[1])
                    if existing is None:  # cannot happen: keys and requests are cleared together
                        raise errors.StoreError("idempotency key bound to a missing request")
                    if bound[0] != key_print:
                        raise errors.IdempotencyKeyReused(
                            key=idempotency_key,
                            differs=f"a request to operator {existing.operator_id}"
                            if existing.operator_id != operator_id
                            else "another msisdn",
                        )
                    dropped = await self._calls.record(
                        conn, call.entry(201, replayed=True, request_id=existing.id)
                    )
                    return (
                        Created(existing, replayed=True, scheduled=False),
                        Screened(None),
                        dropped,
                    )
            screened = await self._calls.screen(conn, call, rules)
            if screened.refused:
                return None, screened, 0
            created = await self._insert(
                conn,
                rules,
                now=now,
                messenger_id=messenger_id,
                operator_id=operator_id,
                msisdn=msisdn,
                rule=screened.rule,
            )
            dropped = await self._calls.record(
                conn, call.entry(201, rule_id=screened.rule_id, request_id=created.request.id)
            )
            if idempotency_key is not None:
                await idempotency.bind_idempotency_key(
                    conn,
                    messenger_id=messenger_id,
                    key=idempotency_key,
                    fingerprint=key_print,
                    request_id=created.request.id,
                    now_ms=now,
                )
            return created, screened, dropped

        # The whole unit runs on the database thread, batched with its neighbours.
        created, screened, dropped = await self._db.run(unit)
        self._calls.committed(call, screened, dropped=dropped)
        if created is None:  # cannot happen: a refusing rule raised in committed()
            raise errors.StoreError("a refused request without its refusal")
        self._announce(created)
        settled = await self._settle(created.request, wait)
        if settled is created.request:
            return created
        return created._replace(request=settled, rendered=None)

    async def _insert(
        self,
        conn: Conn,
        notify: Sequence[RuleSpec],
        *,
        now: int,
        messenger_id: str,
        operator_id: str,
        msisdn: str,
        rule: RuleSpec | None,
    ) -> Created:
        plan = plan_answer(received_at_ms=now, rule=rule, default_delay=self._default_delay)
        result = None
        if plan.immediate:
            result = plan.forced_result or await decide(conn, operator_id, msisdn)
        request = StoredRequest(
            id=new_id("ir", now),
            messenger_id=messenger_id,
            operator_id=operator_id,
            msisdn=msisdn,
            status="pending" if result is None else "answered",
            result=result,
            received_at=now,
            due_at=plan.due_at_ms,
            answered_at=None if result is None else now,
            rule_id=rule.id if rule else None,
        )
        await requests_table.insert_request(conn, request)
        if plan.immediate:
            rendered = request.to_json()
            event = await self._outbox.emit_answered(
                conn,
                notify,
                messenger_id=messenger_id,
                operator_id=operator_id,
                msisdn=msisdn,
                request_json=rendered,
                at_ms=now,
            )
            return Created(
                request, replayed=False, scheduled=False, emitted=(event,), rendered=rendered
            )
        if plan.answer_at_ms is not None:
            # Inserted before the expiry, so an answer due exactly at the deadline fires first.
            await jobs.add_job(
                conn,
                due_at=plan.answer_at_ms,
                kind="answer",
                ref=request.id,
                payload=plan.forced_result,
            )
        await jobs.add_job(conn, due_at=plan.due_at_ms, kind="expire", ref=request.id)
        return Created(request, replayed=False, scheduled=True)

    def _announce(self, created: Created) -> None:
        req = created.request
        if created.replayed:
            return
        self._outbox.published(created.emitted)
        m = self._metrics
        m.child(m.identification_requests, req.operator_id).inc()
        if req.status == "answered":
            self._count_answer(req)
        if created.scheduled:
            self._scheduled_work.wake()
        if not is_enabled(logging.DEBUG):
            return
        log.debug(
            "identification_received",
            identification_id=req.id,
            operator_id=req.operator_id,
            messenger_id=req.messenger_id,
            msisdn=req.msisdn,
            status=req.status,
            rule_id=req.rule_id,
        )

    def _count_answer(self, req: StoredRequest) -> None:
        if req.answered_at is None or req.result is None:
            return
        timely = req.answered_at <= req.due_at
        m = self._metrics
        m.child(m.answers, req.operator_id, req.result, "true" if timely else "false").inc()
        m.child(m.answer_latency, req.operator_id).observe(
            (req.answered_at - req.received_at) / 1000
        )
        if not timely:
            m.child(m.deadline_misses, req.operator_id, "late").inc()

    # --- reading -----------------------------------------------------------------------

    async def get(self, call: Call, *, request_id: str, wait: int = 0) -> StoredRequest:
        """A messenger's own request, held up to ``wait`` seconds for its answer."""
        operator_id = call.operator_id or ""
        self._operators.check(operator_id)
        rules = await self._calls.rules()

        async def unit(conn: Conn) -> tuple[StoredRequest | None, Screened, int]:
            req = await requests_table.get_request(conn, request_id)
            if (
                req is None
                or req.messenger_id != call.messenger_id
                or req.operator_id != operator_id
            ):
                raise errors.NotFound(kind="identification request", ident=request_id)
            screened = await self._calls.screen(conn, call, rules, msisdn=req.msisdn)
            if screened.refused:
                return None, screened, 0
            entry = call.entry(200, rule_id=screened.rule_id, request_id=req.id, msisdn=req.msisdn)
            return req, screened, await self._calls.record(conn, entry)

        req, screened, dropped = await self._db.run(unit)
        self._calls.committed(call, screened, dropped=dropped)
        if req is None:  # cannot happen: a refusing rule raised in committed()
            raise errors.StoreError("a refused call without its refusal")
        return await self._settle(req, wait)

    async def _read(self, *, messenger_id: str, operator_id: str, request_id: str) -> StoredRequest:
        req = await self._db.read(
            functools.partial(requests_table.get_request, request_id=request_id)
        )
        if req is None or req.messenger_id != messenger_id or req.operator_id != operator_id:
            raise errors.NotFound(kind="identification request", ident=request_id)
        return req

    async def _settle(self, req: StoredRequest, seconds: int) -> StoredRequest:
        """Hold until the request leaves ``pending`` or ``seconds`` pass."""
        if seconds <= 0 or req.status != "pending":
            return req
        ids = {
            "messenger_id": req.messenger_id,
            "operator_id": req.operator_id,
            "request_id": req.id,
        }
        async with self._waiters.watch(req.id, messenger_key(req.messenger_id)) as event:
            current = await self._read(**ids)
            if current.status != "pending":
                return current
            await wait_for(event, seconds)
        return await self._read(**ids)

    # --- scheduled work ----------------------------------------------------------------

    async def fire_due(self, now_ms: int) -> int:
        """Fire one batch of due answers, expiries, held-back notifications and other
        services' jobs (``job_handlers``), in order; returns how many fired."""
        notify = await self._outbox.notify_rules()

        async def unit(conn: Conn) -> _Fired:
            # Everything the unit produces is returned, nothing kept outside it: a batch
            # may run its units twice (store.inline.run_batch).
            changed: list[tuple[StoredRequest, str]] = []
            emitted: list[Emitted] = []
            others: list[list[Any]] = [[] for _ in self._handlers]
            due = await jobs.due_jobs(conn, now_ms, _FIRE_BATCH)
            for job in due:
                handler = self._handler_of.get(job.kind)
                if handler is not None:
                    fire = self._handlers[handler].fire_job
                    others[handler].append(await fire(conn, job, notify))
                    await jobs.delete_job(conn, job.id)
                    continue
                if job.kind == NOTIFY_JOB:
                    emitted.append(
                        await self._outbox.release(conn, job.payload or "", at_ms=job.due_at)
                    )
                    await jobs.delete_job(conn, job.id)
                    continue
                outcome = await _fire(conn, job)
                if outcome is not None:
                    req = outcome[0]
                    changed.append(outcome)
                    emitted.append(
                        await self._outbox.emit_answered(
                            conn,
                            notify,
                            messenger_id=req.messenger_id,
                            operator_id=req.operator_id,
                            msisdn=req.msisdn,
                            request_json=req.to_json(),
                            at_ms=job.due_at,
                        )
                    )
                await jobs.delete_job(conn, job.id)
            return len(due), changed, emitted, others

        fired, changed, emitted, others = await self._db.run(unit)
        self._outbox.published(emitted)
        for handler, outcomes in zip(self._handlers, others, strict=True):
            if outcomes:
                handler.announce(outcomes)
        for req, kind in changed:
            if kind == "expired":
                m = self._metrics
                m.child(m.deadline_misses, req.operator_id, "expired").inc()
                log.info(
                    "identification_expired", identification_id=req.id, operator_id=req.operator_id
                )
            else:
                self._count_answer(req)
                log.info(
                    "identification_answered",
                    identification_id=req.id,
                    operator_id=req.operator_id,
                    result=req.result,
                    late=kind == "late",
                )
            self._waiters.notify(req.id)
        return fired

    async def next_due(self) -> int | None:
        """When the earliest scheduled answer or expiry is due, and how many there are."""
        return await self._db.read(jobs.next_due)

    async def scheduled(self) -> int:
        """How many answers and expiries are scheduled."""
        return await self._db.read(jobs.count_jobs)


async def _fire(conn: Conn, job: jobs.Job) -> tuple[StoredRequest, str] | None:
    req = await requests_table.get_request(conn, job.ref)
    if req is None:
        return None
    if job.kind == "expire":
        if req.status != "pending":
            return None
        await requests_table.set_answer(
            conn, req.id, status="expired", result=None, answered_at=None
        )
        return req._replace(status="expired"), "expired"
    if job.kind == "answer":
        if req.status == "answered":
            return None
        forced: Result | None = job.payload if job.payload in ("present", "absent") else None  # type: ignore[assignment]
        result = forced or await decide(conn, req.operator_id, req.msisdn)
        await requests_table.set_answer(
            conn, req.id, status="answered", result=result, answered_at=job.due_at
        )
        answered = req._replace(status="answered", result=result, answered_at=job.due_at)
        return answered, ("late" if job.due_at > req.due_at else "answered")
    log.warning("unknown_job_kind", kind=job.kind, job_id=job.id)
    return None
