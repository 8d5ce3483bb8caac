"""The domain error tree. No HTTP here: the server's middleware maps classes to statuses.

::

    OperatorSimError
    ├── InputError                      the caller sent something we refuse
    │   ├── InvalidJson                 body is not JSON at all
    │   ├── ValidationFailed            JSON of the wrong shape
    │   │   └── InvalidMsisdn           not canonical E.164
    │   ├── UnsupportedMediaType        body without Content-Type: application/json
    │   ├── PayloadTooLarge             body over the size limit
    │   ├── RequestTimeout              body not received within the client timeout
    │   ├── UnreadableBody              body framing broken: it cannot be read to its end
    │   │   └── InvalidContentEncoding  body not in the Content-Encoding it claims
    │   └── IdempotencyKeyReused        same Idempotency-Key, different request
    ├── Unauthorized                    missing or wrong credentials
    ├── NotFound                        unknown id, or another tenant's id
    ├── Conflict                        the request contradicts stored state
    │   └── CursorUnknown               a feed cursor this feed never gave this messenger
    ├── Throttled                       over a configured limit: 429 with Retry-After
    ├── InjectedFault                   a fault rule answers with an HTTP error
    ├── InjectedMalformed               a fault rule answers 200/201 with a broken body
    ├── DropConnection                  a fault rule closes the connection, answering nothing
    ├── StartupError                    the server cannot start as configured
    │   ├── FixtureError                a fixture file is broken
    │   └── SchemaError                 the database is not one we can open
    └── StoreError                      the database failed underneath us
        └── StorageUnavailable          it cannot be written now (disk full, I/O error)
"""

from __future__ import annotations

from typing import Any


class OperatorSimError(Exception):
    """Base of every error operator-sim raises on purpose."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    def __str__(self) -> str:
        return self.detail


class InputError(OperatorSimError):
    """The request is malformed; nothing was changed."""


class InvalidJson(InputError):
    """The body is not valid JSON."""


class ValidationFailed(InputError):
    """The body is JSON but not of the documented shape."""

    def __init__(self, detail: str, *, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(detail)
        self.errors = errors or []


class InvalidMsisdn(ValidationFailed):
    """A phone number that is not canonical E.164."""

    def __init__(self, *, field: str = "msisdn") -> None:
        super().__init__(
            f"{field} must be canonical E.164: '+', a digit 1-9, then 6 to 14 digits",
            errors=[{"loc": [field], "msg": "not canonical E.164", "type": "invalid_msisdn"}],
        )


class UnsupportedMediaType(InputError):
    """A body was sent without the JSON content type."""


class PayloadTooLarge(InputError):
    """The body exceeds the configured limit."""


class RequestTimeout(InputError):
    """The client did not send its whole body within the client timeout."""


class UnreadableBody(InputError):
    """The body cannot be read to its end (broken framing); the connection is closed."""


class InvalidContentEncoding(UnreadableBody):
    """The body is not in the ``Content-Encoding`` it claims (not gzip, not deflate...)."""


class IdempotencyKeyReused(InputError):
    """An Idempotency-Key already bound to a different request; ``differs`` says how."""

    def __init__(self, *, key: str, differs: str = "a different request body") -> None:
        super().__init__(f"this Idempotency-Key was used with {differs}; use a new key")
        self.key = key


class Unauthorized(OperatorSimError):
    """Missing or wrong credentials."""


class NotFound(OperatorSimError):
    """No such resource visible to the caller."""

    def __init__(self, *, kind: str, ident: str | None = None) -> None:
        super().__init__(f"no such {kind}" if ident is None else f"no such {kind}: {ident}")
        self.kind = kind
        self.ident = ident


class Conflict(OperatorSimError):
    """The request contradicts the stored state."""


class CursorUnknown(Conflict):
    """A feed cursor this feed never issued to this messenger (another database, another
    messenger or feed, a reset since, or made up): read again from the oldest event."""

    def __init__(self) -> None:
        super().__init__(
            "this cursor was not issued by this feed to this messenger (another server or "
            "database, another feed, a reset since, or made up); read again from the oldest "
            "event: call without after"
        )


class Throttled(OperatorSimError):
    """A configured limit refuses the call for now (rate, long polls, enumeration)."""

    def __init__(
        self,
        *,
        code: str,
        detail: str,
        retry_after: int,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.code = code
        self.retry_after = retry_after
        self.headers = {**(headers or {}), "Retry-After": str(retry_after)}


class InjectedFault(OperatorSimError):
    """A fault rule answers with an HTTP error status (and maybe Retry-After)."""

    def __init__(self, *, status: int, retry_after: int | None, rule_id: str) -> None:
        super().__init__(f"fault rule {rule_id} answered {status}")
        self.status = status
        self.retry_after = retry_after
        self.rule_id = rule_id


class InjectedMalformed(OperatorSimError):
    """A fault rule answers 200/201 ``application/json`` with a broken body."""

    def __init__(self, *, status: int, body: str, rule_id: str) -> None:
        super().__init__(f"fault rule {rule_id} answered {status} with a {body} body")
        self.status = status
        self.body = body
        self.rule_id = rule_id


class DropConnection(OperatorSimError):
    """A fault rule closes the connection without any response."""

    def __init__(self, *, rule_id: str) -> None:
        super().__init__(f"fault rule {rule_id} dropped the connection")
        self.rule_id = rule_id


class StartupError(OperatorSimError):
    """The server cannot start as configured."""


class FixtureError(StartupError):
    """A fixture file is broken; names the file, the field and the problem."""

    def __init__(self, *, path: str, field: str, problem: str) -> None:
        super().__init__(f"{path}: {field}: {problem}")
        self.path = path
        self.field = field
        self.problem = problem


class SchemaError(StartupError):
    """The database cannot be opened by this version."""


class StoreError(OperatorSimError):
    """The database failed."""


class StorageUnavailable(StoreError):
    """The database cannot be written now: the disk is full or failing. Nothing was kept."""
