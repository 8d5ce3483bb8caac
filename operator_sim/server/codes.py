"""Identification codes: the messenger registers one per timely ``present``, and forgets it."""

from __future__ import annotations

import structlog

from operator_sim import errors
from operator_sim.server.calls import Call, Calls, Screened
from operator_sim.server.operators import Operators
from operator_sim.store import Conn, Database, codes, subscribers
from operator_sim.store import requests as requests_table
from operator_sim.store.codes import StoredCode
from operator_sim.store.requests import StoredRequest

__all__ = ["Codes"]

log = structlog.get_logger("operator_sim.codes")


class Codes:
    """The operator's record of which messenger code stands for which subscriber."""

    def __init__(self, db: Database, operators: Operators, calls: Calls) -> None:
        self._db = db
        self._operators = operators
        self._calls = calls

    async def register(self, call: Call, *, request_id: str, code: str) -> tuple[StoredCode, bool]:
        """Register the messenger's code for a timely ``present``; (code, created)."""
        operator_id = call.operator_id or ""
        messenger_id = call.messenger_id
        self._operators.check(operator_id)
        rules = await self._calls.rules()
        now = call.received_at

        async def unit(conn: Conn) -> tuple[StoredCode | None, bool, Screened, int]:
            req = await requests_table.get_request(conn, request_id)
            mine = req is not None and req.messenger_id == messenger_id
            screened = await self._calls.screen(
                conn, call, rules, msisdn=req.msisdn if req is not None and mine else None
            )
            if screened.refused:  # nothing registered: a retry with the same body succeeds
                return None, False, screened, 0
            if req is None or not mine:
                # The same answer for another messenger's id as for none: no existence oracle.
                raise errors.NotFound(kind="identification request", ident=request_id)
            stored, created = await _register(conn, req, code, operator_id=operator_id, now=now)
            entry = call.entry(
                201 if created else 200,
                rule_id=screened.rule_id,
                request_id=request_id,
                msisdn=req.msisdn,
            )
            return stored, created, screened, await self._calls.record(conn, entry)

        stored, created, screened, dropped = await self._db.run(unit)
        self._calls.committed(call, screened, dropped=dropped)
        if stored is None:  # cannot happen: a refusing rule raised in committed()
            raise errors.StoreError("a refused call without its refusal")
        if created:
            log.info(
                "code_registered",
                identification_id=request_id,
                operator_id=operator_id,
                messenger_id=messenger_id,
            )
        return stored, created

    async def delete(self, call: Call, *, code: str) -> None:
        """Forget a messenger's code (the user left the messenger)."""
        operator_id = call.operator_id or ""
        self._operators.check(operator_id)
        rules = await self._calls.rules()
        now = call.received_at

        async def unit(conn: Conn) -> tuple[Screened, int]:
            found = await codes.find_code(conn, call.messenger_id, code)
            if found is not None and found.operator_id != operator_id:
                found = None
            screened = await self._calls.screen(
                conn, call, rules, msisdn=None if found is None else found.msisdn
            )
            if screened.refused:
                return screened, 0
            if found is None:
                raise errors.NotFound(kind="identification code")
            await codes.end_code(conn, found, at=now, by="deleted")
            entry = call.entry(204, rule_id=screened.rule_id, msisdn=found.msisdn)
            return screened, await self._calls.record(conn, entry)

        screened, dropped = await self._db.run(unit)
        self._calls.committed(call, screened, dropped=dropped)


async def _register(
    conn: Conn, req: StoredRequest, code: str, *, operator_id: str, now: int
) -> tuple[StoredCode, bool]:
    """Register ``code`` for the messenger's own request ``req``; (code, created)."""
    request_id, messenger_id = req.id, req.messenger_id
    if req.operator_id != operator_id:
        raise errors.Conflict(f"request {request_id} was sent to operator {req.operator_id}")
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
