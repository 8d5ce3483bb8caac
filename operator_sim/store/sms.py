"""Messages sent through the SMS gateway (``sms_messages``).

A message's text is a secret: it is read only to hand it to the phone, and cleared once
the phone has it or the message has failed (only the phone's inbox keeps it then).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from operator_sim.clock import ms_to_datetime
from operator_sim.store.conn import Conn
from operator_sim.wire import SmsMessage, SmsReason, SmsStatus

__all__ = [
    "StoredSms",
    "count_recent",
    "get_sms",
    "insert_sms",
    "set_status",
    "take_text",
]

Behaviour = Literal["unreachable", "report_lost", "blocked"]

_COLUMNS = (
    "seq, id, messenger_id, msisdn, sender, text_length, segments, encoding, client_ref, "
    "status, reason, operator_id, behaviour, delay_ms, rule_id, created_at, status_at, "
    "expires_at"
)


@dataclass(frozen=True, slots=True)
class StoredSms:
    """A message as stored, without its text."""

    seq: int
    id: str
    messenger_id: str
    msisdn: str
    sender: str
    text_length: int
    segments: int
    encoding: Literal["gsm7", "ucs2"]
    client_ref: str | None
    status: SmsStatus
    reason: SmsReason | None
    operator_id: str | None
    behaviour: Behaviour | None
    """What a fault rule made of it, if anything."""
    delay_ms: int
    """From sent to the phone (or to the report that it cannot be reached)."""
    rule_id: str | None
    created_at: int
    status_at: int
    expires_at: int

    def to_wire(self) -> SmsMessage:
        """The messenger-facing resource: no text."""
        return SmsMessage(
            id=self.id,
            to=self.msisdn,
            sender=self.sender,
            text_length=self.text_length,
            segments=self.segments,
            encoding=self.encoding,
            client_ref=self.client_ref,
            status=self.status,
            reason=self.reason,
            operator_id=self.operator_id,
            created_at=ms_to_datetime(self.created_at),
            status_at=ms_to_datetime(self.status_at),
            expires_at=ms_to_datetime(self.expires_at),
        )

    def to_json(self) -> str:
        """:meth:`to_wire` rendered as JSON."""
        return self.to_wire().model_dump_json()

    def moved(
        self,
        status: SmsStatus,
        at: int,
        *,
        reason: SmsReason | None = None,
        operator_id: str | None = None,
    ) -> StoredSms:
        """The message with a new status (and the network that carries it, once known)."""
        return replace(
            self,
            status=status,
            status_at=at,
            reason=reason,
            operator_id=operator_id if operator_id is not None else self.operator_id,
        )


def _row(row: object) -> StoredSms:
    return StoredSms(*(row[i] for i in range(18)))  # type: ignore[index]


async def insert_sms(conn: Conn, sms: StoredSms, *, text: str) -> StoredSms:
    """Store a new message with its text; returns it with its position."""
    cur = await conn.execute(
        "INSERT INTO sms_messages (id, messenger_id, msisdn, sender, text, text_length, "
        "segments, encoding, client_ref, status, reason, operator_id, behaviour, delay_ms, "
        "rule_id, created_at, status_at, expires_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            sms.id,
            sms.messenger_id,
            sms.msisdn,
            sms.sender,
            text,
            sms.text_length,
            sms.segments,
            sms.encoding,
            sms.client_ref,
            sms.status,
            sms.reason,
            sms.operator_id,
            sms.behaviour,
            sms.delay_ms,
            sms.rule_id,
            sms.created_at,
            sms.status_at,
            sms.expires_at,
        ),
    )
    return replace(sms, seq=cur.lastrowid or 0)


async def get_sms(conn: Conn, sms_id: str) -> StoredSms | None:
    """One message, without its text."""
    async with conn.execute(
        f"SELECT {_COLUMNS} FROM sms_messages WHERE id = ?",  # noqa: S608 (constant columns)
        (sms_id,),
    ) as cur:
        row = await cur.fetchone()
    return None if row is None else _row(row)


async def count_recent(
    conn: Conn, *, messenger_id: str, msisdn: str, since_ms: int
) -> tuple[int, int | None]:
    """How many messages this messenger sent this number after ``since_ms``, and when the
    oldest of them was sent."""
    async with conn.execute(
        "SELECT count(*), min(created_at) FROM sms_messages "
        "WHERE messenger_id = ? AND msisdn = ? AND created_at > ?",
        (messenger_id, msisdn, since_ms),
    ) as cur:
        row = await cur.fetchone()
    if row is None:
        return 0, None
    return int(row[0]), None if row[1] is None else int(row[1])


async def set_status(conn: Conn, sms: StoredSms, *, clear_text: bool) -> None:
    """Store a message's new status; ``clear_text`` once the text is no longer needed."""
    await conn.execute(
        "UPDATE sms_messages SET status = ?, reason = ?, operator_id = ?, status_at = ?, "
        "text = CASE WHEN ? THEN NULL ELSE text END WHERE id = ?",
        (sms.status, sms.reason, sms.operator_id, sms.status_at, clear_text, sms.id),
    )


async def take_text(conn: Conn, sms_id: str) -> str | None:
    """The text, to hand to the phone; it is cleared here (the inbox keeps it from now)."""
    async with conn.execute("SELECT text FROM sms_messages WHERE id = ?", (sms_id,)) as cur:
        row = await cur.fetchone()
    if row is None or row[0] is None:
        return None
    await conn.execute("UPDATE sms_messages SET text = NULL WHERE id = ?", (sms_id,))
    return str(row[0])
