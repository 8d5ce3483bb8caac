"""The phones' inboxes (``phone_messages``): what each number received, with the text."""

from __future__ import annotations

from dataclasses import dataclass

from operator_sim.clock import ms_to_datetime
from operator_sim.store.conn import Conn
from operator_sim.wire import PhoneMessage

__all__ = ["Received", "deliver", "inbox_page", "newest"]


@dataclass(frozen=True, slots=True)
class Received:
    """A message in a phone's inbox."""

    seq: int
    id: str
    sms_id: str
    sms_seq: int
    sender: str
    text: str
    received_at: int

    def to_wire(self) -> PhoneMessage:
        """The admin's view of it, text included."""
        return PhoneMessage(
            id=self.id,
            sms_id=self.sms_id,
            sender=self.sender,
            text=self.text,
            received_at=ms_to_datetime(self.received_at),
        )


async def deliver(
    conn: Conn,
    *,
    inbox_id: str,
    msisdn: str,
    sms_id: str,
    sms_seq: int,
    messenger_id: str,
    sender: str,
    text: str,
    at_ms: int,
) -> None:
    """Put a message in the phone's inbox."""
    await conn.execute(
        "INSERT INTO phone_messages (id, msisdn, sms_id, sms_seq, messenger_id, sender, text, "
        "received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (inbox_id, msisdn, sms_id, sms_seq, messenger_id, sender, text, at_ms),
    )


_COLUMNS = "seq, id, sms_id, sms_seq, sender, text, received_at"


def _received(row: object) -> Received:
    return Received(*(row[i] for i in range(7)))  # type: ignore[index]


async def inbox_page(conn: Conn, msisdn: str, *, after: int, limit: int) -> list[Received]:
    """The phone's messages after position ``after``, oldest first."""
    async with conn.execute(
        f"SELECT {_COLUMNS} FROM phone_messages WHERE msisdn = ? AND seq > ? "  # noqa: S608 (constant columns)
        "ORDER BY seq LIMIT ?",
        (msisdn, after, limit),
    ) as cur:
        return [_received(row) for row in await cur.fetchall()]


async def newest(conn: Conn, msisdn: str, *, after_sms_seq: int, limit: int) -> list[Received]:
    """The phone's newest messages first, of those sent after the message at
    ``after_sms_seq`` (0: all)."""
    async with conn.execute(
        f"SELECT {_COLUMNS} FROM phone_messages WHERE msisdn = ? AND sms_seq > ? "  # noqa: S608 (constant columns)
        "ORDER BY seq DESC LIMIT ?",
        (msisdn, after_sms_seq, limit),
    ) as cur:
        return [_received(row) for row in await cur.fetchall()]
