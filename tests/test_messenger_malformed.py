"""Whatever a broken operator answers, the Messenger refuses: never an identified user."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from operator_sim.messenger import (
    ApiError,
    InvalidResponse,
    Messenger,
    OperatorClient,
    Reason,
    TransportError,
)
from tests.conftest import Sim
from tests.messenger_support import (
    FakeOperator,
    FakeTime,
    Scripted,
    code_body,
    json_reply,
    make_messenger,
    request_body,
)

NUMBER = "+79000000001"


@pytest.fixture
async def fake_operator(aiohttp_server: Callable[..., Awaitable[TestServer]]) -> FakeOperator:
    """A scripted fake operator on loopback."""
    fake = FakeOperator()
    server = await aiohttp_server(fake.app())
    fake.url = str(server.make_url("/"))
    return fake


def _answered(**overrides: Any) -> dict[str, Any]:
    return request_body(**overrides)


def _without(field: str) -> dict[str, Any]:
    body = request_body()
    del body[field]
    return body


BROKEN_CREATES: dict[str, Scripted] = {
    "html_200": json_reply("<html><body>OK</body></html>", 200, "text/html"),
    "html_201_labelled_json": json_reply("<html><body>Created</body></html>", 201),
    "not_json": json_reply('{"id": "ir_1", "status": ', 201),
    "empty_body": json_reply("", 201),
    "json_array": json_reply([request_body()], 201),
    "missing_status": json_reply(_without("status"), 201),
    "missing_due_at": json_reply(_without("due_at"), 201),
    "missing_answered_at": json_reply(_without("answered_at"), 201),
    "other_msisdn": json_reply(request_body(msisdn="+79000000002"), 201),
    "other_operator": json_reply(request_body(operator_id="beta"), 201),
    "unknown_status": json_reply(request_body(status="maybe"), 201),
    "unknown_result": json_reply(request_body(result="probably"), 201),
    "answered_without_result": json_reply(request_body(result=None), 201),
    "answered_without_time": json_reply(request_body(answered_after=None), 201),
    "pending_with_result": json_reply(request_body(status="pending"), 201),
    "expired_with_present": json_reply(request_body(status="expired"), 201),
    "deadline_over_20_minutes": json_reply(request_body(deadline=timedelta(hours=2)), 201),
    "answered_before_received": json_reply(request_body(answered_after=timedelta(seconds=-5)), 201),
    "naive_timestamps": json_reply({**request_body(), "received_at": "2026-03-01T12:00:00"}, 201),
    "200_instead_of_201": json_reply(request_body(), 200),
    "redirect": web.Response(status=302, headers={"Location": "/elsewhere"}),
    "extra_personal_data": json_reply({**request_body(), "full_name": "Иванов Иван"}, 201),
}


async def _run(fake: FakeOperator, tmp_path: Path) -> Any:
    messenger = Messenger(fake.url, "key", db_path=tmp_path / "m.db", retry=FakeTime().policy())
    async with messenger:
        outcome = await messenger.identify("user", NUMBER)
        assert not await messenger.can_send("user")
        return outcome


@pytest.mark.parametrize("name", sorted(BROKEN_CREATES))
async def test_broken_request_resource_is_refused(
    fake_operator: FakeOperator, tmp_path: Path, name: str
) -> None:
    fake_operator.create = [BROKEN_CREATES[name]]
    outcome = await _run(fake_operator, tmp_path)
    assert not outcome.identified
    assert outcome.reason is Reason.INVALID_RESPONSE
    assert fake_operator.posted("identification-codes") == []


async def test_a_later_read_about_another_request_is_refused(
    fake_operator: FakeOperator, tmp_path: Path
) -> None:
    fake_operator.create = [
        json_reply(request_body(status="pending", result=None, answered_after=None))
    ]
    fake_operator.get = [json_reply(request_body(id_="ir_someone_else"), 200)]
    outcome = await _run(fake_operator, tmp_path)
    assert (outcome.identified, outcome.reason) == (False, Reason.INVALID_RESPONSE)
    assert fake_operator.posted("identification-codes") == []


async def test_a_late_present_from_a_fake_operator_is_refused(
    fake_operator: FakeOperator, tmp_path: Path
) -> None:
    fake_operator.create = [json_reply(request_body(answered_after=timedelta(minutes=25)))]
    outcome = await _run(fake_operator, tmp_path)
    assert (outcome.identified, outcome.reason) == (False, Reason.LATE_ANSWER)
    assert fake_operator.posted("identification-codes") == []


def _code_reply(**changes: str) -> Scripted:
    def reply(sent: dict[str, Any]) -> web.Response:
        body = {**code_body(sent["request_id"], sent["code"]), **changes}
        return json_reply(body, 201)

    return reply


@pytest.mark.parametrize(
    "reply",
    [
        _code_reply(code="some-other-code-123"),
        _code_reply(request_id="ir_other"),
        _code_reply(msisdn="+79000000002"),
        json_reply("<html>registered</html>", 201, "text/html"),
        json_reply({"ok": True}, 201),
        json_reply("", 204),
    ],
    ids=["other_code", "other_request", "other_msisdn", "html", "wrong_shape", "no_content"],
)
async def test_broken_code_registration_is_refused(
    fake_operator: FakeOperator, tmp_path: Path, reply: Scripted
) -> None:
    fake_operator.create = [json_reply(request_body())]
    fake_operator.codes = [reply]
    outcome = await _run(fake_operator, tmp_path)
    assert (outcome.identified, outcome.reason) == (False, Reason.INVALID_RESPONSE)
    assert outcome.code is None


async def test_a_well_formed_fake_operator_identifies(
    fake_operator: FakeOperator, tmp_path: Path
) -> None:
    # The control case: the same fake operator, answering correctly, identifies.
    fake_operator.create = [json_reply(request_body())]
    fake_operator.codes = [_code_reply()]
    messenger = Messenger(fake_operator.url, "key", db_path=tmp_path / "m.db")
    async with messenger:
        outcome = await messenger.identify("user", NUMBER)
        assert (outcome.identified, outcome.reason) == (True, Reason.PRESENT)


@pytest.mark.parametrize("body", ["not_json", "truncated", "wrong_shape", "empty"])
async def test_the_servers_malformed_fault_rule_is_refused(
    sim: Sim, tmp_path: Path, body: str
) -> None:
    await sim.admin_ok(
        "POST",
        "/rules",
        {
            "id": "broken",
            "match": {"msisdn": NUMBER},
            "action": {"type": "malformed", "body": body, "status": 200},
        },
    )
    async with make_messenger(sim, tmp_path / "m.db") as messenger:
        outcome = await messenger.identify("user", NUMBER)
        assert (outcome.identified, outcome.reason) == (False, Reason.INVALID_RESPONSE)
        assert not await messenger.can_send("user")


async def test_a_dropped_connection_is_retried_with_the_same_idempotency_key(
    fake_operator: FakeOperator,
) -> None:
    fake_operator.create = [None, json_reply({"title": "busy"}, 502), json_reply(request_body())]
    time = FakeTime()
    async with OperatorClient(fake_operator.url, "key", retry=time.policy()) as client:
        req = await client.create_request("alfa", NUMBER, idempotency_key="key-1")
    assert req.result == "present"
    keys = [h["Idempotency-Key"] for h, _ in fake_operator.posted("identification-requests")]
    assert keys == ["key-1"] * 3
    assert len(time.sleeps) == 2


async def test_retry_after_is_honoured_as_a_floor(fake_operator: FakeOperator) -> None:
    busy = web.Response(status=503, headers={"Retry-After": "7"})
    fake_operator.create = [busy, json_reply(request_body())]
    time = FakeTime()
    async with OperatorClient(fake_operator.url, "key", retry=time.policy()) as client:
        await client.create_request("alfa", NUMBER, idempotency_key="k")
    assert len(time.sleeps) == 1
    assert 7 <= time.sleeps[0] < 8


async def test_retries_stop_at_the_time_budget(fake_operator: FakeOperator) -> None:
    fake_operator.create = [
        web.Response(status=503, headers={"Retry-After": "4"}) for _ in range(9)
    ]
    time = FakeTime()
    policy = time.policy(budget=10.0, attempts=10)
    async with OperatorClient(fake_operator.url, "key", retry=policy) as client:
        with pytest.raises(ApiError) as raised:
            await client.create_request("alfa", NUMBER, idempotency_key="k")
    assert raised.value.status == 503
    assert sum(time.sleeps) <= 10.0
    assert len(time.sleeps) == 2


async def test_client_errors_are_not_retried(fake_operator: FakeOperator) -> None:
    fake_operator.create = [json_reply({"code": "nope"}, 422, "application/problem+json")]
    time = FakeTime()
    async with OperatorClient(fake_operator.url, "key", retry=time.policy()) as client:
        with pytest.raises(ApiError) as raised:
            await client.create_request("alfa", NUMBER, idempotency_key="k")
    assert raised.value.status == 422
    assert time.sleeps == []
    assert len(fake_operator.posted("identification-requests")) == 1


async def test_invalid_response_is_not_retried(fake_operator: FakeOperator) -> None:
    fake_operator.create = [json_reply("<html/>", 201, "text/html")]
    async with OperatorClient(fake_operator.url, "key", retry=FakeTime().policy()) as client:
        with pytest.raises(InvalidResponse):
            await client.create_request("alfa", NUMBER, idempotency_key="k")
    assert len(fake_operator.posted("identification-requests")) == 1


async def test_connection_refused_is_a_transport_error(unused_tcp_port: int) -> None:
    url = f"http://127.0.0.1:{unused_tcp_port}"
    async with OperatorClient(url, "key", retry=FakeTime().policy(attempts=2)) as client:
        with pytest.raises(TransportError):
            await client.route(NUMBER)
