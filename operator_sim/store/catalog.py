"""Operators, number ranges, messengers, subscribers, rules, the clock and metadata."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date

import aiosqlite

from operator_sim.clock import ClockState, ms_to_datetime
from operator_sim.wire import (
    Messenger,
    NumberRange,
    Operator,
    RuleSpec,
    Subscriber,
    SubscriberIn,
)


def hash_secret(secret: str) -> str:
    """SHA-256 of a high-entropy secret (API keys): what the database keeps."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def msisdn_number(msisdn: str) -> int:
    """The digits of an E.164 number as an integer, for range comparisons."""
    return int(msisdn[1:])


# --- metadata and clock ---------------------------------------------------------------


async def get_meta(conn: aiosqlite.Connection, key: str) -> str | None:
    """A metadata value."""
    async with conn.execute("SELECT value FROM meta WHERE key = ?", (key,)) as cur:
        row = await cur.fetchone()
    return None if row is None else str(row[0])


async def set_meta(conn: aiosqlite.Connection, key: str, value: str) -> None:
    """Store a metadata value."""
    await conn.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (key, value),
    )


async def load_clock(conn: aiosqlite.Connection) -> ClockState | None:
    """The stored clock, or None on a new database."""
    async with conn.execute(
        "SELECT mode, scale, sim_anchor_ms, wall_anchor FROM clock WHERE id = 1"
    ) as cur:
        row = await cur.fetchone()
    if row is None:
        return None
    return ClockState(row["mode"], row["scale"], row["sim_anchor_ms"], row["wall_anchor"])


async def save_clock(conn: aiosqlite.Connection, state: ClockState) -> None:
    """Store the clock's anchor."""
    await conn.execute(
        "INSERT INTO clock (id, mode, scale, sim_anchor_ms, wall_anchor) VALUES (1, ?, ?, ?, ?) "
        "ON CONFLICT (id) DO UPDATE SET mode = excluded.mode, scale = excluded.scale, "
        "sim_anchor_ms = excluded.sim_anchor_ms, wall_anchor = excluded.wall_anchor",
        (state.mode, state.scale, state.sim_anchor_ms, state.wall_anchor),
    )


# --- operators and routing -----------------------------------------------------------


async def replace_operators(conn: aiosqlite.Connection, operators: Sequence[Operator]) -> None:
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


async def list_operators(conn: aiosqlite.Connection) -> list[Operator]:
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


async def operator_exists(conn: aiosqlite.Connection, operator_id: str) -> bool:
    """Whether an operator with this id is simulated."""
    async with conn.execute("SELECT 1 FROM operators WHERE id = ?", (operator_id,)) as cur:
        return await cur.fetchone() is not None


async def range_holder(conn: aiosqlite.Connection, msisdn: str) -> str | None:
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


# --- messengers ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MessengerAuth:
    """What authentication needs to know of a messenger."""

    id: str
    api_key_hash: str
    demo: bool


async def insert_messenger(
    conn: aiosqlite.Connection,
    *,
    messenger_id: str,
    name: str,
    webhook_url: str | None,
    api_key: str,
    webhook_secret: str,
    demo: bool,
    source: str,
    now_ms: int,
    replace: bool = False,
) -> bool:
    """Register a messenger; False when the id (or key) is taken and ``replace`` is off."""
    verb = "INSERT OR REPLACE" if replace else "INSERT"
    try:
        await conn.execute(
            f"{verb} INTO messengers (id, name, webhook_url, api_key_hash, webhook_secret, "
            "demo, source, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                messenger_id,
                name,
                webhook_url,
                hash_secret(api_key),
                webhook_secret,
                int(demo),
                source,
                now_ms,
            ),
        )
    except sqlite3.IntegrityError:
        return False
    return True


async def list_messengers(conn: aiosqlite.Connection) -> list[Messenger]:
    """Every messenger, without secrets."""
    async with conn.execute(
        "SELECT id, name, webhook_url, created_at FROM messengers ORDER BY created_at, id"
    ) as cur:
        rows = await cur.fetchall()
    return [_messenger(row) for row in rows]


def _messenger(row: sqlite3.Row) -> Messenger:
    return Messenger(
        id=row["id"],
        name=row["name"],
        webhook_url=row["webhook_url"],
        created_at=ms_to_datetime(row["created_at"]),
    )


async def get_messenger(conn: aiosqlite.Connection, messenger_id: str) -> Messenger | None:
    """One messenger, without secrets."""
    async with conn.execute(
        "SELECT id, name, webhook_url, created_at FROM messengers WHERE id = ?", (messenger_id,)
    ) as cur:
        row = await cur.fetchone()
    return None if row is None else _messenger(row)


async def update_messenger(
    conn: aiosqlite.Connection,
    messenger_id: str,
    *,
    name: str | None = None,
    webhook_url: str | None = None,
    set_webhook_url: bool = False,
) -> None:
    """Change a messenger's name and/or webhook URL (``set_webhook_url``: even to None)."""
    if name is not None:
        await conn.execute("UPDATE messengers SET name = ? WHERE id = ?", (name, messenger_id))
    if set_webhook_url:
        await conn.execute(
            "UPDATE messengers SET webhook_url = ? WHERE id = ?", (webhook_url, messenger_id)
        )


async def messenger_exists(conn: aiosqlite.Connection, messenger_id: str) -> bool:
    """Whether a messenger with this id is registered."""
    async with conn.execute("SELECT 1 FROM messengers WHERE id = ?", (messenger_id,)) as cur:
        return await cur.fetchone() is not None


async def messenger_by_key_hash(conn: aiosqlite.Connection, key_hash: str) -> MessengerAuth | None:
    """The messenger whose API key hashes to ``key_hash``."""
    async with conn.execute(
        "SELECT id, api_key_hash, demo FROM messengers WHERE api_key_hash = ?", (key_hash,)
    ) as cur:
        row = await cur.fetchone()
    if row is None:
        return None
    return MessengerAuth(row["id"], row["api_key_hash"], bool(row["demo"]))


# --- subscribers ---------------------------------------------------------------------

_SUBSCRIBER_COLUMNS = (
    "msisdn, operator_id, full_name, birth_date, passport, address, data_complete, status, "
    "source, updated_at"
)


def effective_data_complete(sub: SubscriberIn) -> bool:
    """An explicit ``data_complete`` wins; otherwise name, birth date and passport must be given."""
    if sub.data_complete is not None:
        return sub.data_complete
    return sub.full_name is not None and sub.birth_date is not None and sub.passport is not None


async def upsert_subscribers(
    conn: aiosqlite.Connection, subscribers: Iterable[SubscriberIn], *, source: str, now_ms: int
) -> tuple[int, int]:
    """Insert or replace subscriber records; returns (created, updated)."""
    rows = [
        (
            s.msisdn,
            s.operator_id,
            s.full_name,
            s.birth_date.isoformat() if s.birth_date else None,
            s.passport,
            s.address,
            int(effective_data_complete(s)),
            s.status,
            source,
            now_ms,
        )
        for s in subscribers
    ]
    placeholders = ", ".join("?" for _ in rows)
    async with conn.execute(
        f"SELECT count(*) FROM subscribers WHERE msisdn IN ({placeholders})",  # noqa: S608 (placeholders only)
        [r[0] for r in rows],
    ) as cur:
        existing = int((await cur.fetchone() or (0,))[0])
    await conn.executemany(
        f"INSERT OR REPLACE INTO subscribers ({_SUBSCRIBER_COLUMNS}) "  # noqa: S608 (constant columns)
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    return len(rows) - existing, existing


async def get_subscriber(conn: aiosqlite.Connection, msisdn: str) -> Subscriber | None:
    """One subscriber record with personal data (admin use only)."""
    async with conn.execute(
        f"SELECT {_SUBSCRIBER_COLUMNS} FROM subscribers WHERE msisdn = ?",  # noqa: S608 (constant columns)
        (msisdn,),
    ) as cur:
        row = await cur.fetchone()
    if row is None:
        return None
    return Subscriber(
        msisdn=row["msisdn"],
        operator_id=row["operator_id"],
        full_name=row["full_name"],
        birth_date=date.fromisoformat(row["birth_date"]) if row["birth_date"] else None,
        passport=row["passport"],
        address=row["address"],
        data_complete=bool(row["data_complete"]),
        status=row["status"],
        source=row["source"],
        updated_at=ms_to_datetime(row["updated_at"]),
    )


@dataclass(frozen=True, slots=True)
class Standing:
    """The fields presence is decided on; no personal data."""

    operator_id: str
    status: str
    data_complete: bool


async def subscriber_standing(conn: aiosqlite.Connection, msisdn: str) -> Standing | None:
    """Who holds the number's record and whether it is active and complete."""
    async with conn.execute(
        "SELECT operator_id, status, data_complete FROM subscribers WHERE msisdn = ?", (msisdn,)
    ) as cur:
        row = await cur.fetchone()
    if row is None:
        return None
    return Standing(row["operator_id"], row["status"], bool(row["data_complete"]))


# --- rules ---------------------------------------------------------------------------


async def replace_fixture_rules(conn: aiosqlite.Connection, rules: Sequence[RuleSpec]) -> None:
    """Make the fixture's rules exactly these (runtime rules are kept after them)."""
    await conn.execute(
        "DELETE FROM rule_counters WHERE rule_id IN (SELECT id FROM rules WHERE source = 'fixture')"
    )
    await conn.execute("DELETE FROM rules WHERE source = 'fixture'")
    await conn.executemany(
        "INSERT OR REPLACE INTO rules (id, position, source, spec) VALUES (?, ?, 'fixture', ?)",
        [(r.id, i - len(rules), r.model_dump_json()) for i, r in enumerate(rules)],
    )


async def list_rules(conn: aiosqlite.Connection) -> list[RuleSpec]:
    """Every rule in matching order: the fixture's first, then those added at run time."""
    async with conn.execute("SELECT spec FROM rules ORDER BY position, id") as cur:
        rows = await cur.fetchall()
    return [RuleSpec.model_validate(json.loads(row["spec"])) for row in rows]


async def get_rule_counters(
    conn: aiosqlite.Connection, keys: Sequence[tuple[str, str]]
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


async def set_rule_counters(
    conn: aiosqlite.Connection, updates: Sequence[tuple[str, str, int]]
) -> None:
    """Store counter changes."""
    await conn.executemany(
        "INSERT INTO rule_counters (rule_id, scope, hits) VALUES (?, ?, ?) "
        "ON CONFLICT (rule_id, scope) DO UPDATE SET hits = excluded.hits",
        updates,
    )
