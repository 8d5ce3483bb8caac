"""The messenger's own state in SQLite: users, their history, codes, feed cursors, seen events,
and the one-time codes that prove a user holds a number.

Every change that must not be half done (a code about to be registered, an event and
the cursor past it, a code retired and its deletion at the operator) is one transaction,
so a restart finds each user either identified with one code, refused, suspended, or
with a registration to finish, and every code the operator may hold for nobody queued
for deletion.

Several processes may share the database. Each store has an ``owner`` id, stamped on the
work it starts (an identification, a code being registered) and held by a lease in the
``owners`` table that the ``Messenger`` renews while it runs. Recovery touches only work
whose owner is gone: no lease, or one that expired.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import sqlite3
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import aiosqlite

from operator_sim.messenger.database import connect
from operator_sim.messenger.otp import Attempt, Confirmation, VerificationState
from operator_sim.messenger.privacy import safe_repr

__all__ = [
    "CodeRecord",
    "HistoryEntry",
    "MessengerStore",
    "PendingDeletion",
    "UserRecord",
    "UserState",
    "VerificationRecord",
    "new_owner_id",
]

UserState = Literal["identifying", "identified", "refused", "suspended"]
CodeState = Literal["registering", "active", "ended", "abandoned"]

# Work is orphaned when its owner is none, or not this store and holds no live lease.
_ORPHANED = (
    "(owner IS NULL OR (owner != :me AND owner NOT IN "
    "(SELECT owner_id FROM owners WHERE expires_at > :now)))"
)
_CODE_COLUMNS = "code, user_id, state, operator_id, request_id, msisdn"


def new_owner_id() -> str:
    """An id for one process's store: the host and pid (for people), and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True, slots=True, repr=False)
class UserRecord:
    """A user as the messenger knows them."""

    user_id: str
    state: UserState
    reason: str | None
    msisdn: str | None
    operator_id: str | None
    request_id: str | None
    code: str | None
    updated_at: str

    def __repr__(self) -> str:
        return safe_repr(self)


@dataclass(frozen=True, slots=True, repr=False)
class CodeRecord:
    """An identification code and where it stands."""

    code: str
    user_id: str
    state: CodeState
    operator_id: str
    request_id: str
    msisdn: str

    def __repr__(self) -> str:
        return safe_repr(self)


@dataclass(frozen=True, slots=True, repr=False)
class PendingDeletion:
    """A code to delete at the operator, and how the attempts went so far."""

    code: str
    operator_id: str
    attempts: int
    next_at: float
    last_error: str | None

    def __repr__(self) -> str:
        return safe_repr(self)


@dataclass(frozen=True, slots=True, repr=False)
class HistoryEntry:
    """One change of a user's state."""

    at: str
    state: UserState
    reason: str | None
    msisdn: str | None
    operator_id: str | None
    request_id: str | None
    code: str | None

    def __repr__(self) -> str:
        return safe_repr(self)


@dataclass(frozen=True, slots=True, repr=False)
class VerificationRecord:
    """A user's latest proof-of-possession attempt (never the code: only its HMAC is kept,
    and not here). Times are the library's clock, seconds since the epoch."""

    user_id: str
    msisdn: str
    sms_id: str | None
    sms_status: str | None
    """The gateway's latest report, when one came (advisory only)."""
    sent_at: float
    expires_at: float
    attempts: int
    state: VerificationState

    def __repr__(self) -> str:
        return safe_repr(self)


_VERIFICATION_COLUMNS = "user_id, msisdn, sms_id, sms_status, sent_at, expires_at, attempts, state"


class MessengerStore:
    """Async access to the messenger's database; one connection, serialised writes."""

    def __init__(self, conn: aiosqlite.Connection, owner: str) -> None:
        self._conn = conn
        self._lock = asyncio.Lock()
        self._key: bytes | None = None
        self.owner = owner
        """The id stamped on the work this store starts."""

    @classmethod
    async def open(cls, path: Path | str, *, owner: str | None = None) -> MessengerStore:
        """Open (and create, or bring up to date) the database, owner-only on disk.

        ``owner`` is the id stamped on the work this store starts (by default a new one).
        """
        return cls(await connect(path), owner or new_owner_id())

    async def close(self) -> None:
        """Close the connection."""
        await self._conn.close()

    @contextlib.asynccontextmanager
    async def _tx(self) -> AsyncIterator[aiosqlite.Connection]:
        async with self._lock:
            try:
                await self._conn.execute("BEGIN IMMEDIATE")
                yield self._conn
            except BaseException:
                # Statements run in order on the connection's thread: a BEGIN the caller
                # stopped waiting for (a cancellation) still runs, and this undoes it.
                await asyncio.shield(self._rollback())
                raise
            await self._conn.execute("COMMIT")

    async def _rollback(self) -> None:
        with contextlib.suppress(sqlite3.OperationalError):  # no transaction after all
            await self._conn.execute("ROLLBACK")

    # --- users -------------------------------------------------------------------

    async def user(self, user_id: str) -> UserRecord | None:
        """The user's current record."""
        async with self._conn.execute(
            "SELECT user_id, state, reason, msisdn, operator_id, request_id, code, updated_at "
            "FROM users WHERE user_id = ?",
            (user_id,),
        ) as cur:
            row = await cur.fetchone()
        return None if row is None else UserRecord(*row)

    async def history(self, user_id: str) -> list[HistoryEntry]:
        """Every state the user went through, oldest first."""
        async with self._conn.execute(
            "SELECT at, state, reason, msisdn, operator_id, request_id, code FROM history "
            "WHERE user_id = ? ORDER BY seq",
            (user_id,),
        ) as cur:
            return [HistoryEntry(*row) for row in await cur.fetchall()]

    @staticmethod
    async def _set_user(
        conn: aiosqlite.Connection,
        user_id: str,
        state: UserState,
        *,
        reason: str | None,
        msisdn: str | None,
        operator_id: str | None,
        request_id: str | None,
        code: str | None,
        owner: str | None = None,
    ) -> None:
        at = _now()
        await conn.execute(
            "INSERT INTO users (user_id, state, reason, msisdn, operator_id, request_id, code, "
            "updated_at, owner) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (user_id) DO "
            "UPDATE SET state = excluded.state, reason = excluded.reason, "
            "msisdn = excluded.msisdn, operator_id = excluded.operator_id, "
            "request_id = excluded.request_id, code = excluded.code, "
            "updated_at = excluded.updated_at, owner = excluded.owner",
            (user_id, state, reason, msisdn, operator_id, request_id, code, at, owner),
        )
        await conn.execute(
            "INSERT INTO history (user_id, at, state, reason, msisdn, operator_id, request_id, "
            "code) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (user_id, at, state, reason, msisdn, operator_id, request_id, code),
        )

    async def start_identification(
        self, user_id: str, msisdn: str | None, operator_id: str | None, request_id: str | None
    ) -> None:
        """The user is being identified (by this store's owner); meanwhile they may not send."""
        async with self._tx() as conn:
            await self._set_user(
                conn,
                user_id,
                "identifying",
                reason=None,
                msisdn=msisdn,
                operator_id=operator_id,
                request_id=request_id,
                code=None,
                owner=self.owner,
            )
            if operator_id is not None:
                await conn.execute(
                    "INSERT INTO operators (operator_id) VALUES (?) ON CONFLICT DO NOTHING",
                    (operator_id,),
                )

    async def refuse(
        self,
        user_id: str,
        reason: str,
        *,
        msisdn: str | None,
        operator_id: str | None,
        request_id: str | None,
        abandon_code: str | None = None,
        delete_abandoned: bool = False,
    ) -> None:
        """The identification failed: the user is refused service.

        ``abandon_code`` is a code whose registration failed; ``delete_abandoned`` when the
        operator may hold it all the same (its answer was lost): it is queued for deletion.
        """
        async with self._tx() as conn:
            if abandon_code is not None:
                await conn.execute(
                    "UPDATE codes SET state = 'abandoned', ended_reason = ? WHERE code = ?",
                    (reason, abandon_code),
                )
                if delete_abandoned:
                    await self._queue_deletion(conn, abandon_code)
            await self._set_user(
                conn,
                user_id,
                "refused",
                reason=reason,
                msisdn=msisdn,
                operator_id=operator_id,
                request_id=request_id,
                code=None,
            )

    # --- codes -------------------------------------------------------------------

    async def begin_registration(
        self, user_id: str, *, code: str, operator_id: str, request_id: str, msisdn: str
    ) -> None:
        """Remember a code before it is sent, so a crash mid-registration can be finished."""
        async with self._tx() as conn:
            await conn.execute(
                "INSERT INTO codes (code, user_id, state, operator_id, request_id, msisdn, "
                "created_at, owner) VALUES (?, ?, 'registering', ?, ?, ?, ?, ?)",
                (code, user_id, operator_id, request_id, msisdn, _now(), self.owner),
            )

    async def finish_registration(self, code: CodeRecord) -> tuple[bool, CodeRecord | None]:
        """The operator registered the code: (user identified, the code it replaced).

        The replaced code is queued for deletion at its operator. When the number's contract
        ended (or it was ported) while the code was on its way, the event came first: the
        user is suspended instead, and nothing is replaced. A code another instance has
        already finished stands as it is.
        """
        async with self._tx() as conn:
            async with conn.execute(
                "SELECT state, ended_reason FROM codes WHERE code = ?", (code.code,)
            ) as cur:
                row = await cur.fetchone()
            if row is not None and row[0] == "active":
                return True, None
            if row is None or row[0] != "registering":
                await self._set_user(
                    conn,
                    code.user_id,
                    "suspended",
                    reason=None if row is None else row[1],
                    msisdn=code.msisdn,
                    operator_id=code.operator_id,
                    request_id=code.request_id,
                    code=None,
                )
                return False, None
            async with conn.execute(
                "SELECT code, user_id, state, operator_id, request_id, msisdn FROM codes "
                "WHERE user_id = ? AND state = 'active' AND code != ?",
                (code.user_id, code.code),
            ) as cur:
                old = await cur.fetchone()
            replaced = None if old is None else CodeRecord(*old)
            if replaced is not None:
                await conn.execute(
                    "UPDATE codes SET state = 'ended', ended_reason = 'replaced' WHERE code = ?",
                    (replaced.code,),
                )
                await self._queue_deletion(conn, replaced.code)
            await conn.execute("UPDATE codes SET state = 'active' WHERE code = ?", (code.code,))
            await self._set_user(
                conn,
                code.user_id,
                "identified",
                reason="present",
                msisdn=code.msisdn,
                operator_id=code.operator_id,
                request_id=code.request_id,
                code=code.code,
            )
            await conn.execute(
                "INSERT INTO operators (operator_id) VALUES (?) ON CONFLICT DO NOTHING",
                (code.operator_id,),
            )
        return True, replaced

    async def retire_active(self, user_id: str, reason: str) -> CodeRecord | None:
        """End the user's active code, if any (a new identification failed), queue its
        deletion at the operator; returns it."""
        async with self._tx() as conn:
            async with conn.execute(
                "SELECT code, user_id, state, operator_id, request_id, msisdn FROM codes "
                "WHERE user_id = ? AND state = 'active'",
                (user_id,),
            ) as cur:
                row = await cur.fetchone()
            if row is None:
                return None
            await conn.execute(
                "UPDATE codes SET state = 'ended', ended_reason = ? WHERE code = ?",
                (reason, row[0]),
            )
            await self._queue_deletion(conn, row[0])
        return CodeRecord(*row)

    async def claim_registrations(self, now: float, user_id: str | None = None) -> list[CodeRecord]:
        """Take over codes left ``registering`` by an owner that is gone, to finish them.

        Such a code was written before its owner could tell whether the operator registered
        it. Claimed in one transaction, so two instances recovering at once share nothing.
        """
        where = f"state = 'registering' AND {_ORPHANED}"
        params: dict[str, object] = {"me": self.owner, "now": now}
        if user_id is not None:
            where += " AND user_id = :user"
            params["user"] = user_id
        async with self._tx() as conn:
            async with conn.execute(
                f"SELECT {_CODE_COLUMNS} FROM codes WHERE {where}",  # noqa: S608 (constants)
                params,
            ) as cur:
                claimed = [CodeRecord(*row) for row in await cur.fetchall()]
            await conn.executemany(
                "UPDATE codes SET owner = ? WHERE code = ?",
                [(self.owner, code.code) for code in claimed],
            )
        return claimed

    async def codes(self, user_id: str) -> list[CodeRecord]:
        """Every code generated for a user, oldest first."""
        async with self._conn.execute(
            "SELECT code, user_id, state, operator_id, request_id, msisdn FROM codes "
            "WHERE user_id = ? ORDER BY created_at, rowid",
            (user_id,),
        ) as cur:
            return [CodeRecord(*row) for row in await cur.fetchall()]

    async def interrupt_orphaned(self, now: float) -> list[str]:
        """Users left mid-identification by an owner that is gone, with no code to finish:
        refused, ``interrupted``."""
        async with self._tx() as conn:
            async with conn.execute(
                "SELECT user_id, msisdn, operator_id, request_id FROM users "  # noqa: S608 (constants)
                f"WHERE state = 'identifying' AND {_ORPHANED} AND user_id NOT IN "
                "(SELECT user_id FROM codes WHERE state = 'registering')",
                {"me": self.owner, "now": now},
            ) as cur:
                rows = list(await cur.fetchall())
            for user_id, msisdn, operator_id, request_id in rows:
                await self._set_user(
                    conn,
                    user_id,
                    "refused",
                    reason="interrupted",
                    msisdn=msisdn,
                    operator_id=operator_id,
                    request_id=request_id,
                    code=None,
                )
        return [row[0] for row in rows]

    async def interrupt(self, user_id: str) -> tuple[bool, UserRecord | None]:
        """This store's identification of the user stops half-way (the messenger closes).

        The user is refused, ``interrupted``; a code being registered is abandoned and
        queued for deletion (the operator may hold it). Returns whether the user was
        interrupted, and the user's record: one that is not being identified by this store
        (it finished meanwhile) is left as it stands.
        """
        async with self._tx() as conn:
            async with conn.execute(
                "SELECT user_id, state, reason, msisdn, operator_id, request_id, code, "
                "updated_at, owner FROM users WHERE user_id = ?",
                (user_id,),
            ) as cur:
                row = await cur.fetchone()
            if row is None:
                return False, None
            current = UserRecord(*row[:8])
            if current.state != "identifying" or row[8] != self.owner:
                return False, current
            async with conn.execute(
                "SELECT code FROM codes WHERE user_id = ? AND state = 'registering' AND owner = ?",
                (user_id, self.owner),
            ) as cur:
                registering = [r[0] for r in await cur.fetchall()]
            for code in registering:
                await conn.execute(
                    "UPDATE codes SET state = 'abandoned', ended_reason = 'interrupted' "
                    "WHERE code = ?",
                    (code,),
                )
                await self._queue_deletion(conn, code)
            await self._set_user(
                conn,
                user_id,
                "refused",
                reason="interrupted",
                msisdn=current.msisdn,
                operator_id=current.operator_id,
                request_id=current.request_id,
                code=None,
            )
        return True, await self.user(user_id)

    # --- leases --------------------------------------------------------------------

    async def hold_lease(self, now: float, ttl: float) -> bool:
        """Take or renew this owner's lease until ``now + ttl``; False when it had lapsed
        (or was never taken): others may have recovered work of ours meanwhile."""
        async with self._tx() as conn:
            async with conn.execute(
                "SELECT expires_at FROM owners WHERE owner_id = ?", (self.owner,)
            ) as cur:
                row = await cur.fetchone()
            await conn.execute(
                "INSERT INTO owners (owner_id, expires_at) VALUES (?, ?) ON CONFLICT "
                "(owner_id) DO UPDATE SET expires_at = excluded.expires_at",
                (self.owner, now + ttl),
            )
        return row is not None and row[0] > now

    async def release_owner(self) -> None:
        """Give up this owner's lease: what it left unfinished is anybody's to recover."""
        async with self._tx() as conn:
            await conn.execute("DELETE FROM owners WHERE owner_id = ?", (self.owner,))

    async def forget_lapsed_owners(self, now: float) -> None:
        """Drop the leases that ran out (their work is orphaned whether or not they stay)."""
        async with self._tx() as conn:
            await conn.execute(
                "DELETE FROM owners WHERE expires_at <= ? AND owner_id != ?", (now, self.owner)
            )

    # --- deletions at the operator -------------------------------------------------

    @staticmethod
    async def _queue_deletion(conn: aiosqlite.Connection, code: str) -> None:
        await conn.execute(
            "INSERT INTO code_deletions (code, operator_id, next_at) "
            "SELECT code, operator_id, 0 FROM codes WHERE code = ? ON CONFLICT DO NOTHING",
            (code,),
        )

    async def pending_deletions(self, due_by: float | None = None) -> list[PendingDeletion]:
        """Codes still to delete at their operator (only those due by ``due_by``, if given)."""
        sql = "SELECT code, operator_id, attempts, next_at, last_error FROM code_deletions"
        args: tuple[float, ...] = ()
        if due_by is not None:
            sql += " WHERE next_at <= ?"
            args = (due_by,)
        async with self._conn.execute(sql + " ORDER BY next_at, code", args) as cur:
            return [PendingDeletion(*row) for row in await cur.fetchall()]

    async def deletion_done(self, code: str) -> None:
        """The operator confirmed the code is gone."""
        async with self._tx() as conn:
            await conn.execute("DELETE FROM code_deletions WHERE code = ?", (code,))

    async def deletion_failed(self, code: str, *, next_at: float, error: str) -> None:
        """An attempt failed: count it and say when to try again."""
        async with self._tx() as conn:
            await conn.execute(
                "UPDATE code_deletions SET attempts = attempts + 1, next_at = ?, "
                "last_error = ? WHERE code = ?",
                (next_at, error, code),
            )

    # --- events ------------------------------------------------------------------

    async def operators(self) -> list[tuple[str, str | None]]:
        """Operators this messenger has asked, with their feed cursors."""
        async with self._conn.execute(
            "SELECT operator_id, cursor FROM operators ORDER BY operator_id"
        ) as cur:
            return [(row[0], row[1]) for row in await cur.fetchall()]

    async def apply_ending(
        self,
        *,
        event_id: str,
        code: str | None,
        reason: str | None,
    ) -> tuple[bool, str | None]:
        """Record an event once; a code's ending suspends its user.

        Returns (whether the event is new, the user suspended). No user is suspended for a
        duplicate, for an event ending no code of ours, or for a code replaced since.
        """
        async with self._tx() as conn:
            async with conn.execute(
                "INSERT INTO seen_events (event_id, seen_at) VALUES (?, ?) "
                "ON CONFLICT DO NOTHING RETURNING event_id",
                (event_id, _now()),
            ) as cur:
                if await cur.fetchone() is None:
                    return False, None
            if code is None or reason is None:
                return True, None
            async with conn.execute(
                "SELECT user_id, state FROM codes WHERE code = ?", (code,)
            ) as cur:
                row = await cur.fetchone()
            if row is None or row[1] not in ("active", "registering"):
                return True, None
            await conn.execute(
                "UPDATE codes SET state = 'ended', ended_reason = ? WHERE code = ?", (reason, code)
            )
            async with conn.execute(
                "SELECT user_id, msisdn, operator_id, request_id FROM users "
                "WHERE user_id = ? AND code = ? AND state = 'identified'",
                (row[0], code),
            ) as cur:
                user = await cur.fetchone()
            if user is None:
                return True, None
            await self._set_user(
                conn,
                user[0],
                "suspended",
                reason=reason,
                msisdn=user[1],
                operator_id=user[2],
                request_id=user[3],
                code=None,
            )
            return True, str(user[0])

    async def cursor(self, operator_id: str) -> str | None:
        """How far this operator's feed has been read (None: from the oldest event)."""
        async with self._conn.execute(
            "SELECT cursor FROM operators WHERE operator_id = ?", (operator_id,)
        ) as cur:
            row = await cur.fetchone()
        return None if row is None else row[0]

    async def save_cursor(self, operator_id: str, cursor: str | None) -> None:
        """Remember how far the feed of an operator has been read (None: from the oldest)."""
        async with self._tx() as conn:
            await conn.execute(
                "INSERT INTO operators (operator_id, cursor) VALUES (?, ?) "
                "ON CONFLICT (operator_id) DO UPDATE SET cursor = excluded.cursor",
                (operator_id, cursor),
            )

    async def seen(self, event_id: str) -> bool:
        """Whether the event was applied before."""
        async with self._conn.execute(
            "SELECT 1 FROM seen_events WHERE event_id = ?", (event_id,)
        ) as cur:
            return await cur.fetchone() is not None

    # --- proof of possession ---------------------------------------------------------

    async def secret_key(self) -> bytes:
        """This database's secret key for code HMACs, made on first use (the first of
        several processes to make one wins)."""
        if self._key is None:
            async with self._tx() as conn:
                await conn.execute(
                    "INSERT INTO secret_keys (name, value) VALUES ('otp', ?) "
                    "ON CONFLICT DO NOTHING",
                    (secrets.token_bytes(32),),
                )
                async with conn.execute("SELECT value FROM secret_keys WHERE name = 'otp'") as cur:
                    row = await cur.fetchone()
            if row is None:  # cannot happen: inserted just above
                raise RuntimeError("the database's secret key is missing")
            self._key = bytes(row[0])
        return self._key

    async def begin_verification(
        self,
        user_id: str,
        *,
        msisdn: str,
        nonce: str,
        code_mac: str,
        sent_at: float,
        expires_at: float,
    ) -> None:
        """A fresh code for the user, before it is sent: any earlier code stops counting."""
        async with self._tx() as conn:
            await conn.execute(
                "INSERT INTO verifications (user_id, msisdn, nonce, code_mac, sms_id, "
                "sms_status, sent_at, expires_at, attempts, state) "
                "VALUES (?, ?, ?, ?, NULL, NULL, ?, ?, 0, 'pending') "
                "ON CONFLICT (user_id) DO UPDATE SET msisdn = excluded.msisdn, "
                "nonce = excluded.nonce, code_mac = excluded.code_mac, sms_id = NULL, "
                "sms_status = NULL, sent_at = excluded.sent_at, "
                "expires_at = excluded.expires_at, attempts = 0, state = 'pending'",
                (user_id, msisdn, nonce, code_mac, sent_at, expires_at),
            )

    async def verification_sent(
        self, user_id: str, nonce: str, *, sms_id: str, sent_at: float, expires_at: float
    ) -> None:
        """The gateway accepted the code's message: its id, and the code's times from now."""
        async with self._tx() as conn:
            await conn.execute(
                "UPDATE verifications SET sms_id = ?, sent_at = ?, expires_at = ? "
                "WHERE user_id = ? AND nonce = ?",
                (sms_id, sent_at, expires_at, user_id, nonce),
            )

    async def drop_verification(self, user_id: str, nonce: str) -> None:
        """The code could not be sent: forget it (a later one may have replaced it)."""
        async with self._tx() as conn:
            await conn.execute(
                "DELETE FROM verifications WHERE user_id = ? AND nonce = ?", (user_id, nonce)
            )

    async def verification(self, user_id: str) -> VerificationRecord | None:
        """The user's latest verification."""
        async with self._conn.execute(
            f"SELECT {_VERIFICATION_COLUMNS} FROM verifications WHERE user_id = ?",  # noqa: S608 (constant columns)
            (user_id,),
        ) as cur:
            row = await cur.fetchone()
        return None if row is None else VerificationRecord(*row)

    async def attempt(
        self,
        user_id: str,
        now: float,
        decide: Callable[[str, str, str, VerificationRecord], Attempt],
    ) -> tuple[Attempt, VerificationRecord | None]:
        """Judge one typed code, in one transaction: concurrent attempts count one by one.

        ``decide(nonce, code_mac, msisdn, record)`` gives the verdict; a confirmation
        records that the user holds the number.
        """
        async with self._tx() as conn:
            async with conn.execute(
                f"SELECT {_VERIFICATION_COLUMNS}, nonce, code_mac FROM verifications "  # noqa: S608 (constant columns)
                "WHERE user_id = ?",
                (user_id,),
            ) as cur:
                row = await cur.fetchone()
            if row is None:
                return Attempt(Confirmation.NOT_STARTED, "pending", 0), None
            record = VerificationRecord(*row[:8])
            verdict = decide(row[8], row[9], record.msisdn, record)
            await conn.execute(
                "UPDATE verifications SET attempts = ?, state = ? WHERE user_id = ?",
                (verdict.attempts, verdict.state, user_id),
            )
            if verdict.result is Confirmation.CONFIRMED:
                await conn.execute(
                    "INSERT INTO possessions (user_id, msisdn, confirmed_at) VALUES (?, ?, ?) "
                    "ON CONFLICT (user_id) DO UPDATE SET msisdn = excluded.msisdn, "
                    "confirmed_at = excluded.confirmed_at",
                    (user_id, record.msisdn, now),
                )
        return verdict, record

    async def possession(self, user_id: str) -> str | None:
        """The number the user last proved to hold, if any."""
        async with self._conn.execute(
            "SELECT msisdn FROM possessions WHERE user_id = ?", (user_id,)
        ) as cur:
            row = await cur.fetchone()
        return None if row is None else str(row[0])

    async def note_sms_status(self, sms_id: str, status: str) -> None:
        """Record the gateway's latest report on a code's message (read on demand)."""
        async with self._tx() as conn:
            await conn.execute(
                "UPDATE verifications SET sms_status = ? WHERE sms_id = ?", (status, sms_id)
            )

    async def apply_sms_status(
        self, *, event_id: str, sms_id: str, status: str
    ) -> tuple[bool, str | None]:
        """Record the gateway's report once: (whether it is new, the user whose code it is)."""
        async with self._tx() as conn:
            async with conn.execute(
                "INSERT INTO seen_events (event_id, seen_at) VALUES (?, ?) "
                "ON CONFLICT DO NOTHING RETURNING event_id",
                (event_id, _now()),
            ) as cur:
                if await cur.fetchone() is None:
                    return False, None
            async with conn.execute(
                "UPDATE verifications SET sms_status = ? WHERE sms_id = ? RETURNING user_id",
                (status, sms_id),
            ) as cur:
                row = await cur.fetchone()
        return True, None if row is None else str(row[0])
