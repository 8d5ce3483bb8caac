"""What a reset clears: flow state across tables, for everybody or one messenger."""

from __future__ import annotations

from operator_sim.store.conn import Conn

_FLOW_TABLES = (
    "identification_requests",
    "identification_codes",
    "ended_codes",
    "idempotency_keys",
    "journal",
    "jobs",
    "rule_counters",
    "rule_draws",
    "events",
    "delivery_attempts",
    "sms_messages",
    "phone_messages",
)


async def clear_messenger_state(conn: Conn, messenger_id: str) -> None:
    """Forget one messenger's requests, codes, keys, journal, scheduled work, events, and
    the SMS messages it sent (in the phones' inboxes too)."""
    params = (messenger_id,)
    mine = "SELECT id FROM identification_requests WHERE messenger_id = ?"
    await conn.execute(f"DELETE FROM jobs WHERE ref IN ({mine})", params)  # noqa: S608 (constant)
    for table in (
        "identification_codes",
        "ended_codes",
        "idempotency_keys",
        "identification_requests",
    ):
        await conn.execute(f"DELETE FROM {table} WHERE messenger_id = ?", params)  # noqa: S608 (constant table names)
    await conn.execute("DELETE FROM journal WHERE messenger_id = ?", params)
    await conn.execute("DELETE FROM rule_draws WHERE messenger_id = ?", params)
    sent = "SELECT id FROM sms_messages WHERE messenger_id = ?"
    await conn.execute(f"DELETE FROM jobs WHERE ref IN ({sent})", params)  # noqa: S608 (constant)
    await conn.execute("DELETE FROM sms_messages WHERE messenger_id = ?", params)
    await conn.execute("DELETE FROM phone_messages WHERE messenger_id = ?", params)
    events = "SELECT id FROM events WHERE messenger_id = ?"
    await conn.execute(f"DELETE FROM jobs WHERE ref IN ({events})", params)  # noqa: S608 (constant)
    await conn.execute(f"DELETE FROM delivery_attempts WHERE event_id IN ({events})", params)  # noqa: S608 (constant)
    await conn.execute("DELETE FROM events WHERE messenger_id = ?", params)


async def clear_flow_state(conn: Conn) -> None:
    """Forget every request, code, key, journal entry, job, counter, SMS message and inbox;
    drop runtime rules."""
    for table in _FLOW_TABLES:
        await conn.execute(f"DELETE FROM {table}")  # noqa: S608 (constant table names)
    await conn.execute("DELETE FROM rules WHERE source = 'runtime'")
