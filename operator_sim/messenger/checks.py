"""Pure checks of operator responses, and the decree's verdict on an answer.

Nothing here does I/O: the client calls these on every body it receives, and the
``Messenger`` identifies a user only when :func:`verdict` says ``present``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar, get_args

from pydantic import BaseModel, TypeAdapter, ValidationError

from operator_sim.messenger.errors import InvalidResponse
from operator_sim.wire import (
    IDENTIFICATION_DEADLINE,
    Event,
    EventType,
    IdentificationCode,
    IdentificationRequest,
    Routing,
    SmsMessage,
    format_timestamp,
)

__all__ = [
    "FeedPage",
    "Reason",
    "UnknownEvent",
    "check_code",
    "check_pinned",
    "check_request",
    "check_routing",
    "check_sms",
    "parse_event",
    "parse_feed_page",
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
    POSSESSION_UNPROVEN = "possession_unproven"
    """``require_possession``: the user has not confirmed a code sent to this number."""
    SIM_SWAPPED = "sim_swapped"
    """``max_sim_swap_age``: the holder operator reports a recent SIM swap."""


@dataclass(frozen=True, slots=True)
class UnknownEvent:
    """An event of a type this library does not know: the contract lets operators add types."""

    id: str
    type: str
    operator_id: str


@dataclass(frozen=True, slots=True)
class FeedPage:
    """One page of an operator's feed: its events in order (unknown types kept as such)."""

    events: list[Event | UnknownEvent]
    next_cursor: str


_KNOWN_TYPES = frozenset(get_args(EventType))
_EVENT: TypeAdapter[Event] = TypeAdapter(Event)


def _summary(exc: ValidationError) -> str:
    first = exc.errors(include_url=False, include_input=False)[:3]
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in first)


def parse_model(model: type[M], body: bytes) -> M:
    """Validate a body against a wire model; anything else is ``InvalidResponse``."""
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        raise InvalidResponse(f"{model.__name__}: {_summary(exc)}") from None


def parse_event(raw: Any) -> Event | UnknownEvent:
    """One event (a decoded JSON value): a known type fully checked, any other kept aside.

    An unknown type still needs a string ``id``, ``type`` and ``operator_id``: an object
    without them is not an event at all.
    """
    if not isinstance(raw, dict):
        raise InvalidResponse("an event is not a JSON object")
    kind = raw.get("type")
    if kind in _KNOWN_TYPES:
        try:
            return _EVENT.validate_python(raw)
        except ValidationError as exc:
            raise InvalidResponse(f"{kind} event: {_summary(exc)}") from None
    fields = (raw.get("id"), kind, raw.get("operator_id"))
    if not all(isinstance(value, str) and value for value in fields):
        raise InvalidResponse("an event without a string id, type and operator_id")
    event_id, kind, operator_id = (str(value) for value in fields)
    return UnknownEvent(id=event_id, type=kind, operator_id=operator_id)


def parse_feed_page(body: bytes, *, operator_id: str) -> FeedPage:
    """A feed page from ``operator_id``: every event its own, and a cursor to go on from."""
    try:
        raw = json.loads(body)
    except ValueError:
        raise InvalidResponse("the event page is not JSON") from None
    if not isinstance(raw, dict) or set(raw) != {"events", "next_cursor"}:
        raise InvalidResponse("the event page is not an object of events and next_cursor")
    events, cursor = raw["events"], raw["next_cursor"]
    if not isinstance(events, list):
        raise InvalidResponse("the page's events are not a list")
    if not isinstance(cursor, str) or not cursor:
        raise InvalidResponse("the event page has an empty next_cursor")
    parsed = [parse_event(event) for event in events]
    for event in parsed:
        if event.operator_id != operator_id:
            raise InvalidResponse(f"event {event.id} is from {event.operator_id!r}")
    return FeedPage(events=parsed, next_cursor=cursor)


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


def check_pinned(req: IdentificationRequest, first: IdentificationRequest) -> IdentificationRequest:
    """A later read of a request keeps the receipt and deadline the first response gave.

    An operator that moves its deadline could turn a late answer into a timely one.
    """
    if req.received_at != first.received_at or req.due_at != first.due_at:
        raise InvalidResponse(
            "received_at or due_at differ from what the first response said "
            f"(due {format_timestamp(first.due_at)}, now {format_timestamp(req.due_at)})"
        )
    return req


def check_code(
    code: IdentificationCode, *, operator_id: str, request_id: str, sent_code: str, msisdn: str
) -> IdentificationCode:
    """The registered code is the one sent, for the request and number asked about."""
    if code.code != sent_code:  # neither is quoted: codes are credentials
        raise InvalidResponse("the registered code is not the one sent")
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


def check_sms(
    sms: SmsMessage, *, to: str, text_length: int, sms_id: str | None = None
) -> SmsMessage:
    """The gateway's message is the one sent: its number, its length, its id."""
    _expect("to", sms.to, to)
    _expect("text_length", sms.text_length, text_length)
    if sms_id is not None:
        _expect("id", sms.id, sms_id)
    elif not sms.id:
        raise InvalidResponse("the message has an empty id")
    return sms


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
