"""Fault rules added at run time, their hit counts, and the admin view of every rule.

Fixture rules are written by ``catalog.replace_fixture_rules`` at negative positions;
runtime rules follow them in the order they were added.
"""

from __future__ import annotations

import json
import sqlite3

import aiosqlite

from operator_sim.wire import Rule, RuleSpec


def _view(row: sqlite3.Row) -> Rule:
    spec = json.loads(row["spec"])
    return Rule.model_validate({**spec, "source": row["source"], "hits": row["hits"]})


async def list_rule_views(conn: aiosqlite.Connection) -> list[Rule]:
    """Every rule in matching order, with its source and hit count."""
    async with conn.execute("SELECT spec, source, hits FROM rules ORDER BY position, id") as cur:
        rows = await cur.fetchall()
    return [_view(row) for row in rows]


async def get_rule_view(conn: aiosqlite.Connection, rule_id: str) -> Rule | None:
    """One rule with its source and hit count."""
    async with conn.execute("SELECT spec, source, hits FROM rules WHERE id = ?", (rule_id,)) as cur:
        row = await cur.fetchone()
    return None if row is None else _view(row)


async def insert_runtime_rule(conn: aiosqlite.Connection, spec: RuleSpec) -> bool:
    """Append a rule after every other; False when a rule with this id exists."""
    try:
        await conn.execute(
            "INSERT INTO rules (id, position, source, spec) "
            "SELECT ?, coalesce(max(position) + 1, 0), 'runtime', ? FROM rules "
            "WHERE source = 'runtime'",
            (spec.id, spec.model_dump_json()),
        )
    except sqlite3.IntegrityError:
        return False
    return True


async def delete_rule(conn: aiosqlite.Connection, rule_id: str) -> bool:
    """Remove a rule and its counters; False when there is none by that id."""
    cur = await conn.execute("DELETE FROM rules WHERE id = ?", (rule_id,))
    if cur.rowcount == 0:
        return False
    await conn.execute("DELETE FROM rule_counters WHERE rule_id = ?", (rule_id,))
    return True


async def count_hit(conn: aiosqlite.Connection, rule_id: str) -> None:
    """One more request the rule applied to."""
    await conn.execute("UPDATE rules SET hits = hits + 1 WHERE id = ?", (rule_id,))


async def forget_messenger_rules(conn: aiosqlite.Connection, messenger_id: str) -> int:
    """Drop the runtime rules scoped to one messenger, and zero the counters of its others.

    Returns how many runtime rules were dropped. Counters kept per messenger are zeroed
    for every rule; counters of rules that match only this messenger are zeroed too.
    """
    own = "SELECT id FROM rules WHERE json_extract(spec, '$.match.messenger_id') = ?"
    params = (messenger_id,)
    await conn.execute("DELETE FROM rule_counters WHERE scope = ?", params)
    # `own` is a constant subquery; the messenger id is a bound parameter.
    await conn.execute(f"DELETE FROM rule_counters WHERE rule_id IN ({own})", params)  # noqa: S608
    await conn.execute(f"UPDATE rules SET hits = 0 WHERE id IN ({own})", params)  # noqa: S608
    cur = await conn.execute(
        "DELETE FROM rules WHERE source = 'runtime' "
        "AND json_extract(spec, '$.match.messenger_id') = ?",
        (messenger_id,),
    )
    return cur.rowcount
