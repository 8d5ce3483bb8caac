"""Pydantic models of the HTTP contract (docs/api.md), shared by the server and the client.

Input models forbid unknown fields; output models are separate classes. Timestamps are
aware UTC datetimes rendered as RFC 3339 with milliseconds and ``Z``.
"""

from __future__ import annotations

import base64
import binascii
import functools
import ipaddress
import re
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal, get_args
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    Strict,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError

from operator_sim.clock import ClockMode

__all__ = [
    "ENDPOINT_NAMES",
    "IDENTIFICATION_DEADLINE",
    "ID_PATTERN",
    "MAX_WAIT_SECONDS",
    "MSISDN_PATTERN",
    "NOTIFY_WINDOW",
    "SMS_GATEWAY",
    "AnswerAction",
    "CallEntry",
    "CallPage",
    "ClockAdvance",
    "ClockAdvanced",
    "ClockSet",
    "ClockView",
    "CodeEnd",
    "CodeList",
    "CodeView",
    "ContractTerminatedEvent",
    "DelayAction",
    "Delivery",
    "DeliveryAttempt",
    "DeliveryList",
    "DropAction",
    "DuplicateAction",
    "Duration",
    "EndpointName",
    "EntityId",
    "Event",
    "EventPage",
    "EventType",
    "FeedDelivery",
    "Health",
    "HttpErrorAction",
    "IdentificationAnsweredEvent",
    "IdentificationCode",
    "IdentificationCodeCreate",
    "IdentificationRequest",
    "IdentificationRequestCreate",
    "JournalCount",
    "JournalEntry",
    "JournalPage",
    "KeyRotated",
    "LateAction",
    "LifecycleResult",
    "LognormalDelay",
    "MalformedAction",
    "Messenger",
    "MessengerCreate",
    "MessengerCreated",
    "MessengerList",
    "MessengerPatch",
    "Msisdn",
    "NeverAction",
    "NotifyLateAction",
    "NumberPortedEvent",
    "NumberRange",
    "Operator",
    "OperatorList",
    "PhoneInbox",
    "PhoneMessage",
    "PhoneOtp",
    "PortRequest",
    "Problem",
    "ProblemError",
    "Rotation",
    "Routing",
    "Rule",
    "RuleAction",
    "RuleEndpoint",
    "RuleList",
    "RuleMatch",
    "RuleSpec",
    "SimSwapCheck",
    "SimSwapCheckRequest",
    "SimSwapDate",
    "SimSwapDateRequest",
    "SimSwapRecord",
    "SimSwapRecorded",
    "SmsBlockedAction",
    "SmsCreate",
    "SmsDelayAction",
    "SmsEventPage",
    "SmsMessage",
    "SmsReason",
    "SmsReportLostAction",
    "SmsStatus",
    "SmsStatusChangedEvent",
    "SmsUnreachableAction",
    "Subscriber",
    "SubscriberEventData",
    "SubscriberIn",
    "SubscriberPage",
    "SubscriberSample",
    "SubscriberUpsert",
    "SubscribersUpserted",
    "Timestamp",
    "UniformDelay",
    "WebhookDelivery",
    "WebhookSecret",
    "WebhookSecretRotated",
    "WebhookUrl",
    "format_duration",
    "format_ms",
    "format_timestamp",
    "is_msisdn",
    "webhook_secret_bytes",
]

IDENTIFICATION_DEADLINE = timedelta(minutes=20)
"""The decree: the operator answers within 20 minutes of receiving a request."""
NOTIFY_WINDOW = timedelta(hours=24)
"""The decree: the operator notifies the messenger within 24 hours of a contract's end or a port."""
MAX_WAIT_SECONDS = 60
"""The longest ``Prefer: wait=N`` the server honours, in real seconds."""

MSISDN_PATTERN = r"^\+[1-9][0-9]{6,14}$"
# A host name, an IPv4 address or a bracketed IPv6 literal, an optional port, a path. The
# rest is printable ASCII (percent-encode anything else), so every regex engine agrees.
WEBHOOK_URL_PATTERN = (
    r"^https?://(?:[A-Za-z0-9._~-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?(?:[/?#][!-~]*)?$"
)
_MSISDN_RE = re.compile(MSISDN_PATTERN)
ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
# Codes travel in the DELETE path, so they are printable ASCII without spaces.
_CODE_PATTERN = r"^[\x21-\x7e]{8,128}$"


def is_msisdn(value: str) -> bool:
    """True for a canonical E.164 number (``+``, a digit 1-9, 6 to 14 more digits)."""
    return _MSISDN_RE.fullmatch(value) is not None


def _check_msisdn(value: str) -> str:
    if not is_msisdn(value):
        raise PydanticCustomError("invalid_msisdn", "not a canonical E.164 number")
    return value


def format_timestamp(value: datetime) -> str:
    """RFC 3339 in UTC with milliseconds and ``Z``."""
    utc = value if value.tzinfo is UTC else value.astimezone(UTC)
    return utc.isoformat(timespec="milliseconds")[:-6] + "Z"  # drops "+00:00"


def format_ms(ms: int) -> str:
    """:func:`format_timestamp` of integer epoch milliseconds (UTC), without a datetime."""
    seconds, millis = divmod(ms, 1000)
    return f"{_second_prefix(seconds)}.{millis:03d}Z"


@functools.lru_cache(maxsize=4096)
def _second_prefix(seconds: int) -> str:
    # Timestamps a busy server renders fall mostly in the same few seconds.
    return datetime.fromtimestamp(seconds, tz=UTC).isoformat()[:19]


def _check_webhook_url(value: str) -> str:
    """What the HTTP client needs of a URL: a host it can encode, a port in 1..65535."""
    parts = urlsplit(value)
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port is not None and not 1 <= port <= 65_535:
        raise PydanticCustomError("webhook_url", "the port must be from 1 to 65535")
    host = parts.hostname or ""
    if ":" in host:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise PydanticCustomError("webhook_url", "not a valid IPv6 address") from None
        return value
    try:
        # The codec getaddrinfo applies to a host name: empty or overlong labels fail here,
        # not in every delivery attempt.
        host.encode("idna")
    except UnicodeError:
        raise PydanticCustomError(
            "webhook_url", "the host is not a valid domain name (empty or overlong label)"
        ) from None
    return value


def _check_aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise PydanticCustomError("naive_datetime", "timestamps must carry a time zone")
    return value.astimezone(UTC)


Msisdn = Annotated[
    str,
    AfterValidator(_check_msisdn),
    WithJsonSchema({"type": "string", "pattern": MSISDN_PATTERN, "example": "+79161234567"}),
]
Timestamp = Annotated[
    datetime,
    AfterValidator(_check_aware),
    PlainSerializer(format_timestamp, return_type=str, when_used="json"),
    WithJsonSchema(
        {"type": "string", "format": "date-time", "example": "2026-03-01T12:00:00.000Z"}
    ),
]


def _whole_number(value: object) -> object:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PydanticCustomError("int_type", "Input should be a valid integer")
    return value


# Integers as JSON Schema means them: 654 and 654.0, but not "654", true or 654.5. The
# bounds come first so that they reach the JSON schema as minimum and maximum.
_WHOLE = BeforeValidator(_whole_number)
HttpStatus = Annotated[int, Field(ge=400, le=599), Strict(False), _WHOLE]
Seconds = Annotated[int, Field(ge=0, le=86_400), Strict(False), _WHOLE]
PositiveCount = Annotated[int, Field(ge=1), Strict(False), _WHOLE]


def _non_negative(value: object) -> object:
    # Checked as given, before the value becomes a timedelta: a tiny negative number
    # rounds to 0 there, and "-PT1S" or "P-1D" must not slip through as their rounding.
    if isinstance(value, bool):
        raise PydanticCustomError(
            "duration_type", "a duration is a number of seconds or an ISO 8601 duration"
        )
    negative = (isinstance(value, int | float) and value < 0) or (
        isinstance(value, str) and "-" in value
    )
    if negative or (isinstance(value, timedelta) and value < timedelta(0)):
        raise PydanticCustomError("negative_duration", "durations cannot be negative")
    return value


def format_duration(value: timedelta) -> str:
    """ISO 8601 / RFC 3339 duration in days, hours, minutes and seconds (``PT20M``, ``P1DT2H``)."""
    total_ms = round(value.total_seconds() * 1000)
    sign, total_ms = ("-", -total_ms) if total_ms < 0 else ("", total_ms)
    days, rest = divmod(total_ms, 86_400_000)
    hours, rest = divmod(rest, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds = f"{rest // 1000}.{rest % 1000:03d}".rstrip("0").rstrip(".") if rest else ""
    clock = "".join(f"{n}{unit}" for n, unit in ((hours, "H"), (minutes, "M")) if n) + (
        f"{seconds}S" if seconds else ""
    )
    if not days and not clock:
        return "PT0S"
    return f"{sign}P{f'{days}D' if days else ''}{f'T{clock}' if clock else ''}"


Duration = Annotated[
    timedelta,
    Strict(False),
    BeforeValidator(_non_negative),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
    # Given as an ISO 8601 duration or a number of seconds; always rendered as the former.
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "format": "duration", "example": "PT20M"},
                {"type": "number", "minimum": 0},
            ]
        },
        mode="validation",
    ),
    WithJsonSchema(
        {"type": "string", "format": "duration", "example": "PT20M"}, mode="serialization"
    ),
]
EntityId = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
WebhookUrl = Annotated[
    str,
    StringConstraints(max_length=2000, pattern=WEBHOOK_URL_PATTERN),
    AfterValidator(_check_webhook_url),
]
"""An http(s) URL the server can post webhooks to (its policy is checked separately)."""

_SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)
_SECRET_BYTES = (24, 64)


def webhook_secret_bytes(value: str) -> bytes:
    """The key of a ``whsec_`` + standard base64 secret; ``ValueError`` unless 24 to 64 bytes."""
    if not value.startswith(_SECRET_PREFIX):
        raise ValueError("a webhook secret starts with whsec_")
    try:
        key = base64.b64decode(value.removeprefix(_SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(
            "after whsec_ comes standard base64 (A-Z a-z 0-9 + /, padded with =)"
        ) from None
    low, high = _SECRET_BYTES
    if not low <= len(key) <= high:
        raise ValueError(f"the secret must decode to {low} to {high} bytes (got {len(key)})")
    return key


def _check_webhook_secret(value: str) -> str:
    try:
        webhook_secret_bytes(value)
    except ValueError as exc:
        raise PydanticCustomError("webhook_secret", str(exc)) from None
    return value


WebhookSecret = Annotated[
    str,
    StringConstraints(pattern=r"^whsec_[A-Za-z0-9+/]{32,88}={0,2}$"),
    AfterValidator(_check_webhook_secret),
]
"""A Standard Webhooks secret: ``whsec_`` + standard base64 of 24 to 64 random bytes."""


class _In(BaseModel):
    # Strict: JSON `false` is not 0 and `"5"` is not 5; durations alone accept numbers.
    # Rendered back (a rule's match and action), every field is there: required in output.
    model_config = ConfigDict(
        extra="forbid", strict=True, json_schema_serialization_defaults_required=True
    )


class _Out(BaseModel):
    # Every field is rendered, defaults too: all of them are required in the schema.
    model_config = ConfigDict(extra="forbid", json_schema_serialization_defaults_required=True)


def _left_out_when_none(schema: dict[str, Any]) -> None:
    """A field rendered only when it has a value: absent, never null, in the schema."""
    branches = schema.pop("anyOf", None)
    if branches is not None:
        schema.update(next(b for b in branches if b.get("type") != "null"))
    schema.pop("default", None)


# --- service -------------------------------------------------------------------------


class ProblemError(_Out):
    """One validation error: where it is (``loc``), what is wrong (``msg``), its kind."""

    loc: list[str | int] = Field(description="The path to the value: field names and indexes.")
    msg: str
    type: str = Field(description="A stable kind, such as missing or invalid_msisdn.")


class Problem(_Out):
    """RFC 9457 problem details with a stable machine-readable ``code``.

    Rendered without the fields that have no value: ``instance`` and ``errors`` are left
    out rather than null.
    """

    model_config = ConfigDict(extra="forbid", json_schema_serialization_defaults_required=False)

    type: str
    title: str
    status: int
    detail: str
    code: str = Field(description="Stable and machine-readable: branch on this.")
    instance: str | None = Field(
        default=None, description="The request path.", json_schema_extra=_left_out_when_none
    )
    request_id: str = Field(description="As in the X-Request-Id header.")
    errors: list[ProblemError] | None = Field(
        default=None,
        description="Validation errors, when there are some.",
        json_schema_extra=_left_out_when_none,
    )


class Health(_Out):
    """Liveness and readiness."""

    status: Literal["ok", "ready", "not_ready"]


# --- identification ------------------------------------------------------------------

RequestStatus = Literal["pending", "answered", "expired"]
Result = Literal["present", "absent"]


class IdentificationRequestCreate(_In):
    """Body of ``POST .../identification-requests``."""

    msisdn: Msisdn


class IdentificationRequest(_Out):
    """An identification request (the decree's request about presence or absence)."""

    id: str
    operator_id: str
    msisdn: Msisdn
    status: RequestStatus
    result: Result | None
    received_at: Timestamp
    due_at: Timestamp
    answered_at: Timestamp | None


class IdentificationCodeCreate(_In):
    """Body of ``POST .../identification-codes``."""

    request_id: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    code: Annotated[str, StringConstraints(pattern=_CODE_PATTERN)] = Field(
        description="Opaque identification code: 8 to 128 printable ASCII characters, no spaces."
    )


class IdentificationCode(_Out):
    """A registered identification code."""

    code: str
    msisdn: Msisdn
    operator_id: str
    request_id: str
    registered_at: Timestamp


class Routing(_Out):
    """Which operator serves a number."""

    msisdn: Msisdn
    operator_id: str
    ported: bool


# --- admin ---------------------------------------------------------------------------


class NumberRange(BaseModel):
    """An inclusive range of numbers of the same length."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, serialize_by_alias=True)

    from_: Msisdn = Field(alias="from")
    to: Msisdn


class Operator(_Out):
    """A simulated operator."""

    id: str
    name: str
    ranges: list[NumberRange]


class OperatorList(_Out):
    """``GET /admin/v1/operators``."""

    operators: list[Operator]


class MessengerCreate(_In):
    """Body of ``POST /admin/v1/messengers``."""

    id: EntityId
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    webhook_url: WebhookUrl | None = None
    webhook_secret: WebhookSecret | None = Field(
        default=None,
        description="The secret its webhooks are signed with, `whsec_` + standard base64 of "
        "24 to 64 bytes (so a test can fix it); by default a fresh random one.",
    )


class MessengerPatch(_In):
    """Body of ``PATCH /admin/v1/messengers/{id}``: only the fields given change."""

    name: Annotated[
        Annotated[str, StringConstraints(min_length=1, max_length=200)] | None,
        # null is refused (below): the schema says so rather than offering it.
        WithJsonSchema({"type": "string", "minLength": 1, "maxLength": 200}),
    ] = Field(
        default=None, description="A new display name; omit it to keep the name (null is refused)."
    )
    webhook_url: WebhookUrl | None = Field(
        default=None,
        description="A new webhook URL: pending deliveries go there. null removes it: "
        "pending webhook deliveries fail, and the feed still has every event.",
    )

    @model_validator(mode="after")
    def _name_not_null(self) -> MessengerPatch:
        if "name" in self.model_fields_set and self.name is None:
            raise PydanticCustomError("name_null", "name cannot be null; omit it to keep it")
        return self


class Messenger(_Out):
    """A registered messenger, without secrets."""

    id: str
    name: str
    webhook_url: str | None
    created_at: Timestamp


class MessengerCreated(_Out):
    """A newly registered messenger with its secrets (shown once)."""

    id: str
    name: str
    webhook_url: str | None
    api_key: str
    webhook_secret: str


class MessengerList(_Out):
    """``GET /admin/v1/messengers``."""

    messengers: list[Messenger]


MAX_GRACE = timedelta(days=30)
"""The longest a rotated-out credential keeps working."""


def _check_grace(value: timedelta) -> timedelta:
    if value > MAX_GRACE:
        raise PydanticCustomError("grace_too_long", "the grace period is at most P30D")
    return value


Grace = Annotated[
    timedelta,
    Strict(False),
    BeforeValidator(_non_negative),
    AfterValidator(_check_grace),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "format": "duration", "example": "PT1H"},
                {"type": "number", "minimum": 0, "maximum": MAX_GRACE.total_seconds()},
            ]
        }
    ),
]
"""A duration of at most 30 days (seconds or ISO 8601)."""


class Rotation(_In):
    """Body of ``POST /admin/v1/messengers/{id}/rotate-key`` and ``.../rotate-webhook-secret``."""

    grace: Grace | None = Field(
        default=None,
        description="How long the previous credential keeps working, in real (wall-clock) "
        "time, at most P30D; by default it stops at once.",
    )


class KeyRotated(_Out):
    """A messenger's new API key (shown once), and until when the previous one works."""

    api_key: str
    previous_valid_until: Timestamp | None = Field(
        description="Wall-clock time until which the previous key keeps working; null when "
        "it stopped at once."
    )


class WebhookSecretRotated(_Out):
    """A messenger's new webhook secret (shown once), and until when webhooks carry both."""

    webhook_secret: str
    previous_valid_until: Timestamp | None = Field(
        description="Wall-clock time until which webhooks are signed with the previous "
        "secret too; null when it stopped at once."
    )


SubscriberStatus = Literal["active", "terminated"]
_Text = Annotated[str, StringConstraints(min_length=1, max_length=500)]


class SubscriberIn(_In):
    """One subscriber to upsert. Omitted personal data is stored as absent."""

    msisdn: Msisdn
    operator_id: EntityId
    full_name: _Text | None = None
    birth_date: date | None = None
    passport: _Text | None = None
    address: _Text | None = None
    data_complete: bool | None = Field(
        default=None,
        description="Whether the operator holds complete data; by default, true when "
        "full_name, birth_date and passport are all given.",
    )
    status: SubscriberStatus = "active"


class SubscriberUpsert(_In):
    """Body of ``POST /admin/v1/subscribers``."""

    subscribers: Annotated[list[SubscriberIn], Field(min_length=1, max_length=1000)]


class SubscribersUpserted(_Out):
    """How many subscribers an upsert created and updated, and notifications it emitted."""

    upserted: int
    created: int
    updated: int
    events: int = Field(
        description="Notifications emitted: a record that ended a contract or moved a number "
        "ended its codes, one event per code."
    )


class Subscriber(_Out):
    """A subscriber record with personal data (admin only)."""

    msisdn: Msisdn
    operator_id: str
    full_name: str | None
    birth_date: date | None
    passport: str | None
    address: str | None
    data_complete: bool
    status: SubscriberStatus
    source: str
    updated_at: Timestamp


EndpointName = Literal[
    "identification.create",
    "identification.get",
    "code.register",
    "code.delete",
    "routing.get",
    "events.list",
    "sms.send",
    "sms.get",
    "sms.events",
    "sim_swap.check",
    "sim_swap.retrieve_date",
]
"""A messenger-facing call, as the journal and fault rules name it."""
RuleEndpoint = Literal[EndpointName, "event.notify"]
"""What a fault rule can act on: a messenger-facing call, or the notifications."""
ENDPOINT_NAMES: tuple[str, ...] = get_args(EndpointName)


class SubscriberPage(_Out):
    """``GET /admin/v1/subscribers``: one page in number order."""

    subscribers: list[Subscriber]
    next_cursor: str | None = Field(
        description="Pass as `after` for the next page; null on the last page."
    )


class SubscriberSample(_Out):
    """``GET /admin/v1/subscribers/sample``: subscribers drawn at random."""

    subscribers: list[Subscriber]


class JournalEntry(_Out):
    """One identification POST as the server received it, with the request it made."""

    journal_id: int
    id: str | None = Field(description="The identification request, when one was created.")
    messenger_id: str
    operator_id: str
    msisdn: Msisdn
    http_status: int
    rule_id: str | None
    replayed: bool
    status: RequestStatus | None
    result: Result | None
    received_at: Timestamp
    due_at: Timestamp | None
    answered_at: Timestamp | None


class JournalPage(_Out):
    """``GET /admin/v1/requests``: newest first."""

    requests: list[JournalEntry]


class CallEntry(_Out):
    """One messenger-facing call as the server received it (refused ones too)."""

    journal_id: int
    at: Timestamp = Field(description="When the call came in (simulation time).")
    messenger_id: str
    operator_id: str | None = Field(description="Null for calls to no operator (routing).")
    endpoint: EndpointName
    method: str
    path: str
    msisdn: Msisdn | None = Field(description="The number the call was about, when it had one.")
    http_status: int = Field(description="What the server answered; 0: the connection dropped.")
    rule_id: str | None = Field(description="The fault rule that acted on the call, if any.")
    replayed: bool = Field(description="An idempotent replay of an earlier call.")
    request_id: str | None = Field(
        description="The identification request the call created or read, when there is one."
    )


class CallPage(_Out):
    """``GET /admin/v1/journal``: newest first."""

    entries: list[CallEntry]


CodeEnd = Literal["deleted", "contract_terminated", "number_ported"]


class CodeView(_Out):
    """An identification code as the operator holds it (admin view), live or ended."""

    code: str
    messenger_id: str
    operator_id: str
    msisdn: Msisdn
    request_id: str
    registered_at: Timestamp
    ended_at: Timestamp | None
    ended_by: CodeEnd | None


class CodeList(_Out):
    """``GET /admin/v1/codes``: the newest registrations first."""

    codes: list[CodeView]


class ClockView(_Out):
    """The simulation clock."""

    now: Timestamp
    mode: ClockMode
    scale: float


class ClockSet(_In):
    """Body of ``PUT /admin/v1/clock``."""

    mode: ClockMode
    scale: Annotated[float, Field(gt=0, le=1_000_000)] | None = None


class ClockAdvance(_In):
    """Body of ``POST /admin/v1/clock/advance``."""

    by: Duration


class ClockAdvanced(_Out):
    """The clock after an advance, and how many scheduled items fired."""

    now: Timestamp
    mode: ClockMode
    scale: float
    fired: int
    webhooks_in_flight: int = Field(
        description="Webhook attempts that fell due and were started, but had not finished "
        "when the advance returned (it waits about one webhook timeout); they go on."
    )


# --- events --------------------------------------------------------------------------

EventType = Literal[
    "identification.answered",
    "subscriber.contract_terminated",
    "subscriber.number_ported",
    "sms.status_changed",
]


class SubscriberEventData(_Out):
    """What a lifecycle event says: the number and the code it ends. No personal data."""

    msisdn: Msisdn
    code: str


class _EventBase(_Out):
    id: str
    operator_id: str
    occurred_at: Timestamp
    deliver_by: Timestamp = Field(description="occurred_at + 24 hours (simulation time).")


class IdentificationAnsweredEvent(_EventBase):
    """An identification request was answered or expired; ``data`` is the request."""

    type: Literal["identification.answered"]
    data: IdentificationRequest


class ContractTerminatedEvent(_EventBase):
    """The subscriber's contract ended: the code no longer identifies a user."""

    type: Literal["subscriber.contract_terminated"]
    data: SubscriberEventData


class NumberPortedEvent(_EventBase):
    """The number moved to another operator: identify the user again there."""

    type: Literal["subscriber.number_ported"]
    data: SubscriberEventData


# --- SMS gateway ----------------------------------------------------------------------

SMS_GATEWAY = "@sms"
"""The ``operator_id`` of the SMS gateway's own events: no operator id starts with ``@``."""
SMS_TEXT_MAX = 1600
"""The longest text the gateway takes, in characters."""
SMS_DEFAULT_TTL = timedelta(hours=1)
SMS_TTL_RANGE = (timedelta(minutes=1), timedelta(hours=72))
"""The shortest and longest ``ttl`` a message may have."""
SMS_DELAY_MAX = timedelta(days=7)
SmsStatus = Literal["accepted", "sent", "delivered", "undelivered", "expired", "rejected"]
SmsReason = Literal["unknown_subscriber", "contract_terminated", "phone_unreachable", "blocked"]


class SmsCreate(_In):
    """Body of ``POST /sms/v1/messages``."""

    to: Msisdn
    text: Annotated[str, StringConstraints(min_length=1, max_length=SMS_TEXT_MAX)] = Field(
        description="1 to 1,600 characters. A secret (a one-time code): never echoed, never "
        "logged; only the phone's inbox shows it."
    )
    sender: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9]{1,11}$")] = Field(
        default="OpSim", description="1 to 11 ASCII letters or digits."
    )
    client_ref: Annotated[str, StringConstraints(max_length=64)] | None = Field(
        default=None, description="The messenger's own reference, echoed (at most 64 characters)."
    )
    ttl: Duration = Field(
        default=SMS_DEFAULT_TTL,
        description="How long the network keeps trying (PT1M to PT72H): a message not "
        "delivered by then expires.",
    )

    @model_validator(mode="after")
    def _ttl_in_range(self) -> SmsCreate:
        low, high = SMS_TTL_RANGE
        if not low <= self.ttl <= high:
            raise PydanticCustomError("ttl_range", "ttl is from PT1M to PT72H")
        return self


class SmsMessage(_Out):
    """A message sent through the SMS gateway: never its text."""

    id: str
    to: Msisdn
    sender: str
    text_length: int = Field(description="Characters in the text.")
    segments: int = Field(
        description="SMS parts: GSM-7 160 septets in one, 153 per part (extension characters "
        "take two), else UCS-2 70 characters in one, 67 per part."
    )
    encoding: Literal["gsm7", "ucs2"]
    client_ref: str | None
    status: SmsStatus
    reason: SmsReason | None = Field(description="Why it was undelivered, expired or rejected.")
    operator_id: str | None = Field(
        description="The network that carries it: the holder of the number's subscriber "
        "record, else of its range (null while accepted, or for a number no operator serves)."
    )
    created_at: Timestamp
    status_at: Timestamp = Field(description="When the status last changed.")
    expires_at: Timestamp = Field(description="created_at + ttl.")


class SmsStatusChangedEvent(_EventBase):
    """A message's status changed; ``data`` is the message. ``operator_id`` is ``@sms``."""

    type: Literal["sms.status_changed"]
    data: SmsMessage


class SmsEventPage(_Out):
    """``GET /sms/v1/events``: status changes after the cursor, oldest first."""

    events: list[SmsStatusChangedEvent]
    next_cursor: str


class PhoneMessage(_Out):
    """A message a phone received, with its text (admin only)."""

    id: str
    sms_id: str
    sender: str
    text: str
    received_at: Timestamp


class PhoneInbox(_Out):
    """``GET /admin/v1/phones/{msisdn}/messages``: oldest first."""

    messages: list[PhoneMessage]
    next_cursor: str


class PhoneOtp(_Out):
    """The one-time code in the newest received message that has one."""

    code: str
    sms_id: str
    received_at: Timestamp


# --- SIM swap (CAMARA SIM Swap shapes) ------------------------------------------------

MaxAgeHours = Annotated[int, Field(ge=1, le=2400), Strict(False), _WHOLE]


class SimSwapDateRequest(_In):
    """Body of ``POST .../sim-swap/v1/retrieve-date``."""

    phoneNumber: Msisdn


class SimSwapDate(_Out):
    """When the number's SIM last changed."""

    latestSimChange: Timestamp | None = Field(description="null: never swapped.")


class SimSwapCheckRequest(_In):
    """Body of ``POST .../sim-swap/v1/check``."""

    phoneNumber: Msisdn
    maxAge: MaxAgeHours = Field(default=240, description="Hours to look back, 1 to 2400.")


class SimSwapCheck(_Out):
    """Whether the SIM changed within ``maxAge`` hours."""

    swapped: bool


class SimSwapRecord(_In):
    """Body of ``POST /admin/v1/subscribers/{msisdn}/sim-swap``."""

    at: Timestamp | None = Field(
        default=None, description="When the SIM changed (default: now, simulation time)."
    )


class SimSwapRecorded(_Out):
    """A recorded SIM swap."""

    msisdn: Msisdn
    operator_id: str
    latest_sim_change: Timestamp


Event = Annotated[
    IdentificationAnsweredEvent
    | ContractTerminatedEvent
    | NumberPortedEvent
    | SmsStatusChangedEvent,
    Field(discriminator="type"),
]


class EventPage(_Out):
    """``GET .../events``: events after the cursor, oldest first."""

    events: list[Event]
    next_cursor: str


class PortRequest(_In):
    """Body of ``POST /admin/v1/subscribers/{msisdn}/port``."""

    to_operator_id: EntityId


class LifecycleResult(_Out):
    """A termination or port, and how many notifications it emitted."""

    msisdn: Msisdn
    operator_id: str
    status: SubscriberStatus
    events: int


class DeliveryAttempt(_Out):
    """One webhook POST."""

    attempt: int
    at: Timestamp
    status: int | None
    error: str | None


class FeedDelivery(_Out):
    """The pull feed's side of an event."""

    delivered_at: Timestamp | None
    met_deadline: bool | None


class WebhookDelivery(_Out):
    """The webhook side of an event."""

    url: str
    state: Literal["pending", "delivered", "failed"]
    next_attempt_at: Timestamp | None
    delivered_at: Timestamp | None
    met_deadline: bool | None
    attempts: list[DeliveryAttempt]


class Delivery(_Out):
    """An event and how it reached (or did not reach) its messenger."""

    event_id: str
    messenger_id: str
    operator_id: str
    type: EventType
    occurred_at: Timestamp
    deliver_by: Timestamp
    copies: int = Field(
        description="How many times it is delivered on each channel (1 unless "
        "a `duplicate` fault rule acted on it)."
    )
    feed: FeedDelivery
    webhook: WebhookDelivery | None


class DeliveryList(_Out):
    """``GET /admin/v1/deliveries``: newest first."""

    deliveries: list[Delivery]


# --- fault rules ---------------------------------------------------------------------

MsisdnGlob = Annotated[str, StringConstraints(pattern=r"^\+?[0-9*]{1,16}$")]


class RuleMatch(_In):
    """What a fault rule applies to; omitted fields match everything."""

    endpoint: RuleEndpoint = Field(
        default="identification.create",
        description="The call the rule acts on, or `event.notify` for notifications.",
    )
    msisdn: MsisdnGlob | None = Field(
        default=None,
        description="Exact number or `*` glob; never matches a call that carries no number "
        "(the events feeds).",
    )
    messenger_id: EntityId | None = None
    operator_id: EntityId | None = None
    event_type: EventType | None = Field(
        default=None, description="Only with `event.notify`: only events of this type."
    )


class UniformDelay(_In):
    """A delay drawn uniformly between ``min`` and ``max`` (inclusive; given the other way
    round, the two are swapped)."""

    distribution: Literal["uniform"]
    min: Duration
    max: Duration

    @model_validator(mode="after")
    def _ordered(self) -> UniformDelay:
        # JSON Schema cannot say min <= max, so the range is read either way round.
        if self.min > self.max:
            self.min, self.max = self.max, self.min
        return self


class LognormalDelay(_In):
    """A log-normal delay: ``median`` and shape ``sigma``, optionally capped at ``max``."""

    distribution: Literal["lognormal"]
    median: Duration
    sigma: Annotated[float, Field(gt=0, le=5)] = Field(
        default=0.5, description="Standard deviation of the delay's natural logarithm."
    )
    max: Duration | None = Field(default=None, description="No draw exceeds this.")


DelayDistribution = Annotated[UniformDelay | LognormalDelay, Field(discriminator="distribution")]


class AnswerAction(_In):
    """Answer after ``delay`` (late when past the deadline), optionally forcing the result.

    ``delay`` is a fixed duration or a distribution drawn from the seeded generator.
    """

    type: Literal["answer"]
    delay: Duration | DelayDistribution = timedelta(0)
    result: Result | None = None


class LateAction(_In):
    """Answer ``by`` after the 20-minute deadline: the request expires, then is answered."""

    type: Literal["late"]
    by: Duration = Field(
        default=timedelta(minutes=5),
        description="How long after the deadline the answer comes (0 means 1 ms after it).",
    )
    result: Result | None = None


class NeverAction(_In):
    """Never answer: the request expires at its deadline."""

    type: Literal["never"]


class HttpErrorAction(_In):
    """Refuse the POST with an HTTP error status; nothing is created."""

    type: Literal["http_error"]
    status: HttpStatus
    retry_after: Seconds | None = None


class DropAction(_In):
    """Close the connection without a response; nothing is created."""

    type: Literal["drop"]


MalformedBody = Literal["truncated", "not_json", "wrong_shape", "empty"]


class MalformedAction(_In):
    """Respond with the call's own success status and a broken body; nothing is done.

    ``truncated``: a request resource cut in half; ``not_json``: an HTML error page;
    ``wrong_shape``: valid JSON missing the resource's fields; ``empty``: no bytes at all.
    """

    type: Literal["malformed"]
    body: MalformedBody = "truncated"
    status: Literal[200, 201, 202, 204] | None = Field(
        default=None, description="The status to answer with (default: the call's own)."
    )


class DelayAction(_In):
    """Do the call's work and commit it, then hold the answer ``seconds`` (real time).

    A slow operator: a client that times out and retries with its idempotency key gets
    the replay.
    """

    type: Literal["delay"]
    seconds: Annotated[float, Field(gt=0, le=60), Strict(False)]


class NotifyLateAction(_In):
    """Write and deliver the event ``by`` after the change, on both channels.

    ``occurred_at`` and ``deliver_by`` stay those of the change: past 24 hours, the
    operator misses the decree's window.
    """

    type: Literal["notify_late"]
    by: Duration = Field(description="How late, at most P30D.")

    @model_validator(mode="after")
    def _bounded(self) -> NotifyLateAction:
        if self.by > timedelta(days=30):
            raise PydanticCustomError("too_late", "by is at most P30D")
        return self


class DuplicateAction(_In):
    """Deliver the event (the same ``id``) ``copies`` times on both channels."""

    type: Literal["duplicate"]
    copies: Annotated[int, Field(ge=2, le=10), Strict(False), _WHOLE]


class SmsUnreachableAction(_In):
    """The phone is switched off: the message stays ``sent``, then expires at ``expires_at``."""

    type: Literal["sms_unreachable"]


class SmsDelayAction(_In):
    """The message is delivered (or found undeliverable) ``by`` after it was sent; past its
    ``expires_at`` it expires instead."""

    type: Literal["sms_delay"]
    by: Duration = Field(description="How long after sent, at most P7D.")

    @model_validator(mode="after")
    def _bounded(self) -> SmsDelayAction:
        if self.by > SMS_DELAY_MAX:
            raise PydanticCustomError("too_late", "by is at most P7D")
        return self


class SmsReportLostAction(_In):
    """The phone receives the message, but no status report ever comes: it stays ``sent``."""

    type: Literal["sms_report_lost"]


class SmsBlockedAction(_In):
    """The gateway refuses to carry the message: ``rejected``, ``blocked``."""

    type: Literal["sms_blocked"]


RuleAction = Annotated[
    AnswerAction
    | NeverAction
    | LateAction
    | HttpErrorAction
    | DropAction
    | MalformedAction
    | DelayAction
    | NotifyLateAction
    | DuplicateAction
    | SmsUnreachableAction
    | SmsDelayAction
    | SmsReportLostAction
    | SmsBlockedAction,
    Field(discriminator="type"),
]
_ANSWER_ACTIONS: tuple[str, ...] = ("answer", "never", "late")
_CALL_ACTIONS: tuple[str, ...] = ("http_error", "drop", "malformed", "delay")
_NOTIFY_ACTIONS: tuple[str, ...] = ("notify_late", "duplicate")
_SMS_ACTIONS: tuple[str, ...] = ("sms_unreachable", "sms_delay", "sms_report_lost", "sms_blocked")


class RuleSpec(_In):
    """A fault rule: which requests it matches and what it does to them."""

    id: EntityId
    match: RuleMatch = Field(default_factory=RuleMatch)
    action: RuleAction
    times: PositiveCount | None = Field(
        default=None, description="Apply at most this many times (per count_per scope)."
    )
    count_per: Literal["rule", "messenger"] = "rule"
    cycle: bool = Field(
        default=False,
        description="After `times` hits, let the next request through and start counting again.",
    )
    probability: Annotated[float, Field(ge=0, le=1)] | None = Field(
        default=None,
        description="Apply to this share of matching requests, drawn from the seeded "
        "generator; the others fall through to later rules.",
    )

    @model_validator(mode="after")
    def _action_fits_the_endpoint(self) -> RuleSpec:
        endpoint, action = self.match.endpoint, self.action.type
        if endpoint == "event.notify":
            allowed = _NOTIFY_ACTIONS
        elif endpoint == "identification.create":
            allowed = _ANSWER_ACTIONS + _CALL_ACTIONS
        elif endpoint == "sms.send":
            allowed = _CALL_ACTIONS + _SMS_ACTIONS
        else:
            allowed = _CALL_ACTIONS
        if action not in allowed:
            raise PydanticCustomError(
                "action_endpoint",
                "action {action} cannot act on {endpoint} (it takes: {allowed})",
                {"action": action, "endpoint": endpoint, "allowed": ", ".join(allowed)},
            )
        if self.match.event_type is not None and endpoint != "event.notify":
            raise PydanticCustomError(
                "event_type_endpoint", "match.event_type applies only to event.notify"
            )
        return self


class Rule(_Out):
    """A fault rule as stored: its spec, where it came from and how often it fired."""

    id: str
    match: RuleMatch
    action: RuleAction
    times: int | None
    count_per: Literal["rule", "messenger"]
    cycle: bool
    probability: float | None
    source: Literal["fixture", "runtime"]
    hits: int = Field(description="Requests it applied to since it was loaded or last reset.")


class RuleList(_Out):
    """``GET /admin/v1/rules``: every rule in matching order."""

    rules: list[Rule]


class JournalCount(_Out):
    """``GET /admin/v1/requests/count``: how many journal entries match the filters."""

    count: int
