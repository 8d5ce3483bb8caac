"""A typed async client for the messenger-facing operator API (docs/api.md).

Every response is checked against the wire models shared with the server and against
what was asked: a wrong status, a body that is not the documented JSON, a missing field
or a foreign id raises, never passes. Transient failures (no response, 429, 502, 503,
504) are retried with exponential back-off and jitter, honouring ``Retry-After``, with
the same ``Idempotency-Key``, within a total time budget.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from ssl import SSLContext
from types import TracebackType
from typing import Any
from urllib.parse import quote

import aiohttp
from pydantic import BaseModel, ConfigDict

from operator_sim import __version__
from operator_sim.messenger.checks import (
    FeedPage,
    check_code,
    check_request,
    check_routing,
    check_sms,
    parse_feed_page,
    parse_model,
)
from operator_sim.messenger.errors import (
    ApiError,
    InvalidResponse,
    OperatorClientError,
    ResponseTooLarge,
    TransportError,
    api_error,
)
from operator_sim.messenger.privacy import scrub
from operator_sim.wire import (
    MAX_WAIT_SECONDS,
    IdentificationCode,
    IdentificationRequest,
    Routing,
    SimSwapCheck,
    SimSwapDate,
    SmsMessage,
    format_duration,
)

__all__ = ["DEFAULT_MAX_RESPONSE_BYTES", "OperatorClient", "RetryPolicy"]

DEFAULT_MAX_RESPONSE_BYTES = 4 * 1024 * 1024
"""The most the client reads of one response: every answer of the contract is far smaller."""


def _jitter_rng() -> random.Random:
    return random.Random()  # noqa: S311 (back-off jitter, not security)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How transient failures are retried: capped exponential back-off with jitter.

    ``sleep`` and ``clock`` are injectable so tests can record delays without waiting.
    """

    attempts: int = 6
    budget: float = 30.0
    base: float = 0.2
    cap: float = 8.0
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    clock: Callable[[], float] = time.monotonic
    rng: random.Random = field(default_factory=_jitter_rng)

    def delay(self, retry: int, retry_after: float | None) -> float:
        """Seconds before retry number ``retry`` (0-based); at least ``Retry-After``."""
        step = min(self.cap, self.base * 2.0**retry)
        backoff = step / 2 + self.rng.uniform(0, step / 2)
        if retry_after is None:
            return backoff
        # Retry-After is a floor; a little jitter on top keeps clients from stampeding.
        return retry_after + self.rng.uniform(0, self.base)


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


@dataclass(frozen=True, slots=True)
class _Reply:
    status: int
    body: bytes


@dataclass(frozen=True, slots=True)
class _Call:
    method: str
    path: str
    shown: str  # method and path as messages show them: never with a code
    expect: tuple[int, ...]
    json_body: Mapping[str, Any] | None
    headers: Mapping[str, str]
    params: Mapping[str, str] | None
    wait: int
    body_expected: bool
    secret: str | None


class OperatorClient:
    """The messenger-facing calls of the operator API, typed and validated.

    ``ssl`` is the TLS context for an https ``base_url`` (a private authority, a client
    certificate); by default the system's authorities verify the server.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        retry: RetryPolicy | None = None,
        timeout: float = 15.0,
        session: aiohttp.ClientSession | None = None,
        on_retry: Callable[[str, str, OperatorClientError, float], None] | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        ssl: SSLContext | None = None,
    ) -> None:
        self._base = base_url.rstrip("/")
        # An https operator is verified against the system's authorities unless ``ssl``
        # says otherwise (a private authority, a client certificate for mTLS).
        self._ssl: SSLContext | bool = True if ssl is None else ssl
        self._headers = {
            "Authorization": f"Bearer {api_key}",
            "Accept": "application/json",
            "User-Agent": f"operator-sim-messenger/{__version__}",
        }
        self.retry = retry or RetryPolicy()
        self._timeout = timeout
        self._session = session
        self._own_session = session is None
        self._on_retry = on_retry
        self._max_body = max_response_bytes

    async def __aenter__(self) -> OperatorClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the HTTP session if this client opened it."""
        if self._own_session and self._session is not None:
            await self._session.close()
        self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
            self._own_session = True
        return self._session

    # --- the calls -----------------------------------------------------------------

    async def route(self, msisdn: str) -> Routing:
        """Which operator serves the number (``NotFound`` when none does)."""
        reply = await self._call("GET", f"/v1/routing/{quote(msisdn, safe='+')}", expect=(200,))
        return check_routing(parse_model(Routing, reply.body), msisdn=msisdn)

    async def create_request(
        self, operator_id: str, msisdn: str, *, idempotency_key: str, wait: int = 0
    ) -> IdentificationRequest:
        """POST an identification request; ``wait`` long-polls for the answer."""
        reply = await self._call(
            "POST",
            f"/operators/{quote(operator_id, safe='')}/v1/identification-requests",
            json_body={"msisdn": msisdn},
            headers={"Idempotency-Key": idempotency_key},
            wait=wait,
            expect=(201,),
        )
        req = parse_model(IdentificationRequest, reply.body)
        return check_request(req, operator_id=operator_id, msisdn=msisdn, request_id=None)

    async def get_request(
        self, operator_id: str, request_id: str, *, msisdn: str, wait: int = 0
    ) -> IdentificationRequest:
        """Read a request (``msisdn`` is the number it was sent about); ``wait`` long-polls."""
        reply = await self._call(
            "GET",
            f"/operators/{quote(operator_id, safe='')}/v1/identification-requests/"
            f"{quote(request_id, safe='')}",
            wait=wait,
            expect=(200,),
        )
        req = parse_model(IdentificationRequest, reply.body)
        return check_request(req, operator_id=operator_id, msisdn=msisdn, request_id=request_id)

    async def register_code(
        self, operator_id: str, request_id: str, code: str, *, msisdn: str
    ) -> IdentificationCode:
        """Register the identification code for a timely present (idempotent per pair)."""
        reply = await self._call(
            "POST",
            f"/operators/{quote(operator_id, safe='')}/v1/identification-codes",
            json_body={"request_id": request_id, "code": code},
            expect=(200, 201),
            secret=code,
        )
        registered = parse_model(IdentificationCode, reply.body)
        return check_code(
            registered,
            operator_id=operator_id,
            request_id=request_id,
            sent_code=code,
            msisdn=msisdn,
        )

    async def delete_code(self, operator_id: str, code: str) -> None:
        """Forget a code at the operator (the user left, or the code was replaced)."""
        await self._call(
            "DELETE",
            f"/operators/{quote(operator_id, safe='')}/v1/identification-codes/"
            f"{quote(code, safe='')}",
            expect=(204,),
            body_expected=False,
            secret=code,
        )

    async def events(
        self, operator_id: str, *, after: str | None = None, limit: int = 100, wait: int = 0
    ) -> FeedPage:
        """One page of this messenger's events from the operator; ``wait`` long-polls.

        Events of a type this client does not know are kept as ``UnknownEvent``s.
        """
        query: dict[str, str] = {"limit": str(limit)}
        if after is not None:
            query["after"] = after
        reply = await self._call(
            "GET",
            f"/operators/{quote(operator_id, safe='')}/v1/events",
            params=query,
            wait=wait,
            expect=(200,),
        )
        return parse_feed_page(reply.body, operator_id=operator_id)

    async def send_sms(
        self,
        to: str,
        text: str,
        *,
        idempotency_key: str,
        sender: str | None = None,
        client_ref: str | None = None,
        ttl: timedelta | None = None,
    ) -> SmsMessage:
        """Send an SMS through the gateway (``202``); the text never appears in an error."""
        body: dict[str, Any] = {"to": to, "text": text}
        if sender is not None:
            body["sender"] = sender
        if client_ref is not None:
            body["client_ref"] = client_ref
        if ttl is not None:
            body["ttl"] = format_duration(ttl)
        reply = await self._call(
            "POST",
            "/sms/v1/messages",
            json_body=body,
            headers={"Idempotency-Key": idempotency_key},
            expect=(202,),
            secret=text,
        )
        return check_sms(parse_model(SmsMessage, reply.body), to=to, text_length=len(text))

    async def get_sms(self, sms_id: str, *, to: str, text_length: int) -> SmsMessage:
        """A message sent before (``to`` and ``text_length`` as sent, to check it)."""
        reply = await self._call("GET", f"/sms/v1/messages/{quote(sms_id, safe='')}", expect=(200,))
        sms = parse_model(SmsMessage, reply.body)
        return check_sms(sms, to=to, text_length=text_length, sms_id=sms_id)

    async def sim_swap_check(self, operator_id: str, msisdn: str, *, max_age_hours: int) -> bool:
        """Whether the holder operator reports a SIM swap within ``max_age_hours``."""
        reply = await self._call(
            "POST",
            f"/operators/{quote(operator_id, safe='')}/sim-swap/v1/check",
            json_body={"phoneNumber": msisdn, "maxAge": max_age_hours},
            expect=(200,),
        )
        return parse_model(SimSwapCheck, reply.body).swapped

    async def sim_swap_date(self, operator_id: str, msisdn: str) -> datetime | None:
        """When the holder operator says the number's SIM last changed (None: never)."""
        reply = await self._call(
            "POST",
            f"/operators/{quote(operator_id, safe='')}/sim-swap/v1/retrieve-date",
            json_body={"phoneNumber": msisdn},
            expect=(200,),
        )
        return parse_model(SimSwapDate, reply.body).latestSimChange

    # --- transport -----------------------------------------------------------------

    async def _call(
        self,
        method: str,
        path: str,
        *,
        expect: tuple[int, ...],
        json_body: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        wait: int = 0,
        body_expected: bool = True,
        secret: str | None = None,
    ) -> _Reply:
        wait = max(0, min(int(wait), MAX_WAIT_SECONDS))
        sent_headers = {**self._headers, **(headers or {})}
        if wait:
            sent_headers["Prefer"] = f"wait={wait}"
        call = _Call(
            method=method,
            path=path,
            shown=f"{method} {scrub(path, secret)}",
            expect=expect,
            json_body=json_body,
            headers=sent_headers,
            params=params,
            wait=wait,
            body_expected=body_expected,
            secret=secret,
        )
        policy = self.retry
        started = policy.clock()
        retry = 0
        while True:
            try:
                return await self._once(call)
            except (TransportError, ApiError) as exc:
                transient = isinstance(exc, TransportError) or exc.transient
                if not transient or retry + 1 >= policy.attempts:
                    raise
                retry_after = exc.retry_after if isinstance(exc, ApiError) else None
                pause = policy.delay(retry, retry_after)
                if policy.clock() - started + pause > policy.budget:
                    raise
                if self._on_retry is not None:
                    self._on_retry(method, scrub(path, secret), exc, pause)
                await policy.sleep(pause)
                retry += 1

    async def _once(self, call: _Call) -> _Reply:
        timeout = aiohttp.ClientTimeout(total=self._timeout + call.wait)
        try:
            async with self._http().request(
                call.method,
                self._base + call.path,
                json=call.json_body,
                headers=call.headers,
                params=call.params,
                timeout=timeout,
                allow_redirects=False,
                ssl=self._ssl,
            ) as resp:
                body = await _read_capped(resp, self._max_body)
                if body is None:
                    raise ResponseTooLarge(shown=call.shown, limit=self._max_body)
                status = resp.status
                content_type = resp.content_type
                retry_after = _retry_after(resp.headers.get("Retry-After"))
        except (aiohttp.ClientError, TimeoutError) as exc:
            # aiohttp's messages may carry the URL, and so a code in its path.
            said = scrub(f"{type(exc).__name__}: {exc}", call.secret)
            raise TransportError(f"{call.shown}: {said}") from exc
        if status in call.expect:
            if call.body_expected and content_type != "application/json":
                raise InvalidResponse(f"{call.shown}: {status} with {content_type or 'no'} body")
            return _Reply(status, body)
        if status >= 400:
            raise _problem(status, content_type, body, retry_after, call.secret)
        raise InvalidResponse(f"{call.shown}: unexpected status {status}")


async def _read_capped(resp: aiohttp.ClientResponse, limit: int) -> bytes | None:
    """The body, or None when it is longer than ``limit`` (decompressed, as it is read)."""
    if resp.content_length is not None and resp.content_length > limit:
        return None
    body = bytearray()
    async for chunk in resp.content.iter_chunked(64 * 1024):
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


class _ProblemView(BaseModel):
    """What the client reads of a problem body: its code and detail, whatever else it has
    (an operator's problem need not carry every field the simulator's does)."""

    model_config = ConfigDict(extra="ignore")

    code: str
    detail: str = ""


def _problem(
    status: int, content_type: str, body: bytes, retry_after: float | None, secret: str | None
) -> ApiError:
    if content_type == "application/problem+json":
        try:
            problem = _ProblemView.model_validate_json(body)
        except ValueError:
            pass
        else:
            detail = scrub(problem.detail, secret)  # an operator may echo the code it refuses
            return api_error(status, problem.code, detail, retry_after=retry_after)
    return api_error(
        status, f"http_{status}", "an error without a problem body", retry_after=retry_after
    )
