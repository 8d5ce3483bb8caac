"""Pure decisions: presence, routing, answer plans, rule matching and counting."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from operator_sim.domain import (
    RuleIndex,
    choose_rule,
    glob_matches,
    is_present,
    next_count,
    plan_answer,
    resolve_routing,
)
from operator_sim.domain.rules import rule_matches
from operator_sim.wire import RuleSpec

MIN = 60_000


def rule(**kwargs: object) -> RuleSpec:
    return RuleSpec.model_validate({"id": "r", "action": {"type": "never"}, **kwargs})


@pytest.mark.parametrize(
    ("holder", "status", "complete", "asked", "present"),
    [
        ("alfa", "active", True, "alfa", True),
        ("alfa", "active", False, "alfa", False),
        ("alfa", "terminated", True, "alfa", False),
        ("beta", "active", True, "alfa", False),
        (None, None, None, "alfa", False),
    ],
)
def test_is_present(
    holder: str | None, status: str | None, complete: bool | None, asked: str, present: bool
) -> None:
    assert (
        is_present(
            holder_operator_id=holder,
            status=status,
            data_complete=complete,
            asked_operator_id=asked,
        )
        is present
    )


def test_resolve_routing() -> None:
    assert resolve_routing(holder_operator_id="beta", range_operator_id="alfa") == ("beta", True)
    assert resolve_routing(holder_operator_id="alfa", range_operator_id="alfa") == ("alfa", False)
    assert resolve_routing(holder_operator_id=None, range_operator_id="alfa") == ("alfa", False)
    assert resolve_routing(holder_operator_id=None, range_operator_id=None) is None


def test_plan_without_rule_answers_at_once() -> None:
    plan = plan_answer(received_at_ms=0, rule=None, default_delay=timedelta(0))
    assert plan.immediate
    assert plan.due_at_ms == 20 * MIN


def test_plan_never_has_no_answer() -> None:
    plan = plan_answer(received_at_ms=0, rule=rule(), default_delay=timedelta(0))
    assert plan.answer_at_ms is None
    assert not plan.immediate


def test_plan_delayed_and_forced() -> None:
    spec = rule(action={"type": "answer", "delay": "PT25M", "result": "present"})
    plan = plan_answer(received_at_ms=MIN, rule=spec, default_delay=timedelta(0))
    assert (plan.answer_at_ms, plan.forced_result) == (26 * MIN, "present")


@pytest.mark.parametrize(
    ("pattern", "msisdn", "matches"),
    [
        ("+79000000001", "+79000000001", True),
        ("+79000000001", "+79000000002", False),
        ("+7900*", "+79001234567", True),
        ("+7900*", "+79101234567", False),
        ("*67", "+79161234567", True),
        ("*", "+1234567", True),
    ],
)
def test_glob_matches(pattern: str, msisdn: str, matches: bool) -> None:
    assert glob_matches(pattern, msisdn) is matches


def test_times_then_spent() -> None:
    spec = rule(times=2)
    assert next_count(spec, 0) == (True, 1)
    assert next_count(spec, 1) == (True, 2)
    assert next_count(spec, 2) == (False, 2)


def test_times_with_cycle_lets_one_through_and_restarts() -> None:
    spec = rule(times=2, cycle=True)
    assert next_count(spec, 2) == (False, 0)
    assert next_count(spec, 0) == (True, 1)


@given(st.integers(min_value=1, max_value=5), st.integers(min_value=1, max_value=40))
def test_cycling_rule_applies_times_out_of_every_times_plus_one(times: int, calls: int) -> None:
    spec = rule(times=times, cycle=True)
    hits, applied = 0, []
    for _ in range(calls):
        applies, hits = next_count(spec, hits)
        applied.append(applies)
    period = times + 1
    expected = [(i % period) < times for i in range(calls)]
    assert applied == expected


def test_choose_rule_falls_through_spent_rules_in_order() -> None:
    first = RuleSpec.model_validate(
        {"id": "first", "match": {"msisdn": "+7900*"}, "action": {"type": "never"}, "times": 1}
    )
    second = RuleSpec.model_validate({"id": "second", "action": {"type": "drop"}})
    counters = {("first", ""): 1}
    hit, updates = choose_rule(
        [first, second],
        messenger_id="m",
        operator_id="alfa",
        msisdn="+79001234567",
        hits_of=lambda rid, scope: counters.get((rid, scope), 0),
    )
    assert hit is not None
    assert hit.rule.id == "second"
    assert updates == []


def test_choose_rule_respects_messenger_and_operator() -> None:
    spec = RuleSpec.model_validate(
        {
            "id": "only",
            "match": {"messenger_id": "a", "operator_id": "beta"},
            "action": {"type": "never"},
            "times": 3,
            "count_per": "messenger",
        }
    )
    miss, _ = choose_rule(
        [spec], messenger_id="b", operator_id="beta", msisdn="+7900", hits_of=lambda _r, _s: 0
    )
    assert miss is None
    hit, updates = choose_rule(
        [spec], messenger_id="a", operator_id="beta", msisdn="+7900", hits_of=lambda _r, _s: 0
    )
    assert hit is not None
    assert updates == [("only", "a", 1)]


_NUMBERS = ("+79000000001", "+79000000002", "+79000000003")


@st.composite
def _rule_sets(draw: st.DrawFn) -> list[RuleSpec]:
    """Rules on a few endpoints naming a number, a glob or none, for a few messengers."""
    specs = []
    for i in range(draw(st.integers(0, 12))):
        match: dict[str, str] = {
            "endpoint": draw(st.sampled_from(["identification.create", "code.register"]))
        }
        number = draw(st.sampled_from([None, *_NUMBERS, "+790000000*", "+7900*2"]))
        if number is not None:
            match["msisdn"] = number
        if draw(st.booleans()):
            match["messenger_id"] = draw(st.sampled_from(["m1", "m2"]))
        specs.append(
            RuleSpec.model_validate({"id": f"r{i}", "match": match, "action": {"type": "drop"}})
        )
    return specs


@given(
    _rule_sets(),
    st.sampled_from(["identification.create", "code.register", "routing.get"]),
    st.sampled_from([None, *_NUMBERS, "+79000000009"]),
    st.sampled_from(["m1", "m2"]),
)
def test_rule_index_finds_every_matching_rule_in_order(
    specs: list[RuleSpec], endpoint: str, msisdn: str | None, messenger_id: str
) -> None:
    def matching(rules: list[RuleSpec]) -> list[str]:
        return [
            r.id
            for r in rules
            if rule_matches(
                r, messenger_id=messenger_id, operator_id=None, msisdn=msisdn, endpoint=endpoint
            )
        ]

    candidates = RuleIndex(specs).candidates(endpoint, msisdn)
    assert matching(candidates) == matching(specs)
    assert [r.id for r in candidates] == [r.id for r in specs if r in candidates]  # in order
