"""An in-process operator-sim for tests: start it, drive it over HTTP, stop it.

This module never imports pytest; :mod:`operator_sim.testing.plugin` is the thin pytest
layer on top. :class:`OperatorSim` serves on the event loop of the code that starts it,
so it is for asyncio code (an aiohttp or httpx.AsyncClient messenger)::

    async with OperatorSim() as sim:
        await sim.add_rule({"id": "slow", "action": {"type": "answer", "delay": "PT5M"}})
        ...  # point the messenger under test at sim.base_url with sim.messenger_key

A blocking client (requests, httpx.Client, a Django or Flask backend) would hold that
loop while it waits for the answer and time out: use
:class:`operator_sim.testing.ThreadedOperatorSim`, the same server on a thread of its own.

Every helper goes through the public HTTP API (the admin API with a random admin
token), so a test sees exactly what a messenger or a CI script would.

Given an ``ssl`` context (a server certificate; with ``verify_mode`` set and an authority
loaded, client certificates too), the server speaks HTTPS: ``base_url`` is
``https://127.0.0.1:PORT``, and messenger calls without a client certificate get ``401``
when the context asks for one. The helpers connect with ``client_ssl``; without it they
do not verify the certificate of the server they started themselves.
"""

from __future__ import annotations

import asyncio
import math
import secrets
import tempfile
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from ssl import SSLContext
from types import TracebackType
from typing import Any, TypeVar

import aiohttp
from aiohttp import web
from pydantic import BaseModel, SecretStr

from operator_sim.wire import (
    ClockAdvanced,
    ClockView,
    IdentificationRequest,
    JournalCount,
    JournalEntry,
    JournalPage,
    KeyRotated,
    LifecycleResult,
    Messenger,
    MessengerCreated,
    PhoneInbox,
    PhoneMessage,
    PhoneOtp,
    Rule,
    RuleList,
    RuleSpec,
    SimSwapRecorded,
    SmsMessage,
    SubscriberIn,
    SubscribersUpserted,
    WebhookSecretRotated,
    format_timestamp,
)

__all__ = ["OperatorSim", "SimCallError"]

M = TypeVar("M", bound=BaseModel)

DEFAULT_MESSENGER_ID = "test-messenger"


class SimCallError(Exception):
    """An HTTP call to the simulator did not get the status the helper expects."""

    def __init__(self, method: str, path: str, status: int, body: str) -> None:
        super().__init__(f"{method} {path} answered {status}: {body[:500]}")
        self.method = method
        self.path = path
        self.status = status
        self.body = body


def _duration(by: timedelta | float | str) -> float | str:
    if isinstance(by, timedelta):
        return by.total_seconds()
    return by


def _journal_query(
    *,
    messenger_id: str | None,
    msisdn: str | None,
    operator_id: str | None,
    since: datetime | None,
    until: datetime | None,
) -> dict[str, str]:
    query = {
        "messenger_id": messenger_id,
        "msisdn": msisdn,
        "operator_id": operator_id,
        "since": None if since is None else format_timestamp(since),
        "until": None if until is None else format_timestamp(until),
    }
    return {k: v for k, v in query.items() if v is not None}


class OperatorSim:
    """A fresh operator-sim on a free loopback port, a temporary database and a manual clock.

    On start it registers a messenger (``messenger_id``, ``messenger_key``,
    ``webhook_secret``) for the code under test, with ``webhook_url`` (and
    ``webhook_secret``, ``whsec_...``) when given. ``ssl`` serves HTTPS with that server
    context, ``client_ssl`` is the context the helpers connect with, and ``webhook_ca``
    (a PEM file) is trusted for https webhook receivers. Stop it with ``async with`` or
    :meth:`stop`.
    """

    def __init__(
        self,
        *,
        fixture: Path | None = None,
        db_path: Path | None = None,
        clock: str = "manual",
        seed: int | None = None,
        journal_cap: int | None = None,
        messenger_id: str = DEFAULT_MESSENGER_ID,
        webhook_url: str | None = None,
        retention: timedelta | float | str = 0,
        webhook_secret: str | None = None,
        ssl: SSLContext | None = None,
        client_ssl: SSLContext | None = None,
        webhook_ca: Path | None = None,
    ) -> None:
        self._ssl = ssl
        self._client_ssl = client_ssl
        self._webhook_ca = webhook_ca
        self._fixed_secret = webhook_secret
        self._fixture = fixture
        self._db_path = db_path
        self._clock = clock
        self._seed = seed
        self._journal_cap = journal_cap
        # Nothing is pruned by default: a test that advances the clock past a week still
        # sees what it made.
        self._retention = retention
        self.messenger_id = messenger_id
        """The messenger registered for the code under test."""
        self._webhook_url = webhook_url
        self.admin_token = "osim-admin-" + secrets.token_urlsafe(24)
        """The admin token of this server (random per server)."""
        self.messenger_key = ""
        """The API key of ``messenger_id`` (set on start, changed by ``rotate_key``)."""
        self.webhook_secret = ""
        """The secret that signs ``messenger_id``'s webhooks, ``whsec_...`` (set on start,
        changed by ``rotate_webhook_secret``)."""
        self.base_url = ""
        """``http://127.0.0.1:PORT``, or ``https://`` with ``ssl`` (set on start)."""
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    # --- lifecycle -------------------------------------------------------------------

    async def __aenter__(self) -> OperatorSim:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def db_path(self) -> Path:
        """The database file the server uses."""
        if self._db_path is None:
            raise RuntimeError("the server is not started")
        return self._db_path

    async def start(self) -> None:
        """Create the app, serve it on 127.0.0.1 on a free port, register the messenger."""
        # Imported here so that importing the plugin costs nothing until a server starts.
        from operator_sim.server import ProblemRunner, create_app
        from operator_sim.settings import Settings

        if self._db_path is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="operator-sim-")
            self._db_path = Path(self._tmp.name) / "operator-sim.db"
        options: dict[str, Any] = {
            "db": self._db_path,
            "fixture": self._fixture,
            "clock": self._clock,
            "admin_token": SecretStr(self.admin_token),
            "host": "127.0.0.1",
            "port": 0,
            "seed": self._seed,
            "retention": _duration(self._retention),
        }
        if self._journal_cap is not None:
            options["journal_cap"] = self._journal_cap
        if self._webhook_ca is not None:
            options["webhook_ca"] = self._webhook_ca
        app = create_app(Settings(**options))
        self._runner = ProblemRunner(app, access_log=None, handle_signals=False)
        try:
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self._ssl)
            await site.start()
            port = self._runner.addresses[0][1]
            scheme = "http" if self._ssl is None else "https"
            self.base_url = f"{scheme}://127.0.0.1:{port}"
            # Without client_ssl the helpers trust the server they started themselves.
            verify: SSLContext | bool = self._client_ssl or self._ssl is None
            self._session = aiohttp.ClientSession(
                base_url=self.base_url, connector=aiohttp.TCPConnector(ssl=verify)
            )
            created = await self.register_messenger(
                self.messenger_id,
                webhook_url=self._webhook_url,
                webhook_secret=self._fixed_secret,
            )
        except BaseException:
            await self.stop()
            raise
        self.messenger_key = created.api_key
        self.webhook_secret = created.webhook_secret

    async def stop(self) -> None:
        """Stop serving and delete the temporary database."""
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    # --- HTTP --------------------------------------------------------------------------

    @property
    def session(self) -> aiohttp.ClientSession:
        """An HTTP session bound to ``base_url`` (no credentials attached)."""
        if self._session is None:
            raise RuntimeError("the server is not started")
        return self._session

    def messenger_headers(self, key: str | None = None) -> dict[str, str]:
        """``Authorization`` for the messenger under test (or another key)."""
        return {"Authorization": f"Bearer {key or self.messenger_key}"}

    async def _call(
        self,
        method: str,
        path: str,
        *,
        expect: int,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> str:
        hdrs = dict(headers or {"Authorization": f"Bearer {self.admin_token}"})
        async with self.session.request(
            method, path, json=json, params=params, headers=hdrs
        ) as resp:
            body = await resp.text()
            if resp.status != expect:
                raise SimCallError(method, path, resp.status, body)
            return body

    async def _get(
        self, path: str, *, params: Mapping[str, str], headers: Mapping[str, str]
    ) -> tuple[int, str]:
        async with self.session.get(path, params=params, headers=headers) as resp:
            return resp.status, await resp.text()

    async def _admin(
        self,
        method: str,
        path: str,
        model: type[M],
        *,
        expect: int = 200,
        json: Any = None,
        params: Mapping[str, str] | None = None,
    ) -> M:
        body = await self._call(method, f"/admin/v1{path}", expect=expect, json=json, params=params)
        return model.model_validate_json(body)

    # --- setup -------------------------------------------------------------------------

    async def register_messenger(
        self,
        messenger_id: str,
        *,
        name: str | None = None,
        webhook_url: str | None = None,
        webhook_secret: str | None = None,
    ) -> MessengerCreated:
        """Register another messenger; returns its API key and webhook secret (``whsec_...``,
        random unless given)."""
        body: dict[str, Any] = {"id": messenger_id, "name": name or messenger_id}
        if webhook_url is not None:
            body["webhook_url"] = webhook_url
        if webhook_secret is not None:
            body["webhook_secret"] = webhook_secret
        return await self._admin("POST", "/messengers", MessengerCreated, expect=201, json=body)

    async def rotate_key(
        self, *, grace: timedelta | float | str | None = None, messenger_id: str | None = None
    ) -> KeyRotated:
        """Give a messenger a new API key (default: the one under test, whose
        ``messenger_key`` becomes the new key); the old one works for ``grace`` of real
        time (seconds, a timedelta or ``"PT1H"``), or stops at once."""
        rotated = await self._admin(
            "POST",
            f"/messengers/{messenger_id or self.messenger_id}/rotate-key",
            KeyRotated,
            json={} if grace is None else {"grace": _duration(grace)},
        )
        if messenger_id in (None, self.messenger_id):
            self.messenger_key = rotated.api_key
        return rotated

    async def rotate_webhook_secret(
        self, *, grace: timedelta | float | str | None = None, messenger_id: str | None = None
    ) -> WebhookSecretRotated:
        """Give a messenger a new webhook secret (default: the one under test, whose
        ``webhook_secret`` becomes the new one); webhooks carry the old secret's signature
        too for ``grace`` of real time, or stop at once."""
        rotated = await self._admin(
            "POST",
            f"/messengers/{messenger_id or self.messenger_id}/rotate-webhook-secret",
            WebhookSecretRotated,
            json={} if grace is None else {"grace": _duration(grace)},
        )
        if messenger_id in (None, self.messenger_id):
            self.webhook_secret = rotated.webhook_secret
        return rotated

    async def set_webhook_url(
        self, url: str | None, *, messenger_id: str | None = None
    ) -> Messenger:
        """Set a messenger's webhook URL, ``None`` removes it (default: the one under test)."""
        return await self._admin(
            "PATCH",
            f"/messengers/{messenger_id or self.messenger_id}",
            Messenger,
            json={"webhook_url": url},
        )

    async def add_subscribers(
        self, *subscribers: SubscriberIn | Mapping[str, Any]
    ) -> SubscribersUpserted:
        """Upsert subscriber records (``data_complete`` follows from the documents given)."""
        payload = [
            s.model_dump(mode="json", exclude_none=True) if isinstance(s, SubscriberIn) else s
            for s in subscribers
        ]
        return await self._admin(
            "POST", "/subscribers", SubscribersUpserted, json={"subscribers": payload}
        )

    async def add_subscriber(
        self,
        msisdn: str,
        operator_id: str,
        *,
        complete: bool = True,
        status: str = "active",
    ) -> SubscribersUpserted:
        """One subscriber: by default active with complete data, so answered ``present``."""
        return await self.add_subscribers(
            {
                "msisdn": msisdn,
                "operator_id": operator_id,
                "full_name": "Тестов Тест Тестович",
                "birth_date": "1990-01-01",
                "passport": "4500 000000",
                "data_complete": complete,
                "status": status,
            }
        )

    async def add_rule(self, rule: RuleSpec | Mapping[str, Any]) -> Rule:
        """Add a fault rule after the existing ones."""
        payload = rule.model_dump(mode="json") if isinstance(rule, RuleSpec) else rule
        return await self._admin("POST", "/rules", Rule, expect=201, json=payload)

    async def delete_rule(self, rule_id: str) -> None:
        """Delete a fault rule."""
        await self._call("DELETE", f"/admin/v1/rules/{rule_id}", expect=204)

    async def rules(self) -> list[Rule]:
        """Every rule with its source and hit count."""
        return (await self._admin("GET", "/rules", RuleList)).rules

    # --- time and lifecycle -----------------------------------------------------------

    async def advance(self, by: timedelta | float | str) -> ClockAdvanced:
        """Move the manual clock forward (seconds, a timedelta or ``"PT20M"``); due work fires."""
        return await self._admin(
            "POST", "/clock/advance", ClockAdvanced, json={"by": _duration(by)}
        )

    async def clock(self) -> ClockView:
        """The simulation clock."""
        return await self._admin("GET", "/clock", ClockView)

    async def terminate(self, msisdn: str) -> LifecycleResult:
        """End the subscriber's contract (notifies the messengers holding its codes)."""
        return await self._admin("POST", f"/subscribers/{msisdn}/terminate", LifecycleResult)

    async def port(self, msisdn: str, to_operator_id: str) -> LifecycleResult:
        """Port the number to another operator (notifies the messengers holding its codes)."""
        return await self._admin(
            "POST",
            f"/subscribers/{msisdn}/port",
            LifecycleResult,
            json={"to_operator_id": to_operator_id},
        )

    async def reset(self) -> None:
        """Reset the whole server to the fixture's state."""
        await self._call("POST", "/admin/v1/reset", expect=204)

    async def reset_messenger(self, messenger_id: str | None = None) -> None:
        """Reset one messenger's state (by default the one under test)."""
        await self._call(
            "POST", f"/admin/v1/messengers/{messenger_id or self.messenger_id}/reset", expect=204
        )

    # --- the messenger side and the journal --------------------------------------------

    async def identify(
        self, msisdn: str, operator_id: str, *, key: str | None = None
    ) -> IdentificationRequest:
        """POST an identification request as the messenger under test; expects 201."""
        body = await self._call(
            "POST",
            f"/operators/{operator_id}/v1/identification-requests",
            expect=201,
            json={"msisdn": msisdn},
            headers=self.messenger_headers(key),
        )
        return IdentificationRequest.model_validate_json(body)

    async def requests(
        self,
        *,
        messenger_id: str | None = None,
        msisdn: str | None = None,
        operator_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 1000,
    ) -> list[JournalEntry]:
        """Journal entries, newest first, filtered."""
        query = _journal_query(
            messenger_id=messenger_id,
            msisdn=msisdn,
            operator_id=operator_id,
            since=since,
            until=until,
        )
        query["limit"] = str(limit)
        return (await self._admin("GET", "/requests", JournalPage, params=query)).requests

    async def count_requests(
        self,
        *,
        messenger_id: str | None = None,
        msisdn: str | None = None,
        operator_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> int:
        """How many identification POSTs the journal holds for these filters."""
        query = _journal_query(
            messenger_id=messenger_id,
            msisdn=msisdn,
            operator_id=operator_id,
            since=since,
            until=until,
        )
        return (await self._admin("GET", "/requests/count", JournalCount, params=query)).count

    # --- SMS: the phones' inboxes and SIM swaps ------------------------------------------

    async def send_sms(self, to: str, text: str, *, key: str | None = None) -> SmsMessage:
        """Send an SMS as the messenger under test (or another key); expects 202."""
        body = await self._call(
            "POST",
            "/sms/v1/messages",
            expect=202,
            json={"to": to, "text": text},
            headers=self.messenger_headers(key),
        )
        return SmsMessage.model_validate_json(body)

    async def phone_messages(self, msisdn: str) -> list[PhoneMessage]:
        """Every message the phone received so far, oldest first, texts included."""
        messages: list[PhoneMessage] = []
        after: str | None = None
        while True:
            params = {"limit": "1000", **({"after": after} if after else {})}
            page = await self._admin("GET", f"/phones/{msisdn}/messages", PhoneInbox, params=params)
            messages += page.messages
            if len(page.messages) < 1000:
                return messages
            after = page.next_cursor

    async def wait_for_otp(
        self,
        msisdn: str,
        *,
        after: str | None = None,
        timeout: float = 180.0,  # noqa: ASYNC109 (on a manual clock: simulated seconds)
        step: float = 1.0,
    ) -> PhoneOtp:
        """The one-time code the phone received last (only a message sent after the SMS
        ``after``, an id, counts).

        On a manual clock it advances the clock ``step`` simulated seconds at a time until
        the message reaches the phone, at most ``timeout`` simulated seconds; on a running
        clock it long-polls for at most ``timeout`` real seconds. ``TimeoutError`` when no
        code comes.
        """
        params = {"after": after} if after else {}
        path = f"/admin/v1/phones/{msisdn}/otp"
        admin = {"Authorization": f"Bearer {self.admin_token}"}
        manual = (await self.clock()).mode == "manual"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        advanced = 0.0
        while True:
            wait = 0 if manual else max(1, min(60, math.ceil(deadline - loop.time())))
            status, body = await self._get(
                path, params=params, headers={**admin, "Prefer": f"wait={wait}"}
            )
            if status == 200:
                return PhoneOtp.model_validate_json(body)
            if status != 404:
                raise SimCallError("GET", path, status, body)
            if (advanced >= timeout) if manual else (loop.time() >= deadline):
                raise TimeoutError(f"no code reached {msisdn} within {timeout:g} s")
            if manual:
                await self.advance(step)
                advanced += step

    async def record_sim_swap(self, msisdn: str, *, at: datetime | None = None) -> SimSwapRecorded:
        """Record that the subscriber's SIM changed (now, simulation time, by default)."""
        body = {} if at is None else {"at": format_timestamp(at)}
        return await self._admin(
            "POST", f"/subscribers/{msisdn}/sim-swap", SimSwapRecorded, json=body
        )
