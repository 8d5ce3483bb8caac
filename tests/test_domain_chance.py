"""Pure decisions about chance and delays: seeded draws, late answers, probability."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import pytest

from operator_sim.domain import DEADLINE, by_chance, choose_rule, draw_delay, plan_answer, realise
from operator_sim.wire import AnswerAction, LognormalDelay, RuleSpec, UniformDelay

MIN = 60_000


def seeded(seed: int) -> random.Random:
    """A seeded generator, as the server keeps one per messenger."""
    return random.Random(seed)  # noqa: S311 (simulation draws, not security)


def rule(**fields: Any) -> RuleSpec:
    return RuleSpec.model_validate({"id": "r", "action": {"type": "never"}, **fields})


def test_by_chance_without_a_probability_always_applies() -> None:
    assert by_chance(None, None)


def test_by_chance_needs_a_generator_for_a_probability() -> None:
    with pytest.raises(ValueError, match="random generator"):
        by_chance(0.5, None)


def test_by_chance_share_matches_the_probability() -> None:
    rng = seeded(1)
    hits = sum(by_chance(0.2, rng) for _ in range(10_000))
    assert 1_880 <= hits <= 2_120  # 3 standard deviations (40) around 2,000


def test_uniform_draws_stay_within_bounds_in_whole_milliseconds() -> None:
    spec = UniformDelay.model_validate({"distribution": "uniform", "min": 60, "max": 61})
    rng = seeded(3)
    draws = {draw_delay(spec, rng) for _ in range(500)}
    assert min(draws) >= timedelta(seconds=60)
    assert max(draws) <= timedelta(seconds=61)
    assert all(d.microseconds % 1000 == 0 for d in draws)
    assert len(draws) > 200


def test_lognormal_median_and_cap() -> None:
    spec = LognormalDelay.model_validate(
        {"distribution": "lognormal", "median": "PT2M", "sigma": 0.5, "max": "PT4M"}
    )
    rng = seeded(4)
    draws = sorted(draw_delay(spec, rng) for _ in range(2001))
    assert timedelta(seconds=110) <= draws[1000] <= timedelta(seconds=130)
    assert draws[-1] == timedelta(minutes=4)


def test_the_same_seed_gives_the_same_draws() -> None:
    spec = UniformDelay.model_validate({"distribution": "uniform", "min": 0, "max": 3600})
    first = [draw_delay(spec, seeded(9)) for _ in range(3)]
    again = [draw_delay(spec, seeded(9)) for _ in range(3)]
    assert first == again


def test_realise_fixes_a_distribution_and_leaves_other_rules_alone() -> None:
    drawn = realise(
        rule(action={"type": "answer", "delay": {"distribution": "uniform", "min": 5, "max": 5}}),
        seeded(0),
    )
    assert isinstance(drawn.action, AnswerAction)
    assert drawn.action.delay == timedelta(seconds=5)
    fixed = rule(action={"type": "answer", "delay": 7})
    assert realise(fixed, None) is fixed


def test_plan_refuses_an_undrawn_distribution() -> None:
    spec = rule(action={"type": "answer", "delay": {"distribution": "uniform", "min": 1, "max": 2}})
    with pytest.raises(ValueError, match="draw the delay first"):
        plan_answer(received_at_ms=0, rule=spec, default_delay=timedelta(0))


def test_late_is_answered_by_after_the_deadline() -> None:
    spec = rule(action={"type": "late", "by": "PT3M", "result": "absent"})
    plan = plan_answer(received_at_ms=MIN, rule=spec, default_delay=timedelta(0))
    deadline_ms = int(DEADLINE.total_seconds() * 1000)
    assert plan.due_at_ms == MIN + deadline_ms
    assert plan.answer_at_ms == MIN + deadline_ms + 3 * MIN
    assert plan.forced_result == "absent"
    assert not plan.immediate


def test_malformed_creates_no_request_plan() -> None:
    with pytest.raises(ValueError, match="create no request"):
        plan_answer(
            received_at_ms=0, rule=rule(action={"type": "malformed"}), default_delay=timedelta(0)
        )


def test_choose_rule_falls_through_a_failed_draw_without_counting() -> None:
    chancy = rule(id="chancy", probability=0.0, times=1)
    fallback = rule(id="fallback")
    hit, updates = choose_rule(
        [chancy, fallback],
        messenger_id="m",
        operator_id="alfa",
        msisdn="+79000000001",
        hits_of=lambda _rule, _scope: 0,
        rng=seeded(0),
    )
    assert hit is not None
    assert hit.rule.id == "fallback"
    assert updates == []
