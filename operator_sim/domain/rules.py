"""Fault-rule matching, counting and chance.

Randomness is always drawn from a ``random.Random`` the caller passes in, so a seeded
server makes the same decisions for the same sequence of requests.
"""

from __future__ import annotations

import fnmatch
import heapq
import math
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta

from operator_sim.wire import AnswerAction, LognormalDelay, RuleSpec, UniformDelay


def glob_matches(pattern: str, msisdn: str) -> bool:
    """Exact number, or a glob where ``*`` stands for any run of characters."""
    if "*" not in pattern:
        return pattern == msisdn
    return fnmatch.fnmatchcase(msisdn, pattern)


def rule_matches(
    rule: RuleSpec,
    *,
    messenger_id: str,
    operator_id: str | None,
    msisdn: str | None,
    endpoint: str = "identification.create",
    event_type: str | None = None,
) -> bool:
    """Whether every field the rule sets matches this call.

    A rule naming a number never matches a call that has none (the events feeds), nor
    one naming an operator a call to no operator (routing).
    """
    match = rule.match
    return (
        match.endpoint == endpoint
        and (match.messenger_id is None or match.messenger_id == messenger_id)
        and (match.operator_id is None or match.operator_id == operator_id)
        and (match.msisdn is None or (msisdn is not None and glob_matches(match.msisdn, msisdn)))
        and (match.event_type is None or match.event_type == event_type)
    )


class RuleIndex:
    """Rules grouped by the endpoint they act on and the exact number they name.

    A call is tried against :meth:`candidates` only: the rules of its endpoint that name
    its number exactly or name none (or a glob), in matching order. Every rule that
    :func:`rule_matches` a call is among them, so matching the candidates finds what
    matching every rule would, without trying the rest.
    """

    __slots__ = ("_named", "_open")

    def __init__(self, rules: Iterable[RuleSpec]) -> None:
        named: dict[tuple[str, str], list[tuple[int, RuleSpec]]] = {}
        unnamed: dict[str, list[tuple[int, RuleSpec]]] = {}
        for position, rule in enumerate(rules):
            number, endpoint = rule.match.msisdn, rule.match.endpoint
            if number is not None and "*" not in number:
                named.setdefault((endpoint, number), []).append((position, rule))
            else:
                unnamed.setdefault(endpoint, []).append((position, rule))
        self._named = {key: tuple(group) for key, group in named.items()}
        self._open = {key: tuple(group) for key, group in unnamed.items()}

    def candidates(self, endpoint: str, msisdn: str | None) -> list[RuleSpec]:
        """The rules that may match a call to ``endpoint`` about ``msisdn``, in order."""
        named = () if msisdn is None else self._named.get((endpoint, msisdn), ())
        unnamed = self._open.get(endpoint, ())
        if not named:
            return [rule for _, rule in unnamed]
        if not unnamed:
            return [rule for _, rule in named]
        # Positions are unique: the merge never compares two rules.
        return [rule for _, rule in heapq.merge(named, unnamed)]


def counter_scope(rule: RuleSpec, messenger_id: str) -> str:
    """The key under which a rule's hits are counted."""
    return messenger_id if rule.count_per == "messenger" else ""


def next_count(rule: RuleSpec, hits: int) -> tuple[bool, int]:
    """Whether the rule applies given its hits so far, and the new hit count.

    Without ``times`` a rule always applies. With ``times`` it applies that many times;
    then it is spent, or with ``cycle`` it lets one request through and starts again.
    """
    if rule.times is None:
        return True, hits  # nothing to count: unlimited rules cost no write
    if hits < rule.times:
        return True, hits + 1
    if rule.cycle:
        return False, 0
    return False, hits


def by_chance(probability: float | None, rng: random.Random | None) -> bool:
    """Whether a rule with this ``probability`` applies this time (always without one)."""
    if probability is None:
        return True
    if rng is None:
        raise ValueError("a rule with a probability needs a random generator")
    return rng.random() < probability


def _ms(value: timedelta) -> int:
    return round(value.total_seconds() * 1000)


def draw_delay(
    delay: timedelta | UniformDelay | LognormalDelay, rng: random.Random | None
) -> timedelta:
    """A concrete answer delay, in whole milliseconds: fixed, or drawn from its distribution."""
    if isinstance(delay, timedelta):
        return delay
    if rng is None:
        raise ValueError("a delay distribution needs a random generator")
    if isinstance(delay, UniformDelay):
        low, high = _ms(delay.min), _ms(delay.max)
        return timedelta(milliseconds=rng.randint(low, high))
    median = delay.median.total_seconds()
    seconds = 0.0 if median <= 0 else rng.lognormvariate(math.log(median), delay.sigma)
    drawn = timedelta(milliseconds=round(seconds * 1000))
    return drawn if delay.max is None else min(drawn, delay.max)


def realise(rule: RuleSpec, rng: random.Random | None) -> RuleSpec:
    """The rule with any delay distribution replaced by one draw from it."""
    action = rule.action
    if not isinstance(action, AnswerAction) or isinstance(action.delay, timedelta):
        return rule
    fixed = action.model_copy(update={"delay": draw_delay(action.delay, rng)})
    return rule.model_copy(update={"action": fixed})


@dataclass(frozen=True, slots=True)
class RuleHit:
    """A rule that applies to a request, with the counter update to store."""

    rule: RuleSpec
    scope: str
    hits: int


def choose_rule(
    rules: Iterable[RuleSpec],
    *,
    messenger_id: str,
    operator_id: str | None,
    msisdn: str | None,
    hits_of: Callable[[str, str], int],
    rng: random.Random | None = None,
    endpoint: str = "identification.create",
    event_type: str | None = None,
) -> tuple[RuleHit | None, list[tuple[str, str, int]]]:
    """The first matching rule that applies, and every counter change to store.

    ``hits_of(rule_id, scope)`` reads a counter. Rules are tried in order; a rule that is
    spent or cycling, or whose ``probability`` draw fails, lets the request fall through
    to the next one. A failed draw counts nothing: ``times`` counts applications.
    """
    updates: list[tuple[str, str, int]] = []
    for rule in rules:
        if not rule_matches(
            rule,
            messenger_id=messenger_id,
            operator_id=operator_id,
            msisdn=msisdn,
            endpoint=endpoint,
            event_type=event_type,
        ):
            continue
        scope = counter_scope(rule, messenger_id)
        hits = hits_of(rule.id, scope)
        applies, new_hits = next_count(rule, hits)
        if applies and not by_chance(rule.probability, rng):
            continue
        if new_hits != hits:
            updates.append((rule.id, scope, new_hits))
        if applies:
            return RuleHit(rule, scope, new_hits), updates
    return None, updates
