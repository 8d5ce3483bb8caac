"""Fault rules (``rules``), their counters (``rule_counters``) and the admin view of them.

Fixture rules are written by :func:`replace_fixture_rules` at negative positions;
runtime rules follow them in the order they were added.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence

from operator_sim.store.conn import Conn
from operator_sim.wire import Rule, RuleSpec


async def replace_fixture_rules(conn: Conn, rules: Sequence[RuleSpec]) -> None:
    """Make the fixture's rules exactly these (runtime rules are kept after them)."""
    await conn.execute(
        "DELETE FROM rule_counters WHERE rule_id IN (SELECT id FROM rules WHERE source = 'fixture')"
    )
    await conn.execute("DELETE FROM rules WHERE source = 'fixture'")
    await conn.executemany(
        "INSERT OR REPLACE INTO rules (id, position, source, spec) VALUES (?, ?, 'fixture', ?)",
        [(r.id, i - len(rules), r.model_dump_json()) for i, r in enumerate(rules)],
    )


async def list_rules(conn: Conn) -> list[RuleSpec]:
    """Every rule in matching order: the fixture's first, then those added at run time."""
    async with conn.execute("SELECT spec FROM rules ORDER BY position, id") as cur:
        rows = await cur.fetchall()
    return [RuleSpec.model_validate(json.loads(row["spec"])) for row in rows]


async def get_rule_counters(
    conn: Conn, keys: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], int]:
    """The hit counters of these (rule id, scope) pairs; missing ones are zero."""
    found: dict[tuple[str, str], int] = {}
    for rule_id, scope in keys:
        async with conn.execute(
            "SELECT hits FROM rule_counters WHERE rule_id = ? AND scope = ?", (rule_id, scope)
        ) as cur:
            row = await cur.fetchone()
        found[(rule_id, scope)] = 0 if row is None else int(row[0])
    return found


async def set_rule_counters(conn: Conn, updates: Sequence[tuple[str, str, int]]) -> None:
    """Store counter changes."""
    await conn.executemany(
        "INSERT INTO rule_counters (rule_id, scope, hits) VALUES (?, ?, ?) "
        "ON CONFLICT (rule_id, scope) DO UPDATE SET hits = excluded.hits",
        updates,
    )


def _view(row: sqlite3.Row) -> Rule:
    spec = json.loads(row["spec"])
    return Rule.model_validate({**spec, "source": row["source"], "hits": row["hits"]})


async def list_rule_views(conn: Conn) -> list[Rule]:
    """Every rule in matching order, with its source and hit count."""
    async with conn.execute("SELECT spec, source, hits FROM rules ORDER BY position, id") as cur:
        rows = await cur.fetchall()
    return [_view(row) for row in rows]


async def get_rule_view(conn: Conn, rule_id: str) -> Rule | None:
    """One rule with its source and hit count."""
    async with conn.execute("SELECT spec, source, hits FROM rules WHERE id = ?", (rule_id,)) as cur:
        row = await cur.fetchone()
    return None if row is None else _view(row)


async def insert_runtime_rule(conn: Conn, spec: RuleSpec) -> bool:
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


async def delete_rule(conn: Conn, rule_id: str) -> bool:
    """Remove a rule and its counters; False when there is none by that id."""
    cur = await conn.execute("DELETE FROM rules WHERE id = ?", (rule_id,))
    if cur.rowcount == 0:
        return False
    await conn.execute("DELETE FROM rule_counters WHERE rule_id = ?", (rule_id,))
    return True


async def count_hit(conn: Conn, rule_id: str) -> None:
    """One more request the rule applied to."""
    await conn.execute("UPDATE rules SET hits = hits + 1 WHERE id = ?", (rule_id,))


async def forget_messenger_rules(conn: Conn, messenger_id: str) -> int:
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


async def draw_position(conn: Conn, messenger_id: str) -> int:
    """How many random numbers the fault rules have drawn for this messenger."""
    async with conn.execute(
        "SELECT position FROM rule_draws WHERE messenger_id = ?", (messenger_id,)
    ) as cur:
        row = await cur.fetchone()
    return 0 if row is None else int(row[0])


async def set_draw_position(conn: Conn, messenger_id: str, position: int) -> None:
    """Store how far this messenger's draws have gone."""
    await conn.execute(
        "INSERT INTO rule_draws (messenger_id, position) VALUES (?, ?) "
        "ON CONFLICT (messenger_id) DO UPDATE SET position = excluded.position",
        (messenger_id, position),
    )


async def add_runtime_rule(conn: Conn, spec: RuleSpec) -> Rule | None:
    """Append a runtime rule and return its view; None when a rule with this id exists."""
    if not await insert_runtime_rule(conn, spec):
        return None
    return await get_rule_view(conn, spec.id)
