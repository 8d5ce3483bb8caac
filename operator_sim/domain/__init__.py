"""Pure decisions of the simulated operator: no I/O, testable on plain values."""

from operator_sim.domain.identification import (
    DEADLINE,
    AnswerPlan,
    is_present,
    plan_answer,
    resolve_routing,
)
from operator_sim.domain.rules import (
    RuleHit,
    RuleIndex,
    by_chance,
    choose_rule,
    draw_delay,
    glob_matches,
    next_count,
    realise,
)

__all__ = [
    "DEADLINE",
    "AnswerPlan",
    "RuleHit",
    "RuleIndex",
    "by_chance",
    "choose_rule",
    "draw_delay",
    "glob_matches",
    "is_present",
    "next_count",
    "plan_answer",
    "realise",
    "resolve_routing",
]
