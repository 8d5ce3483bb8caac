"""The SMS gateway's decisions: segments, the per-number throttle, what becomes of a message.

Plain functions over plain values. The GSM 03.38 character set comes from the
``gsm0338`` codec rather than a table copied by hand: a character it encodes in one
septet costs one, one from the extension table (``€``, ``[``, ``{``...) costs two (an
escape and the character), and a text with any character outside both is sent as UCS-2.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

import gsm0338  # noqa: F401  # registers the "gsm03.38" codec
from pydantic import TypeAdapter, ValidationError

from operator_sim.wire import (
    Duration,
    RuleSpec,
    SmsBlockedAction,
    SmsDelayAction,
    SmsReportLostAction,
    SmsUnreachableAction,
)

__all__ = [
    "DELIVERY_AFTER",
    "SENT_AFTER",
    "Behaviour",
    "Outcome",
    "Plan",
    "Segments",
    "Throttle",
    "count_segments",
    "delivery_outcome",
    "find_code",
    "next_step",
    "parse_throttle",
    "plan_message",
    "retry_after_ms",
    "retry_after_seconds",
]

Encoding = Literal["gsm7", "ucs2"]

SENT_AFTER = timedelta(seconds=1)
"""From accepted to sent (or rejected): the gateway hands the message to the network."""
DELIVERY_AFTER = timedelta(seconds=3)
"""From sent to the phone, when nothing slows it down: a few simulated seconds."""

_GSM_SINGLE, _GSM_PARTS = 160, 153
_UCS2_SINGLE, _UCS2_PARTS = 70, 67
_CODEC = "gsm03.38"
_ESCAPE = "\x1b"  # the codec maps it, but a message cannot carry a bare escape


@dataclass(frozen=True, slots=True)
class Segments:
    """How a text travels: its encoding and how many SMS parts it takes."""

    encoding: Encoding
    count: int


def _gsm_costs(text: str) -> list[int] | None:
    """Septets per character, or None when the text is not all GSM-7."""
    if _ESCAPE in text:
        return None
    costs = []
    for char in text:
        try:
            costs.append(len(char.encode(_CODEC)))
        except UnicodeEncodeError:
            return None
    return costs


def _parts(costs: list[int], single: int, per_part: int) -> int:
    """Parts needed when a character's units never straddle two parts."""
    if sum(costs) <= single:
        return 1
    parts, used = 1, 0
    for cost in costs:
        if used + cost > per_part:
            parts, used = parts + 1, 0
        used += cost
    return parts


def count_segments(text: str) -> Segments:
    """GSM-7 when every character is in GSM 03.38 (160 septets in one part, 153 per part of
    a longer text), else UCS-2 (70 UTF-16 units in one part, 67 per part). An escaped
    extension character, or a character outside the BMP (a surrogate pair), is never split
    across parts."""
    costs = _gsm_costs(text)
    if costs is not None:
        return Segments("gsm7", _parts(costs, _GSM_SINGLE, _GSM_PARTS))
    units = [2 if ord(char) > 0xFFFF else 1 for char in text]
    return Segments("ucs2", _parts(units, _UCS2_SINGLE, _UCS2_PARTS))


# --- the throttle ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Throttle:
    """At most ``quota`` messages per ``window_ms`` from one messenger to one number."""

    quota: int
    window_ms: int


_THROTTLE_RE = re.compile(r"^\s*(\d{1,6})\s*/\s*(\S+)\s*$")
_DURATION: TypeAdapter[timedelta] = TypeAdapter(Duration)


def parse_throttle(spec: str) -> Throttle | None:
    """``"5/PT10M"`` (a count and an ISO 8601 duration or seconds); ``"0"`` turns it off.

    Raises ``ValueError`` with a readable message for anything else.
    """
    if spec.strip() == "0":
        return None
    match = _THROTTLE_RE.fullmatch(spec)
    if match is None:
        raise ValueError(f"sms throttle {spec!r}: expected COUNT/WINDOW such as 5/PT10M, or 0")
    window_text = match.group(2)
    raw: object = float(window_text) if re.fullmatch(r"\d+(\.\d+)?", window_text) else window_text
    try:
        window = _DURATION.validate_python(raw)
    except ValidationError:
        raise ValueError(
            f"sms throttle {spec!r}: the window must be an ISO 8601 duration or seconds"
        ) from None
    quota, window_ms = int(match.group(1)), round(window.total_seconds() * 1000)
    if quota < 1 or window_ms < 1:
        raise ValueError(f"sms throttle {spec!r}: the count and the window must be positive")
    return Throttle(quota, window_ms)


def retry_after_ms(throttle: Throttle, oldest_in_window_ms: int, now_ms: int) -> int:
    """Simulation milliseconds until the oldest message in the window leaves it."""
    return max(1, oldest_in_window_ms + throttle.window_ms - now_ms)


def retry_after_seconds(sim_ms: int, *, scale: float | None) -> int:
    """``Retry-After`` for a wait of ``sim_ms`` simulation milliseconds: real seconds on a
    running clock (``scale``), simulation seconds to advance on a manual one (None)."""
    seconds = sim_ms / 1000 if scale is None else sim_ms / 1000 / scale
    return max(1, math.ceil(seconds))


# --- what becomes of a message ---------------------------------------------------------

Behaviour = Literal["unreachable", "report_lost", "blocked"]


@dataclass(frozen=True, slots=True)
class Plan:
    """What a fault rule makes of a message: a behaviour, and the time from sent to the
    phone (or to the report that it cannot be reached)."""

    behaviour: Behaviour | None
    delay_ms: int


_DELIVERY_MS = round(DELIVERY_AFTER.total_seconds() * 1000)


def plan_message(rule: RuleSpec | None) -> Plan:
    """The plan for a message accepted now, under the rule that matched it (if any)."""
    action = None if rule is None else rule.action
    if isinstance(action, SmsUnreachableAction):
        return Plan("unreachable", _DELIVERY_MS)
    if isinstance(action, SmsReportLostAction):
        return Plan("report_lost", _DELIVERY_MS)
    if isinstance(action, SmsBlockedAction):
        return Plan("blocked", _DELIVERY_MS)
    if isinstance(action, SmsDelayAction):
        return Plan(None, round(action.by.total_seconds() * 1000))
    return Plan(None, _DELIVERY_MS)


def next_step(
    plan: Plan, *, sent_at_ms: int, expires_at_ms: int
) -> tuple[Literal["deliver", "expire"], int]:
    """After a message is sent: when it reaches the phone, or when it expires (a phone that
    stays unreachable, or a delivery that would come at or after ``expires_at``)."""
    deliver_at = sent_at_ms + plan.delay_ms
    if plan.behaviour == "unreachable" or deliver_at >= expires_at_ms:
        return "expire", expires_at_ms
    return "deliver", deliver_at


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a message sent to the phone ends: delivered, or undelivered and why."""

    delivered: bool
    reason: Literal["unknown_subscriber", "contract_terminated"] | None = None


def delivery_outcome(*, has_record: bool, active: bool) -> Outcome:
    """Delivery follows the subscriber database: any active record (complete or not) takes
    the message; no record, or a terminated contract, does not."""
    if not has_record:
        return Outcome(False, "unknown_subscriber")
    if not active:
        return Outcome(False, "contract_terminated")
    return Outcome(True)


_CODE_RE = re.compile(r"(?<![0-9])[0-9]{4,8}(?![0-9])")


def find_code(text: str) -> str | None:
    """The first run of 4 to 8 digits standing alone in a text: a one-time code."""
    found = _CODE_RE.search(text)
    return None if found is None else found.group(0)
