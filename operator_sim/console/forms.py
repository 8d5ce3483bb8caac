"""Form fields to the API's own wire models: the console validates what the API validates.

Each form becomes the JSON body the admin API would receive, validated by the same model
with ``model_validate_json``, so a value the API refuses is refused here with the same
message. Errors come out as :class:`errors.ValidationFailed` with one line per problem.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from operator_sim import errors
from operator_sim.console.backend import SubscriberFilter
from operator_sim.wire import (
    ID_PATTERN,
    ClockAdvance,
    ClockSet,
    MessengerCreate,
    PortRequest,
    Rotation,
    RuleSpec,
    SimSwapRecord,
    Subscriber,
    SubscriberIn,
    is_msisdn,
)

__all__ = [
    "SubscriberListing",
    "advance_form",
    "clock_form",
    "messenger_form",
    "port_form",
    "problems",
    "rotation_form",
    "rule_form",
    "rule_json",
    "sim_swap_form",
    "subscriber_form",
    "subscriber_listing",
]

M = TypeVar("M", bound=BaseModel)
Form = Mapping[str, str]
RULE_ACTIONS = (
    "answer",
    "never",
    "late",
    "http_error",
    "drop",
    "malformed",
    "delay",
    "notify_late",
    "duplicate",
)


def problems(exc: ValidationError) -> list[str]:
    """One readable line per validation problem: where, then what."""
    lines = []
    for err in exc.errors(include_url=False):
        where = ".".join(str(part) for part in err["loc"])
        lines.append(f"{where}: {err['msg']}" if where else str(err["msg"]))
    return lines


def _validate(model: type[M], body: Mapping[str, Any]) -> M:
    try:
        return model.model_validate_json(json.dumps(body))
    except ValidationError as exc:
        raise _failed(exc) from None


def _failed(exc: ValidationError) -> errors.ValidationFailed:
    lines = problems(exc)
    return errors.ValidationFailed(
        "; ".join(lines), errors=[{"loc": [], "msg": line, "type": "form"} for line in lines]
    )


def _text(form: Form, name: str) -> str | None:
    value = form.get(name, "").strip()
    return value or None


def _number(form: Form, name: str) -> int | float | str | None:
    """A number when the field holds one; otherwise the text, for the model to refuse."""
    value = _text(form, name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        pass
    try:
        return float(value)
    except ValueError:
        return value


def _duration(form: Form, name: str) -> int | float | str | None:
    """Seconds when the field holds a number, else the ISO 8601 text (``PT5M``)."""
    return _number(form, name)


def advance_form(form: Form) -> ClockAdvance:
    """``by``: an ISO 8601 duration or seconds."""
    return _validate(ClockAdvance, {"by": _duration(form, "by")})


def clock_form(form: Form) -> ClockSet:
    """``mode`` and, for ``scaled``, an optional ``scale``."""
    body: dict[str, Any] = {"mode": _text(form, "mode")}
    if body["mode"] == "scaled" and _text(form, "scale") is not None:
        body["scale"] = _number(form, "scale")
    return _validate(ClockSet, body)


def messenger_form(form: Form) -> MessengerCreate:
    """``id``, ``name`` and an optional ``webhook_url``."""
    body: dict[str, Any] = {"id": _text(form, "id"), "name": _text(form, "name")}
    if _text(form, "webhook_url") is not None:
        body["webhook_url"] = _text(form, "webhook_url")
    return _validate(MessengerCreate, body)


def port_form(form: Form) -> PortRequest:
    """``to_operator_id``."""
    return _validate(PortRequest, {"to_operator_id": _text(form, "to_operator_id")})


def subscriber_form(form: Form, current: Subscriber) -> SubscriberIn:
    """The record's personal data and completeness; its number, operator and status stay.

    Ending a contract and porting a number have their own buttons, which notify the
    messengers; an edit never does either.
    """
    body: dict[str, Any] = {
        "msisdn": current.msisdn,
        "operator_id": current.operator_id,
        "status": current.status,
    }
    for name in ("full_name", "birth_date", "passport", "address"):
        value = _text(form, name)
        if value is not None:
            body[name] = value
    complete = form.get("data_complete", "auto")
    if complete in ("true", "false"):
        body["data_complete"] = complete == "true"
    return _validate(SubscriberIn, body)


def rule_form(form: Form) -> RuleSpec:
    """A rule from the form's fields: only those of the chosen action are read."""
    action_type = _text(form, "action") or ""
    action: dict[str, Any] = {"type": action_type}
    if action_type == "answer":
        if _text(form, "delay") is not None:
            action["delay"] = _duration(form, "delay")
        if _text(form, "result") is not None:
            action["result"] = _text(form, "result")
    elif action_type == "late":
        if _text(form, "late_by") is not None:
            action["by"] = _duration(form, "late_by")
        if _text(form, "result") is not None:
            action["result"] = _text(form, "result")
    elif action_type == "http_error":
        action["status"] = _number(form, "status")
        if _text(form, "retry_after") is not None:
            action["retry_after"] = _number(form, "retry_after")
    elif action_type == "malformed" and _text(form, "malformed_body") is not None:
        action["body"] = _text(form, "malformed_body")
    elif action_type == "delay":
        action["seconds"] = _number(form, "seconds")
    elif action_type == "notify_late":
        action["by"] = _duration(form, "notify_by")
    elif action_type == "duplicate":
        action["copies"] = _number(form, "copies")
    match = {
        name: _text(form, f"match_{name}")
        for name in ("endpoint", "msisdn", "messenger_id", "operator_id")
        if _text(form, f"match_{name}") is not None
    }
    body: dict[str, Any] = {"id": _text(form, "id"), "match": match, "action": action}
    if _text(form, "times") is not None:
        body["times"] = _number(form, "times")
    return _validate(RuleSpec, body)


def rule_json(text: str) -> RuleSpec:
    """A rule as the JSON body of ``POST /admin/v1/rules``."""
    try:
        return RuleSpec.model_validate_json(text)
    except ValidationError as exc:
        raise _failed(exc) from None


_LOCAL_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?$")
"""What a ``datetime-local`` input sends: a time without a zone (the console means UTC)."""


def sim_swap_form(form: Form) -> SimSwapRecord:
    """``at``: when the SIM changed, in UTC (empty: now). A ``datetime-local`` input sends
    no zone; the simulation clock is shown in UTC, so that is what it means."""
    at = _text(form, "at")
    body: dict[str, Any] = {}
    if at is not None:
        body["at"] = at + "Z" if _LOCAL_TIME.fullmatch(at) else at
    return _validate(SimSwapRecord, body)


def rotation_form(form: Form) -> Rotation:
    """``grace``: how long the previous credential keeps working (empty: it stops now)."""
    grace = _duration(form, "grace")
    return _validate(Rotation, {} if grace is None else {"grace": grace})


_PREFIX = re.compile(r"^\+[1-9][0-9]{0,14}$")
_ID = re.compile(ID_PATTERN)


@dataclass(frozen=True, slots=True)
class SubscriberListing:
    """A page of the subscriber list: the filter, and the number it starts after."""

    selection: SubscriberFilter
    after: str | None
    params: dict[str, str]
    """The filter's query parameters as given (without the cursor), for links."""


def subscriber_listing(query: Form) -> SubscriberListing:
    """The filters of ``GET /admin/v1/subscribers`` from the list's form, checked as the
    API checks them; a problem is a :class:`errors.ValidationFailed` naming each field."""
    lines: list[str] = []
    operator_id = _text(query, "operator_id")
    if operator_id is not None and not _ID.fullmatch(operator_id):
        lines.append(f"operator_id: not an operator id ({ID_PATTERN})")
    status = _text(query, "status")
    if status not in (None, "active", "terminated"):
        lines.append("status: active or terminated")
    complete = _text(query, "data_complete")
    if complete not in (None, "true", "false"):
        lines.append("data_complete: true or false")
    prefix = _text(query, "msisdn_prefix")
    if prefix is not None and not _PREFIX.fullmatch(prefix):
        lines.append("msisdn_prefix: + and 1 to 15 digits, the first 1-9, e.g. +7916")
    after = _text(query, "after")
    if after is not None and not is_msisdn(after):
        lines.append("after: not a cursor; follow the list's own next-page link")
    if lines:
        raise errors.ValidationFailed(
            "; ".join(lines), errors=[{"loc": [], "msg": line, "type": "form"} for line in lines]
        )
    given = {
        "operator_id": operator_id,
        "status": status,
        "data_complete": complete,
        "msisdn_prefix": prefix,
    }
    return SubscriberListing(
        selection=SubscriberFilter(
            operator_id=operator_id,
            status=status,
            data_complete=None if complete is None else complete == "true",
            msisdn_prefix=prefix,
        ),
        after=after,
        params={k: v for k, v in given.items() if v is not None},
    )
