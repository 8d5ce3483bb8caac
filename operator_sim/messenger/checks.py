"""Pure checks of operator responses, and the decree's verdict on an answer.

Nothing here does I/O: the client calls these on every body it receives, and the
``Messenger`` identifies a user only when :func:`verdict` says ``present``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from operator_sim.messenger.errors import InvalidResponse
from operator_sim.wire import (
    IDENTIFICATION_DEADLINE,
    IdentificationCode,
    IdentificationRequest,
    Routing,
)

__all__ = [
    "Reason",
    "check_code",
    "check_request",
    "check_routing",
    "parse_model",
    "verdict",
]

M = TypeVar("M", bound=BaseModel)


class Reason(StrEnum):
    """Why an identification ended as it did (stored, returned, shown)."""

    PRESENT = "present"
    ALREADY_IDENTIFIED = "already_identified"
    ABSENT = "absent"
    EXPIRED = "expired"
    LATE_ANSWER = "late_answer"
    NO_ANSWER = "no_answer"
    INVALID_RESPONSE = "invalid_response"
    INVALID_PHONE = "invalid_phone"
    UNROUTABLE = "unroutable"
    OPERATOR_UNREACHABLE = "operator_unreachable"
    OPERATOR_REFUSED = "operator_refused"
    CODE_REJECTED = "code_rejected"
    INTERRUPTED = "interrupted"


def parse_model(model: type[M], body: bytes) -> M:
    """Validate a body against a wire model; anything else is ``InvalidResponse``."""
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[:3]
        summary = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in first
        )
        raise InvalidResponse(f"{model.__name__}: {summary}") from None


def _expect(field: str, got: object, sent: object) -> None:
    if got != sent:
        raise InvalidResponse(f"{field} is {got!r}, not the {sent!r} asked about")


def check_request(
    req: IdentificationRequest, *, operator_id: str, msisdn: str, request_id: str | None
) -> IdentificationRequest:
    """The request resource is about what was asked, and its fields agree with each other."""
    _expect("operator_id", req.operator_id, operator_id)
    _expect("msisdn", req.msisdn, msisdn)
    if request_id is not None:
        _expect("id", req.id, request_id)
    elif not req.id:
        raise InvalidResponse("the request has an empty id")
    if not req.received_at < req.due_at <= req.received_at + IDENTIFICATION_DEADLINE:
        raise InvalidResponse("due_at is not within 20 minutes after received_at")
    if req.status == "answered":
        if req.result is None or req.answered_at is None:
            raise InvalidResponse("an answered request without result or answered_at")
        if req.answered_at < req.received_at:
            raise InvalidResponse("answered_at is before received_at")
    elif req.result is not None or req.answered_at is not None:
        raise InvalidResponse(f"a {req.status} request carries an answer")
    return req


def check_code(
    code: IdentificationCode, *, operator_id: str, request_id: str, sent_code: str, msisdn: str
) -> IdentificationCode:
    """The registered code is the one sent, for the request and number asked about."""
    _expect("code", code.code, sent_code)
    _expect("request_id", code.request_id, request_id)
    _expect("operator_id", code.operator_id, operator_id)
    _expect("msisdn", code.msisdn, msisdn)
    return code


def check_routing(routing: Routing, *, msisdn: str) -> Routing:
    """The routing answer is about the number asked about and names an operator."""
    _expect("msisdn", routing.msisdn, msisdn)
    if not routing.operator_id:
        raise InvalidResponse("routing names no operator")
    return routing


def verdict(req: IdentificationRequest) -> Reason | None:
    """``PRESENT`` only for a timely present; a refusal reason; None while pending."""
    if req.status == "pending":
        return None
    if req.status == "expired":
        return Reason.EXPIRED
    if req.answered_at is None or req.result is None:
        return Reason.INVALID_RESPONSE
    if req.answered_at > req.due_at:
        return Reason.LATE_ANSWER
    return Reason.PRESENT if req.result == "present" else Reason.ABSENT
