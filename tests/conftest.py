"""Shared fixtures: a real server on a loopback port, a temp database, a manual clock."""

from __future__ import annotations

import functools
import os
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer

from operator_sim.server import ENDPOINTS, create_app
from operator_sim.server.openapi import build_openapi
from operator_sim.server.service_api import render_openapi
from operator_sim.settings import Settings
from tests.conformance import Conformance, watch

DEMO_KEY = "demo-messenger-key-not-secret"
ADMIN_TOKEN = "demo-admin-token-not-secret"
IR_PATH = "/operators/{operator}/v1/identification-requests"
CODES_PATH = "/operators/{operator}/v1/identification-codes"

_EXIT_STATUS: list[int] = []


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Remember how the session ended, for :func:`pytest_unconfigure`."""
    _EXIT_STATUS.append(int(exitstatus))


def pytest_unconfigure(config: pytest.Config) -> None:
    """Exit rather than wait for ever on a database a test left open.

    aiosqlite's connection threads are not daemons: a test that fails before closing its
    database would keep the interpreter (and CI) waiting at exit until the job's time
    limit. Whatever the tests said is kept; a leak alone fails the run.
    """
    leaked = [t.name for t in threading.enumerate() if "_connection_worker_thread" in t.name]
    if not leaked:
        return
    status = _EXIT_STATUS[-1] if _EXIT_STATUS else 1
    sys.stderr.write(
        f"\n{len(leaked)} database connection(s) left open by the tests: not waiting for "
        "them to close\n"
    )
    sys.stderr.flush()
    sys.stdout.flush()
    os._exit(status or 1)


AiohttpClient = Callable[..., Awaitable[TestClient[Any, Any]]]
AiohttpServer = Callable[..., Awaitable[TestServer]]


class Sim:
    """A running test server with typed shortcuts for the calls tests make most."""

    def __init__(self, client: TestClient[Any, Any], db_path: Path) -> None:
        self.client = client
        self.db_path = db_path

    @staticmethod
    def auth(key: str) -> dict[str, str]:
        """Bearer header for a key."""
        return {"Authorization": f"Bearer {key}"}

    async def identify(
        self,
        msisdn: str,
        *,
        operator: str = "alfa",
        key: str = DEMO_KEY,
        headers: dict[str, str] | None = None,
    ) -> ClientResponse:
        """POST an identification request."""
        return await self.client.post(
            IR_PATH.format(operator=operator),
            json={"msisdn": msisdn},
            headers={**self.auth(key), **(headers or {})},
        )

    async def identify_ok(self, msisdn: str, **kwargs: Any) -> dict[str, Any]:
        """POST an identification request that must be created."""
        resp = await self.identify(msisdn, **kwargs)
        assert resp.status == 201, await resp.text()
        body: dict[str, Any] = await resp.json()
        return body

    async def get_request(
        self, request_id: str, *, operator: str = "alfa", key: str = DEMO_KEY
    ) -> dict[str, Any]:
        """GET a request that must exist."""
        resp = await self.client.get(
            f"{IR_PATH.format(operator=operator)}/{request_id}", headers=self.auth(key)
        )
        assert resp.status == 200, await resp.text()
        body: dict[str, Any] = await resp.json()
        return body

    async def register_code(
        self, request_id: str, code: str, *, operator: str = "alfa", key: str = DEMO_KEY
    ) -> ClientResponse:
        """POST an identification code."""
        return await self.client.post(
            CODES_PATH.format(operator=operator),
            json={"request_id": request_id, "code": code},
            headers=self.auth(key),
        )

    async def admin(self, method: str, path: str, json: Any = None) -> ClientResponse:
        """Call the admin API with the demo admin token."""
        kwargs: dict[str, Any] = {"headers": self.auth(ADMIN_TOKEN)}
        if json is not None:
            kwargs["json"] = json
        return await self.client.request(method, f"/admin/v1{path}", **kwargs)

    async def admin_ok(self, method: str, path: str, json: Any = None) -> Any:
        """Call the admin API and expect success with a JSON body."""
        resp = await self.admin(method, path, json)
        assert resp.status < 300, await resp.text()
        return await resp.json()

    async def advance(self, seconds: float) -> dict[str, Any]:
        """Advance the manual clock."""
        body: dict[str, Any] = await self.admin_ok("POST", "/clock/advance", {"by": seconds})
        return body

    async def new_messenger(self, messenger_id: str, **extra: Any) -> dict[str, Any]:
        """Register a messenger and return its credentials."""
        body: dict[str, Any] = await self.admin_ok(
            "POST", "/messengers", {"id": messenger_id, "name": messenger_id.title(), **extra}
        )
        return body

    async def add_subscribers(self, *subscribers: dict[str, Any]) -> None:
        """Upsert subscribers through the admin API."""
        await self.admin_ok("POST", "/subscribers", {"subscribers": list(subscribers)})


def _serves(app: web.Application) -> bool:
    """An operator-sim app (it serves /openapi.json)."""
    return any(
        route.resource is not None and route.resource.canonical == "/openapi.json"
        for route in app.router.routes()
    )


@pytest.fixture
def conformance() -> Conformance:
    """What the test's servers sent that departs from their /openapi.json."""
    return Conformance()


@pytest.fixture
def aiohttp_client(
    aiohttp_client: AiohttpClient, conformance: Conformance
) -> Iterator[AiohttpClient]:
    """pytest-aiohttp's factory; every operator-sim app it starts is checked for conformance.

    Each response the app prepares is validated against its own /openapi.json
    (tests/conformance.py); a test whose server departed from it fails at teardown.
    ``OPSIM_CONFORMANCE=off`` turns the check off (to measure what it costs);
    ``OPSIM_CONFORMANCE_LOG=FILE`` appends every mismatch and the counts to FILE.
    """
    enabled = os.environ.get("OPSIM_CONFORMANCE", "on") != "off"

    async def go(target: Any, *args: Any, **kwargs: Any) -> TestClient[Any, Any]:
        app = target.app if isinstance(target, TestServer) else target
        if enabled and isinstance(app, web.Application) and not app.frozen and _serves(app):
            watch(app, conformance)
        return await aiohttp_client(target, *args, **kwargs)

    yield go
    log = os.environ.get("OPSIM_CONFORMANCE_LOG")
    if log:
        with open(log, "a", encoding="utf-8") as out:
            out.writelines(line + "\n" for line in conformance.mismatches)
            out.write(f"#checked {conformance.checked} excluded {conformance.excluded}\n")
    if conformance.mismatches:
        shown = "\n".join(conformance.mismatches[:20])
        pytest.fail(
            f"{len(conformance.mismatches)} response(s) depart from /openapi.json:\n{shown}",
            pytrace=False,
        )


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """A fresh database file per test."""
    return tmp_path / "sim.db"


@pytest.fixture
async def sim(aiohttp_client: AiohttpClient, db_path: Path) -> Sim:
    """A fresh server on a loopback port, default fixture, manual clock."""
    app = create_app(Settings(db=db_path, clock="manual"))
    return Sim(await aiohttp_client(app), db_path)


@dataclass
class Receiver:
    """A webhook endpoint on loopback that answers from a script of statuses."""

    statuses: list[int] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append((dict(request.headers), await request.read()))
        status = self.statuses.pop(0) if self.statuses else 204
        return web.Response(status=status, headers=self.headers if status >= 300 else None)


@functools.cache
def _description() -> bytes:
    return render_openapi(build_openapi(ENDPOINTS))


@pytest.fixture
async def receiver(aiohttp_server: AiohttpServer) -> AsyncIterator[Receiver]:
    """A webhook receiver; every delivery it got is checked against /openapi.json's webhooks."""
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/hook", rec.handle)
    app.router.add_post("/elsewhere", rec.handle)
    server = await aiohttp_server(app)
    rec.url = str(server.make_url("/hook"))
    yield rec
    deliveries = Conformance()
    for headers, body in rec.received:
        deliveries.check_webhook(_description(), headers, body)
    if deliveries.mismatches:
        pytest.fail(
            "webhook deliveries depart from /openapi.json:\n"
            + "\n".join(deliveries.mismatches[:20]),
            pytrace=False,
        )
