"""The phones' inboxes, for testers: what each number received, and the code in it.

An admin's view, like a mail catcher's inbox: it shows the text that nothing
messenger-facing ever shows. Both reads long-poll (``Prefer: wait``) on the phone's key,
which the SMS gateway wakes when a message reaches the phone.
"""

from __future__ import annotations

import re

from operator_sim import errors
from operator_sim.domain.sms import find_code
from operator_sim.server.sms import phone_key
from operator_sim.server.waiters import Waiters, wait_for
from operator_sim.store import Conn, Database, phones
from operator_sim.store import sms as sms_table
from operator_sim.store.phones import Received
from operator_sim.wire import PhoneInbox, PhoneOtp

__all__ = ["INBOX_CURSOR_PATTERN", "Phones"]

INBOX_CURSOR_PATTERN = r"^p[0-9a-z]{1,12}$"
"""An inbox cursor: a position in base 36."""
_CURSOR_RE = re.compile(INBOX_CURSOR_PATTERN)
_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"
_OTP_SCAN = 100
"""How many of the newest messages the code is looked for in."""


def _cursor(position: int) -> str:
    digits = ""
    while True:
        position, digit = divmod(position, 36)
        digits = _BASE36[digit] + digits
        if position == 0:
            return f"p{digits}"


def _position(cursor: str | None) -> int:
    if cursor is None:
        return 0
    if not _CURSOR_RE.fullmatch(cursor):
        raise errors.ValidationFailed(
            "after is not an inbox cursor: pass the next_cursor of the previous page",
            errors=[{"loc": ["query", "after"], "msg": "not a cursor", "type": "cursor"}],
        )
    return int(cursor[1:], 36)


class Phones:
    """Reads the phones' inboxes, waiting for a message when asked to."""

    def __init__(self, db: Database, waiters: Waiters) -> None:
        self._db = db
        self._waiters = waiters

    async def inbox(self, msisdn: str, *, after: str | None, limit: int, wait: int) -> PhoneInbox:
        """The messages the phone received after the cursor, oldest first."""
        position = _position(after)

        async def read() -> list[Received]:
            return await self._db.read(
                lambda conn: phones.inbox_page(conn, msisdn, after=position, limit=limit)
            )

        page = await read()
        if not page and wait > 0:
            async with self._waiters.watch(phone_key(msisdn)) as event:
                page = await read()
                if not page and await wait_for(event, wait):
                    page = await read()
        return PhoneInbox(
            messages=[m.to_wire() for m in page],
            next_cursor=_cursor(page[-1].seq if page else position),
        )

    async def otp(self, msisdn: str, *, after_sms_id: str | None, wait: int) -> PhoneOtp:
        """The code in the newest message the phone received that has one (of those sent
        after ``after_sms_id``); ``404`` when there is none, after waiting ``wait`` s."""

        async def read() -> PhoneOtp | None:
            return await self._db.read(lambda conn: self._newest_code(conn, msisdn, after_sms_id))

        found = await read()
        if found is None and wait > 0:
            async with self._waiters.watch(phone_key(msisdn)) as event:
                found = await read()
                if found is None and await wait_for(event, wait):
                    found = await read()
        if found is None:
            raise errors.NotFound(kind="one-time code in this phone's messages")
        return found

    @staticmethod
    async def _newest_code(conn: Conn, msisdn: str, after_sms_id: str | None) -> PhoneOtp | None:
        after_seq = 0
        if after_sms_id is not None:
            reference = await sms_table.get_sms(conn, after_sms_id)
            if reference is None or reference.msisdn != msisdn:
                raise errors.NotFound(kind="message to this phone", ident=after_sms_id)
            after_seq = reference.seq
        for message in await phones.newest(conn, msisdn, after_sms_seq=after_seq, limit=_OTP_SCAN):
            code = find_code(message.text)
            if code is not None:
                wire = message.to_wire()
                return PhoneOtp(code=code, sms_id=message.sms_id, received_at=wire.received_at)
        return None
