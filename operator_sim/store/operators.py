"""Operators and their number ranges (``operators``, ``number_ranges``)."""

from __future__ import annotations

from collections.abc import Sequence

from operator_sim.store.conn import Conn
from operator_sim.wire import NumberRange, Operator


def msisdn_number(msisdn: str) -> int:
    """The digits of an E.164 number as an integer, for range comparisons."""
    return int(msisdn[1:])


async def replace_operators(conn: Conn, operators: Sequence[Operator]) -> None:
    """Make the stored operators and ranges exactly these."""
    await conn.execute("DELETE FROM number_ranges")
    await conn.execute("DELETE FROM operators")
    await conn.executemany(
        "INSERT INTO operators (id, name, position) VALUES (?, ?, ?)",
        [(op.id, op.name, i) for i, op in enumerate(operators)],
    )
    await conn.executemany(
        "INSERT INTO number_ranges (operator_id, lo, hi) VALUES (?, ?, ?)",
        [
            (op.id, msisdn_number(r.from_), msisdn_number(r.to))
            for op in operators
            for r in op.ranges
        ],
    )


async def list_operators(conn: Conn) -> list[Operator]:
    """Every operator with its ranges, in fixture order."""
    async with conn.execute("SELECT id, name FROM operators ORDER BY position") as cur:
        ops = [(row["id"], row["name"]) for row in await cur.fetchall()]
    async with conn.execute("SELECT operator_id, lo, hi FROM number_ranges ORDER BY lo") as cur:
        ranges = await cur.fetchall()
    by_op: dict[str, list[NumberRange]] = {op_id: [] for op_id, _ in ops}
    for row in ranges:
        by_op.setdefault(row["operator_id"], []).append(
            NumberRange.model_validate({"from": f"+{row['lo']}", "to": f"+{row['hi']}"})
        )
    return [Operator(id=op_id, name=name, ranges=by_op[op_id]) for op_id, name in ops]


async def operator_exists(conn: Conn, operator_id: str) -> bool:
    """Whether an operator with this id is simulated."""
    async with conn.execute("SELECT 1 FROM operators WHERE id = ?", (operator_id,)) as cur:
        return await cur.fetchone() is not None


async def range_holder(conn: Conn, msisdn: str) -> str | None:
    """The operator whose number range contains this number."""
    number = msisdn_number(msisdn)
    async with conn.execute(
        "SELECT operator_id, hi FROM number_ranges WHERE lo <= ? ORDER BY lo DESC LIMIT 1",
        (number,),
    ) as cur:
        row = await cur.fetchone()
    if row is None or row["hi"] < number:
        return None
    return str(row["operator_id"])
