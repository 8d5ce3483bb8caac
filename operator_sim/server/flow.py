"""The identification flow: requests, answers, expiries and codes, around the store.

Every state change happens in one transaction; waiters are woken and metrics counted
only after it commits, so nothing is announced that could still be rolled back.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

import aiosqlite
import structlog

from operator_sim import errors
from operator_sim.clock import SimClock
from operator_sim.domain import choose_rule, is_present, plan_answer, resolve_routing
from operator_sim.domain.rules import counter_scope, realise, rule_matches
from operator_sim.fixture import LoadedFixture
from operator_sim.ids import new_id
from operator_sim.logs import is_enabled
from operator_sim.server.metrics import Metrics
from operator_sim.server.outbox import Emitted, Outbox
from operator_sim.server.problems import DropConnection
from operator_sim.server.waiters import Waiters
from operator_sim.store import Database, catalog
from operator_sim.store import requests as store
from operator_sim.store import rules as rules_store
from operator_sim.store.requests import StoredCode, StoredRequest
from operator_sim.wire import DropAction, HttpErrorAction, MalformedAction, Routing, RuleSpec

log = structlog.get_logger("operator_sim.flow")

Result = Literal["present", "absent"]
_Fired = tuple[int, list[tuple[StoredRequest, str]], list[Emitted]]
"""How many jobs fired, the requests they changed and the events they wrote."""
_FIRE_BATCH = 200


@dataclass(frozen=True, slots=True)
class Created:
    """The outcome of an identification POST."""

    request: StoredRequest
    replayed: bool
    scheduled: bool
    emitted: tuple[Emitted, ...] = ()


@dataclass(frozen=True, slots=True)
class _Refusal:
    rule: RuleSpec


def fingerprint(operator_id: str, msisdn: str) -> str:
    """What an Idempotency-Key is bound to: the operator asked and the body's content."""
    return hashlib.sha256(f"{operator_id}\n{msisdn}".encode()).hexdigest()


class Flow:
    """The simulated operators' side of the decree's identification flow."""

    def __init__(
        self,
        db: Database,
        clock: SimClock,
        fixture: LoadedFixture,
        metrics: Metrics,
        waiters: Waiters,
        outbox: Outbox,
        wake_scheduler: Callable[[], None],
        *,
        journal_cap: int | None = None,
        seed: int = 1801,
    ) -> None:
        self._db = db
        self._journal_cap = journal_cap
        self._seed = seed
        self._rngs: dict[str, random.Random] = {}
        self._outbox = outbox
        self._clock = clock
        self._fixture = fixture
        self._metrics = metrics
        self._waiters = waiters
        self._wake_scheduler = wake_scheduler
        self._rules: list[RuleSpec] | None = None
        self._operator_ids: frozenset[str] = frozenset()

    async def load_operators(self) -> None:
        """Cache the operator ids (they change only when a fixture is applied)."""
        async with self._db.read() as conn:
            self._operator_ids = frozenset(op.id for op in await catalog.list_operators(conn))

    def check_operator(self, operator_id: str) -> None:
        """Raise ``NotFound`` unless this operator is simulated."""
        if operator_id not in self._operator_ids:
            raise errors.NotFound(kind="operator", ident=operator_id)

    # --- rules -------------------------------------------------------------------

    async def _active_rules(self, conn: aiosqlite.Connection) -> list[RuleSpec]:
        if self._rules is None:
            self._rules = await catalog.list_rules(conn)
        return self._rules

    def rules_changed(self) -> None:
        """Drop the cached rule list (after rules are added, removed or reset)."""
        self._rules = None

    def _rng(self, messenger_id: str) -> random.Random:
        # One generator per messenger, seeded from the server seed and the messenger id:
        # suites sharing a server draw independently and reproducibly.
        rng = self._rngs.get(messenger_id)
        if rng is None:
            rng = random.Random(f"{self._seed}/{messenger_id}")  # noqa: S311 (simulation, not security)
            self._rngs[messenger_id] = rng
        return rng

    def reset_random(self, messenger_id: str | None = None) -> None:
        """Start the random draws again from the seed (for everybody, or one messenger)."""
        if messenger_id is None:
            self._rngs.clear()
        else:
            self._rngs.pop(messenger_id, None)

    async def _pick_rule(
        self, conn: aiosqlite.Connection, *, messenger_id: str, operator_id: str, msisdn: str
    ) -> RuleSpec | None:
        matching = [
            r
            for r in await self._active_rules(conn)
            if rule_matches(r, messenger_id=messenger_id, operator_id=operator_id, msisdn=msisdn)
        ]
        if not matching:
            return None
        counters = await catalog.get_rule_counters(
            conn, [(r.id, counter_scope(r, messenger_id)) for r in matching]
        )
        rng = self._rng(messenger_id)
        hit, updates = choose_rule(
            matching,
            messenger_id=messenger_id,
            operator_id=operator_id,
            msisdn=msisdn,
            hits_of=lambda rule_id, scope: counters.get((rule_id, scope), 0),
            rng=rng,
        )
        if updates:
            await catalog.set_rule_counters(conn, updates)
        if hit is None:
            return None
        await rules_store.count_hit(conn, hit.rule.id)
        return realise(hit.rule, rng)

    async def _journal(
        self,
        conn: aiosqlite.Connection,
        *,
        messenger_id: str,
        operator_id: str,
        msisdn: str,
        received_at: int,
        request_id: str | None,
        http_status: int,
        rule_id: str | None,
        replayed: bool,
    ) -> int:
        """Journal one POST; returns how many old entries were dropped (counted by the
        caller after the commit: the unit may run twice)."""
        return await store.add_journal(
            conn,
            messenger_id=messenger_id,
            operator_id=operator_id,
            msisdn=msisdn,
            request_id=request_id,
            http_status=http_status,
            rule_id=rule_id,
            replayed=replayed,
            received_at=received_at,
            cap=self._journal_cap,
        )

    # --- requests ----------------------------------------------------------------

    async def _decide(self, conn: aiosqlite.Connection, operator_id: str, msisdn: str) -> Result:
        standing = await catalog.subscriber_standing(conn, msisdn)
        present = standing is not None and is_present(
            holder_operator_id=standing.operator_id,
            status=standing.status,
            data_complete=standing.data_complete,
            asked_operator_id=operator_id,
        )
        return "present" if present else "absent"

    async def create_request(
        self, *, messenger_id: str, operator_id: str, msisdn: str, idempotency_key: str | None
    ) -> Created:
        """Receive an identification request; raises for refusals injected by rules."""
        self.check_operator(operator_id)
        print_ = fingerprint(operator_id, msisdn) if idempotency_key is not None else ""
        now = self._clock.now_ms()

        async def unit(conn: aiosqlite.Connection) -> tuple[Created | _Refusal, int]:
            journal = functools.partial(
                self._journal,
                conn,
                messenger_id=messenger_id,
                operator_id=operator_id,
                msisdn=msisdn,
                received_at=now,
            )
            if idempotency_key is not None:
                bound = await store.find_idempotency_key(conn, messenger_id, idempotency_key)
                if bound is not None:
                    existing = await store.get_request(conn, bound[1])
                    if existing is None:  # cannot happen: keys and requests are cleared together
                        raise errors.StoreError("idempotency key bound to a missing request")
                    if bound[0] != print_:
                        raise errors.IdempotencyKeyReused(
                            key=idempotency_key,
                            differs=f"a request to operator {existing.operator_id}"
                            if existing.operator_id != operator_id
                            else "another msisdn",
                        )
                    dropped = await journal(
                        request_id=existing.id,
                        http_status=201,
                        rule_id=None,
                        replayed=True,
                    )
                    return Created(existing, replayed=True, scheduled=False), dropped
            rule = await self._pick_rule(
                conn, messenger_id=messenger_id, operator_id=operator_id, msisdn=msisdn
            )
            if rule is not None and isinstance(
                rule.action, HttpErrorAction | DropAction | MalformedAction
            ):
                refused = rule.action
                status = 0 if isinstance(refused, DropAction) else refused.status
                dropped = await journal(
                    request_id=None,
                    http_status=status,
                    rule_id=rule.id,
                    replayed=False,
                )
                return _Refusal(rule), dropped
            created = await self._insert_request(
                conn,
                now=now,
                messenger_id=messenger_id,
                operator_id=operator_id,
                msisdn=msisdn,
                rule=rule,
            )
            dropped = await journal(
                request_id=created.request.id,
                http_status=201,
                rule_id=rule.id if rule else None,
                replayed=False,
            )
            if idempotency_key is not None:
                await store.bind_idempotency_key(
                    conn,
                    messenger_id=messenger_id,
                    key=idempotency_key,
                    fingerprint=print_,
                    request_id=created.request.id,
                    now_ms=now,
                )
            return created, dropped

        # The whole unit runs on the database thread, batched with its neighbours.
        outcome, dropped = await self._db.run(unit)
        if dropped:
            self._metrics.journal_dropped.inc(dropped)
        if isinstance(outcome, _Refusal):
            m = self._metrics
            m.child(m.faults, outcome.rule.id).inc()
            action = outcome.rule.action
            if isinstance(action, HttpErrorAction):
                raise errors.InjectedFault(
                    status=action.status, retry_after=action.retry_after, rule_id=outcome.rule.id
                )
            if isinstance(action, MalformedAction):
                raise errors.InjectedMalformed(
                    status=action.status, body=action.body, rule_id=outcome.rule.id
                )
            raise DropConnection(outcome.rule.id)
        created = outcome
        self._after_create(created)
        return created

    async def _insert_request(
        self,
        conn: aiosqlite.Connection,
        *,
        now: int,
        messenger_id: str,
        operator_id: str,
        msisdn: str,
        rule: RuleSpec | None,
    ) -> Created:
        plan = plan_answer(
            received_at_ms=now, rule=rule, default_delay=self._fixture.fixture.default_answer_delay
        )
        result = None
        if plan.immediate:
            result = plan.forced_result or await self._decide(conn, operator_id, msisdn)
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
        if plan.immediate:
            await store.insert_request(conn, request)
            event = await self._outbox.emit_answered(
                conn,
                messenger_id=messenger_id,
                operator_id=operator_id,
                request_json=request.to_json(),
                at_ms=now,
            )
            return Created(request, replayed=False, scheduled=False, emitted=(event,))
        await store.insert_request(conn, request)
        if plan.answer_at_ms is not None:
            # Inserted before the expiry, so an answer due exactly at the deadline fires first.
            await store.add_job(
                conn,
                due_at=plan.answer_at_ms,
                kind="answer",
                ref=request.id,
                payload=plan.forced_result,
            )
        await store.add_job(conn, due_at=plan.due_at_ms, kind="expire", ref=request.id)
        return Created(request, replayed=False, scheduled=True)

    def _after_create(self, created: Created) -> None:
        req = created.request
        if created.replayed:
            return
        self._outbox.published(created.emitted)
        m = self._metrics
        m.child(m.identification_requests, req.operator_id).inc()
        if req.rule_id is not None:
            m.child(m.faults, req.rule_id).inc()
        if req.status == "answered":
            self._count_answer(req)
        if created.scheduled:
            self._wake_scheduler()
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

    async def get_request(
        self, *, messenger_id: str, operator_id: str, request_id: str
    ) -> StoredRequest:
        """A messenger's own request; anyone else's is not found."""
        req = await self._db.run(functools.partial(store.get_request, request_id=request_id))
        if req is None or req.messenger_id != messenger_id or req.operator_id != operator_id:
            raise errors.NotFound(kind="identification request", ident=request_id)
        return req

    # --- scheduled work ----------------------------------------------------------

    async def fire_due(self, now_ms: int) -> int:
        """Fire one batch of due answers and expiries, in order; returns how many fired."""

        async def unit(conn: aiosqlite.Connection) -> _Fired:
            # Everything the unit produces is returned, nothing kept outside it: a batch
            # may run its units twice (store.inline.run_batch).
            changed: list[tuple[StoredRequest, str]] = []
            emitted: list[Emitted] = []
            jobs = await store.due_jobs(conn, now_ms, _FIRE_BATCH)
            for job in jobs:
                outcome = await self._fire(conn, job)
                if outcome is not None:
                    changed.append(outcome)
                    emitted.append(
                        await self._outbox.emit_answered(
                            conn,
                            messenger_id=outcome[0].messenger_id,
                            operator_id=outcome[0].operator_id,
                            request_json=outcome[0].to_json(),
                            at_ms=job.due_at,
                        )
                    )
                await store.delete_job(conn, job.id)
            return len(jobs), changed, emitted

        fired, changed, emitted = await self._db.run(unit)
        self._outbox.published(emitted)
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

    async def _fire(
        self, conn: aiosqlite.Connection, job: store.Job
    ) -> tuple[StoredRequest, str] | None:
        req = await store.get_request(conn, job.ref)
        if req is None:
            return None
        if job.kind == "expire":
            if req.status != "pending":
                return None
            await store.set_answer(conn, req.id, status="expired", result=None, answered_at=None)
            return replace(req, status="expired"), "expired"
        if job.kind == "answer":
            if req.status == "answered":
                return None
            forced: Result | None = job.payload if job.payload in ("present", "absent") else None  # type: ignore[assignment]
            result = forced or await self._decide(conn, req.operator_id, req.msisdn)
            await store.set_answer(
                conn, req.id, status="answered", result=result, answered_at=job.due_at
            )
            answered = replace(req, status="answered", result=result, answered_at=job.due_at)
            return answered, ("late" if job.due_at > req.due_at else "answered")
        log.warning("unknown_job_kind", kind=job.kind, job_id=job.id)
        return None

    # --- codes -------------------------------------------------------------------

    async def register_code(
        self, *, messenger_id: str, operator_id: str, request_id: str, code: str
    ) -> tuple[StoredCode, bool]:
        """Register the messenger's code for a timely ``present``; (code, created)."""
        now = self._clock.now_ms()

        async def unit(conn: aiosqlite.Connection) -> tuple[StoredCode, bool]:
            req = await store.get_request(conn, request_id)
            if req is None or req.messenger_id != messenger_id:
                # The same answer for another messenger's id as for none: no existence oracle.
                raise errors.NotFound(kind="identification request", ident=request_id)
            if req.operator_id != operator_id:
                raise errors.Conflict(
                    f"request {request_id} was sent to operator {req.operator_id}"
                )
            if not req.timely_present:
                raise errors.Conflict(
                    f"request {request_id} was not answered present within its deadline "
                    f"(status {req.status})"
                )
            existing = await store.find_code_for_request(conn, request_id)
            if existing is not None and existing.code == code:
                return existing, False
            standing = await catalog.subscriber_standing(conn, req.msisdn)
            if standing is not None and (
                standing.operator_id != operator_id or standing.status != "active"
            ):
                # Terminated or ported since the answer: the operator no longer serves them.
                # (No record at all means a rule forced the answer; the code is accepted.)
                # The detail stays neutral: the messenger learns nothing of why.
                raise errors.Conflict("this request can no longer take a code; identify again")
            if existing is not None:
                raise errors.Conflict(f"request {request_id} already has another code")
            taken = await store.find_code(conn, messenger_id, code)
            if taken is not None and taken.msisdn != req.msisdn:
                raise errors.Conflict("this code is registered for another number")
            if taken is not None:
                # The same number identified again: the code now stands for the new request.
                await store.delete_code(conn, messenger_id, code)
            stored = StoredCode(
                messenger_id=messenger_id,
                code=code,
                request_id=request_id,
                operator_id=operator_id,
                msisdn=req.msisdn,
                registered_at=now,
            )
            await store.insert_code(conn, stored)
            return stored, True

        stored, created = await self._db.run(unit)
        if not created:
            return stored, False
        log.info(
            "code_registered",
            identification_id=request_id,
            operator_id=operator_id,
            messenger_id=messenger_id,
        )
        return stored, True

    async def delete_code(self, *, messenger_id: str, operator_id: str, code: str) -> None:
        """Forget a messenger's code (the user left the messenger)."""
        async with self._db.write() as conn:
            found = await store.find_code(conn, messenger_id, code)
            if found is None or found.operator_id != operator_id:
                raise errors.NotFound(kind="identification code")
            await store.delete_code(conn, messenger_id, code)

    # --- routing -----------------------------------------------------------------

    async def route(self, msisdn: str) -> Routing:
        """Which operator to ask about a number."""
        async with self._db.read() as conn:
            standing = await catalog.subscriber_standing(conn, msisdn)
            holder = await catalog.range_holder(conn, msisdn)
        resolved = resolve_routing(
            holder_operator_id=standing.operator_id if standing else None,
            range_operator_id=holder,
        )
        if resolved is None:
            raise errors.NotFound(kind="operator serving this number")
        return Routing(msisdn=msisdn, operator_id=resolved[0], ported=resolved[1])
