"""The pytest plugin and the in-process server handle behind it."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from standardwebhooks import Webhook

from operator_sim.testing import OperatorSim, SimCallError
from operator_sim.wire import IdentificationAnsweredEvent, RuleSpec

pytest_plugins = ["pytester"]

GUIDE = Path(__file__).resolve().parent.parent / "docs/testing.md"
PRESENT = "+79161110001"


def readme_example() -> str:
    """The plugin example of the testing guide, as a test file."""
    text = GUIDE.read_text(encoding="utf-8")
    block = re.search(
        r"<!-- plugin-example:start -->\n```python\n(.*?)```\n<!-- plugin-example:end -->",
        text,
        re.DOTALL,
    )
    assert block is not None, "docs/testing.md lost its plugin example"
    return block.group(1)


def test_the_readme_example_passes_under_pytester(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_example=readme_example())
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=1)


def test_opsim_fails_a_test_whose_expectation_is_wrong(pytester: pytest.Pytester) -> None:
    # The fixture is really driving a server: a wrong expectation fails.
    pytester.makepyfile(
        test_wrong="""
import pytest

@pytest.mark.asyncio
async def test_wrong(opsim):
    await opsim.identify("+79161234567", "beta")
    assert await opsim.count_requests() == 2
"""
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(failed=1)


def test_the_plugin_is_registered_by_entry_point(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--fixtures", "-p", "no:cacheprovider")
    # A bare directory has no conftest: the fixtures can only come from the entry point.
    result.stdout.fnmatch_lines(
        ["*opsim *", "*fresh operator-sim per test*", "*opsim_server*", "*own thread*"]
    )


NO_ASYNCIO = ("-p", "no:asyncio", "-p", "no:aiohttp", "-p", "no:cacheprovider")

SYNC_SUITE = """
import threading
import time

import requests

IR = "/operators/alfa/v1/identification-requests"


def test_a_blocking_client_under_plain_pytest(opsim_server, request):
    assert not request.config.pluginmanager.has_plugin("asyncio")
    headers = opsim_server.messenger_headers()
    created = requests.post(
        opsim_server.base_url + IR, json={"msisdn": "+79000000009"}, headers=headers, timeout=10
    )
    assert created.status_code == 201, created.text
    assert created.json()["status"] == "pending"
    opsim_server.advance("PT5M")
    fetched = requests.get(
        f"{opsim_server.base_url}{IR}/{created.json()['id']}", headers=headers, timeout=10
    )
    assert fetched.json()["result"] == "present"
    assert opsim_server.count_requests() == 1


def test_the_previous_server_left_nothing_running():
    deadline = time.monotonic() + 5
    while threading.active_count() > 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [t.name for t in threading.enumerate()] == ["MainThread"]
"""


def test_opsim_server_serves_sync_tests_without_an_asyncio_plugin(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_sync=SYNC_SUITE)
    result = pytester.runpytest_subprocess(*NO_ASYNCIO, "-q")
    result.assert_outcomes(passed=2)


def test_opsim_server_fails_a_test_whose_expectation_is_wrong(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_wrong="""
def test_wrong(opsim_server):
    opsim_server.identify("+79161234567", "beta")
    assert opsim_server.count_requests() == 2
"""
    )
    result = pytester.runpytest_subprocess(*NO_ASYNCIO, "-q")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*assert 1 == 2*"])


async def test_each_test_gets_a_fresh_server_on_loopback(opsim: OperatorSim) -> None:
    assert opsim.base_url.startswith("http://127.0.0.1:")
    assert opsim.db_path.exists()
    assert await opsim.count_requests() == 0
    assert (await opsim.clock()).mode == "manual"


async def test_handle_helpers_drive_the_whole_flow(opsim: OperatorSim) -> None:
    await opsim.add_subscriber(PRESENT, "beta")
    rule = await opsim.add_rule(
        RuleSpec.model_validate(
            {"id": "slow", "match": {"msisdn": PRESENT}, "action": {"type": "answer", "delay": 60}}
        )
    )
    assert rule.source == "runtime"
    pending = await opsim.identify(PRESENT, "beta")
    assert pending.status == "pending"
    advanced = await opsim.advance(timedelta(minutes=1))
    assert advanced.fired >= 1
    [entry] = await opsim.requests(msisdn=PRESENT, messenger_id=opsim.messenger_id)
    assert (entry.status, entry.result, entry.rule_id) == ("answered", "present", "slow")
    assert [r.hits for r in await opsim.rules() if r.id == "slow"] == [1]
    await opsim.delete_rule("slow")
    assert "slow" not in {r.id for r in await opsim.rules()}


async def test_messengers_are_separate_and_reset_separately(opsim: OperatorSim) -> None:
    other = await opsim.register_messenger("other-suite")
    await opsim.identify(PRESENT, "beta")
    await opsim.identify(PRESENT, "beta", key=other.api_key)
    await opsim.reset_messenger()
    assert await opsim.count_requests(messenger_id=opsim.messenger_id) == 0
    assert await opsim.count_requests(messenger_id="other-suite") == 1
    await opsim.reset()
    assert await opsim.count_requests() == 0


async def test_failed_calls_raise_with_status_and_body(opsim: OperatorSim) -> None:
    with pytest.raises(SimCallError) as caught:
        await opsim.delete_rule("no-such-rule")
    assert caught.value.status == 404
    assert "not_found" in caught.value.body


async def test_the_handle_works_without_pytest_fixtures(tmp_path: Path) -> None:
    async with OperatorSim(db_path=tmp_path / "own.db", seed=5, journal_cap=2) as sim:
        for _ in range(3):
            await sim.identify("+79000000001", "alfa")
        assert await sim.count_requests() == 2
        url = sim.base_url
    assert url.startswith("http://127.0.0.1:")


async def _routes(opsim: OperatorSim) -> set[str]:
    async with opsim.session.get("/openapi.json") as resp:
        return set((await resp.json())["paths"])


async def test_terminate_helper_ends_the_contract(opsim: OperatorSim) -> None:
    if "/admin/v1/subscribers/{msisdn}/terminate" not in await _routes(opsim):
        pytest.skip("POST /admin/v1/subscribers/{msisdn}/terminate is not served yet")
    await opsim.add_subscriber(PRESENT, "beta")
    result = await opsim.terminate(PRESENT)
    assert (result.msisdn, result.status) == (PRESENT, "terminated")
    assert (await opsim.identify(PRESENT, "beta")).result == "absent"


async def test_port_helper_moves_the_number(opsim: OperatorSim) -> None:
    if "/admin/v1/subscribers/{msisdn}/port" not in await _routes(opsim):
        pytest.skip("POST /admin/v1/subscribers/{msisdn}/port is not served yet")
    await opsim.add_subscriber(PRESENT, "beta")
    result = await opsim.port(PRESENT, "gamma")
    assert result.operator_id == "gamma"
    assert (await opsim.identify(PRESENT, "gamma")).result == "present"
    assert (await opsim.identify(PRESENT, "beta")).result == "absent"


AiohttpServer = Callable[..., Awaitable[TestServer]]


class Hooks:
    """Webhooks received on loopback: (headers, body) in arrival order."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append(
            ({k.lower(): v for k, v in request.headers.items()}, await request.read())
        )
        return web.Response(status=204)


@pytest.fixture
async def hooks(aiohttp_server: AiohttpServer) -> Hooks:
    received = Hooks()
    app = web.Application()
    app.router.add_post("/hook", received.handle)
    server = await aiohttp_server(app)
    received.url = str(server.make_url("/hook"))
    return received


def _verified(secret: str, received: tuple[dict[str, str], bytes]) -> Any:
    headers, body = received
    return Webhook(secret).verify(body, headers)


async def test_a_webhook_url_given_at_start_gets_events_signed_with_the_exposed_secret(
    hooks: Hooks, tmp_path: Path
) -> None:
    async with OperatorSim(db_path=tmp_path / "hooked.db", webhook_url=hooks.url) as sim:
        assert sim.webhook_secret.startswith("whsec_")
        request = await sim.identify("+79000000001", "alfa")
        await sim.advance(0)
    [received] = hooks.received
    event = IdentificationAnsweredEvent.model_validate(_verified(sim.webhook_secret, received))
    assert (event.data.id, event.data.result) == (request.id, "present")


async def test_set_webhook_url_points_the_messengers_webhooks(
    opsim: OperatorSim, hooks: Hooks
) -> None:
    messenger = await opsim.set_webhook_url(hooks.url)
    assert (messenger.id, messenger.webhook_url) == (opsim.messenger_id, hooks.url)
    await opsim.identify("+79000000001", "alfa")
    await opsim.advance(0)
    [received] = hooks.received
    assert _verified(opsim.webhook_secret, received)["type"] == "identification.answered"
    assert (await opsim.set_webhook_url(None)).webhook_url is None
