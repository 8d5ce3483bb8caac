"""The live parts of each page: what they show, and which changes make them stale.

A page is a :class:`View`: a few :class:`Part` s, each one HTML fragment that the page
renders inline and the live stream re-sends (as the SSE event of the same name) when a
change concerns it. The page and the stream build the same view from the same
parameters, so what arrives live is exactly what a reload would show.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import urlencode

from operator_sim import errors
from operator_sim.console.backend import Backend, Change, ChangeKind
from operator_sim.wire import ENDPOINT_NAMES, ID_PATTERN, is_msisdn

__all__ = ["JOURNAL_LIMIT", "LIST_LIMIT", "PHONE_LIMIT", "Part", "View", "view_for"]

JOURNAL_LIMIT = 100
"""Journal entries a page shows (the newest)."""
LIST_LIMIT = 100
"""Events a deliveries page shows (the newest)."""
PHONE_LIMIT = 50
"""Messages a phone's page shows (the newest)."""

_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_-")


class Part:
    """One live fragment of a page."""

    event: ClassVar[str]
    template: ClassVar[str]
    kinds: ClassVar[frozenset[ChangeKind]]

    def wants(self, change: Change) -> bool:
        """Whether ``change`` makes this part stale."""
        return change.kind in self.kinds

    async def context(self, backend: Backend) -> dict[str, Any]:
        """What the fragment's template renders."""
        raise NotImplementedError


class ClockPart(Part):
    """The simulation clock in every page's header."""

    event = "clock"
    template = "fragments/clock.html"
    kinds = frozenset({"clock", "reset"})

    async def context(self, backend: Backend) -> dict[str, Any]:
        """The clock's mode, scale and current simulation time."""
        return {"clock": backend.clock()}


class CountersPart(Part):
    """Requests by status, codes, undelivered events, SMS in flight."""

    event = "counters"
    template = "fragments/counters.html"
    kinds = frozenset({"journal", "request", "feed", "deliveries", "clock", "reset", "sms"})

    async def context(self, backend: Backend) -> dict[str, Any]:
        """The counts."""
        return {"counts": await backend.counts()}


@dataclass(frozen=True)
class JournalPart(Part):
    """The newest messenger-facing calls, optionally of one messenger, endpoint or number."""

    messenger_id: str | None = None
    msisdn: str | None = None
    endpoint: str | None = None
    event = "journal"
    template = "fragments/journal_rows.html"
    kinds = frozenset({"journal", "reset"})

    async def context(self, backend: Backend) -> dict[str, Any]:
        """The entries, newest first."""
        entries = await backend.calls(
            messenger_id=self.messenger_id,
            msisdn=self.msisdn,
            endpoint=self.endpoint,
            limit=JOURNAL_LIMIT,
        )
        return {"entries": entries}


@dataclass(frozen=True)
class RequestPart(Part):
    """One request's status, deadline, rule, events and their deliveries."""

    request_id: str = ""
    event = "request"
    template = "fragments/request.html"
    # Deliveries: the feed returned, or a webhook attempt delivered, one of its events.
    kinds = frozenset({"request", "deliveries", "clock", "reset"})

    def wants(self, change: Change) -> bool:
        """Only this request's own changes, the clock and resets."""
        if change.kind == "request":
            return change.request_id == self.request_id
        return change.kind in self.kinds

    async def context(self, backend: Backend) -> dict[str, Any]:
        """The request's detail and the clock (for the countdown)."""
        return {"detail": await backend.request_detail(self.request_id), "clock": backend.clock()}


@dataclass(frozen=True)
class DeliveriesPart(Part):
    """The newest events with their deliveries."""

    messenger_id: str | None = None
    event = "deliveries"
    template = "fragments/delivery_rows.html"
    kinds = frozenset({"feed", "deliveries", "clock", "reset"})

    async def context(self, backend: Backend) -> dict[str, Any]:
        """The deliveries, newest first."""
        found = await backend.deliveries(messenger_id=self.messenger_id, limit=LIST_LIMIT)
        return {"deliveries": found}


@dataclass(frozen=True)
class PhonePart(Part):
    """One phone's inbox: the newest messages it received, with their texts."""

    msisdn: str = ""
    event = "phone"
    template = "fragments/phone_messages.html"
    kinds = frozenset({"phone", "reset"})

    def wants(self, change: Change) -> bool:
        """Only a message reaching this phone, and resets (which empty inboxes)."""
        if change.kind == "phone":
            return change.msisdn == self.msisdn
        return change.kind in self.kinds

    async def context(self, backend: Backend) -> dict[str, Any]:
        """The messages, oldest first (the newest at the bottom, as on a phone)."""
        found = await backend.phone_messages(self.msisdn, limit=PHONE_LIMIT)
        return {"phone_messages": found, "phone_limit": PHONE_LIMIT}


class RulesPart(Part):
    """Every fault rule with its hit count."""

    event = "rules"
    template = "fragments/rule_rows.html"
    # Journal changes: a rule's hit is counted with the POST it applied to.
    kinds = frozenset({"rules", "journal", "reset"})

    async def context(self, backend: Backend) -> dict[str, Any]:
        """The rules in matching order."""
        return {"rules": await backend.rules()}


@dataclass(frozen=True)
class View:
    """A page's live parts and the parameters that chose them."""

    page: str
    parts: tuple[Part, ...]
    params: Mapping[str, str] = field(default_factory=dict)

    @property
    def events(self) -> frozenset[str]:
        """Every part's SSE event name."""
        return frozenset(part.event for part in self.parts)

    def wants(self, change: Change) -> list[str]:
        """The parts ``change`` makes stale."""
        return [part.event for part in self.parts if part.wants(change)]

    def part(self, event: str) -> Part:
        """The part sent as ``event``."""
        for part in self.parts:
            if part.event == event:
                return part
        raise KeyError(event)

    async def context(self, backend: Backend) -> dict[str, Any]:
        """Every part's context, for rendering the whole page."""
        merged: dict[str, Any] = {}
        for part in self.parts:
            merged.update(await part.context(backend))
        return merged

    def stream_url(self, position: str) -> str:
        """Where the page's live stream is, starting after ``position``."""
        return f"/ui/stream/{self.page}?" + urlencode({**self.params, "from": position})


def _msisdn(params: Mapping[str, str]) -> str | None:
    value = params.get("msisdn", "").strip()
    if not value:
        return None
    if not is_msisdn(value):
        raise errors.InvalidMsisdn(field="msisdn")
    return value


def _endpoint(params: Mapping[str, str]) -> str | None:
    value = params.get("endpoint", "").strip()
    if not value:
        return None
    if value not in ENDPOINT_NAMES:
        raise errors.ValidationFailed(
            f"endpoint: one of {', '.join(ENDPOINT_NAMES)}",
            errors=[{"loc": ["endpoint"], "msg": "not an endpoint", "type": "enum"}],
        )
    return value


def _entity(params: Mapping[str, str], name: str) -> str | None:
    value = params.get(name, "").strip()
    if not value:
        return None
    if not (len(value) <= 63 and set(value) <= _ID_CHARS and value[0] not in "_-"):
        raise errors.ValidationFailed(
            f"{name}: not an id ({ID_PATTERN})",
            errors=[{"loc": [name], "msg": "not an id", "type": "string_pattern_mismatch"}],
        )
    return value


def _request_id(params: Mapping[str, str]) -> str:
    value = params.get("id", "")
    if not (0 < len(value) <= 64 and value.isascii() and value.replace("_", "").isalnum()):
        raise errors.NotFound(kind="identification request", ident=value[:64])
    return value


def view_for(page: str, params: Mapping[str, str]) -> View:
    """The view of ``page`` for these parameters; 404 for a page without one."""
    clock = ClockPart()
    if page == "overview":
        return View(page, (clock, CountersPart()))
    if page == "journal":
        messenger_id, msisdn = _entity(params, "messenger_id"), _msisdn(params)
        endpoint = _endpoint(params)
        chosen = {
            k: v
            for k, v in (("messenger_id", messenger_id), ("endpoint", endpoint), ("msisdn", msisdn))
            if v is not None
        }
        return View(page, (clock, JournalPart(messenger_id, msisdn, endpoint)), chosen)
    if page == "request":
        request_id = _request_id(params)
        return View(page, (clock, RequestPart(request_id)), {"id": request_id})
    if page == "deliveries":
        messenger_id = _entity(params, "messenger_id")
        chosen = {"messenger_id": messenger_id} if messenger_id else {}
        return View(page, (clock, DeliveriesPart(messenger_id)), chosen)
    if page == "rules":
        return View(page, (clock, RulesPart()))
    if page == "phones":
        msisdn = _msisdn(params)
        if msisdn is None:
            return View(page, (clock,))
        return View(page, (clock, PhonePart(msisdn)), {"msisdn": msisdn})
    if page in ("subscribers", "messengers"):
        return View(page, (clock,))
    raise errors.NotFound(kind="page", ident=page)
