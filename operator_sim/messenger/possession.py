"""Proof of possession: a one-time code by SMS, and the user typing it back.

``PossessionFlow.start`` sends a fresh code to the number the user typed and keeps only
its HMAC (see :mod:`~operator_sim.messenger.otp`); ``confirm`` judges what the user
typed, in constant time, at most ``max_attempts`` times, until ``ttl`` seconds after
the code was sent, on the policy's clock. The gateway's delivery reports are advisory:
they are recorded (``VerificationRecord.sms_status``) and never stop a user who types
the right code, since a report may come late or never.
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from operator_sim.messenger.client import OperatorClient
from operator_sim.messenger.errors import OperatorClientError
from operator_sim.messenger.otp import (
    CODE_DIGITS,
    Attempt,
    Confirmation,
    code_mac,
    judge,
    new_code,
    normalise_code,
)
from operator_sim.messenger.phone import normalise_phone
from operator_sim.messenger.privacy import safe_repr
from operator_sim.messenger.steps import Reporter
from operator_sim.messenger.store import MessengerStore, VerificationRecord
from operator_sim.wire import SmsMessage, format_timestamp

__all__ = ["PossessionFlow", "PossessionPolicy", "Verification"]

_SMS_TTL_RANGE = (60.0, 72 * 3600.0)  # what the gateway accepts as a message's ttl


@dataclass(frozen=True, slots=True)
class PossessionPolicy:
    """How one-time codes are sent and checked.

    A code is valid for ``ttl`` seconds after it was sent and for at most
    ``max_attempts`` attempts (the last wrong one voids it). ``clock`` is seconds since
    the epoch (wall time by default; tests move it by hand). ``template`` is the text,
    with ``{code}`` where the code goes; ``sender`` the SMS sender (the gateway's default
    when None).
    """

    ttl: float = 600.0
    max_attempts: int = 5
    clock: Callable[[], float] = time.time
    template: str = "{code} is your verification code. Do not share it."
    sender: str | None = None

    def __post_init__(self) -> None:
        if self.ttl <= 0 or self.max_attempts < 1:
            raise ValueError("ttl must be positive and max_attempts at least 1")
        if self.template.count("{code}") != 1:
            raise ValueError("the template must hold {code} exactly once")


@dataclass(frozen=True, slots=True, repr=False)
class Verification:
    """A code on its way: to which number, by which message, and until when it counts."""

    user_id: str
    msisdn: str
    sms_id: str
    sent_at: datetime
    expires_at: datetime

    def __repr__(self) -> str:
        return safe_repr(self)


def _time(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


class PossessionFlow:
    """Sends one-time codes through the SMS gateway and judges what users type back."""

    def __init__(
        self,
        client: OperatorClient,
        store: MessengerStore,
        *,
        report: Reporter,
        policy: PossessionPolicy,
        region: str,
    ) -> None:
        self._client = client
        self._store = store
        self._report = report
        self._policy = policy
        self._region = region

    async def start(self, user_id: str, phone: str) -> Verification:
        """Send a fresh code to the number the user typed; any earlier code stops counting.

        Raises ``InvalidPhone`` before anything is sent, and the client's error when the
        gateway refuses the message (``RateLimited`` when the number had too many codes).
        """
        msisdn = normalise_phone(phone, self._region)
        policy = self._policy
        code, nonce = new_code(), secrets.token_hex(16)
        key = await self._store.secret_key()
        mac = code_mac(key, nonce=nonce, user_id=user_id, msisdn=msisdn, code=code)
        now = policy.clock()
        await self._store.begin_verification(
            user_id, msisdn=msisdn, nonce=nonce, code_mac=mac, sent_at=now, expires_at=now
        )
        low, high = _SMS_TTL_RANGE
        try:
            sms = await self._client.send_sms(
                msisdn,
                policy.template.format(code=code),
                idempotency_key=f"otp-{nonce}",
                sender=policy.sender,
                ttl=timedelta(seconds=min(max(policy.ttl, low), high)),
            )
        except BaseException as exc:
            # Not even a cancellation may leave a code behind that nobody received.
            await asyncio.shield(self._store.drop_verification(user_id, nonce))
            if isinstance(exc, OperatorClientError):
                self._report("code_not_sent", user_id, f"to {msisdn}: {exc}")
            raise
        sent_at = policy.clock()
        expires_at = sent_at + policy.ttl
        await self._store.verification_sent(
            user_id, nonce, sms_id=sms.id, sent_at=sent_at, expires_at=expires_at
        )
        self._report(
            "code_sent",
            user_id,
            f"a code to {msisdn} in {sms.id}, valid until {format_timestamp(_time(expires_at))}",
        )
        return Verification(user_id, msisdn, sms.id, _time(sent_at), _time(expires_at))

    async def confirm(self, user_id: str, typed: str) -> Confirmation:
        """Judge the code the user typed (compared in constant time; see ``otp.judge``)."""
        policy = self._policy
        candidate = normalise_code(typed)
        key = await self._store.secret_key()
        now = policy.clock()

        def decide(nonce: str, stored: str, msisdn: str, record: VerificationRecord) -> Attempt:
            mac = code_mac(key, nonce=nonce, user_id=user_id, msisdn=msisdn, code=candidate)
            return judge(
                state=record.state,
                attempts=record.attempts,
                now=now,
                expires_at=record.expires_at,
                matches=hmac.compare_digest(mac, stored),
                max_attempts=policy.max_attempts,
            )

        verdict, record = await self._store.attempt(user_id, now, decide)
        result = verdict.result
        if result is Confirmation.CONFIRMED and record is not None:
            self._report("phone_confirmed", user_id, f"{record.msisdn} confirmed")
        elif result is not Confirmation.NOT_STARTED:
            left = max(0, policy.max_attempts - verdict.attempts)
            self._report("code_refused", user_id, f"{result.value} ({left} attempts left)")
        return result

    async def report(self, user_id: str) -> SmsMessage | None:
        """The gateway's report on the user's latest code message, read now and recorded
        (advisory: it never changes what ``confirm`` says). None without one."""
        record = await self._store.verification(user_id)
        if record is None or record.sms_id is None:
            return None
        length = len(self._policy.template.format(code="0" * CODE_DIGITS))
        sms = await self._client.get_sms(record.sms_id, to=record.msisdn, text_length=length)
        await self._store.note_sms_status(record.sms_id, sms.status)
        return sms

    async def holds(self, user_id: str, msisdn: str) -> bool:
        """Whether the user confirmed a code sent to this number."""
        return await self._store.possession(user_id) == msisdn
