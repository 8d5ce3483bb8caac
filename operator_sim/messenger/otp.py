"""One-time codes for proof of possession: making them, keeping them, judging an attempt.

Pure functions, no I/O. A code is six digits from :mod:`secrets`. The store never keeps
it: only an HMAC-SHA256 of it (bound to the user, the number and a nonce of this one
verification) under a secret key of the messenger's database, because a plain hash of
six digits reverses in a million guesses. :func:`judge` decides an attempt: the right
code before the expiry confirms; each wrong one counts, and the last allowed one voids
the verification.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

__all__ = [
    "CODE_DIGITS",
    "Attempt",
    "Confirmation",
    "VerificationState",
    "code_mac",
    "judge",
    "new_code",
    "normalise_code",
]

CODE_DIGITS = 6
VerificationState = Literal["pending", "confirmed", "expired", "void"]
_SEPARATORS_RE = re.compile(r"[\s-]")


class Confirmation(StrEnum):
    """What became of a code the user typed (``Messenger.confirm_phone``)."""

    CONFIRMED = "confirmed"
    """The right code in time: the user holds the number."""
    WRONG_CODE = "wrong_code"
    """Not the code; the user may try again."""
    EXPIRED = "expired"
    """The code's time ran out: send a new one."""
    TOO_MANY_ATTEMPTS = "too_many_attempts"
    """The last allowed wrong code voided the verification: send a new one."""
    NOT_STARTED = "not_started"
    """No code is pending for the user (none sent, or the last one already confirmed)."""


@dataclass(frozen=True, slots=True)
class Attempt:
    """The verdict on one attempt, and the verification's state after it."""

    result: Confirmation
    state: VerificationState
    attempts: int


def new_code() -> str:
    """A fresh code: six digits, uniformly drawn from the operating system's randomness."""
    return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


def normalise_code(typed: str) -> str:
    """What the user typed, without the spaces and dashes people put in codes."""
    return _SEPARATORS_RE.sub("", typed)


def code_mac(key: bytes, *, nonce: str, user_id: str, msisdn: str, code: str) -> str:
    """The code as the store keeps it: an HMAC bound to this verification."""
    message = "\n".join((nonce, user_id, msisdn, code)).encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def judge(
    *,
    state: VerificationState,
    attempts: int,
    now: float,
    expires_at: float,
    matches: bool,
    max_attempts: int,
) -> Attempt:
    """Decide one attempt on a verification in ``state`` with ``attempts`` made so far.

    ``matches`` is whether the typed code is the one sent (compared in constant time by
    the caller). Nothing but a pending verification before ``expires_at`` counts an
    attempt.
    """
    if state == "confirmed":
        return Attempt(Confirmation.NOT_STARTED, state, attempts)
    if state == "void":
        return Attempt(Confirmation.TOO_MANY_ATTEMPTS, state, attempts)
    if state == "expired" or now >= expires_at:
        return Attempt(Confirmation.EXPIRED, "expired", attempts)
    made = attempts + 1
    if matches:
        return Attempt(Confirmation.CONFIRMED, "confirmed", made)
    if made >= max_attempts:
        return Attempt(Confirmation.TOO_MANY_ATTEMPTS, "void", made)
    return Attempt(Confirmation.WRONG_CODE, "pending", made)
