"""The decree's identification flow for one user, from what they typed to a settled state.

``IdentificationFlow.run`` normalises the number, routes it, asks the operator, waits for
the answer (never past the 20-minute deadline), and identifies the user only on a timely
``present``, after registering a fresh unguessable code. Everything else refuses. When
asked to, it first requires that the user confirmed a code sent to the number, and that
the operator holding it reports no recent SIM swap.
"""

from __future__ import annotations

import asyncio
import math
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from operator_sim.messenger.checks import Reason, check_pinned, verdict
from operator_sim.messenger.client import OperatorClient
from operator_sim.messenger.errors import (
    ApiError,
    Conflict,
    InvalidPhone,
    InvalidResponse,
    NotFound,
    OperatorClientError,
    TransportError,
)
from operator_sim.messenger.phone import normalise_phone
from operator_sim.messenger.privacy import safe_repr, scrub
from operator_sim.messenger.steps import Reporter
from operator_sim.messenger.store import CodeRecord, MessengerStore, UserRecord
from operator_sim.wire import IdentificationRequest, format_timestamp

__all__ = ["IdentificationFlow", "NoAnswer", "Outcome"]

_CODE_BYTES = 32


@dataclass(frozen=True, slots=True, repr=False)
class Outcome:
    """How an identification ended (its repr redacts the code and masks the number)."""

    user_id: str
    identified: bool
    reason: Reason
    msisdn: str | None = None
    operator_id: str | None = None
    request_id: str | None = None
    code: str | None = None
    detail: str | None = None

    def __repr__(self) -> str:
        return safe_repr(self)


class NoAnswer(Exception):
    """No usable answer came to a request: why, and the request's id once it had one."""

    def __init__(self, reason: Reason, detail: str, *, request_id: str | None) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.request_id = request_id


def describe(req: IdentificationRequest) -> str:
    """A request's state in one line, for steps and refusals."""
    due = format_timestamp(req.due_at)
    if req.status == "expired":
        return f"{req.id} expired unanswered at its deadline {due}"
    if req.status == "pending" or req.answered_at is None:
        return f"{req.id} still pending (due {due})"
    late = " (late)" if req.answered_at > req.due_at else ""
    return f"{req.id} answered {req.result} at {format_timestamp(req.answered_at)}{late}, due {due}"


def reason_of(exc: OperatorClientError) -> Reason:
    """The refusal reason for a call that failed."""
    if isinstance(exc, InvalidResponse):
        return Reason.INVALID_RESPONSE
    if isinstance(exc, TransportError) or (isinstance(exc, ApiError) and exc.transient):
        return Reason.OPERATOR_UNREACHABLE
    return Reason.OPERATOR_REFUSED


def outcome_of(user: UserRecord) -> Outcome:
    """The outcome a user's current record stands for."""
    if user.state == "identified":
        reason = Reason.PRESENT
    else:
        try:
            reason = Reason(user.reason or "")
        except ValueError:  # suspended by an event: the identification itself had passed
            reason = Reason.CODE_REJECTED
    return Outcome(
        user.user_id,
        identified=user.state == "identified",
        reason=reason,
        msisdn=user.msisdn,
        operator_id=user.operator_id,
        request_id=user.request_id,
        code=user.code,
    )


class IdentificationFlow:
    """Runs identifications against the operator and records each step in the store.

    ``follow`` is told of every operator asked (its feed must be read); ``cleanup`` each
    time a code was queued for deletion at its operator; ``clock`` is wall time, for the
    leases of the work of other instances.
    """

    def __init__(
        self,
        client: OperatorClient,
        store: MessengerStore,
        *,
        report: Reporter,
        follow: Callable[[str], None],
        cleanup: Callable[[], None],
        clock: Callable[[], float],
        region: str,
        answer_timeout: float,
        poll_wait: int,
        holds: Callable[[str, str], Awaitable[bool]] | None = None,
    ) -> None:
        self._client = client
        self._store = store
        self._report = report
        self._follow = follow
        self._cleanup = cleanup
        self._clock = clock
        self._region = region
        self._answer_timeout = answer_timeout
        self._poll_wait = poll_wait
        self._holds = holds

    async def run(
        self,
        user_id: str,
        phone: str,
        *,
        require_possession: bool = False,
        max_sim_swap_age: int | None = None,
    ) -> Outcome:
        """Identify a user by the phone number they typed.

        ``require_possession``: refuse (``possession_unproven``) unless the user confirmed
        a code sent to the number; ``max_sim_swap_age`` (hours): refuse (``sim_swapped``)
        when the operator holding the number reports a SIM swap within that time.
        """
        store = self._store
        # A registration an instance that is gone left half done comes first.
        for pending in await store.claim_registrations(self._clock(), user_id):
            await self.finish(pending)
        current = await store.user(user_id)
        try:
            msisdn = normalise_phone(phone, self._region)
        except InvalidPhone as exc:
            return await self._refuse(user_id, Reason.INVALID_PHONE, str(exc))
        self._report("normalised", user_id, f"{self._report.typed(phone)} is {msisdn}")
        if require_possession and not (
            self._holds is not None and await self._holds(user_id, msisdn)
        ):
            return await self._refuse(
                user_id,
                Reason.POSSESSION_UNPROVEN,
                f"the user has not confirmed a code sent to {msisdn}",
                msisdn=msisdn,
            )
        if current is not None and current.state == "identified" and current.msisdn == msisdn:
            self._report("identified", user_id, "already identified with this number")
            return Outcome(
                user_id,
                identified=True,
                reason=Reason.ALREADY_IDENTIFIED,
                msisdn=msisdn,
                operator_id=current.operator_id,
                request_id=current.request_id,
                code=current.code,
            )
        await store.start_identification(user_id, msisdn, None, None)
        try:
            routing = await self._client.route(msisdn)
        except NotFound:
            return await self._refuse(
                user_id, Reason.UNROUTABLE, "no operator serves this number", msisdn=msisdn
            )
        except OperatorClientError as exc:
            return await self._refuse(user_id, reason_of(exc), str(exc), msisdn=msisdn)
        operator_id = routing.operator_id
        ported = " (ported)" if routing.ported else ""
        self._report("routed", user_id, f"{msisdn} is served by {operator_id}{ported}")
        await store.start_identification(user_id, msisdn, operator_id, None)
        self._follow(operator_id)
        if max_sim_swap_age is not None:
            refused = await self._check_sim(user_id, operator_id, msisdn, max_sim_swap_age)
            if refused is not None:
                return refused

        try:
            req = await self._ask(user_id, operator_id, msisdn)
        except NoAnswer as exc:
            return await self._refuse(
                user_id,
                exc.reason,
                exc.detail,
                msisdn=msisdn,
                operator_id=operator_id,
                request_id=exc.request_id,
            )
        reason = verdict(req)
        self._report("answered", user_id, describe(req))
        if reason is not Reason.PRESENT:
            return await self._refuse(
                user_id,
                reason or Reason.NO_ANSWER,
                describe(req),
                msisdn=msisdn,
                operator_id=operator_id,
                request_id=req.id,
            )
        code = CodeRecord(
            code=secrets.token_urlsafe(_CODE_BYTES),
            user_id=user_id,
            state="registering",
            operator_id=operator_id,
            request_id=req.id,
            msisdn=msisdn,
        )
        await store.begin_registration(
            user_id, code=code.code, operator_id=operator_id, request_id=req.id, msisdn=msisdn
        )
        return await self.finish(code)

    async def _check_sim(
        self, user_id: str, operator_id: str, msisdn: str, max_age: int
    ) -> Outcome | None:
        """A refusal when the holder reports a recent SIM swap (or cannot say); else None."""
        try:
            swapped = await self._client.sim_swap_check(operator_id, msisdn, max_age_hours=max_age)
        except OperatorClientError as exc:
            return await self._refuse(
                user_id, reason_of(exc), str(exc), msisdn=msisdn, operator_id=operator_id
            )
        if swapped:
            return await self._refuse(
                user_id,
                Reason.SIM_SWAPPED,
                f"{operator_id} reports a SIM swap within the last {max_age} hours",
                msisdn=msisdn,
                operator_id=operator_id,
            )
        self._report("sim_checked", user_id, f"no SIM swap within {max_age} hours")
        return None

    async def _ask(self, user_id: str, operator_id: str, msisdn: str) -> IdentificationRequest:
        """Send the request and wait for a verdict; ``NoAnswer`` when none comes in time."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + self._answer_timeout
        key = "idn-" + secrets.token_urlsafe(18)
        try:
            # No long poll on the POST: the request id is stored before any waiting starts.
            async with asyncio.timeout_at(deadline):
                req = await self._client.create_request(operator_id, msisdn, idempotency_key=key)
        except TimeoutError:
            raise NoAnswer(Reason.NO_ANSWER, self._silent(), request_id=None) from None
        except OperatorClientError as exc:
            raise NoAnswer(reason_of(exc), str(exc), request_id=None) from exc
        await self._store.start_identification(user_id, msisdn, operator_id, req.id)
        self._report(
            "sent",
            user_id,
            f"request {req.id} to {operator_id}, due {format_timestamp(req.due_at)}",
        )
        # Never wait past the operator's own deadline, nor past ours.
        deadline = min(deadline, started + (req.due_at - req.received_at).total_seconds())
        first = req  # its receipt and deadline hold for every later read
        try:
            while verdict(req) is None:
                if loop.time() >= deadline:
                    raise TimeoutError
                async with asyncio.timeout_at(deadline):
                    req = await self._client.get_request(
                        operator_id, req.id, msisdn=msisdn, wait=self._wait(deadline)
                    )
                check_pinned(req, first)
        except TimeoutError:
            raise NoAnswer(Reason.NO_ANSWER, self._silent(), request_id=req.id) from None
        except OperatorClientError as exc:
            raise NoAnswer(reason_of(exc), str(exc), request_id=req.id) from exc
        return req

    def _silent(self) -> str:
        return f"no answer within {self._answer_timeout:g} s: the operator went silent"

    def _wait(self, deadline: float) -> int:
        remaining = deadline - asyncio.get_running_loop().time()
        return max(1, min(self._poll_wait, math.ceil(remaining)))

    async def finish(self, code: CodeRecord) -> Outcome:
        """Register a code the store holds as ``registering``, and settle the user."""
        try:
            await self._client.register_code(
                code.operator_id, code.request_id, code.code, msisdn=code.msisdn
            )
        except Conflict as exc:
            return await self._abandon(code, Reason.CODE_REJECTED, scrub(exc.detail, code.code))
        except OperatorClientError as exc:
            # The operator may hold the code even though we could not read its answer.
            detail = scrub(str(exc), code.code)
            return await self._abandon(code, reason_of(exc), detail, delete=True)
        identified, replaced = await self._store.finish_registration(code)
        if replaced is not None:
            self._cleanup()
        if not identified:
            self._report("suspended", code.user_id, "the contract ended while registering")
            return Outcome(
                code.user_id,
                identified=False,
                reason=Reason.CODE_REJECTED,
                msisdn=code.msisdn,
                operator_id=code.operator_id,
                request_id=code.request_id,
                detail="the number's contract ended while the code was registered",
            )
        self._report("identified", code.user_id, f"code registered with {code.operator_id}")
        return Outcome(
            code.user_id,
            identified=True,
            reason=Reason.PRESENT,
            msisdn=code.msisdn,
            operator_id=code.operator_id,
            request_id=code.request_id,
            code=code.code,
        )

    async def _abandon(
        self, code: CodeRecord, reason: Reason, detail: str, *, delete: bool = False
    ) -> Outcome:
        return await self._refuse(
            code.user_id,
            reason,
            detail,
            msisdn=code.msisdn,
            operator_id=code.operator_id,
            request_id=code.request_id,
            abandon_code=code.code,
            delete_abandoned=delete,
        )

    async def interrupted(self, user_id: str) -> Outcome:
        """This instance stops half-way through the user's identification (it is closing):
        the user is refused, ``interrupted``, unless the identification ended meanwhile."""
        stopped, user = await self._store.interrupt(user_id)
        if user is None:
            return Outcome(user_id, identified=False, reason=Reason.INTERRUPTED)
        if not stopped:
            return outcome_of(user)
        self._report("refused", user_id, "interrupted: the messenger is closing")
        return Outcome(
            user_id,
            identified=False,
            reason=Reason.INTERRUPTED,
            msisdn=user.msisdn,
            operator_id=user.operator_id,
            request_id=user.request_id,
            detail="the messenger closed before the identification ended",
        )

    async def _refuse(
        self,
        user_id: str,
        reason: Reason,
        detail: str,
        *,
        msisdn: str | None = None,
        operator_id: str | None = None,
        request_id: str | None = None,
        abandon_code: str | None = None,
        delete_abandoned: bool = False,
    ) -> Outcome:
        await self._store.refuse(
            user_id,
            reason.value,
            msisdn=msisdn,
            operator_id=operator_id,
            request_id=request_id,
            abandon_code=abandon_code,
            delete_abandoned=delete_abandoned,
        )
        old = await self._store.retire_active(user_id, "superseded")
        if old is not None or delete_abandoned:
            self._cleanup()
        detail = self._report.text(detail)
        self._report("refused", user_id, f"{reason.value}: {detail}")
        return Outcome(
            user_id,
            identified=False,
            reason=reason,
            msisdn=msisdn,
            operator_id=operator_id,
            request_id=request_id,
            detail=detail,
        )
