"""Helpers for the messenger library's tests: a step recorder, fake time, a fake operator."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from operator_sim.messenger import Messenger, RetryPolicy, Step
from operator_sim.testing import OperatorSim
from operator_sim.wire import format_timestamp
from tests.conftest import DEMO_KEY, Sim


class Recorder:
    """Collects a Messenger's steps; tests await the one they need (bounded, no sleeps)."""

    def __init__(self) -> None:
        self.steps: list[Step] = []
        self._changed = asyncio.Event()

    def __call__(self, step: Step) -> None:
        self.steps.append(step)
        self._changed.set()

    def kinds(self, user_id: str | None = None) -> list[str]:
        """The kinds of step seen, for one user or all."""
        return [s.kind for s in self.steps if user_id is None or s.user_id == user_id]

    async def wait(self, kind: str, user_id: str | None = None, *, count: int = 1) -> Step:
        """Wait (at most 10 s of real time) until ``count`` steps of a kind were seen."""
        async with asyncio.timeout(10):
            while True:
                seen = [
                    s
                    for s in self.steps
                    if s.kind == kind and (user_id is None or s.user_id == user_id)
                ]
                if len(seen) >= count:
                    return seen[count - 1]
                self._changed.clear()
                await self._changed.wait()


@dataclass
class FakeTime:
    """A clock and sleep for ``RetryPolicy``: sleeping records the pause and moves the clock."""

    now: float = 0.0
    sleeps: list[float] = field(default_factory=list)

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def policy(self, **overrides: Any) -> RetryPolicy:
        return RetryPolicy(sleep=self.sleep, clock=self.clock, **overrides)


def base_url(sim: Sim) -> str:
    """The test server's root URL."""
    return str(sim.client.make_url("/"))


def make_messenger(
    sim: Sim,
    db_path: Path,
    *,
    recorder: Recorder | None = None,
    time: FakeTime | None = None,
    key: str = DEMO_KEY,
    **kwargs: Any,
) -> Messenger:
    """A Messenger against the test server, with fast fake-time retries."""
    return Messenger(
        base_url(sim),
        key,
        db_path=db_path,
        observer=recorder,
        retry=(time or FakeTime()).policy(),
        **kwargs,
    )


# --- a fake operator that answers whatever a test scripts -------------------------------

Scripted = web.Response | Callable[[dict[str, Any]], web.Response] | None
"""A scripted reply: a response, a function of what was sent (the JSON body, or the query
of a call without a body), or None to drop the connection."""


@dataclass
class FakeOperator:
    """An operator on loopback whose every response a test chooses."""

    create: list[Scripted] = field(default_factory=list)
    get: list[Scripted] = field(default_factory=list)
    codes: list[Scripted] = field(default_factory=list)
    deletes: list[Scripted] = field(default_factory=list)
    events: list[Scripted] = field(default_factory=list)
    routes: list[Scripted] = field(default_factory=list)
    events_after: Scripted = None
    """What the feed answers once ``events`` is used up (by default an empty page)."""
    routing_operator: str = "alfa"
    seen: list[tuple[str, str, dict[str, str], bytes]] = field(default_factory=list)
    url: str = ""

    async def _record(self, request: web.Request) -> None:
        self.seen.append(
            (request.method, request.path_qs, dict(request.headers), await request.read())
        )

    async def routing(self, request: web.Request) -> Any:
        msisdn = request.match_info["msisdn"]
        default = web.json_response(
            {"msisdn": msisdn, "operator_id": self.routing_operator, "ported": False}
        )
        return await self._scripted(request, self.routes, default)

    async def _scripted(
        self, request: web.Request, script: list[Scripted], default: Scripted = None
    ) -> Any:
        await self._record(request)
        response = script.pop(0) if script else default
        if callable(response):
            body = await request.read()
            response = response(json.loads(body) if body else dict(request.query))
        if response is None:
            if request.transport is not None:
                request.transport.abort()
            raise ConnectionResetError("dropped by the fake operator")
        return response

    async def on_create(self, request: web.Request) -> Any:
        return await self._scripted(request, self.create)

    async def on_get(self, request: web.Request) -> Any:
        return await self._scripted(request, self.get)

    async def on_code(self, request: web.Request) -> Any:
        return await self._scripted(request, self.codes)

    async def on_delete(self, request: web.Request) -> Any:
        return await self._scripted(request, self.deletes, web.Response(status=204))

    async def on_events(self, request: web.Request) -> Any:
        default = self.events_after
        if default is None:
            default = web.json_response({"events": [], "next_cursor": "c0"})
        return await self._scripted(request, self.events, default)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/v1/routing/{msisdn}", self.routing)
        base = "/operators/{op}/v1"
        app.router.add_post(f"{base}/identification-requests", self.on_create)
        app.router.add_get(f"{base}/identification-requests/{{id}}", self.on_get)
        app.router.add_post(f"{base}/identification-codes", self.on_code)
        app.router.add_delete(f"{base}/identification-codes/{{code}}", self.on_delete)
        app.router.add_get(f"{base}/events", self.on_events)
        return app

    def posted(self, path_end: str) -> list[tuple[dict[str, str], bytes]]:
        """Headers and bodies of the POSTs to a path ending so."""
        return [(h, b) for m, p, h, b in self.seen if m == "POST" and p.endswith(path_end)]

    def calls(self, method: str, path_part: str) -> list[str]:
        """Paths (with the query string) of the calls of a method to paths containing a part."""
        return [p for m, p, _, _ in self.seen if m == method and path_part in p]


NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def request_body(
    *,
    msisdn: str = "+79000000001",
    id_: str = "ir_fake1",
    operator_id: str = "alfa",
    status: str = "answered",
    result: str | None = "present",
    answered_after: timedelta | None = timedelta(seconds=1),
    deadline: timedelta = timedelta(minutes=20),
    received: datetime = NOW,
) -> dict[str, Any]:
    """A request resource as an operator would send it (times relative to ``received``)."""
    return {
        "id": id_,
        "operator_id": operator_id,
        "msisdn": msisdn,
        "status": status,
        "result": result,
        "received_at": format_timestamp(received),
        "due_at": format_timestamp(received + deadline),
        "answered_at": None
        if answered_after is None
        else format_timestamp(received + answered_after),
    }


def json_reply(
    body: Any, status: int = 201, content_type: str = "application/json"
) -> web.Response:
    """A response with a JSON body (or any text, when given a str)."""
    text = body if isinstance(body, str) else json.dumps(body)
    return web.Response(status=status, text=text, content_type=content_type)


def code_body(request_id: str, code: str, msisdn: str = "+79000000001") -> dict[str, Any]:
    """A registered code resource."""
    return {
        "code": code,
        "msisdn": msisdn,
        "operator_id": "alfa",
        "request_id": request_id,
        "registered_at": format_timestamp(NOW),
    }


def problem_reply(status: int, code: str, detail: str = "refused") -> web.Response:
    """An RFC 9457 problem response."""
    body = {"type": "about:blank", "title": code, "status": status, "detail": detail, "code": code}
    return json_reply(body, status, "application/problem+json")


def event_body(
    code: str,
    *,
    id_: str = "evt_1",
    type_: str = "subscriber.contract_terminated",
    operator_id: str = "alfa",
    msisdn: str = "+79000000001",
) -> dict[str, Any]:
    """A lifecycle event as an operator's feed or webhook carries it."""
    return {
        "id": id_,
        "type": type_,
        "operator_id": operator_id,
        "occurred_at": format_timestamp(NOW),
        "deliver_by": format_timestamp(NOW + timedelta(hours=24)),
        "data": {"msisdn": msisdn, "code": code},
    }


def page_reply(events: list[dict[str, Any]], next_cursor: str) -> web.Response:
    """One page of an operator's event feed."""
    return json_reply({"events": events, "next_cursor": next_cursor}, 200)


def registered(sent: dict[str, Any]) -> web.Response:
    """A code registration answered as the contract says: the code sent, for its request."""
    return json_reply(code_body(sent["request_id"], sent["code"]), 201)


async def identify_on(fake: FakeOperator, messenger: Messenger, user_id: str) -> str:
    """Identify a user through the fake operator (a timely present); returns the code."""
    fake.create.append(json_reply(request_body()))
    fake.codes.append(registered)
    outcome = await messenger.identify(user_id, "+79000000001")
    assert outcome.identified, outcome
    assert outcome.code is not None
    return outcome.code


@pytest.fixture
async def fake_operator(aiohttp_server: Callable[..., Awaitable[TestServer]]) -> FakeOperator:
    """A scripted fake operator on loopback."""
    fake = FakeOperator()
    server = await aiohttp_server(fake.app())
    fake.url = str(server.make_url("/"))
    return fake


# --- an operator-sim for synchronous tests -------------------------------------------------

T = TypeVar("T")


class ThreadedSim:
    """An ``OperatorSim`` on its own event loop in a thread, for tests written without async.

    ``call(lambda sim: sim.advance(300))`` runs one of its helpers and waits for it.
    """

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.sim = OperatorSim()

    def __enter__(self) -> ThreadedSim:
        self._thread.start()
        self.call(lambda sim: sim.start())
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.call(lambda sim: sim.stop())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop.close()

    @property
    def base_url(self) -> str:
        return self.sim.base_url

    @property
    def key(self) -> str:
        return self.sim.messenger_key

    def call(self, fn: Callable[[OperatorSim], Awaitable[T]]) -> T:
        async def run() -> T:
            return await fn(self.sim)

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout=30)
