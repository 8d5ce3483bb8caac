"""The client library's error tree, mirroring the server's problem codes.

::

    OperatorClientError                  anything that kept a call from a valid answer
    ├── TransportError                   no HTTP response: connection refused, reset, timeout
    ├── ApiError(status, code, detail)   the operator answered with an error status
    │   ├── Unauthorized                 401
    │   ├── NotFound                     404
    │   ├── Conflict                     409
    │   ├── Rejected                     another 4xx (validation, idempotency key reused, ...)
    │   ├── RateLimited                  429 (transient, retried)
    │   └── OperatorUnavailable          502, 503, 504 (transient, retried)
    └── InvalidResponse                  a response that is not what the contract promises
        ├── FeedStalled                  an event page that did not move the feed's cursor
        └── ResponseTooLarge             a body over the client's size limit
    InvalidPhone                         what the user typed is not a phone number (no I/O)
"""

from __future__ import annotations

__all__ = [
    "ApiError",
    "Conflict",
    "FeedStalled",
    "InvalidPhone",
    "InvalidResponse",
    "NotFound",
    "OperatorClientError",
    "OperatorUnavailable",
    "RateLimited",
    "Rejected",
    "ResponseTooLarge",
    "TransportError",
    "Unauthorized",
    "api_error",
]


class OperatorClientError(Exception):
    """Base of every error the operator client raises."""


class TransportError(OperatorClientError):
    """No HTTP response arrived: the connection failed, was dropped or timed out."""


class ApiError(OperatorClientError):
    """The operator answered with an error status (problem+json, or anything else)."""

    def __init__(
        self, status: int, code: str, detail: str, *, retry_after: float | None = None
    ) -> None:
        super().__init__(f"HTTP {status} {code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail
        self.retry_after = retry_after

    @property
    def transient(self) -> bool:
        """Whether the same call may succeed later (429 and gateway or availability errors)."""
        return self.status in TRANSIENT_STATUSES


class Unauthorized(ApiError):
    """401: the API key was refused."""


class NotFound(ApiError):
    """404: unknown operator, request or code (or no operator serves the number)."""


class Conflict(ApiError):
    """409: the call contradicts the operator's state (e.g. not a timely present)."""


class Rejected(ApiError):
    """Another 4xx: the operator refused what was sent."""


class RateLimited(ApiError):
    """429: too many requests; retried after ``Retry-After``."""


class OperatorUnavailable(ApiError):
    """502, 503 or 504: the operator cannot answer now; retried."""


class InvalidResponse(OperatorClientError):
    """The response broke the contract: wrong status, not the documented JSON, wrong ids."""


class FeedStalled(InvalidResponse):
    """A page with events came back with the cursor it was read after: reading on would loop."""

    def __init__(self, *, operator_id: str, cursor: str) -> None:
        super().__init__(
            f"{operator_id}'s event feed did not advance: a page of events came back with "
            "the cursor it was read after"
        )
        self.operator_id = operator_id
        self.cursor = cursor


class ResponseTooLarge(InvalidResponse):
    """A response body longer than the client reads (``max_response_bytes``)."""

    def __init__(self, *, shown: str, limit: int) -> None:
        super().__init__(f"{shown}: the response is larger than {limit} bytes")
        self.limit = limit


class InvalidPhone(ValueError):
    """What the user typed cannot be read as a phone number."""


TRANSIENT_STATUSES = frozenset({429, 502, 503, 504})

_BY_STATUS: dict[int, type[ApiError]] = {
    401: Unauthorized,
    404: NotFound,
    409: Conflict,
    429: RateLimited,
    502: OperatorUnavailable,
    503: OperatorUnavailable,
    504: OperatorUnavailable,
}


def api_error(status: int, code: str, detail: str, *, retry_after: float | None = None) -> ApiError:
    """The most specific ``ApiError`` subclass for a status."""
    cls = _BY_STATUS.get(status)
    if cls is None:
        cls = Rejected if 400 <= status < 500 else ApiError
    return cls(status, code, detail, retry_after=retry_after)
