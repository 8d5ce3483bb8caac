"""Identification codes: the messenger registers one per timely ``present``, and forgets it."""

from __future__ import annotations

import structlog

from operator_sim import errors
from operator_sim.clock import SimClock
from operator_sim.server.operators import Operators
from operator_sim.store import Conn, Database, codes, subscribers
from operator_sim.store import requests as requests_table
from operator_sim.store.codes import StoredCode

__all__ = ["Codes"]

log = structlog.get_logger("operator_sim.codes")


class Codes:
    """The operator's record of which messenger code stands for which subscriber."""

    def __init__(self, db: Database, clock: SimClock, operators: Operators) -> None:
        self._db = db
        self._clock = clock
        self._operators = operators

    async def register(
        self, *, messenger_id: str, operator_id: str, request_id: str, code: str
    ) -> tuple[StoredCode, bool]:
        """Register the messenger's code for a timely ``present``; (code, created)."""
        self._operators.check(operator_id)
        now = self._clock.now_ms()

        async def unit(conn: Conn) -> tuple[StoredCode, bool]:
            req = await requests_table.get_request(conn, request_id)
            if req is None or req.messenger_id != messenger_id:
                # The same answer for another messenger's id as for none: no existence oracle.
                raise errors.NotFound(kind="identification request", ident=request_id)
            if req.operator_id != operator_id:
                raise errors.Conflict(
                    f"request {request_id} was sent to operator {req.operator_id}"
                )
            if not req.timely_present:
                raise errors.Conflict(
                    f"request {request_id} was not answered present within its deadline "
                    f"(status {req.status})"
                )
            existing = await codes.find_code_for_request(conn, request_id)
            if existing is not None and existing.code == code:
                return existing, False
            standing = await subscribers.subscriber_standing(conn, req.msisdn)
            if standing is not None and (
                standing.operator_id != operator_id or standing.status != "active"
            ):
                # Terminated or ported since the answer: the operator no longer serves them.
                # (No record at all means a rule forced the answer; the code is accepted.)
                # The detail stays neutral: the messenger learns nothing of why.
                raise errors.Conflict("this request can no longer take a code; identify again")
            if existing is not None:
                raise errors.Conflict(f"request {request_id} already has another code")
            taken = await codes.find_code(conn, messenger_id, code)
            if taken is not None and taken.msisdn != req.msisdn:
                raise errors.Conflict("this code is registered for another number")
            if taken is not None:
                # The same number identified again: the code now stands for the new request.
                await codes.delete_code(conn, messenger_id, code)
            stored = StoredCode(
                messenger_id=messenger_id,
                code=code,
                request_id=request_id,
                operator_id=operator_id,
                msisdn=req.msisdn,
                registered_at=now,
            )
            await codes.insert_code(conn, stored)
            return stored, True

        stored, created = await self._db.run(unit)
        if created:
            log.info(
                "code_registered",
                identification_id=request_id,
                operator_id=operator_id,
                messenger_id=messenger_id,
            )
        return stored, created

    async def delete(self, *, messenger_id: str, operator_id: str, code: str) -> None:
        """Forget a messenger's code (the user left the messenger)."""
        self._operators.check(operator_id)

        async def unit(conn: Conn) -> None:
            found = await codes.find_code(conn, messenger_id, code)
            if found is None or found.operator_id != operator_id:
                raise errors.NotFound(kind="identification code")
            await codes.delete_code(conn, messenger_id, code)

        await self._db.run(unit)
