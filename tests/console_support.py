"""Helpers for the console's tests: a signed-in client, page parsing, an SSE reader."""

from __future__ import annotations

import asyncio
import html
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient
from pydantic import SecretStr

from operator_sim.server import create_app
from operator_sim.settings import Settings
from tests.conftest import ADMIN_TOKEN, DEMO_KEY, IR_PATH, AiohttpClient

REAL_TOKEN = "console-test-admin-token-0123456789"
WAIT_SECONDS = 10.0
"""The longest wait for an expected server-sent event (a bound, not a delay)."""


def app_for(db_path: Path, *, admin_token: str | None = None) -> Any:
    """A server on a manual clock; the demo admin token unless one is given."""
    options: dict[str, Any] = {"db": db_path, "clock": "manual"}
    if admin_token is not None:
        options["admin_token"] = SecretStr(admin_token)
    return create_app(Settings(**options))


def attr(page: str, name: str) -> str:
    """The first value of an HTML attribute in ``page``, unescaped."""
    found = re.search(rf'{name}="([^"]*)"', page) or re.search(rf"{name}='([^']*)'", page)
    assert found is not None, f"no {name} attribute"
    return html.unescape(found.group(1))


def csrf_of(page: str) -> str:
    """The CSRF token a page hands to htmx through ``hx-headers``."""
    found = re.search(r'"X-CSRF-Token": "([^"]+)"', html.unescape(page))
    assert found is not None, "no CSRF token on the page"
    return found.group(1)


def tagged(page: str, testid: str) -> list[str]:
    """The opening tags of the elements carrying ``data-testid=testid``."""
    return re.findall(rf'<[^>]*data-testid="{testid}"[^>]*>', page)


def text_of(page: str, testid: str) -> str:
    """The text right inside the first element carrying ``data-testid=testid``."""
    found = re.search(rf'data-testid="{testid}"[^>]*>([^<]*)<', page)
    assert found is not None, f"no {testid}"
    return html.unescape(found.group(1))


class Console:
    """A browser-like client of the console: cookies kept, CSRF sent like htmx sends it."""

    def __init__(self, client: TestClient[Any, Any]) -> None:
        self.client = client
        self.csrf = ""

    async def page(self, path: str, *, status: int = 200) -> str:
        """GET a page, expect ``status``, remember its CSRF token."""
        resp = await self.client.get(path, allow_redirects=False)
        body = await resp.text()
        assert resp.status == status, (resp.status, body[:500])
        if "X-CSRF-Token" in html.unescape(body):
            self.csrf = csrf_of(body)
        return body

    async def act(self, path: str, data: dict[str, str] | None = None, *, status: int = 200) -> str:
        """POST a form the way htmx does (``HX-Request``, the CSRF header); expect ``status``."""
        resp = await self.client.post(
            path,
            data=data or {},
            headers={"HX-Request": "true", "X-CSRF-Token": self.csrf},
            allow_redirects=False,
        )
        body = await resp.text()
        assert resp.status == status, (resp.status, body[:500])
        return body

    async def stream(self, page: str, *, last_event_id: str | None = None) -> SseReader:
        """Open the live stream that ``page`` (its HTML) connects to."""
        url = attr(page, "sse-connect")
        headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
        resp = await self.client.get(url, headers=headers)
        assert resp.status == 200, await resp.text()
        assert resp.headers["Content-Type"] == "text/event-stream"
        reader = SseReader(resp)
        hello = await reader.next(skip_hello=False)
        assert hello.event == "hello"
        return reader

    async def identify(self, msisdn: str, *, key: str = DEMO_KEY) -> ClientResponse:
        """POST an identification request as a messenger."""
        return await self.client.post(
            IR_PATH.format(operator="alfa"),
            json={"msisdn": msisdn},
            headers={"Authorization": f"Bearer {key}"},
        )

    async def admin(self, method: str, path: str, json: Any = None) -> Any:
        """Call the admin API (the other door) and expect success."""
        resp = await self.client.request(
            method,
            f"/admin/v1{path}",
            json=json,
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        )
        assert resp.status < 300, await resp.text()
        return None if resp.status == 204 else await resp.json()


async def demo_console(aiohttp_client: AiohttpClient, db_path: Path) -> Console:
    """A console on the demo admin token, signed in by its first page."""
    console = Console(await aiohttp_client(app_for(db_path)))
    await console.page("/ui/")
    return console


@dataclass(frozen=True)
class SseEvent:
    """One server-sent event."""

    event: str
    data: str
    id: str | None


class SseReader:
    """Reads server-sent events, each within a bounded wait."""

    def __init__(self, resp: ClientResponse) -> None:
        self.resp = resp
        self.last_id: str | None = None

    async def next(self, *, skip_hello: bool = True) -> SseEvent:
        """The next event (comments and, by default, the greeting skipped)."""
        async with asyncio.timeout(WAIT_SECONDS):
            while True:
                event = await self._read_one()
                if skip_hello and event.event == "hello":
                    continue
                return event

    async def until(self, name: str) -> SseEvent:
        """The next event called ``name``, skipping others."""
        async with asyncio.timeout(WAIT_SECONDS):
            while True:
                event = await self.next()
                if event.event == name:
                    return event

    async def _read_one(self) -> SseEvent:
        name, ident = "message", None
        data: list[str] = []
        while True:
            raw = await self.resp.content.readline()
            if not raw:
                raise EOFError("the stream ended")
            line = raw.decode().rstrip("\r\n")
            if not line:
                if data or name != "message":
                    if ident is not None:
                        self.last_id = ident
                    return SseEvent(name, "\n".join(data), ident)
                continue
            if line.startswith(":"):
                continue
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)
            elif field == "id":
                ident = value

    def close(self) -> None:
        """Drop the connection."""
        self.resp.close()
