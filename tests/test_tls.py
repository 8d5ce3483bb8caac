"""HTTPS and mTLS: `serve --tls-*`, https webhooks, and TLS in the library and the test double.

Every certificate comes from a throwaway authority (trustme) made by the test.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import trustme
from aiohttp import web
from standardwebhooks import Webhook

from operator_sim.messenger import OperatorClient
from operator_sim.messenger.errors import OperatorClientError
from operator_sim.server.tls import server_context
from operator_sim.testing import OperatorSim, ThreadedOperatorSim
from tests.conftest import ADMIN_TOKEN, DEMO_KEY

pytest_plugins = ["pytester"]

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
MESSENGER = {"Authorization": f"Bearer {DEMO_KEY}"}
START_TIMEOUT = 15  # a bound for a slow CI machine, not a performance claim


@dataclass(frozen=True)
class Pki:
    """A test authority, the server's certificate files, and client contexts."""

    ca: trustme.CA
    ca_pem: Path
    cert_pem: Path
    key_pem: Path
    server_cert: trustme.LeafCert
    client_cert: trustme.LeafCert

    def client(self, *, with_cert: bool = False) -> ssl.SSLContext:
        """A client context trusting the authority, with a client certificate if asked."""
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        if with_cert:
            self.client_cert.configure_cert(context)
        return context

    def server(self, *, client_ca: bool = False) -> ssl.SSLContext:
        """The server's context, asking for client certificates if asked."""
        return server_context(self.cert_pem, self.key_pem, self.ca_pem if client_ca else None)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    where = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    server_cert = ca.issue_cert("127.0.0.1", "localhost")
    ca.cert_pem.write_to_path(str(where / "ca.pem"))
    server_cert.cert_chain_pems[0].write_to_path(str(where / "cert.pem"))
    for blob in server_cert.cert_chain_pems[1:]:
        blob.write_to_path(str(where / "cert.pem"), append=True)
    server_cert.private_key_pem.write_to_path(str(where / "key.pem"))
    return Pki(
        ca=ca,
        ca_pem=where / "ca.pem",
        cert_pem=where / "cert.pem",
        key_pem=where / "key.pem",
        server_cert=server_cert,
        client_cert=ca.issue_cert("messenger.test"),
    )


# --- operator-sim serve ---------------------------------------------------------------


@contextlib.asynccontextmanager
async def serve(*args: str, cwd: Path) -> AsyncIterator[str]:
    """`python -m operator_sim serve ARGS`; yields the URL of its listening line."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "operator_sim",
        "serve",
        "--port",
        "0",
        "--db",
        str(cwd / "tls.db"),
        *args,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "OPERATOR_SIM_LOG_FORMAT": "json"},
    )
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(START_TIMEOUT):
            line = (await proc.stdout.readline()).decode().strip()
        assert line.startswith("listening on "), line
        yield line.removeprefix("listening on ")
    finally:
        if proc.returncode is None:
            proc.terminate()
        await proc.communicate()


async def _status(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str], context: Any
) -> tuple[int, Any]:
    async with session.get(url, headers=headers, ssl=context) as resp:
        return resp.status, await resp.json(content_type=None)


async def test_serve_with_a_certificate_listens_on_https(pki: Pki, tmp_path: Path) -> None:
    async with (
        serve("--tls-cert", str(pki.cert_pem), "--tls-key", str(pki.key_pem), cwd=tmp_path) as url,
        aiohttp.ClientSession() as session,
    ):
        assert url.startswith("https://127.0.0.1:")
        assert await _status(session, f"{url}/readyz", {}, pki.client()) == (
            200,
            {"status": "ready"},
        )
        routed = await _status(session, f"{url}/v1/routing/+79000000001", MESSENGER, pki.client())
        assert routed[0] == 200
        # Plain HTTP on the same port is not spoken, and an untrusting client refuses it.
        with pytest.raises(aiohttp.ClientError):
            await _status(session, url.replace("https", "http") + "/readyz", {}, None)
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await _status(session, f"{url}/readyz", {}, ssl.create_default_context())


async def test_with_a_client_ca_messenger_calls_need_a_certificate_and_the_admin_api_none(
    pki: Pki, tmp_path: Path
) -> None:
    async with (
        serve(
            "--tls-cert",
            str(pki.cert_pem),
            "--tls-key",
            str(pki.key_pem),
            "--tls-client-ca",
            str(pki.ca_pem),
            cwd=tmp_path,
        ) as url,
        aiohttp.ClientSession() as session,
    ):
        routing = f"{url}/v1/routing/+79000000001"
        status, problem = await _status(session, routing, MESSENGER, pki.client())
        assert (status, problem["code"]) == (401, "unauthorized")
        status, body = await _status(session, routing, MESSENGER, pki.client(with_cert=True))
        assert (status, body["operator_id"]) == (200, "alfa")
        # The admin API and the service endpoints need no client certificate.
        assert (await _status(session, f"{url}/admin/v1/clock", ADMIN, pki.client()))[0] == 200
        assert (await _status(session, f"{url}/healthz", {}, pki.client()))[0] == 200
        # A certificate from another authority does not get past the handshake.
        stranger = pki.client()
        trustme.CA().issue_cert("intruder.test").configure_cert(stranger)
        with pytest.raises(aiohttp.ClientError):
            await _status(session, routing, MESSENGER, stranger)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--tls-cert", "cert.pem"], "tls_cert and tls_key go together"),
        (["--tls-key", "key.pem"], "tls_cert and tls_key go together"),
        (["--tls-client-ca", "ca.pem"], "tls_client_ca needs tls_cert"),
        (["--tls-cert", "missing.pem", "--tls-key", "missing.pem"], "cannot load"),
        (["--webhook-ca", "missing.pem"], "--webhook-ca missing.pem: cannot load"),
    ],
)
async def test_incomplete_or_unreadable_tls_options_are_refused(
    tmp_path: Path, args: list[str], says: str
) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "operator_sim",
        "serve",
        "--port",
        "0",
        "--db",
        str(tmp_path / "x.db"),
        *args,
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), START_TIMEOUT)
    assert proc.returncode == 2, (out, err)
    assert says in err.decode()
    assert b"listening" not in out


# --- the test double and the messenger library ------------------------------------------


async def test_the_test_double_serves_mtls_and_its_helpers_carry_the_client_certificate(
    pki: Pki, tmp_path: Path
) -> None:
    async with OperatorSim(
        db_path=tmp_path / "d.db",
        ssl=pki.server(client_ca=True),
        client_ssl=pki.client(with_cert=True),
    ) as sim:
        assert sim.base_url.startswith("https://127.0.0.1:")
        request = await sim.identify("+79000000001", "alfa")
        assert request.result == "present"
        async with aiohttp.ClientSession() as session:
            url = f"{sim.base_url}/v1/routing/+79000000001"
            status, problem = await _status(session, url, sim.messenger_headers(), pki.client())
            assert (status, problem["code"]) == (401, "unauthorized")


async def test_the_messenger_library_speaks_to_an_mtls_operator_with_its_context(
    pki: Pki, tmp_path: Path
) -> None:
    async with OperatorSim(db_path=tmp_path / "d.db", ssl=pki.server(client_ca=True)) as sim:
        async with OperatorClient(
            sim.base_url, sim.messenger_key, ssl=pki.client(with_cert=True)
        ) as client:
            assert (await client.route("+79000000001")).operator_id == "alfa"
        async with OperatorClient(sim.base_url, sim.messenger_key) as untrusting:
            with pytest.raises(OperatorClientError):
                await untrusting.route("+79000000001")


async def test_a_messenger_identifies_over_https_with_its_ssl_option(
    pki: Pki, tmp_path: Path
) -> None:
    from operator_sim.messenger import Messenger

    async with OperatorSim(db_path=tmp_path / "d.db", ssl=pki.server()) as sim:
        async with Messenger(
            sim.base_url,
            sim.messenger_key,
            db_path=tmp_path / "messenger.db",
            ssl=pki.client(),
            poll_wait=1,
        ) as messenger:
            outcome = await messenger.identify("user-1", "+79000000001")
        assert outcome.identified, outcome


def test_the_threaded_double_serves_https(pki: Pki, tmp_path: Path) -> None:
    import requests

    with ThreadedOperatorSim(db_path=tmp_path / "t.db", ssl=pki.server()) as sim:
        assert sim.base_url.startswith("https://")
        with pki.ca.cert_pem.tempfile() as ca_file:
            resp = requests.get(
                f"{sim.base_url}/v1/routing/+79000000001",
                headers=sim.messenger_headers(),
                verify=ca_file,
                timeout=10,
            )
        assert resp.status_code == 200, resp.text
        assert sim.count_requests() == 0


def test_the_fixtures_take_an_ssl_context_through_opsim_options(
    pytester: pytest.Pytester, pki: Pki
) -> None:
    pytester.makeconftest(
        f"""
import ssl

import pytest

from operator_sim.server.tls import server_context


@pytest.fixture
def opsim_options():
    client = ssl.create_default_context(cafile={str(pki.ca_pem)!r})
    return {{
        "ssl": server_context({str(pki.cert_pem)!r}, {str(pki.key_pem)!r}),
        "client_ssl": client,
    }}
"""
    )
    pytester.makepyfile(
        test_tls="""
import pytest


@pytest.mark.asyncio
async def test_async(opsim):
    assert opsim.base_url.startswith("https://127.0.0.1:")
    assert (await opsim.identify("+79000000001", "alfa")).result == "present"


def test_blocking(opsim_server):
    assert opsim_server.base_url.startswith("https://127.0.0.1:")
    assert opsim_server.identify("+79000000001", "alfa").result == "present"
"""
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=2)


# --- https webhooks ---------------------------------------------------------------------


@dataclass
class HttpsReceiver:
    """A webhook receiver on loopback over HTTPS."""

    url: str
    received: list[tuple[dict[str, str], bytes]]


@pytest.fixture
async def https_receiver(pki: Pki) -> AsyncIterator[HttpsReceiver]:
    received: list[tuple[dict[str, str], bytes]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append(({k.lower(): v for k, v in request.headers.items()}, await request.read()))
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    pki.server_cert.configure_cert(context)
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    try:
        port = runner.addresses[0][1]
        yield HttpsReceiver(f"https://127.0.0.1:{port}/hook", received)
    finally:
        await runner.cleanup()


async def test_webhooks_reach_an_https_receiver_trusted_through_webhook_ca(
    pki: Pki, https_receiver: HttpsReceiver, tmp_path: Path
) -> None:
    async with OperatorSim(
        db_path=tmp_path / "w.db", webhook_url=https_receiver.url, webhook_ca=pki.ca_pem
    ) as sim:
        await sim.identify("+79000000001", "alfa")
        await sim.advance(0)
        [(headers, body)] = https_receiver.received
        event = Webhook(sim.webhook_secret).verify(body, headers)
        assert event["type"] == "identification.answered"


async def test_without_webhook_ca_an_unknown_authority_is_not_trusted(
    https_receiver: HttpsReceiver, tmp_path: Path
) -> None:
    async with OperatorSim(db_path=tmp_path / "w.db", webhook_url=https_receiver.url) as sim:
        await sim.identify("+79000000001", "alfa")
        await sim.advance(0)
        assert https_receiver.received == []
        async with sim.session.get(
            "/admin/v1/deliveries",
            params={"messenger_id": sim.messenger_id},
            headers={"Authorization": f"Bearer {sim.admin_token}"},
        ) as resp:
            deliveries = (await resp.json())["deliveries"]
        [attempt] = deliveries[0]["webhook"]["attempts"]
        assert attempt["status"] is None
        assert "certificate" in attempt["error"].lower()
