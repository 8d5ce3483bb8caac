"""Presence, deadlines and routing: what the decree asks of the operator."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal, NamedTuple

from operator_sim.wire import (
    IDENTIFICATION_DEADLINE,
    AnswerAction,
    DropAction,
    HttpErrorAction,
    LateAction,
    MalformedAction,
    NeverAction,
    RuleSpec,
)

DEADLINE = IDENTIFICATION_DEADLINE

_DEADLINE_MS = int(DEADLINE.total_seconds() * 1000)


def is_present(
    *,
    holder_operator_id: str | None,
    status: str | None,
    data_complete: bool | None,
    asked_operator_id: str,
) -> bool:
    """``present`` only for an active contract with complete data, held by the operator asked.

    Everything else (no record, another operator's record, a terminated contract,
    incomplete data) is ``absent``; the answer never says which.
    """
    return holder_operator_id == asked_operator_id and status == "active" and bool(data_complete)


def resolve_routing(
    *, holder_operator_id: str | None, range_operator_id: str | None
) -> tuple[str, bool] | None:
    """The operator to ask and whether the number is ported, or None when nobody serves it.

    The record holder wins; ``ported`` is true when it differs from the range holder.
    """
    if holder_operator_id is not None:
        return holder_operator_id, holder_operator_id != range_operator_id
    if range_operator_id is not None:
        return range_operator_id, False
    return None


class AnswerPlan(NamedTuple):
    """When and how a new request will be answered."""

    received_at_ms: int
    due_at_ms: int
    answer_at_ms: int | None
    """None: never answered (it expires at ``due_at_ms``)."""
    forced_result: Literal["present", "absent"] | None

    @property
    def immediate(self) -> bool:
        """Answered in the same transaction that creates the request."""
        return self.answer_at_ms is not None and self.answer_at_ms <= self.received_at_ms


def plan_answer(
    *, received_at_ms: int, rule: RuleSpec | None, default_delay: timedelta
) -> AnswerPlan:
    """Plan the answer for a request received now, under the rule that matched (if any)."""
    due = received_at_ms + _DEADLINE_MS
    action = rule.action if rule is not None else None
    if isinstance(action, NeverAction):
        return AnswerPlan(received_at_ms, due, None, None)
    if isinstance(action, AnswerAction):
        if not isinstance(action.delay, timedelta):
            raise ValueError("draw the delay first (domain.rules.realise)")
        delay_ms = int(action.delay.total_seconds() * 1000)
        return AnswerPlan(received_at_ms, due, received_at_ms + delay_ms, action.result)
    if isinstance(action, LateAction):
        late_ms = max(1, int(action.by.total_seconds() * 1000))
        return AnswerPlan(received_at_ms, due, due + late_ms, action.result)
    if isinstance(action, HttpErrorAction | DropAction | MalformedAction):
        raise ValueError("HTTP-level actions create no request")
    delay_ms = int(default_delay.total_seconds() * 1000)
    return AnswerPlan(received_at_ms, due, received_at_ms + delay_ms, None)
