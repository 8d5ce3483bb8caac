"""Logs mask phone numbers on the real processor chain; no personal data leaves the admin API."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from operator_sim.logs import configure_logging, mask_text
from operator_sim.server import create_app
from operator_sim.settings import Settings
from tests.conftest import DEMO_KEY, AiohttpClient, Sim


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    """Route structlog through the production processor chain into a buffer."""
    stream = io.StringIO()
    configure_logging("debug", "json", stream)
    yield stream
    structlog.reset_defaults()


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("+79161234567", "+7916*****67"),
        ("path /v1/routing/%2B79161234567", "path /v1/routing/%2B7916*****67"),
        ("typed 8 (916) 123-45-67", "typed 8916*****67"),
        ("+7 916 123 45 67", "+7916*****67"),
        ("bare 79161234567", "bare 7916*****67"),
        ("+4915112345678", "+4915*******78"),
        ("+1234567", "+12***67"),
        ("short %2B49301234 in a path", "short %2B49****34 in a path"),
    ],
)
def test_mask_text(text: str, masked: str) -> None:
    assert mask_text(text) == masked


def test_mask_text_leaves_timestamps_and_small_numbers() -> None:
    for text in ["2026-11-28T02:15:37.123Z", "took 12345 ms", "ir_01JDX7916123456"]:
        assert mask_text(text) == text


def test_every_value_is_masked_on_the_real_chain(log_stream: io.StringIO) -> None:
    log = structlog.get_logger("test")
    log.info(
        "checking +79161234567",
        msisdn="+79161234567",
        nested={"numbers": ["8 916 123 45 67", 79161234567]},
        path="/v1/routing/%2B79161234567",
    )
    line = log_stream.getvalue().strip()
    record = json.loads(line)
    assert record["event"] == "checking +7916*****67"
    assert record["msisdn"] == "+7916*****67"
    assert record["nested"] == {"numbers": ["8916*****67", "7916*****67"]}
    assert "1234567" not in line
    assert record["level"] == "info"
    assert record["timestamp"].endswith("Z")


def test_exceptions_are_masked_too(log_stream: io.StringIO) -> None:
    log = structlog.get_logger("test")
    try:
        raise ValueError("bad number +79161234567")
    except ValueError:
        log.exception("failed")
    record = json.loads(log_stream.getvalue().strip())
    assert "+7916*****67" in record["exception"]
    assert "+79161234567" not in record["exception"]


CANARY = {
    "msisdn": "+79001234567",
    "operator_id": "alfa",
    "full_name": "Канарейкин Агафон Пантелеймонович",
    "birth_date": "1961-02-28",
    "passport": "4509 777111",
    "address": "г. Канареечный, ул. Птичья, д. 13, кв. 77",
}
_PII = [
    "Канарейкин",
    "Агафон",
    "Пантелеймонович",
    "1961-02-28",
    "4509 777111",
    "777111",
    "Канареечный",
    "Птичья",
]


async def test_no_personal_data_in_messenger_responses_or_logs(
    aiohttp_client: AiohttpClient, tmp_path: Path, log_stream: io.StringIO
) -> None:
    app = create_app(Settings(db=tmp_path / "pii.db", clock="manual"))
    sim = Sim(await aiohttp_client(app), tmp_path / "pii.db")
    await sim.add_subscribers(CANARY)
    admin_view = await sim.admin_ok("GET", f"/subscribers/{CANARY['msisdn']}")
    assert admin_view["full_name"] == CANARY["full_name"]  # the admin API may show it

    bodies: list[str] = []

    async def keep(resp: Any) -> Any:
        bodies.append(await resp.text())
        bodies.append(json.dumps(dict(resp.headers)))
        return resp

    h = sim.auth(DEMO_KEY)
    routing = await keep(await sim.client.get(f"/v1/routing/{CANARY['msisdn']}", headers=h))
    assert routing.status == 200
    created = await keep(await sim.identify(CANARY["msisdn"], headers={"Prefer": "wait=1"}))
    request = await created.json()
    assert request["result"] == "present"
    await keep(
        await sim.client.get(
            f"/operators/alfa/v1/identification-requests/{request['id']}", headers=h
        )
    )
    await keep(await sim.register_code(request["id"], "canary-code-0001"))
    await keep(await sim.identify(CANARY["msisdn"], operator="beta"))
    await keep(
        await sim.client.post(
            "/operators/alfa/v1/identification-requests", data=b"{oops", headers=h
        )
    )
    await keep(
        await sim.client.delete(
            "/operators/alfa/v1/identification-codes/canary-code-0001", headers=h
        )
    )
    await keep(await sim.client.get("/metrics"))

    logs = log_stream.getvalue()
    assert logs.count('"event": "request"') >= 8  # one canonical line per request
    for text in [*bodies, logs]:
        for pii in _PII:
            assert pii not in text
    # Numbers appear in messenger responses (they sent them) but never unmasked in logs.
    assert CANARY["msisdn"] not in logs
    assert "79001234567" not in logs
    assert "+7900*****67" in logs


async def test_request_log_line_has_the_canonical_fields(sim: Sim, log_stream: io.StringIO) -> None:
    await sim.identify_ok("+79000000001", headers={"X-Request-Id": "trace-7"})
    lines = [json.loads(x) for x in log_stream.getvalue().splitlines()]
    request_lines = [x for x in lines if x["event"] == "request" and x["request_id"] == "trace-7"]
    assert len(request_lines) == 1
    line = request_lines[0]
    assert line["route"] == "/operators/{operator_id}/v1/identification-requests"
    assert line["status"] == 201
    assert line["method"] == "POST"
    assert line["messenger_id"] == "demo"
    assert isinstance(line["duration_ms"], float | int)


async def test_an_in_process_server_masks_numbers_when_nobody_configured_logging(
    aiohttp_client: AiohttpClient, db_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    structlog.reset_defaults()
    try:
        assert not structlog.is_configured()
        sim = Sim(await aiohttp_client(create_app(Settings(db=db_path, clock="manual"))), db_path)
        resp = await sim.identify("+79000000001")
        assert resp.status == 201
        out = capsys.readouterr().out
        assert "request" in out  # the server logged
        assert "+79000000001" not in out
        assert "identification_received" not in out  # a debug line: below the default level
        assert structlog.is_configured()
    finally:
        structlog.reset_defaults()


def test_a_logging_setup_of_the_host_process_is_kept(db_path: Path) -> None:
    stream = io.StringIO()
    configure_logging("debug", "json", stream)
    try:
        chain = structlog.get_config()["processors"]
        create_app(Settings(db=db_path, clock="manual"))
        assert structlog.get_config()["processors"] is chain
    finally:
        structlog.reset_defaults()
