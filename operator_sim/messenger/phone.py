"""Normalising what a user typed into the canonical E.164 number the operator expects."""

from __future__ import annotations

import phonenumbers

from operator_sim.messenger.errors import InvalidPhone
from operator_sim.wire import is_msisdn

__all__ = ["normalise_phone"]

# phonenumbers refuses longer input anyway; cutting early keeps error messages short.
_MAX_INPUT = 64


def normalise_phone(text: str, region: str = "RU") -> str:
    """``8 (900) 000-00-01``, ``+7 900 000 00 01`` or ``9000000001`` -> ``+79000000001``.

    Raises ``InvalidPhone`` for anything that is not a valid number of some country
    (national numbers are read in ``region``), and for numbers with an extension.
    """
    if not text or len(text) > _MAX_INPUT:
        raise InvalidPhone("not a phone number")
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhone(f"not a phone number: {exc}") from None
    if number.extension:
        raise InvalidPhone("a phone number with an extension cannot receive messages")
    if not phonenumbers.is_valid_number(number):
        raise InvalidPhone("not a valid phone number")
    msisdn = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    if not is_msisdn(msisdn):  # e.g. numbers of over 15 digits: not E.164 at all
        raise InvalidPhone("not a valid phone number")
    return msisdn
