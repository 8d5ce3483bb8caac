"""Pure decisions of the simulated operator: no I/O, testable on plain values."""

from operator_sim.domain.identification import (
    DEADLINE,
    AnswerPlan,
    is_present,
    plan_answer,
    resolve_routing,
)
from operator_sim.domain.rules import RuleHit, choose_rule, glob_matches, next_count

__all__ = [
    "DEADLINE",
    "AnswerPlan",
    "RuleHit",
    "choose_rule",
    "glob_matches",
    "is_present",
    "next_count",
    "plan_answer",
    "resolve_routing",
]
