"""Fault rules: the admin's rule set, and picking the rule that applies to a call.

The rule list is cached in memory and read *outside* units of work; inside a unit,
:meth:`Rulebook.pick` reads and updates only the database (counters, and the position of
the messenger's random draws), so a unit that runs twice decides the same way twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import structlog

from operator_sim import errors
from operator_sim.domain import RuleIndex, choose_rule, realise
from operator_sim.domain.draws import NumberedDraws
from operator_sim.domain.rules import counter_scope, rule_matches
from operator_sim.server.metrics import Metrics
from operator_sim.server.operators import Operators
from operator_sim.server.waiters import RULES_CHANGED, Waiters
from operator_sim.store import Conn, Database
from operator_sim.store import rules as rules_table
from operator_sim.wire import (
    AnswerAction,
    DropAction,
    HttpErrorAction,
    MalformedAction,
    Rule,
    RuleSpec,
)

__all__ = ["Rulebook", "answered_status", "refusal"]

log = structlog.get_logger("operator_sim.rules")


def _needs_draws(rules: Sequence[RuleSpec]) -> bool:
    return any(
        rule.probability is not None
        or (isinstance(rule.action, AnswerAction) and not _fixed(rule.action))
        for rule in rules
    )


def _fixed(action: AnswerAction) -> bool:
    return isinstance(action.delay, timedelta)


def refusal(rule: RuleSpec, own_status: int) -> errors.OperatorSimError | None:
    """The error a refusing rule answers with (HTTP error, malformed body, dropped
    connection); None for a rule that lets the call through. ``own_status`` is the
    call's success status, which a malformed answer carries unless the rule names one."""
    action = rule.action
    if isinstance(action, HttpErrorAction):
        return errors.InjectedFault(
            status=action.status, retry_after=action.retry_after, rule_id=rule.id
        )
    if isinstance(action, MalformedAction):
        return errors.InjectedMalformed(
            status=action.status or own_status, body=action.body, rule_id=rule.id
        )
    if isinstance(action, DropAction):
        return errors.DropConnection(rule_id=rule.id)
    return None


def answered_status(rule: RuleSpec, own_status: int) -> int:
    """The HTTP status a refusing rule answers with; 0 when it answers nothing (drop)."""
    action = rule.action
    if isinstance(action, HttpErrorAction):
        return action.status
    if isinstance(action, MalformedAction):
        return action.status or own_status
    return 0


class Rulebook:
    """The fault rules of one server: stored, cached, matched and counted."""

    def __init__(
        self, db: Database, metrics: Metrics, operators: Operators, waiters: Waiters, *, seed: int
    ) -> None:
        self._waiters = waiters
        self._db = db
        self._metrics = metrics
        self._operators = operators
        self._seed = seed
        self._cached: tuple[RuleSpec, ...] | None = None
        self._index: RuleIndex | None = None
        """The cached rules' index: a call is tried only against those that may match it."""
        self._version = 0

    # --- the cache, outside units ------------------------------------------------------

    async def rules(self) -> tuple[RuleSpec, ...]:
        """Every rule in matching order (cached until the rules change)."""
        cached = self._cached
        if cached is not None:
            return cached
        version = self._version
        loaded = tuple(await self._db.read(rules_table.list_rules))
        if version == self._version:  # not changed while it was read
            self._cached, self._index = loaded, RuleIndex(loaded)
        return loaded

    def changed(self) -> None:
        """Forget the cached rules: they were added, removed or reset."""
        self._version += 1
        self._cached = self._index = None
        self._waiters.notify(RULES_CHANGED)

    # --- inside a unit ----------------------------------------------------------------

    async def pick(
        self,
        conn: Conn,
        rules: Sequence[RuleSpec],
        *,
        messenger_id: str,
        operator_id: str | None,
        msisdn: str | None,
        endpoint: str = "identification.create",
        event_type: str | None = None,
    ) -> RuleSpec | None:
        """The rule that applies to this call (any delay drawn), with counters updated.

        ``rules`` is what :meth:`rules` returned (or any other list, tried whole).
        """
        index = self._index
        tried = (
            index.candidates(endpoint, msisdn)
            if index is not None and rules is self._cached
            else rules
        )
        if not tried:
            return None
        matching = [
            r
            for r in tried
            if rule_matches(
                r,
                messenger_id=messenger_id,
                operator_id=operator_id,
                msisdn=msisdn,
                endpoint=endpoint,
                event_type=event_type,
            )
        ]
        if not matching:
            return None
        counters = await rules_table.get_rule_counters(
            conn, [(r.id, counter_scope(r, messenger_id)) for r in matching]
        )
        draws: NumberedDraws | None = None
        start = 0
        if _needs_draws(matching):
            start = await rules_table.draw_position(conn, messenger_id)
            draws = NumberedDraws(f"{self._seed}/{messenger_id}", start)
        hit, updates = choose_rule(
            matching,
            messenger_id=messenger_id,
            operator_id=operator_id,
            msisdn=msisdn,
            hits_of=lambda rule_id, scope: counters.get((rule_id, scope), 0),
            rng=draws,
            endpoint=endpoint,
            event_type=event_type,
        )
        if updates:
            await rules_table.set_rule_counters(conn, updates)
        chosen = None
        if hit is not None:
            await rules_table.count_hit(conn, hit.rule.id)
            chosen = realise(hit.rule, draws)
        if draws is not None and draws.position != start:
            await rules_table.set_draw_position(conn, messenger_id, draws.position)
        return chosen

    def applied(self, rule_id: str) -> None:
        """Count a rule that applied (after its unit committed)."""
        self._metrics.child(self._metrics.faults, rule_id).inc()
        self._waiters.notify(RULES_CHANGED)  # its hit count moved

    # --- the admin's rule set ----------------------------------------------------------

    async def add(self, spec: RuleSpec) -> Rule:
        """Append a runtime rule after every other; 409 when the id is taken."""
        if spec.match.operator_id is not None:
            self._operators.require(spec.match.operator_id, field=("match", "operator_id"))
        added = await self._db.run(lambda conn: rules_table.add_runtime_rule(conn, spec))
        self.changed()
        if added is None:
            raise errors.Conflict(f"a rule with id {spec.id} exists")
        log.info("rule_added", rule_id=spec.id, action=spec.action.type)
        return added

    async def list_rules(self) -> list[Rule]:
        """Every rule in matching order, with its source and hit count."""
        return await self._db.read(rules_table.list_rule_views)

    async def get(self, rule_id: str) -> Rule:
        """One rule with its source and hit count."""
        found = await self._db.read(lambda conn: rules_table.get_rule_view(conn, rule_id))
        if found is None:
            raise errors.NotFound(kind="rule", ident=rule_id)
        return found

    async def delete(self, rule_id: str) -> None:
        """Remove a rule (a fixture rule comes back on the next reset)."""
        found = await self._db.run(lambda conn: rules_table.delete_rule(conn, rule_id))
        if not found:
            raise errors.NotFound(kind="rule", ident=rule_id)
        self.changed()
        log.info("rule_deleted", rule_id=rule_id)
