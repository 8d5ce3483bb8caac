"""Reading requests: JSON bodies into wire models, headers, query parameters, path numbers."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from aiohttp import StreamReader, web
from aiohttp.http_exceptions import ContentEncodingError
from aiohttp.web_protocol import RequestPayloadError
from pydantic import BaseModel, ValidationError

from operator_sim import errors
from operator_sim.domain.webhook_targets import listening_pairs
from operator_sim.wire import ID_PATTERN, MAX_WAIT_SECONDS, is_msisdn

M = TypeVar("M", bound=BaseModel)

_PREFER_WAIT_RE = re.compile(r"(?:^|[,;\s])wait\s*=\s*\"?(\d{1,9})\"?\s*(?:$|[,;])", re.IGNORECASE)
_IDEMPOTENCY_KEY_RE = re.compile(r"^[\x21-\x7e]{1,255}$")


def _clean_errors(exc: ValidationError) -> list[dict[str, Any]]:
    # No input values: they may be huge, binary or not JSON-encodable.
    return [
        {"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]}
        for e in exc.errors(include_url=False, include_input=False, include_context=False)
    ]


def translate_validation(exc: ValidationError) -> errors.InputError:
    """The domain error for a pydantic failure (invalid JSON, a bad number, a bad shape)."""
    details = _clean_errors(exc)
    if any(d["type"] == "json_invalid" for d in details):
        return errors.InvalidJson("the body is not valid JSON")
    if any(d["type"] in ("model_type", "model_attributes_type") and not d["loc"] for d in details):
        return errors.ValidationFailed("the body must be a JSON object", errors=details)
    bad_numbers = [d for d in details if d["type"] == "invalid_msisdn"]
    if bad_numbers and len(bad_numbers) == len(details):
        field = ".".join(str(p) for p in bad_numbers[0]["loc"]) or "msisdn"
        return errors.InvalidMsisdn(field=field)
    summary = "; ".join(
        f"{'.'.join(str(p) for p in d['loc']) or 'body'}: {d['msg']}" for d in details
    )
    return errors.ValidationFailed(f"invalid request body: {summary}", errors=details)


def _require_json(request: web.Request) -> None:
    if request.content_type != "application/json":
        got = request.content_type or "none"
        raise errors.UnsupportedMediaType(
            f"send the body as Content-Type: application/json (got {got})"
        )


BODY_LIMIT = 64 * 1024
"""The largest body most calls accept."""
BULK_BODY_LIMIT = 4 * 1024 * 1024
"""The largest body of bulk admin calls (subscriber upserts); also aiohttp's own cap."""


def _too_large(limit: int) -> errors.PayloadTooLarge:
    return errors.PayloadTooLarge(f"the body is larger than {limit} bytes")


async def _read(request: web.Request, limit: int, patience: float) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        raise _too_large(limit)
    # Read at most limit + 1 bytes, as they arrive: a gzip body is inflated by aiohttp
    # chunk by chunk, so a bomb is refused after limit bytes, never inflated whole.
    stream = request.content
    try:
        if stream.is_eof():  # the whole body has arrived (the usual case): no timer needed
            raw = _read_arrived(stream, limit)
        else:
            raw = await _read_arriving(stream, limit, patience)
    except RequestPayloadError as exc:
        raise _unreadable(exc) from None
    if len(raw) > limit:
        raise _too_large(limit)
    return raw


def _read_arrived(stream: StreamReader, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = stream.read_nowait(limit + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


async def _read_arriving(stream: StreamReader, limit: int, patience: float) -> bytes:
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(patience):
            while size <= limit:
                chunk = await stream.read(limit + 1 - size)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
    except TimeoutError:
        raise errors.RequestTimeout(
            f"the body did not arrive within {patience:g} s; send it at once"
        ) from None
    except web.HTTPRequestEntityTooLarge:
        raise _too_large(limit) from None
    return b"".join(chunks)


def _unreadable(exc: RequestPayloadError) -> errors.UnreadableBody:
    if isinstance(exc.__cause__, ContentEncodingError):
        return errors.InvalidContentEncoding(
            "the body is not in the Content-Encoding it claims; send it as declared"
        )
    return errors.UnreadableBody("the body could not be read (malformed transfer encoding)")


@dataclass(frozen=True, slots=True)
class PageQuery:
    """What a client asked of a page it may wait for: after which cursor, how many, how long."""

    after: str | None
    limit: int
    wait: int

    def applied(self) -> dict[str, str]:
        """The ``Preference-Applied`` header of the answer, when the client asked to wait."""
        return {"Preference-Applied": f"wait={self.wait}"} if self.wait else {}


def _validated(model: type[M], raw: bytes) -> M:
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise translate_validation(exc) from None


class Reader:
    """Reads request bodies and ``Prefer: wait`` within the server's settings."""

    def __init__(self, *, client_timeout: float, max_wait: int) -> None:
        self._patience = client_timeout
        self._max_wait = max_wait

    async def model(self, request: web.Request, model: type[M], *, limit: int = BODY_LIMIT) -> M:
        """Parse and validate a JSON object body of at most ``limit`` bytes."""
        _require_json(request)
        raw = await _read(request, limit, self._patience)
        if not raw.strip():
            raise errors.InvalidJson("the body is empty; send a JSON object")
        return _validated(model, raw)

    async def options(self, request: web.Request, model: type[M]) -> M:
        """A JSON object of optional fields; no body at all means every default."""
        raw = await _read(request, BODY_LIMIT, self._patience)
        if not raw.strip():
            return model()
        _require_json(request)
        return _validated(model, raw)

    async def empty(self, request: web.Request) -> None:
        """Accept an empty body, or ``{}`` sent as JSON, for calls that take no input."""
        raw = await _read(request, BODY_LIMIT, self._patience)
        if not raw.strip():
            return
        _require_json(request)
        if raw.strip() == b"{}":
            return
        try:
            data = json.loads(raw)
        except ValueError:
            raise errors.InvalidJson("the body is not valid JSON") from None
        raise errors.ValidationFailed(
            "this call takes no input: send no body or {}"
            if isinstance(data, dict)
            else "the body must be a JSON object"
        )

    def page_query(self, request: web.Request) -> PageQuery:
        """``after``, ``limit`` (1..1000, 100 by default) and ``Prefer: wait`` of a page."""
        return PageQuery(
            after=query_text(request, "after"),
            limit=query_limit(request),
            wait=self.prefer_wait(request),
        )

    def prefer_wait(self, request: web.Request) -> int:
        """Seconds asked for with ``Prefer: wait=N``, capped by the server's ``max_wait``."""
        return prefer_wait(request, cap=self._max_wait)


def prefer_wait(request: web.Request, *, cap: int = MAX_WAIT_SECONDS) -> int:
    """Seconds asked for with ``Prefer: wait=N`` (RFC 7240), at most ``cap``; 0 if absent."""
    values = request.headers.getall("Prefer", None)
    if not values:
        return 0
    match = _PREFER_WAIT_RE.search(",".join(values))
    if not match:
        return 0
    return min(int(match.group(1)), MAX_WAIT_SECONDS, cap)


def idempotency_key(request: web.Request) -> str | None:
    """The ``Idempotency-Key`` header, validated (1 to 255 printable ASCII characters)."""
    values = request.headers.getall("Idempotency-Key", [])
    if not values:
        return None
    if len(values) > 1:
        raise errors.ValidationFailed("send one Idempotency-Key header")
    key = values[0].strip().strip('"')
    if not _IDEMPOTENCY_KEY_RE.fullmatch(key):
        raise errors.ValidationFailed("Idempotency-Key must be 1 to 255 printable ASCII characters")
    return key


def path_msisdn(request: web.Request, name: str = "msisdn") -> str:
    """A phone number from the path, which must be canonical E.164."""
    value = request.match_info[name]
    if not is_msisdn(value):
        raise errors.InvalidMsisdn(field=name)
    return value


def _query(request: web.Request, name: str) -> str | None:
    """A query parameter; None when absent. Given but empty is refused like any bad value."""
    values = request.query.getall(name, [])
    if not values:
        return None
    if len(values) > 1 or values[0] == "":
        raise errors.ValidationFailed(
            f"query parameter {name} must be given once, with a value",
            errors=[{"loc": ["query", name], "msg": "empty or repeated", "type": "repeated"}],
        )
    return values[0]


def query_text(request: web.Request, name: str) -> str | None:
    """An optional free-form query parameter (empty or repeated is refused)."""
    return _query(request, name)


_ID_RE = re.compile(ID_PATTERN)


def query_id(request: web.Request, name: str) -> str | None:
    """An optional id query parameter (operator, messenger)."""
    raw = _query(request, name)
    if raw is not None and not _ID_RE.fullmatch(raw):
        raise errors.ValidationFailed(
            f"query parameter {name} is not a valid id",
            errors=[{"loc": ["query", name], "msg": "bad id", "type": "string_pattern_mismatch"}],
        )
    return raw


PAGE_LIMIT_DEFAULT = 100
PAGE_LIMIT_MAX = 1000
"""``limit`` of a page: 1..PAGE_LIMIT_MAX items, PAGE_LIMIT_DEFAULT when absent."""


def query_limit(request: web.Request) -> int:
    """A page's ``limit`` query parameter (see :data:`PAGE_LIMIT_MAX`)."""
    return query_int(request, "limit", default=PAGE_LIMIT_DEFAULT, low=1, high=PAGE_LIMIT_MAX)


def query_int(request: web.Request, name: str, *, default: int, low: int, high: int) -> int:
    """An integer query parameter within [low, high]."""
    raw = _query(request, name)
    if raw is None:
        return default
    if not raw.isascii() or not raw.isdigit() or not low <= int(raw) <= high:
        raise errors.ValidationFailed(
            f"query parameter {name} must be a whole number from {low} to {high}",
            errors=[
                {"loc": ["query", name], "msg": f"expected {low}..{high}", "type": "int_range"}
            ],
        )
    return int(raw)


_OFFSET_SPACE_RE = re.compile(r" (\d\d:\d\d)$")


def query_timestamp(request: web.Request, name: str) -> int | None:
    """An optional RFC 3339 timestamp query parameter with a zone, as epoch milliseconds."""
    raw = _query(request, name)
    if raw is None:
        return None
    raw = _OFFSET_SPACE_RE.sub(r"+\1", raw)  # an unencoded '+' in an offset decodes as a space
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        value = None
    if value is None or value.tzinfo is None:
        raise errors.ValidationFailed(
            f"query parameter {name} must be an RFC 3339 timestamp with a zone "
            "(2026-03-01T12:00:00Z)",
            errors=[
                {
                    "loc": ["query", name],
                    "msg": "RFC 3339 timestamp expected",
                    "type": "datetime_format",
                }
            ],
        )
    return round(value.timestamp() * 1000)


def query_msisdn(request: web.Request, name: str) -> str | None:
    """An optional E.164 query parameter."""
    raw = _query(request, name)
    if raw is None:
        return None
    if raw.startswith(" "):  # an unencoded '+' in a query string decodes as a space
        raw = "+" + raw[1:]
    if not is_msisdn(raw):
        raise errors.InvalidMsisdn(field=name)
    return raw


def listening_address(request: web.Request) -> list[tuple[str, int]]:
    """Where this server listens, as the connection of ``request`` reached it (TCP only)."""
    transport = request.transport
    if transport is None:
        return []
    return listening_pairs([transport.get_extra_info("sockname")])


def query_choice(request: web.Request, name: str, choices: Sequence[str]) -> str | None:
    """An optional query parameter that must be one of ``choices``."""
    raw = _query(request, name)
    if raw is not None and raw not in choices:
        raise errors.ValidationFailed(
            f"query parameter {name} must be one of: {', '.join(choices)}",
            errors=[{"loc": ["query", name], "msg": "not one of the choices", "type": "enum"}],
        )
    return raw
