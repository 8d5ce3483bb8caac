"""The event outbox (``events``) and webhook delivery attempts (``delivery_attempts``)."""

from __future__ import annotations

import itertools
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from operator_sim.clock import ms_to_datetime
from operator_sim.store.conn import Conn
from operator_sim.wire import (
    Delivery,
    DeliveryAttempt,
    FeedDelivery,
    WebhookDelivery,
)


async def insert_event(
    conn: Conn,
    *,
    event_id: str,
    messenger_id: str,
    operator_id: str,
    type_: str,
    occurred_at: int,
    deliver_by: int,
    body: str,
    delivered_from: int | None = None,
    copies: int = 1,
) -> None:
    """Write one event to the outbox, with a webhook delivery due if the messenger has a
    webhook URL.

    The URL is read by the same statement, so it is the messenger's as of this
    transaction: a change of URL and an event are ordered by their commits. The webhook
    delivery starts at ``delivered_from`` (by default when the event occurred: a
    notification made late starts later, and gets its own 24 hours); ``copies`` times
    the event is delivered, on both channels.
    """
    start = occurred_at if delivered_from is None else delivered_from
    await conn.execute(
        "INSERT INTO events (id, messenger_id, operator_id, type, occurred_at, deliver_by, body, "
        "webhook_url, webhook_state, webhook_base, webhook_next_at, copies) "
        "SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, m.webhook_url, "
        "CASE WHEN m.webhook_url IS NULL THEN NULL ELSE 'pending' END, "
        "CASE WHEN m.webhook_url IS NULL THEN NULL ELSE ?8 END, "
        "CASE WHEN m.webhook_url IS NULL THEN NULL ELSE ?8 END, ?9 "
        # One row whether or not the messenger is still there (no URL then).
        "FROM (SELECT 1) LEFT JOIN messengers AS m ON m.id = ?2",
        (event_id, messenger_id, operator_id, type_, occurred_at, deliver_by, body, start, copies),
    )


@dataclass(frozen=True, slots=True)
class FeedRow:
    """An event as the feed returns it."""

    seq: int
    body: str
    delivered: bool
    deliver_by: int
    copies: int = 1


async def feed_page(
    conn: Conn, *, messenger_id: str, operator_id: str, after: int, limit: int
) -> list[FeedRow]:
    """A messenger's events from one operator after position ``after``, oldest first."""
    async with conn.execute(
        "SELECT seq, body, feed_delivered_at, deliver_by, copies FROM events "
        "WHERE messenger_id = ? AND operator_id = ? AND seq > ? ORDER BY seq LIMIT ?",
        (messenger_id, operator_id, after, limit),
    ) as cur:
        rows = await cur.fetchall()
    return [FeedRow(row[0], row[1], row[2] is not None, row[3], row[4]) for row in rows]


async def mark_feed_delivered(conn: Conn, seqs: Sequence[int], now_ms: int) -> None:
    """Record when events were first returned by the feed."""
    await conn.executemany(
        "UPDATE events SET feed_delivered_at = ? WHERE seq = ? AND feed_delivered_at IS NULL",
        [(now_ms, seq) for seq in seqs],
    )


@dataclass(frozen=True, slots=True)
class WebhookDue:
    """A webhook attempt to make."""

    event_id: str
    messenger_id: str
    url: str
    body: str
    attempt: int
    base: int
    due_at: int
    deliver_by: int


async def due_webhooks(conn: Conn, now_ms: int, limit: int) -> list[WebhookDue]:
    """Pending webhook attempts due by ``now_ms``, earliest first."""
    async with conn.execute(
        "SELECT id, messenger_id, webhook_url, body, webhook_attempt, webhook_base, "
        "webhook_next_at, deliver_by FROM events "
        "WHERE webhook_state = 'pending' AND webhook_next_at <= ? "
        "ORDER BY webhook_next_at, seq LIMIT ?",
        (now_ms, limit),
    ) as cur:
        rows = await cur.fetchall()
    return [WebhookDue(*(row[i] for i in range(8))) for row in rows]


async def next_webhook_due(conn: Conn, *, skip: Collection[str] = ()) -> int | None:
    """The earliest pending webhook attempt, not counting the events in ``skip``."""
    async with conn.execute(
        "SELECT id, webhook_next_at FROM events WHERE webhook_state = 'pending' "
        "ORDER BY webhook_next_at LIMIT ?",
        (len(skip) + 1,),
    ) as cur:
        rows = await cur.fetchall()
    return next((int(row[1]) for row in rows if row[0] not in skip), None)


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """The outcome of one webhook attempt: delivered, another try at ``next_at``, or failed."""

    event_id: str
    attempt: int
    base: int
    """The schedule the attempt belonged to: a replay since then starts a new one."""
    at: int
    status: int | None
    error: str | None
    delivered: bool
    next_at: int | None


async def record_attempts(conn: Conn, records: Sequence[AttemptRecord]) -> None:
    """Store attempts and what follows each of them."""
    # An event may have been cleared by a reset while its attempt was in flight.
    await conn.executemany(
        "INSERT INTO delivery_attempts (event_id, attempt, at, status, error) "
        "SELECT ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM events WHERE id = ?)",
        [(r.event_id, r.attempt, r.at, r.status, r.error, r.event_id) for r in records],
    )
    # A delivered copy of an event that is to be delivered again (a `duplicate` fault
    # rule) starts the next copy's delivery at once; every SET reads the row as it was.
    again = "(? AND webhook_copy + 1 < copies)"
    await conn.executemany(
        f"UPDATE events SET webhook_state = CASE WHEN {again} THEN 'pending' "  # noqa: S608 (a constant)
        "WHEN ? THEN 'delivered' WHEN ? IS NULL THEN 'failed' ELSE 'pending' END, "
        "webhook_delivered_at = CASE WHEN ? THEN ? ELSE NULL END, "
        f"webhook_copy = CASE WHEN {again} THEN webhook_copy + 1 ELSE webhook_copy END, "
        f"webhook_attempt = CASE WHEN {again} THEN 0 ELSE ? END, "
        f"webhook_base = CASE WHEN {again} THEN ? ELSE webhook_base END, "
        f"webhook_next_at = CASE WHEN {again} THEN ? ELSE ? END "
        # Only if the event is still where this attempt left it: a replay made while the
        # attempt was in flight has started a new schedule, which must not be overwritten.
        "WHERE id = ? AND webhook_state = 'pending' AND webhook_attempt = ? AND webhook_base = ?",
        [
            (
                r.delivered,
                r.delivered,
                r.next_at,
                r.delivered,
                r.at,
                r.delivered,
                r.delivered,
                r.attempt + 1,
                r.delivered,
                r.at,
                r.delivered,
                r.at,
                None if r.delivered else r.next_at,
                r.event_id,
                r.attempt,
                r.base,
            )
            for r in records
        ],
    )


async def redirect_pending_webhooks(conn: Conn, messenger_id: str, url: str | None) -> int:
    """Send a messenger's pending webhook deliveries to ``url``; None fails them.

    Returns how many deliveries changed. The feed keeps every event either way.
    """
    if url is None:
        cur = await conn.execute(
            "UPDATE events SET webhook_state = 'failed', webhook_next_at = NULL "
            "WHERE messenger_id = ? AND webhook_state = 'pending'",
            (messenger_id,),
        )
    else:
        cur = await conn.execute(
            "UPDATE events SET webhook_url = ? "
            "WHERE messenger_id = ? AND webhook_state = 'pending'",
            (url, messenger_id),
        )
    return max(cur.rowcount, 0)


async def replay_webhook(conn: Conn, event_id: str, now_ms: int) -> bool:
    """Start a fresh attempt schedule now, to the messenger's current webhook URL.

    False when the messenger has no webhook URL (or the event is gone).
    """
    async with conn.execute(
        "SELECT m.webhook_url FROM events e JOIN messengers m ON m.id = e.messenger_id "
        "WHERE e.id = ?",
        (event_id,),
    ) as cur:
        row = await cur.fetchone()
    if row is None or row[0] is None:
        return False
    await conn.execute(
        "UPDATE events SET webhook_state = 'pending', webhook_url = ?, webhook_base = ?, "
        "webhook_attempt = 0, webhook_copy = 0, webhook_next_at = ?, webhook_delivered_at = NULL "
        "WHERE id = ?",
        (row[0], now_ms, now_ms, event_id),
    )
    return True


async def event_exists(conn: Conn, event_id: str) -> bool:
    """Whether an event with this id is kept."""
    async with conn.execute("SELECT 1 FROM events WHERE id = ?", (event_id,)) as cur:
        return await cur.fetchone() is not None


async def list_deliveries(
    conn: Conn, *, messenger_id: str | None, event_id: str | None, limit: int
) -> list[Delivery]:
    """Events with their delivery on both channels, newest first."""
    where, params = [], []
    if messenger_id is not None:
        where.append("messenger_id = ?")
        params.append(messenger_id)
    if event_id is not None:
        where.append("id = ?")
        params.append(event_id)
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    async with conn.execute(
        "SELECT id, messenger_id, operator_id, type, occurred_at, deliver_by, "  # noqa: S608 (fixed columns only)
        "feed_delivered_at, webhook_url, webhook_state, webhook_next_at, webhook_delivered_at, "
        "copies "
        f"FROM events {clause} ORDER BY seq DESC LIMIT ?",
        [*params, limit],
    ) as cur:
        rows = await cur.fetchall()
    ids = [row["id"] for row in rows]
    attempts: dict[str, list[DeliveryAttempt]] = {i: [] for i in ids}
    if ids:
        marks = ", ".join("?" for _ in ids)
        async with conn.execute(
            f"SELECT event_id, attempt, at, status, error FROM delivery_attempts "  # noqa: S608 (placeholders only)
            f"WHERE event_id IN ({marks}) ORDER BY id",
            ids,
        ) as cur:
            for a in await cur.fetchall():
                attempts[a["event_id"]].append(
                    DeliveryAttempt(
                        attempt=a["attempt"] + 1,
                        at=ms_to_datetime(a["at"]),
                        status=a["status"],
                        error=a["error"],
                    )
                )
    out = []
    for row in rows:
        deliver_by = row["deliver_by"]
        feed_at = row["feed_delivered_at"]
        webhook = None
        if row["webhook_state"] is not None:
            hook_at = row["webhook_delivered_at"]
            webhook = WebhookDelivery(
                url=row["webhook_url"],
                state=row["webhook_state"],
                next_attempt_at=None
                if row["webhook_next_at"] is None
                else ms_to_datetime(row["webhook_next_at"]),
                delivered_at=None if hook_at is None else ms_to_datetime(hook_at),
                met_deadline=None if hook_at is None else hook_at <= deliver_by,
                attempts=attempts[row["id"]],
            )
        out.append(
            Delivery(
                event_id=row["id"],
                messenger_id=row["messenger_id"],
                operator_id=row["operator_id"],
                type=row["type"],
                occurred_at=ms_to_datetime(row["occurred_at"]),
                deliver_by=ms_to_datetime(deliver_by),
                copies=row["copies"],
                feed=FeedDelivery(
                    delivered_at=None if feed_at is None else ms_to_datetime(feed_at),
                    met_deadline=None if feed_at is None else feed_at <= deliver_by,
                ),
                webhook=webhook,
            )
        )
    return out


@dataclass(frozen=True, slots=True)
class PrunedEvents:
    """What one step of :func:`prune_events` removed, and where the next step starts."""

    events: int
    attempts: int
    examined_to: int
    """The last position looked at that occurred before the cutoff (else ``after``)."""
    more: bool
    """Whether older events may follow ``examined_to``: False once the next is recent."""


async def prune_events(conn: Conn, *, after: int, before_ms: int, limit: int) -> PrunedEvents:
    """Remove settled events that occurred before ``before_ms``, with their attempts.

    Settled: the webhook delivery is final (delivered or failed), or there is none.
    Looks at most at ``limit`` events after position ``after``, in position order, and
    stops at the first one that occurred at or after ``before_ms``: positions follow
    time closely, so the few older events behind it wait for a later pass, never the
    other way round. Feed cursors are positions, so a cursor into a removed range
    continues with the oldest event kept.
    """
    async with conn.execute(
        "SELECT seq, id, occurred_at, webhook_state FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
        (after, limit),
    ) as cur:
        rows = await cur.fetchall()
    older = list(itertools.takewhile(lambda row: row[2] < before_ms, rows))
    settled = [row for row in older if row[3] != "pending"]
    attempts = await conn.executemany(
        "DELETE FROM delivery_attempts WHERE event_id = ?", [(row[1],) for row in settled]
    )
    events = await conn.executemany(
        "DELETE FROM events WHERE seq = ?", [(row[0],) for row in settled]
    )
    return PrunedEvents(
        events=max(events.rowcount, 0),
        attempts=max(attempts.rowcount, 0),
        examined_to=int(older[-1][0]) if older else after,
        more=len(older) == len(rows) == limit,
    )
