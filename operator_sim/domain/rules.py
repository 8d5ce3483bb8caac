"""Fault-rule matching and counting."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from operator_sim.wire import RuleSpec


def glob_matches(pattern: str, msisdn: str) -> bool:
    """Exact number, or a glob where ``*`` stands for any run of characters."""
    if "*" not in pattern:
        return pattern == msisdn
    return fnmatch.fnmatchcase(msisdn, pattern)


def rule_matches(rule: RuleSpec, *, messenger_id: str, operator_id: str, msisdn: str) -> bool:
    """Whether every field the rule sets matches this request."""
    match = rule.match
    return (
        (match.messenger_id is None or match.messenger_id == messenger_id)
        and (match.operator_id is None or match.operator_id == operator_id)
        and (match.msisdn is None or glob_matches(match.msisdn, msisdn))
    )


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
    operator_id: str,
    msisdn: str,
    hits_of: Callable[[str, str], int],
) -> tuple[RuleHit | None, list[tuple[str, str, int]]]:
    """The first matching rule that applies, and every counter change to store.

    ``hits_of(rule_id, scope)`` reads a counter. Rules are tried in order; a rule that is
    spent or cycling lets the request fall through to the next one.
    """
    updates: list[tuple[str, str, int]] = []
    for rule in rules:
        if not rule_matches(
            rule, messenger_id=messenger_id, operator_id=operator_id, msisdn=msisdn
        ):
            continue
        scope = counter_scope(rule, messenger_id)
        hits = hits_of(rule.id, scope)
        applies, new_hits = next_count(rule, hits)
        if new_hits != hits:
            updates.append((rule.id, scope, new_hits))
        if applies:
            return RuleHit(rule, scope, new_hits), updates
    return None, updates
