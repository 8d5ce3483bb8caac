"""Per-messenger limits: a rate limit, a bound on parked long polls, an enumeration quota.

All three are in memory and per process. The rate limit and the enumeration quota are
off unless configured (a load tester must never be throttled by surprise); the long-poll
bound is high by default. Admin and service calls are never counted.

Rate limits are written ``"demo=50/s,*=1000/m"``: a messenger id (or ``*`` for every
messenger without its own entry), ``=``, a quota, ``/`` and a window (``s``, ``m``, ``h``,
or a number of seconds such as ``10s``). Each messenger gets a token bucket holding
``quota`` tokens, refilled at ``quota / window`` per second; a call takes one token.
Responses carry the IETF RateLimit header fields (``RateLimit-Policy`` and ``RateLimit``,
draft-ietf-httpapi-ratelimit-headers), and a refused call ``Retry-After``.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict, defaultdict, deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TypedDict

import structlog
from aiohttp import web

from operator_sim import errors
from operator_sim.domain.limits import RatePolicy, parse_rate_limits
from operator_sim.server.context import MESSENGER_ID
from operator_sim.server.parsing import prefer_wait
from operator_sim.settings import Settings

__all__ = ["Limits", "ServerOptions", "server_options"]

log = structlog.get_logger("operator_sim.limits")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Clock = Callable[[], float]

_POLICY_NAME = "messenger"
_BLOCK_DIGITS = 2  # numbers that differ only in their last two digits share a block


class ServerOptions(TypedDict):
    """aiohttp ``Server`` options derived from the settings."""

    keepalive_timeout: float
    max_line_size: int
    max_field_size: int


def server_options(settings: Settings) -> ServerOptions:
    """Keyword arguments for aiohttp's ``AppRunner``/``Server``: header sizes and timeouts.

    aiohttp closes a connection that has not delivered a complete request within
    ``keepalive_timeout`` (counted from the connection's start or the previous
    response), so a client trickling its headers is cut off after ``client_timeout``.
    aiohttp's own header limits are a backstop at twice ``max_header_size`` (it answers
    a plain-text 400 beyond them); the HTTP middleware answers problem+json 431/414 from
    ``max_header_size`` up (:func:`operator_sim.server.problems.oversize_head_response`).
    """
    backstop = 2 * settings.max_header_size
    return {
        "keepalive_timeout": settings.client_timeout,
        "max_line_size": backstop,
        "max_field_size": backstop,
    }


@dataclass
class _Bucket:
    tokens: float
    stamp: float


class Limits:
    """The limits of one server, applied around every messenger-facing call."""

    def __init__(self, settings: Settings, *, now: Clock = time.monotonic) -> None:
        self._policies = parse_rate_limits(settings.rate_limits)
        self._max_long_polls = settings.max_long_polls
        self._max_wait = settings.max_wait
        self._enumeration_quota = settings.enumeration_quota
        self._enumeration_window = settings.enumeration_window
        self._now = now
        self._buckets: dict[str, _Bucket] = {}
        self._parked: defaultdict[str, int] = defaultdict(int)
        # messenger -> block -> (number -> last seen); bounded by the window's pruning.
        self._blocks: defaultdict[str, dict[str, OrderedDict[str, float]]] = defaultdict(dict)
        self._tripped: defaultdict[str, deque[float]] = defaultdict(deque)

    def policy(self, messenger_id: str) -> RatePolicy | None:
        """The rate policy applying to a messenger, if any."""
        return self._policies.get(messenger_id) or self._policies.get("*")

    def parked(self, messenger_id: str) -> int:
        """How many long polls the messenger holds now."""
        return self._parked.get(messenger_id, 0)

    def _take(self, messenger_id: str, policy: RatePolicy) -> dict[str, str]:
        """Take a token or raise ``Throttled``; returns the RateLimit header fields."""
        now = self._now()
        bucket = self._buckets.get(messenger_id)
        if bucket is None:
            bucket = self._buckets[messenger_id] = _Bucket(float(policy.quota), now)
        bucket.tokens = min(float(policy.quota), bucket.tokens + (now - bucket.stamp) * policy.rate)
        bucket.stamp = now
        policy_header = f'"{_POLICY_NAME}";q={policy.quota};w={policy.window}'
        if bucket.tokens < 1.0:
            wait = max(1, math.ceil((1.0 - bucket.tokens) / policy.rate))
            raise errors.Throttled(
                code="rate_limited",
                detail=f"more than {policy.quota} calls in {policy.window} s; retry after {wait} s",
                retry_after=wait,
                headers={
                    "RateLimit-Policy": policy_header,
                    "RateLimit": f'"{_POLICY_NAME}";r=0;t={wait}',
                },
            )
        bucket.tokens -= 1.0
        refill = math.ceil((policy.quota - bucket.tokens) / policy.rate)
        return {
            "RateLimit-Policy": policy_header,
            "RateLimit": f'"{_POLICY_NAME}";r={int(bucket.tokens)};t={refill}',
        }

    async def guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Run a messenger's call within its limits; ``Throttled`` when it is over one."""
        messenger_id = request[MESSENGER_ID]
        policy = self.policy(messenger_id)
        headers: Mapping[str, str] = {} if policy is None else self._take(messenger_id, policy)
        long_poll = prefer_wait(request, cap=self._max_wait) > 0
        if long_poll:
            if self._parked[messenger_id] >= self._max_long_polls:
                log.warning(
                    "too_many_long_polls", messenger_id=messenger_id, held=self._max_long_polls
                )
                raise errors.Throttled(
                    code="too_many_long_polls",
                    detail=f"this messenger already holds {self._max_long_polls} long polls "
                    "(Prefer: wait); wait for one to return",
                    retry_after=1,
                    headers=dict(headers),
                )
            self._parked[messenger_id] += 1
        try:
            response = await handler(request)
        finally:
            if long_poll:
                self._parked[messenger_id] -= 1
                if not self._parked[messenger_id]:
                    del self._parked[messenger_id]
        if headers and not response.prepared:
            response.headers.update(headers)
        return response

    def check_enumeration(self, messenger_id: str, msisdn: str) -> None:
        """Count a number asked about; ``Throttled`` when the messenger sweeps a block.

        A block is the numbers that differ only in their last two digits. More than
        ``enumeration_quota`` distinct numbers of one block within ``enumeration_window``
        seconds look like a sweep, not like users. The log line carries no numbers.
        """
        quota = self._enumeration_quota
        if quota <= 0:
            return
        now = self._now()
        horizon = now - self._enumeration_window
        blocks = self._blocks[messenger_id]
        block = msisdn[:-_BLOCK_DIGITS]
        seen = blocks.setdefault(block, OrderedDict())
        seen.pop(msisdn, None)
        seen[msisdn] = now
        while seen and next(iter(seen.values())) < horizon:
            seen.popitem(last=False)
        if len(blocks) > 4096:  # keep memory bounded: forget blocks gone quiet
            for stale in [
                b for b, s in blocks.items() if not s or next(reversed(s.values())) < horizon
            ]:
                del blocks[stale]
        if len(seen) <= quota:
            return
        seen.pop(msisdn)  # a refused number does not count
        tripped = self._tripped[messenger_id]
        tripped.append(now)
        while tripped and tripped[0] < horizon:
            tripped.popleft()
        log.warning(
            "enumeration_suspected",
            messenger_id=messenger_id,
            distinct_numbers=len(seen),
            quota=quota,
            window_s=self._enumeration_window,
            refusals_in_window=len(tripped),
        )
        raise errors.Throttled(
            code="enumeration_suspected",
            detail=f"more than {quota} numbers of one block asked about within "
            f"{self._enumeration_window:g} s; this looks like a sweep",
            retry_after=max(1, math.ceil(next(iter(seen.values())) - horizon)),
        )
