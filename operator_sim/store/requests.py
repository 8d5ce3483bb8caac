"""Identification requests (``identification_requests``)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Literal, NamedTuple

from operator_sim.clock import ms_to_datetime
from operator_sim.store.conn import Conn
from operator_sim.wire import IdentificationRequest, format_ms


def _ts(ms: int | None) -> object:
    return None if ms is None else ms_to_datetime(ms)


class StoredRequest(NamedTuple):
    """An identification request as stored, with its owner."""

    id: str
    messenger_id: str
    operator_id: str
    msisdn: str
    status: Literal["pending", "answered", "expired"]
    result: Literal["present", "absent"] | None
    received_at: int
    due_at: int
    answered_at: int | None
    rule_id: str | None

    def to_wire(self) -> IdentificationRequest:
        """The messenger-facing resource."""
        return IdentificationRequest.model_validate(
            {
                "id": self.id,
                "operator_id": self.operator_id,
                "msisdn": self.msisdn,
                "status": self.status,
                "result": self.result,
                "received_at": ms_to_datetime(self.received_at),
                "due_at": ms_to_datetime(self.due_at),
                "answered_at": _ts(self.answered_at),
            }
        )

    def to_json(self) -> str:
        """:meth:`to_wire` rendered as JSON: the same bytes, several times faster.

        Safe to assemble by hand because every string in it is validated on the way in
        (ids, E.164 numbers, fixed status and result words) and needs no escaping; a
        property test holds the bytes equal to the model's for every valid value.
        """
        result = "null" if self.result is None else f'"{self.result}"'
        answered = "null" if self.answered_at is None else f'"{format_ms(self.answered_at)}"'
        return (
            f'{{"id":"{self.id}","operator_id":"{self.operator_id}","msisdn":"{self.msisdn}",'
            f'"status":"{self.status}","result":{result},'
            f'"received_at":"{format_ms(self.received_at)}","due_at":"{format_ms(self.due_at)}",'
            f'"answered_at":{answered}}}'
        )

    @property
    def timely_present(self) -> bool:
        """Answered ``present`` within the deadline: the only basis for a code."""
        return (
            self.status == "answered"
            and self.result == "present"
            and self.answered_at is not None
            and self.answered_at <= self.due_at
        )


_REQUEST_COLUMNS = ", ".join(StoredRequest._fields)
"""The table's columns, named as the fields: a row is a request, a request the row."""


def _request(row: sqlite3.Row) -> StoredRequest:
    return StoredRequest._make(row)


async def insert_request(conn: Conn, req: StoredRequest) -> None:
    """Store a new request."""
    await conn.execute(
        f"INSERT INTO identification_requests ({_REQUEST_COLUMNS}) "  # noqa: S608 (constant columns)
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        req,  # its fields are the columns, in order
    )


async def get_request(conn: Conn, request_id: str) -> StoredRequest | None:
    """A request by id, whoever owns it (callers check the owner)."""
    async with conn.execute(
        f"SELECT {_REQUEST_COLUMNS} FROM identification_requests WHERE id = ?",  # noqa: S608 (constant columns)
        (request_id,),
    ) as cur:
        row = await cur.fetchone()
    return None if row is None else _request(row)


async def set_answer(
    conn: Conn,
    request_id: str,
    *,
    status: Literal["answered", "expired"],
    result: Literal["present", "absent"] | None,
    answered_at: int | None,
) -> None:
    """Record an answer or an expiry."""
    await conn.execute(
        "UPDATE identification_requests SET status = ?, result = ?, answered_at = ? WHERE id = ?",
        (status, result, answered_at, request_id),
    )


async def finished_requests(
    conn: Conn, *, after: str, before: str, limit: int
) -> tuple[list[str], str | None]:
    """Finished (answered or expired) requests among the first ``limit`` with ids in
    (``after``, ``before``), and the last id looked at when there may be more.

    Ids begin with their creation time (:func:`operator_sim.ids.time_floor`), so this is
    a range of the primary key, at most ``limit`` rows whatever is kept in it.
    """
    async with conn.execute(
        "SELECT id, status FROM identification_requests WHERE id > ? AND id < ? "
        "ORDER BY id LIMIT ?",
        (after, before, limit),
    ) as cur:
        rows = await cur.fetchall()
    finished = [str(row[0]) for row in rows if row[1] != "pending"]
    return finished, (str(rows[-1][0]) if len(rows) == limit else None)


async def delete_requests(conn: Conn, request_ids: Sequence[str]) -> int:
    """Remove requests by id; returns how many were removed."""
    cur = await conn.executemany(
        "DELETE FROM identification_requests WHERE id = ?", [(i,) for i in request_ids]
    )
    return max(cur.rowcount, 0)
