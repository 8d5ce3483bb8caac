"""Read-only queries behind the web console's overview and request pages."""

from __future__ import annotations

from dataclasses import dataclass

from operator_sim.store.conn import Conn


@dataclass(frozen=True, slots=True)
class Counts:
    """How much state the simulation holds right now."""

    pending: int
    answered: int
    expired: int
    codes: int
    undelivered_events: int
    """Events that neither the feed nor a webhook has delivered yet."""
    sms_in_flight: int
    """SMS accepted or sent, with no final status yet."""


async def counts(conn: Conn) -> Counts:
    """Requests by status, live codes, events not yet delivered on either channel, and SMS
    not yet final."""
    by_status = {"pending": 0, "answered": 0, "expired": 0}
    async with conn.execute(
        "SELECT status, count(*) FROM identification_requests GROUP BY status"
    ) as cur:
        for status, n in await cur.fetchall():
            by_status[status] = int(n)
    async with conn.execute("SELECT count(*) FROM identification_codes") as cur:
        row = await cur.fetchone()
    codes = 0 if row is None else int(row[0])
    async with conn.execute(
        "SELECT count(*) FROM events WHERE feed_delivered_at IS NULL "
        "AND (webhook_state IS NULL OR webhook_state != 'delivered')"
    ) as cur:
        row = await cur.fetchone()
    undelivered = 0 if row is None else int(row[0])
    async with conn.execute(
        "SELECT count(*) FROM sms_messages WHERE status IN ('accepted', 'sent')"
    ) as cur:
        row = await cur.fetchone()
    in_flight = 0 if row is None else int(row[0])
    return Counts(
        pending=by_status["pending"],
        answered=by_status["answered"],
        expired=by_status["expired"],
        codes=codes,
        undelivered_events=undelivered,
        sms_in_flight=in_flight,
    )


async def request_event_ids(
    conn: Conn, *, request_id: str, messenger_id: str, operator_id: str
) -> list[str]:
    """The ``identification.answered`` events written for one request, oldest first.

    An expiry and a late answer give two. The scan is bounded by the messenger's feed at
    that operator (its index), and the console reads it only for one request's page.
    """
    async with conn.execute(
        "SELECT id FROM events WHERE messenger_id = ? AND operator_id = ? "
        "AND type = 'identification.answered' AND json_extract(body, '$.data.id') = ? "
        "ORDER BY seq",
        (messenger_id, operator_id, request_id),
    ) as cur:
        return [row[0] for row in await cur.fetchall()]
