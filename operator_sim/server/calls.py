"""Every messenger-facing call: journalled, and open to the fault rules for its endpoint.

A service screens its call against the fault rules and records it in the journal inside
its own unit of work, so a call costs no commit of its own and its entry is committed
before its answer is sent. A call that ends before its unit (a bad body, an unknown id,
a refusal by the limits) is recorded by the route's guard afterwards, in a unit of its
own: refused calls are in the journal too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from aiohttp import web

from operator_sim import errors
from operator_sim.clock import SimClock
from operator_sim.server.metrics import Metrics
from operator_sim.server.rulebook import Rulebook, answered_status, refusal
from operator_sim.server.waiters import JOURNAL_CHANGED, Waiters
from operator_sim.store import Conn, Database, journal
from operator_sim.wire import DelayAction, RuleSpec

__all__ = ["CALL", "SUCCESS_STATUS", "Call", "Calls", "Screened"]

SUCCESS_STATUS: dict[str, int] = {
    "identification.create": 201,
    "identification.get": 200,
    "code.register": 201,
    "code.delete": 204,
    "routing.get": 200,
    "events.list": 200,
    "sms.send": 202,
    "sms.get": 200,
    "sms.events": 200,
    "sim_swap.check": 200,
    "sim_swap.retrieve_date": 200,
}
"""Each call's own success status: what a ``malformed`` rule answers with."""


@dataclass(slots=True)
class Call:
    """One messenger-facing call, from its guard to its journal entry."""

    endpoint: str
    method: str
    path: str
    messenger_id: str
    received_at: int
    operator_id: str | None = None
    msisdn: str | None = None
    """The number the call is about, once known (its input, or the resource it reads)."""
    journaled: bool = False
    hold: float = 0.0
    """Real seconds to hold the answer after the work is done (a ``delay`` rule)."""

    @property
    def own_status(self) -> int:
        """The call's success status."""
        return SUCCESS_STATUS[self.endpoint]

    def entry(
        self,
        status: int,
        *,
        rule_id: str | None = None,
        replayed: bool = False,
        request_id: str | None = None,
        msisdn: str | None = None,
    ) -> journal.Entry:
        """The journal entry for this call, answered ``status``."""
        return journal.Entry(
            messenger_id=self.messenger_id,
            endpoint=self.endpoint,
            method=self.method,
            path=self.path,
            http_status=status,
            received_at=self.received_at,
            operator_id=self.operator_id,
            msisdn=msisdn or self.msisdn,
            request_id=request_id,
            rule_id=rule_id,
            replayed=replayed,
        )


CALL = web.RequestKey("call", Call)
"""The call a messenger-facing request makes, set by its route's guard."""


class Screened(NamedTuple):
    """What the fault rules decided for a call, inside its unit."""

    rule: RuleSpec | None
    refused: bool = False
    dropped: int = 0
    """Journal entries dropped to keep the cap, by the refusal's entry."""

    @property
    def rule_id(self) -> str | None:
        """The rule that acted on the call, if any."""
        return None if self.rule is None else self.rule.id


class Calls:
    """Opens calls, screens them against the rules, and records them in the journal."""

    def __init__(
        self,
        db: Database,
        clock: SimClock,
        rulebook: Rulebook,
        metrics: Metrics,
        waiters: Waiters,
        *,
        journal_cap: int | None,
    ) -> None:
        self._waiters = waiters
        self._db = db
        self._clock = clock
        self._rulebook = rulebook
        self._metrics = metrics
        self._cap = journal_cap

    def open(self, request: web.Request, endpoint: str, messenger_id: str) -> Call:
        """The call a guarded request makes, stamped with the simulation time it came in."""
        return Call(
            endpoint=endpoint,
            method=request.method,
            path=request.path,
            messenger_id=messenger_id,
            received_at=self._clock.now_ms(),
            operator_id=request.match_info.get("operator_id"),
        )

    async def rules(self) -> tuple[RuleSpec, ...]:
        """The rules, read outside the unit (cached)."""
        return await self._rulebook.rules()

    async def screen(
        self, conn: Conn, call: Call, rules: Sequence[RuleSpec], *, msisdn: str | None = None
    ) -> Screened:
        """Inside the call's unit: the rule that applies to it, and, if the rule refuses
        the call, its journal entry (the caller then does no work and raises
        :meth:`refused` after the commit)."""
        number = msisdn or call.msisdn
        rule = await self._rulebook.pick(
            conn,
            rules,
            messenger_id=call.messenger_id,
            operator_id=call.operator_id,
            msisdn=number,
            endpoint=call.endpoint,
        )
        if rule is None or refusal(rule, call.own_status) is None:
            return Screened(rule)
        entry = call.entry(answered_status(rule, call.own_status), rule_id=rule.id, msisdn=number)
        return Screened(rule, refused=True, dropped=await journal.add(conn, entry, cap=self._cap))

    async def record(self, conn: Conn, entry: journal.Entry) -> int:
        """Inside the call's unit: its journal entry; returns how many old entries went."""
        return await journal.add(conn, entry, cap=self._cap)

    def committed(self, call: Call, screened: Screened, *, dropped: int = 0) -> None:
        """After the call's unit committed: the call is journalled; count what happened.

        Raises the refusal when the rule refused the call; a ``delay`` rule sets how long
        the guard holds the answer.
        """
        call.journaled = True
        self._waiters.notify(JOURNAL_CHANGED)
        total = dropped + screened.dropped
        if total:
            self._metrics.journal_dropped.inc(total)
        rule = screened.rule
        if rule is None:
            return
        self._rulebook.applied(rule.id)
        if isinstance(rule.action, DelayAction):
            call.hold = rule.action.seconds
        if screened.refused:
            error = refusal(rule, call.own_status)
            if error is not None:
                raise error

    async def record_alone(self, call: Call, status: int) -> None:
        """Journal a call that ended before its own unit (refused, or failed), in a unit of
        its own; nothing else it asked for was done."""
        if call.journaled:
            return
        entry = call.entry(status)
        try:
            dropped = await self._db.run(lambda conn: journal.add(conn, entry, cap=self._cap))
        except errors.StoreError:
            return  # the call failed because the database did: nothing more to keep
        call.journaled = True
        self._waiters.notify(JOURNAL_CHANGED)
        if dropped:
            self._metrics.journal_dropped.inc(dropped)
